from __future__ import annotations

import sys

from census_builder.cli.main import main

sys.exit(main())

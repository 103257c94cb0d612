from __future__ import annotations

import sys

from census_builder.cli import main

sys.exit(main())

"""``python -m census_builder``: the same command line as ``census-builder``."""

from __future__ import annotations

import sys

from census_builder.cli.main import main

sys.exit(main())

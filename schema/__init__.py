"""The Census schema as versioned data files (installed as the ``census_schema`` package).

Both ``census_builder`` and the independent ``validation`` package read these files; neither owns them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent
DEFAULT_VERSION = "1.3.0"


def available_versions() -> list[str]:
    """Census schema versions that have a data file here."""
    return sorted(p.stem.removeprefix("census_schema_") for p in SCHEMA_DIR.glob("census_schema_*.yaml"))


def load_document(version: str = DEFAULT_VERSION) -> dict[str, Any]:
    """Return the raw schema document for ``version`` (a plain mapping, as written in the YAML file)."""
    path = SCHEMA_DIR / f"census_schema_{version}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no Census schema data for version {version!r} (have {available_versions()})")
    with path.open(encoding="utf-8") as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc

"""census-builder: build versioned CELLxGENE Census releases (Census schema 1.3.0) with TileDB-SOMA and dask."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("census-builder")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

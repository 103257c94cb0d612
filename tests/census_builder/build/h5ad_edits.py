"""Edit one element of a generated H5AD in place (what the generators do not plant): tests' inputs only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from anndata.io import read_elem, write_elem


def rewrite(path: Path, key: str, change: Callable[[Any], Any]) -> None:
    """Replace the element at ``key`` (e.g. ``var/feature_length``) by ``change(its value)``."""
    with h5py.File(path, "r+") as f:
        value = change(read_elem(f[key]))
        del f[key]
        write_elem(f, key, value)


def rename_category(path: Path, key: str, old: str, new: str) -> None:
    """Rename category ``old`` of the categorical column at ``key`` (e.g. ``obs/assay``) to ``new``."""

    def change(c: pd.Categorical[str]) -> pd.Categorical[str]:
        return c.rename_categories({old: new})

    rewrite(path, key, change)


def as_dtype(path: Path, key: str, dtype: type[np.generic]) -> None:
    """Store the numeric column at ``key`` with ``dtype`` (same values)."""
    rewrite(path, key, lambda v: np.asarray(v).astype(dtype))


def delete(path: Path, key: str) -> None:
    """Remove the element at ``key``."""
    with h5py.File(path, "r+") as f:
        del f[key]

"""Reading source H5ADs with h5py, a slice at a time.

Dataframe columns are decoded from the AnnData on-disk encodings (categorical, string-array, array,
nullable-*), optionally for a row range only. Counts are read as row ranges whatever the layout (CSR,
CSC or dense), as stored: duplicates and explicit zeros are kept for the caller to handle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

CSC_SCAN = 4_000_000  # stored entries read at a time while scanning a CSC matrix
# h5py's chunk cache per dataset: holds a whole band of a compressed dense matrix's chunks (its default, 1 MiB,
# does not), so that a band read in parts is decompressed once
CHUNK_CACHE_BYTES = 16 * 2**20


class SourceError(Exception):
    """A source file lacks something the validator needs (the message names it)."""


def _attr(node: Any, key: str, default: str = "") -> str:
    v = node.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def _strings(values: npt.NDArray[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(values.shape[0], dtype=object)
    out[:] = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    return out


Coords = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]  # (rows, columns, values)


@dataclass(frozen=True)
class Counts:
    """Where the counts are: ``raw/X`` (with ``raw/var``) when the file has a raw layer, else ``X`` / ``var``."""

    matrix: str
    var: str


class SourceFile:
    """An open source H5AD (use as a context manager)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: h5py.File | None = None

    def __enter__(self) -> SourceFile:
        self._f = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=1_009)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    @property
    def f(self) -> h5py.File:
        """The open HDF5 file."""
        if self._f is None:
            raise RuntimeError("SourceFile used outside its context manager")
        return self._f

    # -- uns and layout --------------------------------------------------------------------------------
    def uns_string(self, key: str) -> str | None:
        """Return ``uns/key`` as a string (the first element of an array), None if it is not a dataset."""
        node = self.f.get(f"uns/{key}")
        if not isinstance(node, h5py.Dataset):
            return None
        v = node[()]
        if isinstance(v, np.ndarray):
            v = v.reshape(-1)[0] if v.size else ""
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    def counts(self) -> Counts:
        """Return where the counts are (``raw/X`` when the file has it, else ``X``)."""
        if "raw" in self.f and "X" in self.f["raw"]:
            return Counts("raw/X", "raw/var" if "raw/var" in self.f else "var")
        if "X" not in self.f:
            raise SourceError("the file has neither raw/X nor X")
        return Counts("X", "var")

    # -- dataframes ------------------------------------------------------------------------------------
    def _frame(self, key: str) -> h5py.Group:
        node = self.f.get(key)
        if not isinstance(node, h5py.Group):
            raise SourceError(f"{key} is missing or not a dataframe")
        return node

    def has_column(self, key: str, column: str) -> bool:
        """Tell whether dataframe ``key`` has ``column``."""
        return column in self._frame(key)

    def n_rows(self, key: str) -> int:
        """Return the number of rows of dataframe ``key`` (the length of its index)."""
        g = self._frame(key)
        name = _attr(g, "_index", "_index")
        node = g.get(name)
        if node is None:
            raise SourceError(f"{key} has no index column {name!r}")
        return int((node["codes"] if isinstance(node, h5py.Group) else node).shape[0])

    def index(self, key: str) -> npt.NDArray[np.object_]:
        """Return the index column of dataframe ``key``."""
        g = self._frame(key)
        name = _attr(g, "_index", "_index")
        if name not in g:
            raise SourceError(f"{key} has no index column {name!r}")
        return self.column(key, name)

    def column(self, key: str, column: str, start: int | None = None, stop: int | None = None) -> npt.NDArray[Any]:
        """Column values for rows [start, stop): strings as an object array, numbers and bools as stored.

        Missing (NA) categorical or string values come back as None.
        """
        g = self._frame(key)
        if column not in g:
            raise SourceError(f"{key}/{column} is missing")
        node = g[column]
        sl = slice(start, stop)
        enc = _attr(node, "encoding-type")
        if enc == "categorical":
            cats = node["categories"]
            categories = _strings(cats[...]) if cats.dtype.kind in "OSU" else np.asarray(cats[...])
            codes = np.asarray(node["codes"][sl], dtype=np.int64)
            out = np.empty(codes.shape[0], dtype=object)
            ok = codes >= 0
            out[ok] = categories[codes[ok]]
            out[~ok] = None
            return out
        if enc in ("nullable-boolean", "nullable-integer"):
            values = np.asarray(node["values"][sl])
            mask = np.asarray(node["mask"][sl], dtype=bool)
            if mask.any():
                obj = values.astype(object)
                obj[mask] = None
                return obj
            return values
        if isinstance(node, h5py.Dataset):
            if "categories" in node.attrs:  # legacy (pre-0.8) categorical: codes with a reference to categories
                categories = _strings(self.f[node.attrs["categories"]][...])
                codes = np.asarray(node[sl], dtype=np.int64)
                out = np.empty(codes.shape[0], dtype=object)
                ok = codes >= 0
                out[ok] = categories[codes[ok]]
                out[~ok] = None
                return out
            values = node[sl]
            return _strings(values) if node.dtype.kind in "OSU" else np.asarray(values)
        raise SourceError(f"{key}/{column} has an unsupported encoding {enc!r}")

    def codes(
        self, key: str, column: str, start: int | None = None, stop: int | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
        """Return a column as (codes, values as strings): ``values[codes]`` is the column; code -1 is NA.

        Categorical columns are not expanded (memory stays one small integer per row); others are factorized.
        """
        node = self._frame(key).get(column)
        if node is not None and _attr(node, "encoding-type") == "categorical":
            cats = node["categories"][...]
            return (
                np.asarray(node["codes"][slice(start, stop)], dtype=np.int64),
                _strings(cats) if cats.dtype.kind in "OSU" else _strings(np.asarray(cats).astype(str)),
            )
        values = self.column(key, column, start, stop)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        return np.asarray(codes, dtype=np.int64), _strings(np.asarray(uniques).astype(str))

    # -- counts ------------------------------------------------------------------------------------------
    def matrix(self, key: str) -> Matrix:
        """Return the counts matrix at ``key``."""
        return Matrix(self.f[key], key)


class Matrix:
    """Row-range reads of a counts matrix stored as CSR, CSC or dense."""

    def __init__(self, node: h5py.Group | h5py.Dataset, key: str) -> None:
        self.node = node
        self.key = key
        self._indptr: npt.NDArray[np.int64] | None = None
        if isinstance(node, h5py.Dataset):
            self.format = "dense"
            if node.ndim != 2:
                raise SourceError(f"{key} is a {node.ndim}-D array, not a matrix")
            self.shape: tuple[int, int] = (int(node.shape[0]), int(node.shape[1]))
            return
        enc = _attr(node, "encoding-type")
        if enc not in ("csr_matrix", "csc_matrix"):
            raise SourceError(f"{key} has an unsupported encoding {enc!r}")
        self.format = enc[:3]
        shape = node.attrs["shape"]
        self.shape = (int(shape[0]), int(shape[1]))

    @property
    def indptr(self) -> npt.NDArray[np.int64]:
        """The sparse matrix's index pointers (read once)."""
        if self._indptr is None:
            self._indptr = np.asarray(self.node["indptr"][...], dtype=np.int64)
        return self._indptr

    @property
    def stored(self) -> int:
        """Stored entries (dense: every cell)."""
        if self.format == "dense":
            return self.shape[0] * self.shape[1]
        return int(self.node["data"].shape[0])

    def row_chunks(self, target: int, max_rows: int) -> list[tuple[int, int]]:
        """Contiguous row ranges of about ``target`` stored entries and at most ``max_rows`` rows each."""
        n_obs, n_var = self.shape
        if n_obs == 0:
            return []
        if self.format == "csr":
            cum = self.indptr
            bounds = [0]
            while bounds[-1] < n_obs:
                a = bounds[-1]
                b = int(np.searchsorted(cum, cum[a] + target, side="right")) - 1
                bounds.append(min(n_obs, a + max_rows, max(b, a + 1)))
            return list(itertools.pairwise(bounds))
        if self.format == "dense":
            rows = min(max(1, target // max(1, n_var)), max_rows)
            band = self.node.chunks[0] if isinstance(self.node, h5py.Dataset) and self.node.chunks else 1
            if rows >= band:  # whole bands of HDF5 chunk rows: no chunk is decompressed by two reads
                rows -= rows % band
        else:  # CSC: every row range costs a scan of the whole matrix, so use big ranges
            rows = min(max(1, int(n_obs * (4 * target) / max(1, self.stored))), max_rows)
        return [(a, min(n_obs, a + rows)) for a in range(0, n_obs, rows)]

    def read_rows(self, start: int, stop: int) -> sp.coo_matrix:
        """Rows [start, stop), all columns, as stored (row indices relative to ``start``)."""
        rows, cols, data = self.read_coords(start, stop)
        return sp.coo_matrix((data, (rows, cols)), shape=(stop - start, self.shape[1]))

    def read_coords(self, start: int, stop: int) -> Coords:
        """Return (rows relative to ``start``, columns, values) of rows [start, stop) as stored.

        Duplicates and explicit zeros are kept; a dense matrix gives its non-zero cells.
        """
        n = stop - start
        if self.format == "dense":
            block = np.asarray(self.node[start:stop, :])
            r, c = np.nonzero(block)
            return r.astype(np.int64), c.astype(np.int64), block[r, c]
        if self.format == "csr":
            lo, hi = int(self.indptr[start]), int(self.indptr[stop])
            data = np.asarray(self.node["data"][lo:hi])
            cols = np.asarray(self.node["indices"][lo:hi], dtype=np.int64)
            rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr[start : stop + 1]))
            return rows, cols, data
        rows_l: list[npt.NDArray[np.int64]] = []
        cols_l: list[npt.NDArray[np.int64]] = []
        vals_l: list[npt.NDArray[Any]] = []
        total = int(self.indptr[-1])
        for lo in range(0, total, CSC_SCAN):
            hi = min(total, lo + CSC_SCAN)
            r = np.asarray(self.node["indices"][lo:hi], dtype=np.int64)
            pos = np.nonzero((r >= start) & (r < stop))[0]
            if pos.size == 0:
                continue
            rows_l.append(r[pos] - start)
            cols_l.append(np.searchsorted(self.indptr, lo + pos, side="right") - 1)
            vals_l.append(np.asarray(self.node["data"][lo:hi])[pos])
        if not rows_l:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype=self.node["data"].dtype)
        return np.concatenate(rows_l), np.concatenate(cols_l), np.concatenate(vals_l)

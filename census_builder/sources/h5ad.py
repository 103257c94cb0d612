"""Chunked, read-only access to CELLxGENE H5AD files through h5py and anndata's element reader.

Never loads a whole matrix: the counts are read one row range at a time, whatever the on-disk layout
(CSR, CSC or dense). Dataframes (obs/var) are read column by column, only the columns asked for.

Compressed sources (CELLxGENE writes gzip): HDF5 decompresses whole chunks, so the reads here are cut on
chunk boundaries where they can be (blocks of a scan are whole chunks; a dense matrix's row ranges are whole
bands of chunk rows, see :meth:`CountsMatrix.row_align`), and files are opened with a chunk cache large
enough for a dense band of chunks, so that no chunk is decompressed twice by one reader.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem

from census_builder.census.counts import first_bad_count
from census_builder.errors import InputError

logger = logging.getLogger(__name__)

MatrixFormat = Literal["csr", "csc", "dense"]
# Bound on the number of stored entries read at once while scanning a CSC matrix for a row range.
_CSC_SCAN_BLOCK = 8_000_000
# h5py's chunk cache of each dataset of an open file (its default, 1 MiB, holds no whole band of a dense matrix
# chunked by h5py's guess: 32 chunks of 120 KB for 30,000 genes). Prime number of slots, as HDF5 advises.
CHUNK_CACHE_BYTES = 16 * 2**20
CHUNK_CACHE_SLOTS = 1_009

CellGeneNamer = Callable[[int, int], str]  # (source row, source column) -> "cell ..., gene ..." for messages


@dataclass(frozen=True)
class CountsLocation:
    """Where the counts live: ``raw/X`` with ``raw/var`` when the file has a raw layer, else ``X`` with ``var``."""

    matrix: str  # "raw/X" or "X"
    var: str  # "raw/var" or "var"


class H5AD:
    """An open H5AD file. Use as a context manager; every failure raises InputError naming the dataset."""

    def __init__(self, path: str | Path, dataset_id: str, *, source: str = "") -> None:
        self.path = Path(path)
        self.dataset_id = dataset_id
        self.source = source  # the user's file (manifest URI) that ``path`` is a staged copy of: errors name it
        self._file: h5py.File | None = None

    def __enter__(self) -> H5AD:
        try:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=CHUNK_CACHE_SLOTS)
        except FileNotFoundError as e:
            raise self.error("file not found") from e
        except OSError as e:
            raise self.error(f"not a readable HDF5/H5AD file ({e})") from e
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def file(self) -> h5py.File:
        """The open HDF5 file."""
        if self._file is None:
            raise RuntimeError("H5AD used outside its context manager")
        return self._file

    def error(self, reason: str, field: str = "") -> InputError:
        """Return an InputError naming this dataset, its source file and ``field``."""
        return InputError(self.dataset_id, reason, uri=self.source or str(self.path), field=field)

    # -- uns -------------------------------------------------------------------------------------------
    def uns_string(self, key: str, default: str | None = None) -> str:
        """Read ``uns[key]`` as a string; ``default`` when missing, else an error."""
        uns = self.file.get("uns")
        if uns is None or key not in uns:
            if default is not None:
                return default
            raise self.error("missing from uns", field=f"uns/{key}")
        value = self._read(uns[key], f"uns/{key}")
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()
        return str(value)

    # -- dataframes ------------------------------------------------------------------------------------
    def counts_location(self) -> CountsLocation:
        """Return where the raw counts are: raw/X with raw/var, else X with var."""
        f = self.file
        if "raw" in f and "X" in f["raw"]:
            return CountsLocation(matrix="raw/X", var="raw/var")
        if "X" not in f:
            raise self.error("has neither raw.X nor X", field="X")
        return CountsLocation(matrix="X", var="var")

    def dataframe_index(self, key: str) -> pd.Index:
        """Read the index of the dataframe at ``key``."""
        group = self._group(key)
        index_col = group.attrs.get("_index", "_index")
        if isinstance(index_col, bytes):
            index_col = index_col.decode()
        if index_col not in group:
            raise self.error("has no index", field=key)
        values = self._read(group[index_col], f"{key}/{index_col}")
        index: pd.Index = pd.Index(np.asarray(values).astype(str))
        return index

    def read_dataframe(self, key: str, columns: Sequence[str], *, required: bool = True) -> pd.DataFrame:
        """Read ``columns`` of the dataframe at ``key`` (e.g. "obs", "raw/var").

        Missing required columns raise one error listing all of them; missing optional ones are left out.
        """
        group = self._group(key)
        index = self.dataframe_index(key)
        missing = [c for c in columns if c not in group]
        if missing and required:
            raise self.error(f"required column(s) missing: {', '.join(missing)}", field=f"{key}/{missing[0]}")
        data: dict[str, Any] = {}
        for c in columns:
            if c in group:
                values = self._read(group[c], f"{key}/{c}")
                if len(values) != len(index):
                    raise self.error(f"has {len(values)} values for {len(index)} rows", field=f"{key}/{c}")
                data[c] = values
        return pd.DataFrame(data, index=index)

    # -- counts ----------------------------------------------------------------------------------------
    def counts(self, location: CountsLocation | None = None) -> CountsMatrix:
        """Return the counts matrix (at ``location``, default :meth:`counts_location`)."""
        loc = location or self.counts_location()
        return CountsMatrix(self, self.file[loc.matrix], loc.matrix)

    # -- helpers ---------------------------------------------------------------------------------------
    def _group(self, key: str) -> h5py.Group:
        if key not in self.file:
            raise self.error("missing", field=key)
        node = self.file[key]
        if not isinstance(node, h5py.Group):
            raise self.error("is not an AnnData dataframe group", field=key)
        return node

    def _read(self, node: Any, field: str) -> Any:
        try:
            return read_elem(node)
        except Exception as e:  # anndata raises many types for malformed elements
            raise self.error(f"cannot be read ({type(e).__name__}: {e})", field=field) from e


class CountsMatrix:
    """Row-range reads of a counts matrix stored as CSR, CSC or dense in an open H5AD."""

    def __init__(self, h5: H5AD, node: h5py.Group | h5py.Dataset, key: str) -> None:
        self.h5 = h5
        self.key = key
        self.node = node
        self._indptr: npt.NDArray[np.int64] | None = None
        self._row_costs: npt.NDArray[np.int64] | None = None  # CSC: counted by check_values on its way
        if isinstance(node, h5py.Dataset):
            self.format: MatrixFormat = "dense"
            if node.ndim != 2:
                raise h5.error(f"dense matrix has {node.ndim} dimensions", field=key)
            self.shape: tuple[int, int] = (int(node.shape[0]), int(node.shape[1]))
            self.dtype = node.dtype
            return
        enc = node.attrs.get("encoding-type", "")
        enc = enc.decode() if isinstance(enc, bytes) else str(enc)
        if enc not in ("csr_matrix", "csc_matrix") or not {"data", "indices", "indptr"} <= set(node):
            raise h5.error(f"unsupported matrix encoding {enc!r}", field=key)
        self.format = "csr" if enc == "csr_matrix" else "csc"
        shape = node.attrs.get("shape")
        if shape is None or len(shape) != 2:
            raise h5.error("sparse matrix has no 2-D shape attribute", field=key)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = node["data"].dtype
        major = self.shape[0] if self.format == "csr" else self.shape[1]
        if node["indptr"].shape[0] != major + 1:
            raise h5.error(f"indptr has {node['indptr'].shape[0]} entries for {major} rows/columns", field=key)

    @property
    def indptr(self) -> npt.NDArray[np.int64]:
        """The sparse matrix's indptr, read once and checked non-decreasing from 0."""
        if self._indptr is None:
            self._indptr = np.asarray(self.node["indptr"][...], dtype=np.int64)
            if self._indptr[0] != 0 or np.any(np.diff(self._indptr) < 0):
                raise self.h5.error("indptr is not non-decreasing from 0", field=f"{self.key}/indptr")
            if self._indptr[-1] != self.node["data"].shape[0] or self.node["indices"].shape[0] != self._indptr[-1]:
                raise self.h5.error("indptr, indices and data lengths disagree", field=self.key)
        return self._indptr

    def row_align(self) -> int:
        """Rows per HDF5 chunk of a chunked dense matrix (row ranges that are multiples of it decompress each
        chunk once); 1 for sparse or contiguous matrices."""
        if self.format != "dense" or not isinstance(self.node, h5py.Dataset) or self.node.chunks is None:
            return 1
        return int(self.node.chunks[0])

    def _block(self, name: str, size: int) -> int:
        """``size`` rounded down to whole chunks of the 1-D dataset ``name`` (at least one chunk)."""
        chunks = self.node[name].chunks
        return size if chunks is None else max(1, size // chunks[0]) * chunks[0]

    def row_costs(self) -> npt.NDArray[np.int64]:
        """Return the stored entries per row (dense: the number of columns), used to size row chunks."""
        n_obs, n_var = self.shape
        if self.format == "dense":
            return np.full(n_obs, n_var, dtype=np.int64)
        if self.format == "csr":
            return np.diff(self.indptr)
        if self._row_costs is not None:
            return self._row_costs
        counts = np.zeros(n_obs, dtype=np.int64)
        for lo, hi in _blocks(int(self.indptr[-1]), self._block("indices", _CSC_SCAN_BLOCK)):
            idx = self._indices(lo, hi)
            counts += np.bincount(idx, minlength=n_obs)[:n_obs]
        return counts

    def check_values(self, block: int = _CSC_SCAN_BLOCK, name: CellGeneNamer | None = None) -> None:
        """Check every stored value (and sparse index) in one pass.

        Counts must be finite, non-negative integers that float32 (X["raw"]'s type) holds exactly, and
        indices must lie inside the shape. Raises InputError naming the first offender; ``name(row, col)``
        names its cell and gene.
        """

        def where(row: int, col: int | None) -> str:
            if name is None:
                return f" (row {row}" + ("" if col is None else f", column {col}") + ")"
            return f" at {name(row, -1 if col is None else col)}"

        n_obs, n_var = self.shape
        if self.format == "dense":
            rows = aligned(max(1, block // max(1, n_var)), self.row_align())
            for lo, hi in _blocks(n_obs, rows):
                bad = first_bad_count(np.asarray(self.node[lo:hi, :]).ravel())
                if bad is not None:
                    r, c = divmod(bad[0], n_var)
                    raise self.h5.error(bad[1] + where(lo + r, c), field=self.key)
            return
        indptr = self.indptr
        csr = self.format == "csr"
        minor = n_var if csr else n_obs
        costs = None if csr else np.zeros(n_obs, dtype=np.int64)
        for lo, hi in _blocks(int(indptr[-1]), self._block("indices", block)):
            idx = np.asarray(self.node["indices"][lo:hi])
            if idx.size and (idx.min() < 0 or idx.max() >= minor):
                i = int(np.argmax((idx < 0) | (idx >= minor)))
                major = int(np.searchsorted(indptr, lo + i, side="right")) - 1
                raise self.h5.error(
                    f"index {idx[i]} out of range [0, {minor}) at stored entry {lo + i}"
                    + (where(major, None) if csr else f" (column {major})"),
                    field=f"{self.key}/indices",
                )
            if costs is not None:
                costs += np.bincount(idx, minlength=n_obs)[:n_obs]
            bad = first_bad_count(np.asarray(self.node["data"][lo:hi]))
            if bad is not None:
                i = bad[0]
                major = int(np.searchsorted(indptr, lo + i, side="right")) - 1
                row, col = (major, int(idx[i])) if csr else (int(idx[i]), major)
                raise self.h5.error(bad[1] + where(row, col), field=self.key)
        if costs is not None:
            self._row_costs = costs

    def read_rows(self, start: int, stop: int) -> sp.csr_matrix:
        """Rows [start, stop) with all columns, as stored (duplicates and explicit zeros kept)."""
        n_var = self.shape[1]
        n = stop - start
        if self.format == "dense":
            block = np.asarray(self.node[start:stop, :])
            return sp.csr_matrix(block)
        if self.format == "csr":
            lo, hi = int(self.indptr[start]), int(self.indptr[stop])
            indptr = self.indptr[start : stop + 1] - lo
            data = np.asarray(self.node["data"][lo:hi])
            indices = self._indices(lo, hi)
            return sp.csr_matrix((data, indices, indptr), shape=(n, n_var))
        # CSC: scan the stored entries in bounded blocks and keep those in [start, stop).
        rows: list[npt.NDArray[np.int64]] = []
        cols: list[npt.NDArray[np.int64]] = []
        vals: list[npt.NDArray[Any]] = []
        indptr = self.indptr
        for lo, hi in _blocks(int(indptr[-1]), self._block("indices", _CSC_SCAN_BLOCK)):
            idx = self._indices(lo, hi).astype(np.int64)
            keep = (idx >= start) & (idx < stop)
            if not keep.any():
                continue
            pos = np.nonzero(keep)[0]
            col_of = np.searchsorted(indptr, lo + pos, side="right") - 1
            rows.append(idx[pos] - start)
            cols.append(col_of)
            vals.append(np.asarray(self.node["data"][lo:hi])[pos])
        if not rows:
            return sp.csr_matrix((n, n_var), dtype=self.dtype)
        coo = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n_var))
        return coo.tocsr()  # sums duplicates, like CSR input after canonicalisation

    def _indices(self, lo: int, hi: int) -> npt.NDArray[np.int64]:
        idx = np.asarray(self.node["indices"][lo:hi])
        minor = self.shape[1] if self.format == "csr" else self.shape[0]
        if idx.size and (idx.min() < 0 or idx.max() >= minor):
            raise self.h5.error(f"index out of range [0, {minor})", field=f"{self.key}/indices")
        return idx


def check_counts(values: npt.NDArray[Any], h5: H5AD, key: str) -> None:
    """Raise InputError unless every value is a finite, non-negative integer that float32 holds exactly."""
    bad = first_bad_count(values)
    if bad is not None:
        raise h5.error(bad[1], field=key)


def _blocks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, total, size):
        yield lo, min(total, lo + size)


def aligned(rows: int, align: int) -> int:
    """``rows`` rounded down to a multiple of ``align`` when it holds at least one (else unchanged)."""
    return rows - rows % align if align > 1 and rows >= align else rows


def plan_row_chunks(row_costs: npt.NDArray[np.int64], target: int, align: int = 1) -> list[tuple[int, int]]:
    """Split rows into contiguous ranges of about ``target`` stored entries each (at least one row each).

    ``align`` (:meth:`CountsMatrix.row_align`): each range that spans at least ``align`` rows ends on a multiple
    of ``align`` (the last ends at the last row), so that ranges read no HDF5 chunk in common.
    """
    n = len(row_costs)
    if n == 0:
        return []
    cum = np.concatenate([[0], np.cumsum(row_costs, dtype=np.int64)])
    bounds = [0]
    while bounds[-1] < n:
        start = bounds[-1]
        stop = int(np.searchsorted(cum, cum[start] + max(target, 1), side="right")) - 1
        stop = max(stop, start + 1)
        if stop < n and align > 1 and stop - start >= align:
            stop -= stop % align  # still after start: stop - start >= align > stop % align
        bounds.append(min(n, stop))
    return list(itertools.pairwise(bounds))

"""Per-cell and per-gene statistics of the counts, and library-size normalization.

All accumulation is in float64; results are cast to the schema's encodings only when written. A row is
always complete inside one chunk (chunks are row ranges), so per-cell statistics need no merging; per-gene
counts are summed over chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

F32_TINY = np.finfo(np.float32).smallest_subnormal


@dataclass(frozen=True)
class RowStats:
    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]


def canonical(
    m: sp.csr_matrix, col_map: npt.NDArray[np.int64] | None = None, n_cols: int | None = None
) -> sp.csr_matrix:
    """Duplicates summed, explicit zeros removed, indices sorted (the input is untouched).

    With ``col_map`` (source column -> output column, -1 drops it) the columns are renumbered on the way,
    into a matrix of ``n_cols`` columns.
    """
    n_rows = m.shape[0]
    n_cols = m.shape[1] if n_cols is None else n_cols
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(m.indptr))
    cols = np.asarray(m.indices, dtype=np.int64)
    data = np.asarray(m.data, dtype=np.float64)
    if col_map is not None:
        cols = col_map[cols]
        keep = cols >= 0
        if not keep.all():
            rows, cols, data = rows[keep], cols[keep], data[keep]
    cell = rows * n_cols + cols  # (row, column) as one sortable integer
    if cell.size > 1 and not bool((cell[1:] > cell[:-1]).all()):
        cell, data = _sort_cells(cell, data, n_rows * n_cols)
        first = np.concatenate(([True], cell[1:] != cell[:-1]))
        if not first.all():  # duplicates: sum each run of equal cells
            starts = np.flatnonzero(first)
            cell, data = cell[starts], np.add.reduceat(data, starts)
    nonzero = data != 0
    if not nonzero.all():
        cell, data = cell[nonzero], data[nonzero]
    # cells are sorted: row boundaries by binary search, columns by subtracting each row's first cell id
    row_first = np.arange(n_rows + 1, dtype=np.int64) * n_cols
    indptr = np.searchsorted(cell, row_first)
    cols = cell - np.repeat(row_first[:-1], np.diff(indptr))
    out = sp.csr_matrix((data, cols, indptr), shape=(n_rows, n_cols))
    out.has_canonical_format = True
    return out


def _sort_cells(
    cell: npt.NDArray[np.int64], data: npt.NDArray[np.float64], n_cells: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """``cell`` ascending (stable for equal cells) and ``data`` along with it.

    When cell ids and positions fit in 63 bits together, one value sort of ``cell << bits | position``
    (numpy's vectorised sort; several times faster than an argsort) gives both; else a stable argsort.
    """
    bits = max(int(cell.size - 1).bit_length(), 1)
    if max(n_cells - 1, 1).bit_length() + bits <= 63:
        packed = (cell << bits) | np.arange(cell.size, dtype=np.int64)
        packed.sort()
        order = packed & ((1 << bits) - 1)
        return packed >> bits, data[order]
    order = np.argsort(cell, kind="stable")
    return cell[order], data[order]


def row_stats(m: sp.csr_matrix) -> RowStats:
    """Statistics of a canonical CSR matrix's rows over their non-zero values.

    variance is the sample variance (ddof=1) of the non-zero values, 0 with fewer than two; mean is 0 with none.
    """
    nnz = np.diff(m.indptr).astype(np.int64)
    data = np.asarray(m.data, dtype=np.float64)
    sums = _row_sums(m.indptr, data)
    mean = np.divide(sums, nnz, out=np.zeros_like(sums), where=nnz > 0)
    dev2 = (data - np.repeat(mean, nnz)) ** 2
    m2 = _row_sums(m.indptr, dev2)
    var = np.divide(m2, nnz - 1, out=np.zeros_like(m2), where=nnz > 1)
    return RowStats(nnz=nnz, raw_sum=sums, raw_mean_nnz=mean, raw_variance_nnz=var)


def column_nnz(m: sp.csr_matrix) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(column ids with at least one non-zero, their non-zero counts) of a canonical CSR matrix."""
    counts = np.bincount(m.indices, minlength=m.shape[1])
    ids = np.nonzero(counts)[0].astype(np.int64)
    return ids, counts[ids].astype(np.int64)


def normalize(
    m: sp.csr_matrix,
    row_sums: npt.NDArray[np.float64],
    length_rows: npt.NDArray[np.bool_],
    feature_length: npt.NDArray[np.float64],
) -> npt.NDArray[np.float32]:
    """X["normalized"] values for the stored entries of canonical ``m`` (same order as ``m.data``).

    ``normalized[i,j] = X[i,j] / sum(X[i,:])``; for rows in ``length_rows`` (Smart-seq assays)
    ``normalized[i,j] = (X[i,j] / L[j]) / sum_k(X[i,k] / L[k])`` with ``L = feature_length`` per column.
    Every stored value is > 0: a positive value that would round to 0 in float32 is stored as the
    smallest positive float32.
    """
    nnz = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), nnz)
    data = np.asarray(m.data, dtype=np.float64)
    if length_rows.any():
        by_len = data / feature_length[m.indices]
        on = length_rows[rows]
        data = np.where(on, by_len, data)
        sums = np.where(length_rows, _row_sums(m.indptr, data), row_sums)
    else:
        sums = row_sums
    out: npt.NDArray[np.float32] = (data / sums[rows]).astype(np.float32)
    np.maximum(out, F32_TINY, out=out)
    return out


def _row_sums(indptr: npt.NDArray[np.integer[Any]], values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-row sums of ``values`` (aligned with a CSR matrix's data): 0 for empty rows."""
    out = np.zeros(indptr.size - 1, dtype=np.float64)
    filled = indptr[1:] > indptr[:-1]
    if filled.any():
        out[filled] = np.add.reduceat(values, indptr[:-1][filled])
    return out

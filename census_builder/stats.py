"""Per-cell and per-gene statistics of the counts, and library-size normalization.

All accumulation is in float64; results are cast to the schema's encodings only when written. A row is
always complete inside one chunk (chunks are row ranges), so per-cell statistics need no merging; per-gene
counts are summed over chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def canonical(m: sp.csr_matrix) -> sp.csr_matrix:
    """Duplicates summed, explicit zeros removed, indices sorted (a copy; the input is untouched)."""
    out = sp.csr_matrix(m, dtype=np.float64, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def row_stats(m: sp.csr_matrix) -> RowStats:
    """Statistics of a canonical CSR matrix's rows over their non-zero values.

    variance is the sample variance (ddof=1) of the non-zero values, 0 with fewer than two; mean is 0 with none.
    """
    nnz = np.diff(m.indptr).astype(np.int64)
    data = np.asarray(m.data, dtype=np.float64)
    rows = np.repeat(np.arange(m.shape[0]), nnz)
    sums = _row_sums(rows, data, m.shape[0])
    mean = np.divide(sums, nnz, out=np.zeros_like(sums), where=nnz > 0)
    dev2 = (data - mean[rows]) ** 2
    m2 = _row_sums(rows, dev2, m.shape[0])
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
        sums = np.where(length_rows, _row_sums(rows, data, m.shape[0]), row_sums)
    else:
        sums = row_sums
    out: npt.NDArray[np.float32] = (data / sums[rows]).astype(np.float32)
    np.maximum(out, F32_TINY, out=out)
    return out


def _row_sums(rows: npt.NDArray[np.int64], values: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    return np.bincount(rows, weights=values, minlength=n).astype(np.float64, copy=False)

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
INT64_VALUE_BITS = 63  # bits of a non-negative int64


@dataclass(frozen=True)
class RowStats:
    """Per-row statistics of a chunk's non-zero values (see :func:`row_stats`)."""

    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Counts:
    """A chunk's counts as unique, non-zero coordinates, ordered as TileDB stores them.

    That is its global order: by space tile, row-major inside a tile, so the X writes need no sort.
    ``rows`` are chunk-local.
    """

    n_rows: int
    n_cols: int
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    data: npt.NDArray[np.float64]

    @property
    def nnz(self) -> int:
        """The number of stored (non-zero) values."""
        return int(self.data.size)

    def to_csr(self) -> sp.csr_matrix:
        """Return the counts as a CSR matrix of ``n_rows`` x ``n_cols``."""
        return sp.csr_matrix((self.data, (self.rows, self.cols)), shape=(self.n_rows, self.n_cols))


def chunk_counts(
    m: sp.csr_matrix,
    col_map: npt.NDArray[np.int64] | None = None,
    n_cols: int | None = None,
    *,
    row_offset: int = 0,
    tile: int,
) -> Counts:
    """Return ``m``'s values as :class:`Counts` in TileDB's global order.

    ``m`` is as stored: duplicates, explicit zeros, any column order. Its columns are renumbered by
    ``col_map`` (source column -> output column, -1 drops it; output width ``n_cols``), duplicates summed
    and zeros dropped, in the global order of ``tile`` x ``tile`` row-major space tiles (a power of two)
    for rows placed at ``row_offset``.

    Each value gets its global-order rank as bit fields (row tile | column tile | row in tile | column in
    tile), built from two small lookup tables; one sort of the ranks orders everything, and rows and
    columns are read back out of the sorted ranks.
    """
    if tile <= 0 or tile & (tile - 1):
        raise ValueError(f"tile must be a power of two, got {tile}")
    n_rows = m.shape[0]
    n_cols = m.shape[1] if n_cols is None else n_cols
    tb = tile.bit_length() - 1  # bits of a position inside a tile
    cb = max(-(-n_cols // tile) - 1, 0).bit_length()  # bits of a column tile number
    first_tile = row_offset >> tb
    absolute = np.arange(row_offset, row_offset + n_rows, dtype=np.int64)
    row_rank = (((absolute >> tb) - first_tile) << (cb + 2 * tb)) | ((absolute & (tile - 1)) << tb)
    out_cols = np.arange(n_cols, dtype=np.int64)
    col_rank = ((out_cols >> tb) << (2 * tb)) | (out_cols & (tile - 1))
    if col_map is not None:  # source column -> rank part of its output column, -1 for dropped columns
        mapped = col_map >= 0
        source_col_rank = np.full(col_map.shape, -1, dtype=np.int64)
        source_col_rank[mapped] = col_rank[col_map[mapped]]
        col_rank = source_col_rank
    source_rank = col_rank[m.indices] if m.nnz else np.zeros(0, dtype=np.int64)
    key: npt.NDArray[np.int64] = np.repeat(row_rank, np.diff(m.indptr)) | source_rank
    data = np.asarray(m.data, dtype=np.float64)
    keep = source_rank >= 0
    if not keep.all():
        key, data = key[keep], data[keep]
    if key.size:
        n_keys = int(row_rank[-1]) + (1 << (cb + 2 * tb))
        key, order = _sort_by_key(key, n_keys)
        data = data[order]
        first = np.concatenate(([True], key[1:] != key[:-1]))
        if not first.all():  # duplicates: sum each run of equal cells
            starts = np.flatnonzero(first)
            key, data = key[starts], np.add.reduceat(data, starts)
        nonzero = data != 0
        if not nonzero.all():
            key, data = key[nonzero], data[nonzero]
    rows = ((((key >> (cb + 2 * tb)) + first_tile) << tb) | ((key >> tb) & (tile - 1))) - row_offset
    cols = (((key >> (2 * tb)) & ((1 << cb) - 1)) << tb) | (key & (tile - 1))
    return Counts(n_rows, n_cols, rows, cols, data)


def _sort_by_key(key: npt.NDArray[np.int64], n_keys: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(``key`` sorted, the stable permutation that sorts it).

    When keys and positions fit in 63 bits together, one value sort of ``key << bits | position``
    (numpy's vectorised sort, several times faster than an argsort) gives both; else a stable argsort.
    """
    bits = max(int(key.size - 1).bit_length(), 1)
    if max(n_keys - 1, 1).bit_length() + bits <= INT64_VALUE_BITS:
        packed = (key << bits) | np.arange(key.size, dtype=np.int64)
        packed.sort()
        return packed >> bits, packed & ((1 << bits) - 1)
    order = np.argsort(key, kind="stable")
    return key[order], order


def row_stats(c: Counts) -> RowStats:
    """Statistics of each row's non-zero values.

    variance is the sample variance (ddof=1) of the non-zero values, 0 with fewer than two; mean is 0 with none.
    """
    nnz = np.bincount(c.rows, minlength=c.n_rows).astype(np.int64)
    sums = _row_sums(c, c.data)
    mean = np.divide(sums, nnz, out=np.zeros_like(sums), where=nnz > 0)
    m2 = _row_sums(c, (c.data - mean[c.rows]) ** 2)
    var = np.divide(m2, nnz - 1, out=np.zeros_like(m2), where=nnz > 1)
    return RowStats(nnz=nnz, raw_sum=sums, raw_mean_nnz=mean, raw_variance_nnz=var)


def column_nnz(c: Counts) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(column ids with at least one non-zero, their non-zero counts)."""
    counts = np.bincount(c.cols, minlength=c.n_cols)
    ids = np.nonzero(counts)[0].astype(np.int64)
    return ids, counts[ids].astype(np.int64)


def normalize(
    c: Counts,
    row_sums: npt.NDArray[np.float64],
    length_rows: npt.NDArray[np.bool_],
    feature_length: npt.NDArray[np.float64],
    keep_bits: int | None = None,
) -> npt.NDArray[np.float32]:
    """X["normalized"] values for the stored entries of ``c`` (same order as ``c.data``).

    ``normalized[i,j] = X[i,j] / sum(X[i,:])``; for rows in ``length_rows`` (Smart-seq assays)
    ``normalized[i,j] = (X[i,j] / L[j]) / sum_k(X[i,k] / L[k])`` with ``L = feature_length`` per column.
    With ``keep_bits`` each value is rounded to that many mantissa bits (:func:`round_mantissa`). Every
    stored value is > 0: a positive value that would round to 0 is stored as the smallest positive float32.
    """
    data = c.data
    if length_rows.any():
        on = length_rows[c.rows]
        data = np.where(on, data / np.where(on, feature_length[c.cols], 1.0), data)
        sums = np.where(length_rows, _row_sums(c, data), row_sums)
    else:
        sums = row_sums
    out: npt.NDArray[np.float32] = (data / sums[c.rows]).astype(np.float32)
    if keep_bits is not None:
        round_mantissa(out, keep_bits)
    np.maximum(out, F32_TINY, out=out)
    return out


def round_mantissa(values: npt.NDArray[np.float32], keep_bits: int) -> None:
    """Round float32 ``values`` in place to ``keep_bits`` explicit mantissa bits, half to even.

    The dropped low bits become zeros, which Zstd stores in far fewer bytes; the value moves by at most half
    a unit of the kept last bit: ``2**-(keep_bits + 1)`` relative. A carry out of the mantissa increments the
    exponent, which is the correctly rounded value. Positive subnormals may round to 0 (callers clamp).
    """
    drop = 23 - keep_bits
    if not 0 < drop < 23:
        raise ValueError(f"keep_bits must be 1..22, not {keep_bits}")
    bits = values.view(np.uint32)
    bits += ((bits >> np.uint32(drop)) & np.uint32(1)) + np.uint32((1 << (drop - 1)) - 1)
    bits &= np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)


def _row_sums(c: Counts, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-row sums of ``values`` (aligned with ``c.data``): 0 for empty rows."""
    return np.bincount(c.rows, weights=values, minlength=c.n_rows).astype(np.float64, copy=False)

"""obs statistics and census_info summary tallies, recomputed from source values with plain numpy in float64.

Per cell: nnz, raw_sum, raw_mean_nnz and raw_variance_nnz over the cell's non-zero counts (duplicates summed,
zeros dropped first: see validation.expected.counts). Per category pair: cells and primary cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

DENSE_TALLY_MAX = 10_000_000  # pair_counts tallies every possible (a, b) pair densely up to this many pairs


@dataclass(frozen=True)
class RowStats:
    """obs statistics of a run of cells, recomputed from their source counts."""

    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]

    @classmethod
    def zeros(cls, n: int) -> RowStats:
        """Statistics of ``n`` cells, all 0 (to be filled part by part)."""
        return cls(np.zeros(n, np.int64), np.zeros(n), np.zeros(n), np.zeros(n))

    def fill(self, start: int, part: RowStats) -> None:
        """Set rows [start, start + len(part)) from ``part``."""
        for name in ("nnz", "raw_sum", "raw_mean_nnz", "raw_variance_nnz"):
            getattr(self, name)[start : start + part.nnz.size] = getattr(part, name)


def row_sums(bounds: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Per-row sums of ``values`` (summed in float64) for rows [bounds[i], bounds[i + 1]); 0 for empty rows."""
    out = np.zeros(bounds.size - 1, dtype=np.float64)
    filled = bounds[1:] > bounds[:-1]
    if filled.any():  # (converting first is 2x faster than reduceat's own casting)
        out[filled] = np.add.reduceat(np.asarray(values, dtype=np.float64), bounds[:-1][filled])
    return out


def row_stats(bounds: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> RowStats:
    """Compute per-row statistics over each row's non-zero values (rows as CSR pointers into ``values``).

    Two-pass in float64: sum, mean (0 without values), sample variance ddof=1 (0 with fewer than two).
    """
    nnz = np.diff(bounds).astype(np.int64)
    total = row_sums(bounds, values)
    mean = np.divide(total, nnz, out=np.zeros_like(total), where=nnz > 0)
    squares = row_sums(bounds, (values - np.repeat(mean, nnz)) ** 2)
    var = np.divide(squares, nnz - 1, out=np.zeros_like(squares), where=nnz > 1)
    return RowStats(nnz, total, mean, var)


def pair_counts(
    a: tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]],
    b: tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]],
    primary: npt.NDArray[np.bool_],
) -> dict[tuple[str, str], list[int]]:
    """Tally (a value, b value) -> [cells, primary cells], for two coded columns of the same rows."""
    (ac, an), (bc, bn) = a, b
    width = len(bn) + 1
    idx = (ac + 1) * width + (bc + 1)  # code -1 (NA) becomes 0
    if (len(an) + 1) * width <= DENSE_TALLY_MAX:  # dense tally over every possible pair
        total = np.bincount(idx, minlength=(len(an) + 1) * width)
        unique = np.bincount(idx, weights=primary.astype(np.float64), minlength=total.size)
        keys = np.nonzero(total)[0]
        total, unique = total[keys], unique[keys]
    else:
        inverse, uniques = pd.factorize(idx)
        keys = np.asarray(uniques, dtype=np.int64)
        total = np.bincount(inverse, minlength=keys.size)
        unique = np.bincount(inverse, weights=primary.astype(np.float64), minlength=keys.size)
    names_a, names_b = np.append(an, "nan"), np.append(bn, "nan")  # index -1: NA
    return {
        (str(names_a[k // width - 1]), str(names_b[k % width - 1])): [int(t), int(u)]
        for k, t, u in zip(keys, total, unique, strict=True)
    }

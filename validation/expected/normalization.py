"""X['normalized'] recomputed from the source counts, in float64.

Each count is divided by its gene's feature_length for cells of a length-normalized assay (Smart-seq), then by
the cell's sum of those values: every row sums to 1.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from validation.checks.entries import Entries
from validation.expected.statistics import row_sums


def length_divided(
    entries: Entries, bounds: npt.NDArray[np.int64], smart: npt.NDArray[np.bool_], col_length: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Return the counts as normalization divides them, in float64, and the entries it cannot divide.

    ``entries`` are sorted in rows ``bounds`` (CSR pointers); those of the rows marked ``smart`` are divided by
    ``col_length`` of their column code. The second array lists the positions of those whose gene has no
    positive feature_length (they become NaN).
    """
    x = np.asarray(entries.values, dtype=np.float64)
    if not smart.any():
        return x, np.zeros(0, np.int64)
    by_length = np.flatnonzero(np.repeat(smart, np.diff(bounds)))  # entries of Smart-seq cells
    lengths = col_length[entries.key[by_length] & ((1 << entries.col_bits) - 1)]
    x = x.copy()
    x[by_length] /= np.where(lengths > 0, lengths, np.nan)
    return x, by_length[lengths <= 0].astype(np.int64)


def normalized(x: npt.NDArray[np.float64], bounds: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Each row of ``x`` (see :func:`length_divided`) divided by its sum."""
    out: npt.NDArray[np.float64] = x / np.repeat(row_sums(bounds, x), np.diff(bounds))
    return out

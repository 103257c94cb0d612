"""The X['raw'] values a source's stored counts stand for, as the release must hold them.

A source may store a (cell, gene) count more than once (the values add up) and may store zeros (which the
release must not): the expected entries are summed per (row, column), zeros dropped, in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checks.entries import Entries, sorted_keys


def expected_entries(
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
    n_rows: int,
    col_bits: int,
    dropped: npt.NDArray[np.bool_] | None,
    col_map: npt.NDArray[np.int64],
) -> Entries:
    """Turn a source's stored entries (rows among kept cells, source columns) into what the release must hold.

    Sorted by (row, column) with duplicates summed and zeros dropped, in float64; entries marked ``dropped``
    (cells or genes the Census leaves out) removed. A canonical CSR source needs no sort.
    """
    if dropped is not None:
        kept = ~dropped
        rows, cols, values = rows[kept], cols[kept], values[kept]
    key = rows << col_bits
    key |= cols
    key, order = sorted_keys(key, max(n_rows - 1, 1).bit_length() + col_bits)
    n = key.size
    x = np.asarray(values if order is None else values[order], dtype=np.float64)
    first = np.empty(n, dtype=bool)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    if not first.all():
        starts = np.flatnonzero(first)
        key, x = key[starts], np.add.reduceat(x, starts)
    nonzero = x != 0
    if not nonzero.all():
        key, x = key[nonzero], x[nonzero]
    return Entries(key, x, col_bits, col_map)

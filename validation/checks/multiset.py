"""An order-free summary of a part's X entries: equal summaries mean equal multisets of (key, value).

TileDB returns a part's values in its own order (column tiles first, then rows), never in the expected
(row, column) order; sorting them only to learn that nothing differs is the largest cost of a validation. So
each side is first summarised without sorting: the number of entries and the sum (mod 2^64) of a mixed 64-bit
hash of each (key, value) entry, key = part-local row << col_bits | column code (validation.checks.entries).

The hash is ``mix(mix(key) ^ bits(value as float64))`` with splitmix64's finalizer ``mix``
(validation.checks.fingerprint). The inner mix spreads the key over all 64 bits, so that no structured change
of a key can be undone by a change of the value's bits; the outer mix makes the summed terms unrelated to each
other, so entries cannot trade rows, columns or values and keep the sum. The value is hashed as float64 bits:
float32 widens to float64 exactly, so equal bits mean exactly the comparison
:func:`validation.checks.exact.raw_differs` makes (a count float32 cannot hold differs; so do 0 and -0).
For two different multisets the counts differ or the sums collide with probability about 2^-64; equal counts
and sums are taken as proof that every entry is right, anything else is compared entry by entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checks.fingerprint import _C1, _C2


def _mix(z: npt.NDArray[np.uint64], tmp: npt.NDArray[np.uint64]) -> None:
    """``z = mix(z)`` in place (``tmp``: scratch of z's size): no temporaries for a part's millions of entries."""
    for shift, factor in ((30, _C1), (27, _C2)):
        np.right_shift(z, np.uint64(shift), out=tmp)
        z ^= tmp
        z *= factor  # wraps modulo 2^64
    np.right_shift(z, np.uint64(31), out=tmp)
    z ^= tmp


def entry_hashes(key: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """Return the mixed hash of each (key, value) entry (see the module docstring); same as ``mix``'s."""
    h = key.astype(np.uint64)
    tmp = np.empty_like(h)
    _mix(h, tmp)
    np.copyto(tmp.view(np.float64), values, casting="same_kind")  # the value's float64 bits
    h ^= tmp
    _mix(h, tmp)
    return h


def multiset_sum(key: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> tuple[int, int]:
    """Return (number of entries, sum mod 2^64 of their hashes): the same for the same entries in any order."""
    return int(key.size), int(entry_hashes(key, values).sum(dtype=np.uint64))

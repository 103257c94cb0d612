"""Sorted entries of a matrix row range, and matching two of them (expected vs found) by (row, column).

Both sides of every X comparison are turned into ``Entries``: one int64 key per stored value (row and column
code packed), sorted, so that matching is a merge of sorted arrays instead of a dictionary or a dense block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.inputs.release import obs_coords


@dataclass(frozen=True)
class Entries:
    """A chunk's stored values sorted by (row, column code): ``key = row << col_bits | code``, rows chunk-local.

    Columns are compared in the source's order, where a CSR source's stored counts already are: a gene's
    code is its source column; a release column that is none of the dataset's genes (var soma_joinid v)
    gets code n_source + v, so it matches nothing. ``col_map`` turns codes back into var soma_joinids.
    """

    key: npt.NDArray[np.int64]
    values: npt.NDArray[Any]
    col_bits: int
    col_map: npt.NDArray[np.int64]

    @property
    def codes(self) -> npt.NDArray[np.int64]:
        """The column code of each entry."""
        return self.key & ((1 << self.col_bits) - 1)

    def var_joinid(self, code: int) -> int:
        """Return the var soma_joinid of column code ``code``."""
        n = self.col_map.size
        return int(self.col_map[code]) if code < n else code - n

    def row_bounds(self, n_rows: int) -> npt.NDArray[np.int64]:
        """CSR-style row pointers: row i's entries are [bounds[i], bounds[i + 1])."""
        return np.searchsorted(self.key, np.arange(n_rows + 1, dtype=np.int64) << self.col_bits).astype(np.int64)


class _Positions:
    """``np.arange(n)`` as a read-only view of one array kept per process (every sort needs one)."""

    def __init__(self) -> None:
        self._all = np.zeros(0, dtype=np.int64)

    def __call__(self, n: int) -> npt.NDArray[np.int64]:
        if self._all.size < n:
            self._all = np.arange(n, dtype=np.int64)
            self._all.flags.writeable = False
        return self._all[:n]


_positions = _Positions()


def sorted_keys(
    key: npt.NDArray[np.int64], key_bits: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | None]:
    """(``key`` ascending, the stable permutation that sorts it; None if it was sorted already)."""
    if key.size < 2 or bool((key[1:] >= key[:-1]).all()):
        return key, None
    pos_bits = int(key.size - 1).bit_length()
    if key_bits + pos_bits > 63:
        order = np.argsort(key, kind="stable")
        return key[order], order
    # Packing each key with its position into one int64 lets numpy's value sort do it, several times
    # faster than an argsort; the sorted keys come out of the packed values without a gather.
    packed = key << pos_bits
    packed |= _positions(key.size)
    packed.sort()
    order = packed & ((1 << pos_bits) - 1)
    packed >>= pos_bits
    return packed, order


def found_entries(
    rows: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
    lo: int,
    n_rows: int,
    col_bits: int,
    col_map: npt.NDArray[np.int64],
) -> tuple[Entries, npt.NDArray[np.int64] | None]:
    """Sort values read back from the release for rows [lo, lo + n_rows) by (row - lo, column code).

    Returns the entries and the permutation that sorted them (None when nothing moved).
    """
    key = rows << col_bits
    key |= codes
    key -= lo << col_bits  # rows chunk-local
    return sorted_entries(key, values, n_rows, col_bits, col_map)


def sorted_entries(
    key: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
    n_rows: int,
    col_bits: int,
    col_map: npt.NDArray[np.int64],
) -> tuple[Entries, npt.NDArray[np.int64] | None]:
    """Entries of unsorted keys (``key`` is left as it is) and the permutation that sorted them (None: none moved)."""
    key, order = sorted_keys(key, max(n_rows - 1, 1).bit_length() + col_bits)
    return Entries(key, values if order is None else values[order], col_bits, col_map), order


def widened(e: Entries, col_bits: int) -> Entries:
    """``e`` in keys with ``col_bits`` column bits (same order: rows first, then column codes)."""
    if col_bits == e.col_bits:
        return e
    key = e.key >> e.col_bits
    key <<= col_bits
    key |= e.codes
    return Entries(key, e.values, col_bits, e.col_map)


def only_rows(
    e: Entries, bounds: npt.NDArray[np.int64], rows: npt.NDArray[np.bool_]
) -> tuple[Entries, npt.NDArray[np.int64]]:
    """Keep the entries of the rows marked in ``rows`` (row numbers unchanged); return them and their row pointers."""
    if rows.all():
        return e, bounds
    sel = np.repeat(rows, np.diff(bounds))
    kept = Entries(e.key[sel], e.values[sel], e.col_bits, e.col_map)
    return kept, kept.row_bounds(rows.size)


Alignment = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None
]


def align(exp_keys: npt.NDArray[np.int64], got_keys: npt.NDArray[np.int64]) -> Alignment:
    """Match two sorted key arrays.

    Returns (expected-only positions, found-only positions, matched expected positions, matched found
    positions); the last two are None when every key matches (the usual case).
    """
    empty = np.zeros(0, np.int64)
    if exp_keys.size == got_keys.size and np.array_equal(exp_keys, got_keys):
        return empty, empty, None, None
    if got_keys.size == 0:
        return np.arange(exp_keys.size, dtype=np.int64), empty, empty, empty
    pos = np.minimum(np.searchsorted(got_keys, exp_keys), got_keys.size - 1)
    hit = got_keys[pos] == exp_keys
    matched = np.zeros(got_keys.size, dtype=bool)
    matched[pos[hit]] = True
    return (
        np.nonzero(~hit)[0].astype(np.int64),
        np.nonzero(~matched)[0].astype(np.int64),
        np.nonzero(hit)[0].astype(np.int64),
        pos[hit].astype(np.int64),
    )


def taken(values: npt.NDArray[Any], positions: npt.NDArray[np.int64] | None) -> npt.NDArray[Any]:
    """``values`` at ``positions`` (all of them, in order, when ``positions`` is None)."""
    return values if positions is None else values[positions]


def entry_at(e: Entries, k: int) -> tuple[int, int]:
    """(row, var soma_joinid) of entry ``k``."""
    key = int(e.key[k])
    return key >> e.col_bits, e.var_joinid(key & ((1 << e.col_bits) - 1))


class RowIndex:
    """Release obs soma_joinid -> row among ``joinids`` (the task's or part's cells, in source order)."""

    def __init__(self, joinids: npt.NDArray[np.int64]) -> None:
        valid = np.flatnonzero(joinids >= 0)
        order = np.argsort(joinids[valid], kind="stable")
        self.keys = joinids[valid][order]
        self.rows = valid[order].astype(np.int64)
        self.lo = int(joinids[0]) if joinids.size and isinstance(obs_coords(joinids), slice) else None

    def __call__(self, joinids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Rows of ``joinids`` that are among the cells (every joinid a read at ``obs_coords`` returns is)."""
        if self.lo is not None:
            return joinids - self.lo
        pos = np.minimum(np.searchsorted(self.keys, joinids), max(self.keys.size - 1, 0))
        return self.rows[pos] if self.keys.size else np.zeros(0, np.int64)

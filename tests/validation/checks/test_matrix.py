"""X['normalized'] checked in the order read (``normalized_sound``) decides as ``compare_normalized`` does, and
leaves a row sum near the limit to it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from validation.checks.entries import Entries, align
from validation.checks.matrix import compare_normalized, normalized_sound
from validation.checks.tolerance import F32_TINY, ROW_SUM_TOL
from validation.report import Finding

COL_BITS = 4
# rows 0 and 1, two genes each; row 2 empty
ROWS = np.array([0, 0, 1, 1], dtype=np.int64)
KEY = ROWS << COL_BITS | np.array([1, 3, 0, 2], dtype=np.int64)
WANT = np.array([0.25, 0.75, 0.4, 0.6])


class _Res:
    def __init__(self) -> None:
        self.findings: dict[str, list[Finding]] = defaultdict(list)
        self.totals: dict[str, int] = defaultdict(int)

    def add(self, check: str, finding: Finding) -> None:
        self.totals[check] += 1
        self.findings[check].append(finding)

    def room(self, check: str) -> int:
        return 100


def _sorted_findings(want: npt.NDArray[np.float64], found: npt.NDArray[np.float32]) -> int:
    res = _Res()
    exp = Entries(KEY, want, COL_BITS, np.arange(16, dtype=np.int64))
    got = Entries(KEY, found, COL_BITS, exp.col_map)

    def where(row: int, var_joinid: int | None = None) -> dict[str, Any]:
        return {"soma_joinid": row, "var_joinid": var_joinid}

    compare_normalized(res, where, exp, want, got, align(exp.key, got.key), 3)
    return res.totals["x_normalized"]


@pytest.mark.parametrize(
    ("k", "value", "sound"),
    [
        (None, None, True),  # as stored: float32 of the expected values
        (1, 0.75 * (1 + 1e-4), False),  # ten times the relative tolerance
        (2, 0.0, False),  # not > 0
        (3, float("nan"), False),
    ],
)
def test_order_free_check_decides_as_the_sorted_one(k: int | None, value: float | None, sound: bool) -> None:
    found = WANT.astype(np.float32)
    if k is not None:
        found[k] = value
    assert (_sorted_findings(WANT, found) == 0) is sound
    order = np.array([3, 0, 2, 1])  # the order TileDB returns does not matter
    assert normalized_sound(WANT[order], found[order], ROWS[order], 3) is sound


def test_tiny_values_float32_cannot_hold_pass_both() -> None:
    want = np.array([1e-50, 1.0, 0.4, 0.6])
    found = np.array([F32_TINY, 1.0, 0.4, 0.6], dtype=np.float32)
    assert _sorted_findings(want, found) == 0
    assert normalized_sound(want, found, ROWS, 3)


def test_a_row_sum_near_the_limit_is_left_to_the_sorted_comparison() -> None:
    want = WANT.copy()
    want[1] += 0.7 * ROW_SUM_TOL  # row 0 sums to 1 + 0.7 * ROW_SUM_TOL: within the limit
    found = want.astype(np.float32)
    assert _sorted_findings(want, found) == 0
    assert not normalized_sound(want, found, ROWS, 3)
    want[1] += 0.6 * ROW_SUM_TOL  # beyond it: both say so
    found = want.astype(np.float32)
    assert _sorted_findings(want, found) == 1
    assert not normalized_sound(want, found, ROWS, 3)

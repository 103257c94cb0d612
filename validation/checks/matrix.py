"""Comparing X values found in the release with the expected ones, entry by entry; problems become findings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checks.entries import Alignment, Entries, entry_at, taken
from validation.checks.exact import raw_differs
from validation.checks.findings import TaskFindings
from validation.checks.tolerance import F32_TINY, NORM_RTOL, ROW_SUM_TOL
from validation.expected.statistics import row_sums
from validation.report import Finding

Where = Callable[..., dict[str, Any]]  # (row, var_joinid=None) -> the location fields of a Finding


def compare_raw(res: TaskFindings, where: Where, exp: Entries, got: Entries, aligned: Alignment) -> None:
    """X['raw'] found vs expected (aligned by key): explicit zeros, missing and extra entries, values (exact)."""
    only_e, only_g, mi, mg = aligned
    zeros = np.nonzero(got.values == 0)[0]
    res.totals["x_raw_explicit_zeros"] += int(zeros.size)
    for k in zeros[: res.room("x_raw_explicit_zeros")]:
        res.findings["x_raw_explicit_zeros"].append(
            Finding("explicitly stored zero in X['raw']", **where(*entry_at(got, k)), found=float(got.values[k]))
        )
    res.totals["x_raw"] += int(only_e.size + only_g.size)
    for k in only_e[: res.room("x_raw")]:
        res.findings["x_raw"].append(
            Finding(
                "source count missing from X['raw']",
                **where(*entry_at(exp, k)),
                expected=float(exp.values[k]),
                found="absent",
            )
        )
    for k in only_g[: res.room("x_raw")]:
        res.findings["x_raw"].append(
            Finding(
                "X['raw'] stores a value where the source has no count",
                **where(*entry_at(got, k)),
                expected="absent",
                found=float(got.values[k]),
            )
        )
    have = taken(got.values, mg)
    bad = raw_differs(taken(exp.values, mi), have)  # exact: not float32 casts of the source counts
    res.totals["x_raw"] += int(bad.size)
    for k in bad[: res.room("x_raw")]:
        i = int(k if mi is None else mi[k])
        res.findings["x_raw"].append(
            Finding(
                "X['raw'] value differs from the source count",
                **where(*entry_at(exp, i)),
                expected=float(exp.values[i]),
                found=float(have[k]),
            )
        )


def normalized_differs(want: npt.NDArray[np.float64], found: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Positions where a found X['normalized'] value is not ``want`` within NORM_RTOL.

    A value float32 cannot hold (below its smallest subnormal) may be stored as that subnormal.
    """
    # np.isclose(found, want, rtol=NORM_RTOL, atol=0) without its temporaries; then the values float32 cannot hold
    diff = found - want
    np.abs(diff, out=diff)
    tol = np.abs(want)
    tol *= NORM_RTOL
    bad = np.nonzero(~(diff <= tol))[0]
    if bad.size:
        bad = bad[~((want[bad] < F32_TINY) & (found[bad] == F32_TINY))]
    return bad.astype(np.int64)


def normalized_sound(
    want: npt.NDArray[np.float64], found: npt.NDArray[Any], rows: npt.NDArray[np.int64], n_rows: int
) -> bool:
    """Return whether :func:`compare_normalized` would find nothing: checked in the order read, without a sort.

    ``found`` holds X['normalized'] at exactly X['raw']'s coordinates, in the order read, ``want`` the expected
    value of each of them (same order), ``rows`` their rows. Values > 0, within NORM_RTOL (the same rule as
    compare_normalized) and rows summing to 1 within half of ROW_SUM_TOL: the sums here add the values in
    another order, so a sum near the limit is left to compare_normalized (False).
    """
    if not bool((found > 0).all()) or normalized_differs(want, found).size:
        return False
    sums = np.bincount(rows, weights=found, minlength=n_rows)
    filled = np.bincount(rows, minlength=n_rows) > 0
    return not bool((filled & (np.abs(sums - 1.0) > ROW_SUM_TOL / 2)).any())


def compare_normalized(
    res: TaskFindings,
    where: Where,
    exp: Entries,
    want: npt.NDArray[np.float64],
    got: Entries,
    aligned: Alignment,
    n_rows: int,
) -> None:
    """X['normalized'] found vs ``want`` (expected values for ``exp``'s entries).

    Values > 0, raw's coordinates, values within NORM_RTOL (float32 rounding of tiny values allowed), rows
    summing to 1 within ROW_SUM_TOL.
    """
    check = "x_normalized"
    values = got.values
    nonpos = np.nonzero(~(values > 0))[0]
    res.totals[check] += int(nonpos.size)
    for k in nonpos[: res.room(check)]:
        res.findings[check].append(
            Finding("X['normalized'] value is not > 0", **where(*entry_at(got, k)), found=float(values[k]))
        )
    only_e, only_g, mi, mg = aligned
    res.totals[check] += int(only_e.size + only_g.size)
    for k in only_e[: res.room(check)]:
        res.findings[check].append(
            Finding(
                "X['normalized'] has no value where X['raw'] must have one",
                **where(*entry_at(exp, k)),
                expected=float(want[k]),
                found="absent",
            )
        )
    for k in only_g[: res.room(check)]:
        res.findings[check].append(
            Finding(
                "X['normalized'] stores a value where X['raw'] must have none",
                **where(*entry_at(got, k)),
                expected="absent",
                found=float(values[k]),
            )
        )
    e, g = taken(want, mi), taken(values, mg)
    bad = normalized_differs(e, g)
    res.totals[check] += int(bad.size)
    for k in bad[: res.room(check)]:
        i = int(k if mi is None else mi[k])
        res.findings[check].append(
            Finding(
                "X['normalized'] value differs from the recomputed value by more than storage rounding (relative "
                f"{NORM_RTOL:.3g}: float32 of 15 mantissa bits; the schema: normalized[i,j] = X[i,j] / sum(X[i, ]), "
                "full-gene sequencing assays "
                "dividing each value by feature_length first)",
                **where(*entry_at(exp, i)),
                expected=float(e[k]),
                found=float(g[k]),
            )
        )
    bounds = got.row_bounds(n_rows)
    sums = row_sums(bounds, values)
    off = np.nonzero((bounds[1:] > bounds[:-1]) & (np.abs(sums - 1.0) > ROW_SUM_TOL))[0]
    res.totals[check] += int(off.size)
    for k in off[: res.room(check)]:
        res.findings[check].append(
            Finding("X['normalized'] row does not sum to 1", **where(int(k)), expected=1.0, found=float(sums[k]))
        )

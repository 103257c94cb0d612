"""Exact comparisons of counts: what X["raw"] and obs raw_sum must hold, judged against the source's own values.

X["raw"] is float32 by schema, so a source count float32 cannot hold (an integer above 2**24 that is not a
multiple of the float32 spacing there, e.g. 16,777,217) can never be stored: comparing float32 casts of both
sides would call 16,777,216 equal to it. Here the stored value is widened to the source's float64 (exact for
every integer up to 2**53) and compared with it, so such a count is a finding.

obs raw_sum is float32 by schema too: it must be the exact row sum of the source counts, rounded once to
float32 (or stored exactly), not a sum of already-rounded counts nor anything within a tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def raw_differs(expected: npt.NDArray[Any], found: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Positions where a stored X["raw"] value is not exactly the source count (float64, duplicates summed)."""
    # float32 against float64 compares in float64 (widening is exact), without a float64 copy of either side
    differs = np.asarray(expected, dtype=np.float64) != np.asarray(found)
    return np.flatnonzero(differs).astype(np.int64)


def raw_sum_differs(expected: npt.NDArray[Any], found: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Rows whose stored raw_sum is neither the exact source row sum nor its float32 rounding."""
    exp = np.asarray(expected, dtype=np.float64)
    got = np.asarray(found, dtype=np.float64)
    rounded = exp.astype(np.float32).astype(np.float64)
    return (got != exp) & (got != rounded)  # type: ignore[no-any-return]

"""What a valid count is: a finite, non-negative integer that X["raw"] (float32) stores exactly.

Pure: the H5AD reader (``sources/h5ad.py``) feeds it the stored values block by block.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# X["raw"] is float32: every integer up to 2**24 is exact, above it only some are.
FLOAT32_EXACT_MAX = 2**24


def first_bad_count(values: npt.NDArray[Any]) -> tuple[int, str] | None:
    """Return (position, reason) of the first value that is not a valid count, or None.

    Counts are finite, non-negative integers, and X["raw"] stores them as float32, so one above 2**24 must
    be exactly a float32.
    """
    if values.size == 0:
        return None
    if values.dtype.kind not in "iuf":
        return 0, f"counts have non-numeric dtype {values.dtype}"
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            i = int(np.argmin(finite))
            return i, f"non-finite count {values[i]} (NaN or infinite)"
    if values.dtype.kind != "u" and values.min() < 0:  # reductions first: locate only when something is wrong
        i = int(np.argmax(values < 0))
        return i, f"negative count {values[i]}"
    if values.dtype.kind == "f":
        frac = values != np.floor(values)
        if frac.any():
            i = int(np.argmax(frac))
            return i, f"non-integer count {values[i]!r}: counts must be integers (raw counts, not normalized)"
    if values.dtype.itemsize <= 2 or values.dtype == np.float32:
        return None  # float32 holds every value of these types exactly
    if values.max() > FLOAT32_EXACT_MAX:
        large = np.nonzero(values > FLOAT32_EXACT_MAX)[0]
        big = values[large]
        as32 = big.astype(np.float32)
        if values.dtype.kind == "f":
            inexact = as32.astype(values.dtype) != big
        else:  # compare as integers (float64 cannot hold every int64); rounding up past the type's max is inexact
            limit = 2.0 ** (values.dtype.itemsize * 8 - (1 if values.dtype.kind == "i" else 0))
            in_range = as32.astype(np.float64) < limit
            back = np.zeros_like(big)
            back[in_range] = as32[in_range].astype(values.dtype)
            inexact = ~in_range | (back != big)
        if inexact.any():
            j = int(np.argmax(inexact))
            v = big[j]
            return int(large[j]), (
                f"count {int(v)} cannot be stored exactly in X['raw'] (float32 would make it "
                f"{int(as32[j])}); counts above {FLOAT32_EXACT_MAX:,} must be exact float32 values"
            )
    return None

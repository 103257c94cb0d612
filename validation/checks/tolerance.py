"""How far a float32 value in the release may be from its float64 recomputation.

Counts are compared exactly (validation.checks.exact).
"""

from __future__ import annotations

import numpy as np

STAT_RTOL = 1e-5  # float32 obs statistics (raw_mean_nnz, raw_variance_nnz) vs float64 recomputation
STAT_ATOL = 1e-6  # ... and absolutely, for statistics near 0
# float32 normalized values vs float64 recomputation: a release may round them to 15 explicit mantissa bits
# (ours and the reference builder's do: at most 2**-16 relative) on top of float32's own rounding (2**-24).
NORM_RTOL = 2.0**-15
ROW_SUM_TOL = 1e-4  # |sum(normalized row) - 1|
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)  # what a normalized value below it is stored as

"""``--exclude-invalid``: a loud account of the datasets it leaves out, and ``--max-excluded``.

More than ``max_excluded`` (a share of the manifest's datasets, 0..1) left out is refused right after
preflight, before any release object is written, so no half-usable release exists (exit status 3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from census_builder.errors import TooManyExcludedError

logger = logging.getLogger(__name__)


def _share(n: int, total: int) -> float:
    return n / total if total else 0.0


def record(invalid: list[dict[str, str]], total: int, max_excluded: float) -> dict[str, Any]:
    """Return what build_report.json keeps under ``excluded``."""
    return {
        "count": len(invalid),
        "of": total,
        "share": round(_share(len(invalid), total), 4),
        "max_excluded": max_excluded,
        "datasets": [{"dataset_id": p["dataset_id"], "reason": p["reason"]} for p in invalid],
    }


def log_summary(invalid: list[dict[str, str]], total: int, sources: Mapping[str, str] | None = None) -> None:
    """Log WARNING lines: how many of how many datasets were left out, which, and why each.

    ``sources``: dataset_id -> the manifest's file, rather than the build's copy.
    """
    if not invalid:
        return
    logger.warning(
        "--exclude-invalid left out %d of %d dataset(s) (%.0f%%); the release does not contain them:",
        len(invalid),
        total,
        100 * _share(len(invalid), total),
    )
    for p in invalid:
        uri = (sources or {}).get(p["dataset_id"]) or p.get("uri")
        where = f" ({uri})" if uri else ""
        field = f", field {p['field']!r}" if p.get("field") else ""
        logger.warning("  excluded %s%s%s: %s", p["dataset_id"], where, field, p["reason"])


def enforce_max_excluded(invalid: list[dict[str, str]], total: int, max_excluded: float) -> None:
    """Raise TooManyExcludedError when a larger share than ``max_excluded`` of the datasets is invalid."""
    share = _share(len(invalid), total)
    if share <= max_excluded:
        return
    needed = math.ceil(share * 100) / 100
    names = ", ".join(p["dataset_id"] for p in invalid)
    raise TooManyExcludedError(
        f"--exclude-invalid would leave out {len(invalid)} of {total} datasets ({share:.0%}), more than "
        f"--max-excluded {max_excluded:g} allows: {names}. Nothing of the release was written. Fix those "
        f"sources or the manifest, or re-run with --max-excluded {needed:g} to build without them"
    )

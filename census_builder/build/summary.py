"""The summary a complete build ends with: the same figures on the console and in ``build_report.json``.

    store_summary(paths, STAGES)             # when the build completes: report["summary"] = build_summary(...)
    record_validation(paths, passed, seconds)  # after validating: the verdict joins the stored summary
    summary_lines(summary)                   # the console text

Figures: cells and genes per organism, datasets included / excluded (no cells, invalid), the release's size
on disk, wall time per stage, and where the release, report, log and validation report are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from census_builder.build.host_check import fmt_bytes, tree_bytes
from census_builder.build.outputs import AxesPlan, Inspected, OrganismFigures, TablesWritten, read_output
from census_builder.build.state import BuildPaths, StageRecord, read_json, write_json_atomic

logger = logging.getLogger(__name__)


def build_summary(paths: BuildPaths, report: dict[str, Any], stage_order: Sequence[str] = ()) -> dict[str, Any]:
    """Return the summary of the complete build at ``paths``.

    ``report``: its build_report.json so far; stages are listed in ``stage_order``, then any others.
    """
    stages = StageRecord(paths)
    inspected = read_output(stages, Inspected)
    axes = read_output(stages, AxesPlan)
    tables = read_output(stages, TablesWritten)
    included = [d.dataset_id for d in axes.datasets]
    no_cells = [d.dataset_id for d in axes.excluded]
    invalid = inspected.invalid_ids
    recorded = report.get("stage_seconds", {})
    names = [s for s in stage_order if s in recorded] + sorted(set(recorded) - set(stage_order))
    stage_seconds = [{"stage": k, "seconds": float(recorded[k])} for k in names]  # a list: JSON keeps its order
    return {
        "version": report.get("version", paths.root.name),
        "organisms": {
            org: {"cells": f.cells, "genes": f.genes, "datasets": f.datasets} for org, f in tables.organisms.items()
        },
        **({"spatial": _figures(tables.spatial)} if tables.spatial else {}),  # census_spatial_sequencing (2.4.0)
        "datasets": {
            "in_manifest": len(included) + len(no_cells) + len(invalid),
            "included": len(included),
            "excluded_no_cells": no_cells,
            "excluded_invalid": invalid,
        },
        "release_bytes": tree_bytes(paths.soma),
        "stages": stage_seconds,
        "build_seconds": round(sum(s["seconds"] for s in stage_seconds), 3),
        "paths": {
            "release": str(paths.soma),
            "report": str(paths.report),
            "log": str(paths.log),
            "validation_report": str(paths.validation_report),
        },
        "validation": None,  # {"passed", "seconds"} once validated; None: not validated
    }


def store_summary(paths: BuildPaths, stage_order: Sequence[str] = ()) -> dict[str, Any] | None:
    """Compute the complete build's summary and add it to build_report.json.

    A failure here only warns (the release is complete either way).
    """
    try:
        report = read_json(paths.report)
        report["summary"] = build_summary(paths, report, stage_order)
        write_json_atomic(paths.report, report)
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("could not write the build summary to %s: %s", paths.report, e)
        return None
    summary: dict[str, Any] = report["summary"]
    return summary


def record_validation(paths: BuildPaths, *, passed: bool, seconds: float) -> dict[str, Any] | None:
    """Add a validation verdict to the stored summary; returns the updated summary (None if there is none)."""
    try:
        report = read_json(paths.report)
    except (OSError, ValueError):
        return None
    summary = report.get("summary")
    if not isinstance(summary, dict):
        return None
    summary["validation"] = {"passed": passed, "seconds": round(seconds, 3)}
    with contextlib.suppress(OSError):
        write_json_atomic(paths.report, report)
    return summary


def stored_summary(paths: BuildPaths) -> dict[str, Any] | None:
    """Return the summary stored in build_report.json, if any."""
    try:
        summary = read_json(paths.report).get("summary")
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _figures(organisms: Mapping[str, OrganismFigures]) -> dict[str, dict[str, int]]:
    return {org: {"cells": f.cells, "genes": f.genes, "datasets": f.datasets} for org, f in organisms.items()}


def _seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 600 else f"{int(s) // 60}m{int(s) % 60:02d}s"


def _build_dir(release: str) -> Path:
    return Path(release).parent  # DIR/VERSION (VERSION.rebuild-<time> after --force-rebuild)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Return the console text of a summary."""
    p = summary["paths"]
    lines = [f"build {summary['version']} complete: {p['release']} ({fmt_bytes(summary['release_bytes'])} on disk)"]
    for org, f in summary["organisms"].items():
        lines.append(f"  {org}: {f['cells']:,} cells, {f['genes']:,} genes, {f['datasets']} dataset(s)")
    for org, f in summary.get("spatial", {}).items():
        lines.append(
            f"  census_spatial_sequencing {org}: {f['cells']:,} spots, {f['genes']:,} genes, {f['datasets']} dataset(s)"
        )
    d = summary["datasets"]
    excluded = []
    if d["excluded_no_cells"]:
        excluded.append(f"{len(d['excluded_no_cells'])} with no Census cells ({', '.join(d['excluded_no_cells'])})")
    if d["excluded_invalid"]:
        excluded.append(f"{len(d['excluded_invalid'])} invalid ({', '.join(d['excluded_invalid'])})")
    lines.append(
        f"  datasets: {d['included']} of {d['in_manifest']} included"
        + (f"; excluded: {'; '.join(excluded)}" if excluded else "")
    )
    times = [f"{s['stage']} {_seconds(s['seconds'])}" for s in summary["stages"]]
    total = summary["build_seconds"]
    v = summary.get("validation")
    if v:
        times.append(f"validation {_seconds(v['seconds'])}")
        total += v["seconds"]
    lines.append(f"  time: {', '.join(times)}; total {_seconds(total)}")
    if v:
        lines.append(f"  validation: {'passed' if v['passed'] else 'FAILED'}; report {p['validation_report']}")
    else:
        lines.append(
            "  validation: not run; run python -m census_builder validate "
            f"--version {_build_dir(p['release']).name} --workdir {_build_dir(p['release']).parent}"
        )
    lines.append(f"  build report: {p['report']}")
    lines.append(f"  log: {p['log']}")
    return lines

"""benchmarks.report: the results table and the CPU timeline of one build."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report import table, timeline


def test_timeline_buckets_samples_by_stage() -> None:
    # [t, tree cores, tree rss, machine % per core]: 2 s of one core in the first stage, then both cores busy
    samples = [[1.0, 1.0, 0, [50.0, 50.0]], [2.0, 1.0, 0, [50.0, 50.0]], [3.0, 2.0, 0, [100.0, 100.0]]]
    result = {"build_cpu_samples": samples, "build_stage_starts": {"stage_and_inspect": 0.0, "write_matrices": 2.0}}
    lines = timeline(result, bucket=2.0).splitlines()
    assert lines[2:] == [
        "| 0 | stage_and_inspect | 100 | 50 | `##########` |",
        "| 2 | write_matrices | 200 | 100 | `####################` |",
    ]


def _result(cells: int, **extra: object) -> dict[str, object]:
    gib = 2**30
    return {
        "cells": cells,
        "compression": "gzip",
        "nnz": cells * 900,
        "build_seconds": 100.0,
        "stage_seconds": {"stage_and_inspect": 10.0, "write_matrices": 85.0, "write_tables": 4.0},
        "cells_per_second": cells / 100,
        "nnz_per_second": cells * 9.0,
        "build_peak_rss_bytes": 1.5 * gib,
        "release_bytes": 2 * gib,
        "validation_seconds": 20.0,
        "validation_passed": True,
        "validation_peak_rss_bytes": 1.75 * gib,
        **extra,
    }


def test_table_rows_with_and_without_a_floor(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_result(1000, floor={"seconds": 80.0}, build_over_floor=1.25)))
    (tmp_path / "b.json").write_text(json.dumps(_result(2000)))  # --no-floor
    rows = [r.split(" | ")[9:11] for r in table(tmp_path).split("\n\n")[0].splitlines()[2:]]
    assert rows == [["80", "1.25"], ["-", "-"]]  # floor s, build / floor

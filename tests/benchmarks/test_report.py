"""benchmarks.report's CPU timeline of one build."""

from __future__ import annotations

from benchmarks.report import timeline


def test_timeline_buckets_samples_by_stage() -> None:
    # [t, tree cores, tree rss, machine % per core]: 2 s of one core in the first stage, then both cores busy
    samples = [[1.0, 1.0, 0, [50.0, 50.0]], [2.0, 1.0, 0, [50.0, 50.0]], [3.0, 2.0, 0, [100.0, 100.0]]]
    result = {"build_cpu_samples": samples, "build_stage_starts": {"stage_and_inspect": 0.0, "write_matrices": 2.0}}
    lines = timeline(result, bucket=2.0).splitlines()
    assert lines[2:] == [
        "| 0 | stage_and_inspect | 100 | 50 | `##########` |",
        "| 2 | write_matrices | 200 | 100 | `####################` |",
    ]

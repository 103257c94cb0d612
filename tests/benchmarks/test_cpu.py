"""The benchmark harness samples the CPU of the measured process tree and summarises it per build stage."""

from __future__ import annotations

import itertools
import os
import sys

from benchmarks.cpu import cpu_seconds, stage_summary, tree_cpu_seconds
from benchmarks.run import run_measured


def test_stage_summary_per_stage_means_and_all_cores_busy() -> None:
    samples = [
        [0.2, 0.5, 10, [50.0, 50.0]],
        [0.4, 1.0, 10, [100.0, 0.0]],
        [1.2, 1.9, 10, [100.0, 100.0]],
        [1.4, 1.7, 10, [90.0, 80.0]],
        [1.6, 2.0, 10, [100.0, 100.0]],
    ]
    out = stage_summary(samples, {"write_matrices": 1.0, "stage_and_inspect": 0.0}, 1.6, cores=2)
    assert list(out) == ["stage_and_inspect", "write_matrices"]
    assert out["stage_and_inspect"] == {
        "seconds": 1.0,
        "tree_cpu_percent": 75.0,
        "machine_cpu_percent": 50.0,
        "all_cores_busy_fraction": 0.0,
    }
    assert out["write_matrices"] == {
        "seconds": 0.6,
        "tree_cpu_percent": 186.7,
        "machine_cpu_percent": 95.0,
        "all_cores_busy_fraction": 0.667,  # 1.9 and 2.0 cores of 2; 1.7 is below 90 % of both
    }


def test_run_measured_samples_cpu_and_finds_the_stages() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass\n"
    code = "print('[spin] starting', flush=True)\n" + burn.format(0.8) + "print('[idle] starting', flush=True)\n"
    code += "time.sleep(0.8)\n"
    out = run_measured([sys.executable, "-c", code], interval=0.1)
    assert out["returncode"] == 0 and list(out["stage_starts"]) == ["spin", "idle"]
    # CPU seconds the samples account for in each stage (the machine may be loaded: the spin's 0.8 s of CPU
    # then take longer, but they are still 0.8 s of CPU)
    idle_from = out["stage_starts"]["idle"]
    samples = out["cpu_samples"]
    used = {"spin": 0.0, "idle": 0.0}
    for prev, cur in itertools.pairwise(samples):
        used["spin" if cur[0] <= idle_from else "idle"] += cur[1] * (cur[0] - prev[0])
    assert used["spin"] > 0.6 and used["idle"] < 0.2, used
    assert set(out["cpu_per_stage"]) == {"spin", "idle"}
    assert out["peak_rss_bytes"] > 0 and len(samples) >= 10


def test_cpu_seconds_integrates_the_samples() -> None:
    samples = [[0.5, 2.0, 0, [0.0]], [1.5, 1.0, 0, [0.0]], [2.0, 0.0, 0, [0.0]]]
    assert cpu_seconds(samples) == 2.0 * 0.5 + 1.0 * 1.0  # the first sample covers [0, 0.5]
    assert tree_cpu_seconds(os.getpid()) > 0

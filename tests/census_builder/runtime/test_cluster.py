from __future__ import annotations

import os
from pathlib import Path

import pytest

from census_builder.runtime.cluster import available_cpus, tiledb_thread_env


def _affinity() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", None),  # no quota: the affinity mask decides
        ("100000 100000\n", 1),  # one CPU's worth
        ("50000 100000\n", 1),  # half a CPU still gets one worker
        ("100000000 100000\n", None),  # a quota above the mask: the mask decides
    ],
)
def test_workers_follow_the_cgroup_cpu_quota(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert available_cpus(str(tmp_path)) == (expected or _affinity())


def test_no_cgroup_file_means_the_affinity_mask(tmp_path: Path) -> None:
    assert available_cpus(str(tmp_path)) == _affinity()


@pytest.mark.parametrize(("workers", "cpus", "threads"), [(1, 4, "4"), (2, 4, "2"), (3, 4, "1"), (8, 2, "1")])
def test_tiledb_threads_share_the_cpus_among_the_workers(workers: int, cpus: int, threads: str) -> None:
    assert tiledb_thread_env(workers, cpus) == {
        "TILEDB_SM_COMPUTE_CONCURRENCY_LEVEL": threads,
        "TILEDB_SM_IO_CONCURRENCY_LEVEL": threads,
    }

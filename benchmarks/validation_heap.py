r"""A validation's content tasks in one in-process worker: heap in use per task, RSS, seconds per function.

    MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=2147483648 \\
    TILEDB_SM_COMPUTE_CONCURRENCY_LEVEL=1 TILEDB_SM_IO_CONCURRENCY_LEVEL=1 \\
    python -m benchmarks.validation_heap SOMA MANIFEST [--report R]

(the environment the validation workers get: census_builder.runtime.cluster.WORKER_MALLOC_ENV). Runs
``validate_release`` on a ``LocalCluster(processes=False)`` of one worker; wraps ``check_chunk`` and the
functions it calls to sample glibc's heap (``mallinfo2``: bytes in use, heap size) at their boundaries and to sum
their wall time. The process also holds the driver. Linux / glibc only.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import functools
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

from validation.contents import chunks, obs, step

FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
WRAPPED = {
    chunks: [
        "read_x",
        "_expected_part",
        "found_entries",
        "sorted_entries",
        "compare_raw",
        "compare_normalized",
        "length_divided",
        "normalized",
        "align",
        "_codes",
        "row_stats",
        "_check_source_values",
        "multiset_sum",
        "_normalized_in_order",
    ],
    obs: ["read_obs", "keep_rows"],
}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MallInfo2
peak = [0]
seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
tasks: list[dict[str, float]] = []


def heap() -> tuple[int, int]:
    """(bytes in use, heap size) of glibc's malloc, mmapped blocks included."""
    m = _libc.mallinfo2()
    return int(m.uordblks + m.hblkhd), int(m.arena + m.hblkhd)


def rss() -> int:
    """Resident bytes of this process."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _wrap(module: Any, name: str) -> None:
    fn = getattr(module, name, None)
    if fn is None:  # another version of the validator
        return

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        peak[0] = max(peak[0], heap()[0])
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - t
            peak[0] = max(peak[0], heap()[0])

    setattr(module, name, wrapped)


_check_chunk = chunks.check_chunk


def check_chunk(task: Any, context: Any) -> Any:
    """``check_chunk``, measured."""
    peak[0] = 0
    t = time.perf_counter()
    res = _check_chunk(task, context)
    tasks.append(
        {
            "rows": task.row_stop - task.row_start,
            "seconds": time.perf_counter() - t,
            "heap_in_use_peak": peak[0],
            "heap_size": heap()[1],
            "rss": rss(),
        }
    )
    return res


def main() -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("soma")
    ap.add_argument("manifest")
    ap.add_argument("--report", type=Path, default=Path("validation_heap_report.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for module, names in WRAPPED.items():
        for name in names:
            _wrap(module, name)
    setattr(step, "check_chunk", check_chunk)  # noqa: B010 - the step module's own name for it
    from distributed import Client, LocalCluster

    from validation.core import validate_release

    with (
        LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster,  # type: ignore[no-untyped-call]
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        t = time.perf_counter()
        report = validate_release(args.soma, args.manifest, client=client, report_path=args.report)
        total = time.perf_counter() - t
    mib = 2**20
    for s in tasks:
        print(
            f"rows {s['rows']:.0f}: {s['seconds']:.2f} s, heap in use peak {s['heap_in_use_peak'] / mib:.0f} MiB,"
            f" heap {s['heap_size'] / mib:.0f} MiB, RSS {s['rss'] / mib:.0f} MiB"
        )
    print(
        f"validation {total:.1f} s, passed={report.passed}; max heap in use per task"
        f" {max((s['heap_in_use_peak'] for s in tasks), default=0) / mib:.0f} MiB, max RSS"
        f" {max((s['rss'] for s in tasks), default=0) / mib:.0f} MiB,"
        f" ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    for name, sec in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"{name:<22} {sec:.2f} s")
    return 0 if report.passed else 1


if __name__ == "__main__":  # run as the importable module: dask pickles check_chunk by its module's name
    from benchmarks.validation_heap import main as module_main

    sys.exit(module_main())

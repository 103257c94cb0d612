"""Time and memory of validations, A/B: one or more checkouts validate the same release in turn, alternating.

    python -m benchmarks.validate SOMA MANIFEST [--python OTHER/.venv/bin/python ...] [--rounds 3] [--workers 2]

Each round runs ``python -m validation SOMA --manifest MANIFEST --workers N`` once with each interpreter given
(default: this one), back to back, and records the wall time, the peak RSS of the whole process tree (sampled
every 0.2 s), the largest single process's peak, the 1-minute load average before the run and the exit code.
Prints one line per run and the medians; writes every run to ``benchmarks/results/validation/<time>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger("benchmarks")


def measure(cmd: list[str], interval: float = 0.2) -> dict[str, Any]:
    """Run ``cmd``; return wall seconds, peak tree RSS, the largest process's peak RSS and the exit code."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_tree = 0
    peak_each: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        root = psutil.Process(proc.pid)
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                total = 0
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        rss = p.memory_info().rss
                        total += rss
                        peak_each[p.pid] = max(peak_each.get(p.pid, 0), rss)
                peak_tree = max(peak_tree, total)
            time.sleep(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    done.set()
    th.join()
    return {
        "seconds": time.perf_counter() - t0,
        "peak_rss_bytes": peak_tree,
        "largest_process_peak_bytes": max(peak_each.values(), default=0),
        "process_peaks_bytes": sorted(peak_each.values(), reverse=True),
        "load_average_1min_before": load,
        "returncode": proc.returncode,
        "output_tail": out[-3000:],
    }


def main() -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("soma")
    ap.add_argument("manifest")
    ap.add_argument("--python", action="append", help="an interpreter whose checkout validates (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--extra", default="", help="further arguments to python -m validation (space-separated)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    pythons = args.python or [sys.executable]
    runs: list[dict[str, Any]] = []
    gib = 1024**3
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            order = pythons if rnd % 2 == 0 else pythons[::-1]  # alternate who goes first
            for py in order:
                report = Path(tmp) / "report.json"
                cmd = [py, "-m", "validation", args.soma, "--manifest", args.manifest, "--workers", str(args.workers)]
                cmd += ["--report", str(report), *args.extra.split()]
                r = measure(cmd)
                r.update(python=py, round=rnd)
                runs.append(r)
                logger.info(
                    "round %d %s: %.1f s, tree peak %.2f GiB, largest process %.2f GiB, load %.1f, exit %d",
                    rnd,
                    py,
                    r["seconds"],
                    r["peak_rss_bytes"] / gib,
                    r["largest_process_peak_bytes"] / gib,
                    r["load_average_1min_before"],
                    r["returncode"],
                )
    for py in pythons:
        mine = [r for r in runs if r["python"] == py]
        logger.info(
            "median %s: %.1f s, tree peak %.2f GiB, largest process %.2f GiB (%d runs)",
            py,
            statistics.median(r["seconds"] for r in mine),
            statistics.median(r["peak_rss_bytes"] for r in mine) / gib,
            statistics.median(r["largest_process_peak_bytes"] for r in mine) / gib,
            len(mine),
        )
    out = Path("benchmarks/results/validation") / time.strftime("%Y%m%dT%H%M%S.json", time.gmtime())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(runs, indent=2))
    logger.info("written %s", out)
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

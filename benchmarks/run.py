"""Benchmark a build: wall time per stage, cells/s, non-zeros/s, peak RSS of the whole process tree
(driver + dask workers), release size, validation time, and the ratio to the I/O floor.

    python -m benchmarks.run --cells 250000 [--workers 2] [--chunk-nnz 4000000] [--data benchmarks/data]

Writes benchmarks/results/<cells>.json and prints a table. Corpora are kept under --data (reused when
present; --clean removes the corpus and release afterwards).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.corpus import corpus_specs, write_corpus
from benchmarks.floor import measure_floor
from census_builder.build.outputs import TablesWritten, read_output
from census_builder.build.state import BuildPaths, StageRecord

logger = logging.getLogger("benchmarks")


def run_measured(cmd: list[str], interval: float = 0.2) -> dict[str, Any]:
    """Run ``cmd``; sample the RSS of it and all its descendants; return wall time, peak tree RSS, exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                peak = max(peak, total)
            except psutil.Error:
                pass
            time.sleep(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    done.set()
    th.join()
    return {
        "seconds": time.perf_counter() - t0,
        "peak_rss_bytes": peak,
        "returncode": proc.returncode,
        "output_tail": out[-4000:],
    }


def du(path: Path) -> int:
    """Return the bytes of every file below ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, required=True)
    ap.add_argument("--genes", type=int, default=30_000)
    ap.add_argument("--nnz-per-cell", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-nnz", type=int, default=4_000_000)
    ap.add_argument("--data", type=Path, default=Path("benchmarks/data"))
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--clean", action="store_true", help="delete corpus and release afterwards")
    ap.add_argument("--reuse-corpus", action="store_true", help="keep an existing corpus of this size")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    name = f"{args.cells // 1000}k"
    corpus_dir = args.data / f"corpus-{name}"
    t0 = time.perf_counter()
    manifest = corpus_dir / "manifest.csv"
    if args.reuse_corpus and manifest.is_file():  # the generator is seeded: same arguments, same corpus
        logger.info("reusing the corpus in %s", corpus_dir)
    else:
        specs = corpus_specs(args.cells, genes=args.genes, nnz_per_cell=args.nnz_per_cell)
        manifest = write_corpus(corpus_dir, specs)
    gen_seconds = time.perf_counter() - t0
    workdir = args.data / f"build-{name}"
    shutil.rmtree(workdir, ignore_errors=True)
    build = run_measured(
        [
            sys.executable,
            "-m",
            "census_builder",
            "build",
            "--version",
            "bench",
            "--manifest",
            str(manifest),
            "--workdir",
            str(workdir),
            "--workers",
            str(args.workers),
            "--chunk-nnz",
            str(args.chunk_nnz),
            "--no-validate",
        ]
    )
    if build["returncode"] != 0:
        logger.error("build failed:\n%s", build["output_tail"])
        return 1
    root = workdir / "bench"
    report = json.loads((root / "build_report.json").read_text())
    stages = report["stage_seconds"]
    totals = read_output(StageRecord(BuildPaths(root)), TablesWritten)
    nnz = totals.nnz
    cells = totals.total_cell_count
    validation = run_measured(
        [
            sys.executable,
            "-m",
            "validation",
            str(root / "soma"),
            "--manifest",
            str(manifest),
            "--workers",
            str(args.workers),
        ]
    )
    result: dict[str, Any] = {
        "cells": cells,
        "nnz": nnz,
        "workers": args.workers,
        "chunk_nnz": args.chunk_nnz,
        "corpus_bytes": du(corpus_dir),
        "corpus_generation_seconds": gen_seconds,
        "build_seconds": build["seconds"],
        "build_peak_rss_bytes": build["peak_rss_bytes"],
        "stage_seconds": stages,
        "cells_per_second": cells / build["seconds"],
        "nnz_per_second": nnz / build["seconds"],
        "release_bytes": du(root / "soma"),
        "validation_seconds": validation["seconds"],
        "validation_peak_rss_bytes": validation["peak_rss_bytes"],
        "validation_passed": validation["returncode"] == 0,
    }
    if not args.no_floor:
        floor_dir = args.data / f"floor-{name}"
        shutil.rmtree(floor_dir, ignore_errors=True)
        h5ads = sorted((root / "h5ads").glob("*.h5ad"))
        floor = measure_floor(h5ads, floor_dir, workers=args.workers, chunk_nnz=args.chunk_nnz)
        shutil.rmtree(floor_dir, ignore_errors=True)
        result["floor"] = floor
        result["build_over_floor"] = build["seconds"] / floor["seconds"]
    out = Path("benchmarks/results") / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    gib = 1024**3
    rows = [
        ("cells", f"{cells:,}"),
        ("non-zeros", f"{nnz:,}"),
        ("build wall", f"{result['build_seconds']:.0f} s"),
        ("  per stage", ", ".join(f"{k} {v:.0f}s" for k, v in stages.items())),
        ("cells/s", f"{result['cells_per_second']:,.0f}"),
        ("nnz/s", f"{result['nnz_per_second']:,.0f}"),
        ("peak RSS (tree)", f"{result['build_peak_rss_bytes'] / gib:.2f} GiB"),
        ("release size", f"{result['release_bytes'] / gib:.2f} GiB"),
        (
            "validation",
            f"{result['validation_seconds']:.0f} s, peak {result['validation_peak_rss_bytes'] / gib:.2f} GiB,"
            f" passed={result['validation_passed']}",
        ),
    ]
    if "floor" in result:
        rows.append(
            ("I/O floor", f"{result['floor']['seconds']:.0f} s; build/floor = {result['build_over_floor']:.2f}")
        )
    for k, v in rows:
        logger.info("%-18s %s", k, v)
    logger.info("written %s", out)
    if args.clean:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(corpus_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

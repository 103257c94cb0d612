"""Benchmark a build: wall time per stage, cells/s, non-zeros/s, peak RSS of the whole process tree
(driver + dask workers), CPU use of the tree over time and per stage, release size, validation time, and
the ratio to the I/O floor.

    python -m benchmarks.run --cells 250000 [--workers 2] [--chunk-nnz 4000000] [--data benchmarks/data]
        [--compression {none,gzip,lzf}]

Writes benchmarks/results/<cells>[-<compression>].json and prints a table. Corpora are kept under --data
(corpus-<cells>k for uncompressed sources, corpus-<cells>k-gzip / -lzf for compressed ones, so that the
forms coexist; reused when present; --clean removes the corpus and release afterwards).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.corpus import corpus_dir_name, corpus_specs, write_corpus
from benchmarks.cpu import STAGE_START, TreeSampler, cpu_seconds, stage_summary
from benchmarks.floor import measure_floor
from census_builder.build.outputs import TablesWritten, read_output
from census_builder.build.state import BuildPaths, StageRecord

logger = logging.getLogger("benchmarks")


def run_measured(cmd: list[str], interval: float = 0.2) -> dict[str, Any]:
    """Run ``cmd``; every ``interval`` s sample the RSS and CPU of it and all its descendants; return wall
    time, peak tree RSS, exit code, the CPU samples (:class:`benchmarks.cpu.TreeSampler`), the start of each
    stage the output announces ("[<stage>] starting", seconds since the start) and the mean CPU per stage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid, t0)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            sampler.sample()
            time.sleep(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    lines: list[str] = []
    starts: dict[str, float] = {}
    if proc.stdout is not None:
        for line in proc.stdout:
            lines.append(line)
            found = STAGE_START.search(line)
            if found:
                starts.setdefault(found.group(1), round(time.perf_counter() - t0, 2))
    proc.wait()
    seconds = time.perf_counter() - t0
    done.set()
    th.join()
    out = "".join(lines)
    return {
        "seconds": seconds,
        "peak_rss_bytes": sampler.peak_rss,
        "returncode": proc.returncode,
        "output_tail": out[-4000:],
        "cpu_samples": sampler.samples,
        "stage_starts": starts,
        "cpu_per_stage": stage_summary(sampler.samples, starts, seconds, os.cpu_count() or 1),
    }


def _mean_cpu(samples: list[list[Any]]) -> float:
    """Mean CPU of the tree over ``samples`` in percent of one core."""
    return round(100 * sum(float(s[1]) for s in samples) / len(samples), 1) if samples else 0.0


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
    ap.add_argument(
        "--compression",
        choices=("none", "gzip", "lzf"),
        default="none",
        help="HDF5 filter of the generated H5ADs (gzip: as CELLxGENE writes them); default none",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    name = corpus_dir_name(args.cells, args.compression).removeprefix("corpus-")
    corpus_dir = args.data / f"corpus-{name}"
    t0 = time.perf_counter()
    manifest = corpus_dir / "manifest.csv"
    if args.reuse_corpus and manifest.is_file():  # the generator is seeded: same arguments, same corpus
        logger.info("reusing the corpus in %s", corpus_dir)
    else:
        specs = corpus_specs(args.cells, genes=args.genes, nnz_per_cell=args.nnz_per_cell, compression=args.compression)
        manifest = write_corpus(corpus_dir, specs)
    gen_seconds = time.perf_counter() - t0
    workdir = args.data / f"build-{name}"
    shutil.rmtree(workdir, ignore_errors=True)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
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
        "compression": args.compression,
        "load_average_at_start": load_at_start,
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
        "build_cpu_seconds": cpu_seconds(build["cpu_samples"]),
        "build_cpu_per_stage": build["cpu_per_stage"],
        "validation_cpu_percent": _mean_cpu(validation["cpu_samples"]),
        "build_stage_starts": build["stage_starts"],
        "build_cpu_samples": build["cpu_samples"],
    }
    if not args.no_floor:
        floor_dir = args.data / f"floor-{name}"
        shutil.rmtree(floor_dir, ignore_errors=True)
        h5ads = sorted((root / "h5ads").glob("*.h5ad"))
        floor = measure_floor(h5ads, floor_dir, workers=args.workers, chunk_nnz=args.chunk_nnz)
        shutil.rmtree(floor_dir, ignore_errors=True)
        result["floor"] = floor
        result["build_over_floor"] = build["seconds"] / floor["seconds"]
        result["build_over_floor_cpu"] = result["build_cpu_seconds"] / max(floor["cpu_seconds"], 1e-9)
    out = Path("benchmarks/results") / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    gib = 1024**3
    rows = [
        ("cells", f"{cells:,}"),
        ("non-zeros", f"{nnz:,}"),
        ("build wall", f"{result['build_seconds']:.0f} s"),
        ("  per stage", ", ".join(f"{k} {v:.0f}s" for k, v in stages.items())),
        ("sources", args.compression),
        ("load average", " ".join(map(str, load_at_start))),
        ("cells/s", f"{result['cells_per_second']:,.0f}"),
        ("nnz/s", f"{result['nnz_per_second']:,.0f}"),
        (
            "CPU % per stage",
            ", ".join(
                f"{k} {v['tree_cpu_percent']:.0f}% (all cores busy {100 * v['all_cores_busy_fraction']:.0f}%)"
                for k, v in result["build_cpu_per_stage"].items()
            ),
        ),
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
            (
                "I/O floor",
                f"{result['floor']['seconds']:.0f} s; build/floor = {result['build_over_floor']:.2f}"
                f" (CPU s: {result['build_cpu_seconds']:.0f} / {result['floor']['cpu_seconds']:.0f}"
                f" = {result['build_over_floor_cpu']:.2f})",
            )
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

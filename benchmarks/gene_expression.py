"""Benchmark the Gene Expression stage against the build of the same corpus: wall time and peak RSS of the
process tree (driver + dask workers) of each, and their ratio (issue 18's target: <= 0.3x the build's time).

    python -m benchmarks.gene_expression --cells 250000 [--workers 2] [--data benchmarks/data] [--reuse]

The corpus is benchmarks.corpus's (as benchmarks.run); the build runs with --no-validate. With --reuse an
existing corpus and complete build under --data are kept and only the stage is measured again (the build's
figures then come from its earlier measurement, stored beside it). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.corpus import corpus_specs, write_corpus
from benchmarks.run import du, run_measured

logger = logging.getLogger("benchmarks")


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "census_builder", *argv]


def main() -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-nnz", type=int, default=4_000_000)
    ap.add_argument("--data", type=Path, default=Path("benchmarks/data"))
    ap.add_argument("--reuse", action="store_true", help="keep an existing corpus and build; measure the stage only")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    name = f"{args.cells // 1000}k"
    corpus = args.data / f"corpus-{name}"
    workdir = args.data / f"build-ge-{name}"
    measured = workdir / "build_measured.json"
    common = ["--workdir", str(workdir), "--workers", str(args.workers), "--chunk-nnz", str(args.chunk_nnz)]
    if not (args.reuse and measured.is_file()):
        manifest = corpus / "manifest.csv"
        if not (args.reuse and manifest.is_file()):
            manifest = write_corpus(corpus, corpus_specs(args.cells))
        shutil.rmtree(workdir, ignore_errors=True)
        logger.info("building %s", workdir)
        build = run_measured(_cli("build", "--version", "bench", "--manifest", str(manifest), "--no-validate", *common))
        if build["returncode"] != 0:
            logger.error("build failed:\n%s", build["output_tail"])
            return 1
        measured.write_text(json.dumps(build))
    build = json.loads(measured.read_text())
    logger.info("gene-expression of %s", workdir)
    load_before = os.getloadavg()
    ge = run_measured(_cli("gene-expression", "--version", "bench", *common))
    if ge["returncode"] != 0:
        logger.error("gene-expression failed:\n%s", ge["output_tail"])
        return 1
    out: dict[str, Any] = {
        "cells": args.cells,
        "workers": args.workers,
        "build_seconds": round(build["seconds"], 1),
        "build_peak_rss_mib": round(build["peak_rss_bytes"] / 2**20),
        "gene_expression_seconds": round(ge["seconds"], 1),
        "gene_expression_peak_rss_mib": round(ge["peak_rss_bytes"] / 2**20),
        "ratio_time": round(ge["seconds"] / build["seconds"], 3),
        "gene_expression_bytes": du(workdir / "bench" / "gene_expression"),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "summary": json.loads((workdir / "bench" / "gene_expression" / "gene_expression.json").read_text())[
            "organisms"
        ],
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

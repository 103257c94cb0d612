"""Time and peak RSS of :func:`census_builder.gene_expression.markers.marker_genes` on a synthetic cube (issue 18).

    python -m benchmarks.markers [--tissues 20] [--cell-types 50] [--genes 20000] [--density 0.5]
        [--ids object|category] [--json OUT]

The stats frame has one row per tissue x cell type x gene with probability ``--density`` (the rows a rolled-up
cube holds: genes with an expressing cell), group sizes 2..5,000 cells, consistent sums. The frame is built
first; then ``marker_genes`` runs once while a thread samples this process's RSS every 50 ms. Reported: the
frame's rows and bytes, the RSS before the call, the peak RSS during it, wall and CPU seconds, markers found.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import psutil

from census_builder.gene_expression.markers import marker_genes


def synthetic_stats(tissues: int, cell_types: int, genes: int, density: float, ids: str, seed: int = 0) -> pd.DataFrame:
    """Return a rolled-up cube's stats frame of the given shape (see the module docstring)."""
    rng = np.random.default_rng(seed)
    parts = []
    for t in range(tissues):
        n_cells = rng.integers(2, 5001, size=cell_types)
        present = rng.random((cell_types, genes)) < density
        c_idx, g_idx = np.nonzero(present)
        n = n_cells[c_idx]
        n_expr = np.maximum(1, rng.binomial(n, rng.uniform(0.01, 0.9, size=n.size)))
        mean = rng.gamma(4.0, 0.5, size=n.size) + 0.5
        sd = rng.uniform(0.1, 1.5, size=n.size)
        parts.append(
            pd.DataFrame(
                {
                    "tissue_general_ontology_term_id": np.full(n.size, t, dtype=np.int64),
                    "cell_type_ontology_term_id": c_idx.astype(np.int64),
                    "feature_id": g_idx.astype(np.int64),
                    "n_cells": n.astype(np.int64),
                    "n_expressing": n_expr.astype(np.int64),
                    "sum": n_expr * mean,
                    "sumsq": n_expr * (mean * mean + sd * sd),
                }
            )
        )
    df = pd.concat(parts, ignore_index=True)
    names = {
        "tissue_general_ontology_term_id": np.array([f"UBERON:{i:07d}" for i in range(tissues)], dtype=object),
        "cell_type_ontology_term_id": np.array([f"CL:{i:07d}" for i in range(cell_types)], dtype=object),
        "feature_id": np.array([f"ENSG{i:011d}" for i in range(genes)], dtype=object),
    }
    for column, values in names.items():
        codes = df[column].to_numpy(dtype=np.int64)
        if ids == "category":
            df[column] = pd.Categorical.from_codes(codes, categories=pd.Index(values.astype(str)))
        else:
            df[column] = values[codes]
    return df


def measure(stats: pd.DataFrame) -> dict[str, Any]:
    """Run marker_genes once; return seconds, RSS before and peak RSS during the call, and the markers found."""
    gc.collect()
    me = psutil.Process(os.getpid())
    before = me.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, me.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    markers = marker_genes(stats)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    done.set()
    sampler.join()
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),  # less sensitive than wall time to a loaded machine
        "rss_before_gib": round(before / 2**30, 3),
        "peak_rss_gib": round(max(peak, me.memory_info().rss) / 2**30, 3),
        "markers": len(markers),
        "groups_with_markers": int(
            markers.groupby(["tissue_general_ontology_term_id", "cell_type_ontology_term_id"], observed=True).ngroups
        ),
    }


def main(argv: list[str] | None = None) -> int:
    """Build the frame, measure one call, print (and optionally write) the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.markers", description=__doc__.splitlines()[0])
    parser.add_argument("--tissues", type=int, default=20)
    parser.add_argument("--cell-types", type=int, default=50)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--density", type=float, default=0.5)
    parser.add_argument("--ids", choices=("object", "category"), default="object")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    stats = synthetic_stats(args.tissues, args.cell_types, args.genes, args.density, args.ids)
    result: dict[str, Any] = {
        "shape": f"{args.tissues} tissues x {args.cell_types} cell types x {args.genes} genes, density {args.density}",
        "ids": args.ids,
        "rows": len(stats),
        "frame_gib": round(stats.memory_usage(deep=True).sum() / 2**30, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **measure(stats),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

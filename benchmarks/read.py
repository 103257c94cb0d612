"""Consumer read speed of a release's human X, as built (one fragment per chunk, fragment metadata
consolidated) and, with ``--compare-consolidated``, of a copy whose X arrays are merged into one fragment.

    python -m benchmarks.read benchmarks/data/build-250k/bench/soma --compare-consolidated

Each query runs in a fresh process (no TileDB caches carried over); the page cache is warm for both.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

from census_builder.census.schema import load_schema
from census_builder.soma.layout import ReleaseLayout

logger = logging.getLogger("benchmarks.read")

QUERIES = (
    "full scan X['normalized']",
    "5,000 random cells",
    "20,000-cell row range",
    "20 genes, every cell",
    "obs query (lung) to AnnData",
)


def run_queries(release: str) -> dict[str, float]:
    """Time each of QUERIES once against the release at ``release``; return seconds by query."""
    import tiledbsoma as soma

    out: dict[str, float] = {}
    rng = np.random.default_rng(0)
    layout = ReleaseLayout(release, load_schema())
    rna = layout.schema.measurement
    with soma.Experiment.open(layout.experiment("homo_sapiens").uri) as exp:
        x = cast("soma.Collection[soma.SparseNDArray]", exp.ms[rna].X)  # the Census X layers are all sparse
        n_obs, n_var = exp.obs.count, exp.ms[rna].var.count

        def full() -> Any:
            return sum(t.num_rows for t in x["normalized"].read().tables())

        def random_cells() -> Any:
            ids = np.sort(rng.choice(n_obs, 5000, replace=False))
            return x["raw"].read(coords=(ids,)).tables().concat().num_rows

        def row_range() -> Any:
            return x["raw"].read(coords=(slice(n_obs // 3, n_obs // 3 + 19_999),)).tables().concat().num_rows

        def genes() -> Any:
            ids = np.sort(rng.choice(n_var, 20, replace=False))
            return x["raw"].read(coords=(slice(None), ids)).tables().concat().num_rows

        def query() -> Any:
            with exp.axis_query(rna, obs_query=soma.AxisQuery(value_filter="tissue_general == 'lung'")) as q:
                return q.to_anndata("raw").n_obs

        for name, fn in zip(QUERIES, (full, random_cells, row_range, genes, query), strict=True):
            t = time.perf_counter()
            fn()
            out[name] = time.perf_counter() - t
    return out


def consolidated_copy(release: Path, dest: Path) -> None:
    """Copy ``release`` to ``dest`` and merge each X array of the copy into one fragment."""
    import tiledb

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(release, dest)
    layout = ReleaseLayout(str(dest), load_schema())
    organisms = sorted(p.name for p in Path(layout.census_data).iterdir() if p.is_dir())
    for layer in sorted(u for e in layout.experiments(organisms) for u in e.x_layers.values() if Path(u).is_dir()):
        cfg = tiledb.Config(
            {"sm.consolidation.mode": "fragments", "sm.vacuum.mode": "fragments", "sm.mem.total_budget": str(2**30)}
        )
        tiledb.consolidate(str(layer), config=cfg)
        tiledb.vacuum(str(layer), config=cfg)


def measure(release: Path) -> dict[str, float]:
    """Run the queries on ``release`` in a fresh process; return seconds by query."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.read", str(release), "--child"], check=True, capture_output=True, text=True
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("release", type=Path)
    ap.add_argument("--compare-consolidated", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_queries(str(args.release))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layouts = {"as built": args.release}
    if args.compare_consolidated:
        copy = args.release.parent / f"{args.release.name}.consolidated"
        consolidated_copy(args.release, copy)
        layouts["X consolidated"] = copy
    results = {name: measure(path) for name, path in layouts.items()}
    logger.info("| query | %s |", " | ".join(f"{n} s" for n in results))
    logger.info("|---|%s", "---|" * len(results))
    for q in QUERIES:
        logger.info("| %s | %s |", q, " | ".join(f"{r[q]:.2f}" for r in results.values()))
    if args.compare_consolidated:
        shutil.rmtree(layouts["X consolidated"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

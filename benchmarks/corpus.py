"""Benchmark corpora: the test generator (census_builder.testing.synthetic) at scale.

    python -m benchmarks.corpus --cells 250000 [--compression {none,gzip,lzf}] [--data benchmarks/data]

writes the corpus ``benchmarks.run`` builds (``<data>/corpus-250k``, or ``corpus-250k-gzip`` / ``-lzf``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from census_builder.testing.synthetic import COMPRESSIONS, HUMAN, MOUSE, Compression, DatasetSpec, write_h5ad


class _Named(Protocol):
    @property
    def dataset_id(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Named)
logger = logging.getLogger(__name__)


def corpus_dir_name(n_cells: int, compression: Compression = "none") -> str:
    """Return the corpus directory's name: ``corpus-<thousands of cells>k``, suffixed ``-gzip`` / ``-lzf``."""
    return f"corpus-{n_cells // 1000}k" + ("" if compression == "none" else f"-{compression}")


def corpus_specs(
    n_cells: int,
    *,
    genes: int = 30_000,
    nnz_per_cell: int = 1000,
    cells_per_dataset: int = 100_000,
    compression: Compression = "none",
) -> list[DatasetSpec]:
    """Datasets of ~cells_per_dataset cells; 4 in 5 human, 1 in 5 mouse; 1 in 4 with a raw layer; one small dense.
    ``compression``: the HDF5 filter of every file (the same cells and values whatever it is)."""
    density = nnz_per_cell / genes
    specs: list[DatasetSpec] = []
    remaining, i = n_cells, 0
    dense_cells = min(2_000, max(n_cells // 100, 100))
    specs.append(
        DatasetSpec(
            "bench-dense",
            n_cells=dense_cells,
            n_genes=genes,
            density=density,
            layout="dense",
            n_spike_ins=0,
            seed=10_000,
            chunk_cells=500,
            compression=compression,
        )
    )
    remaining -= dense_cells
    while remaining > 0:
        n = min(cells_per_dataset, remaining)
        org = MOUSE if i % 5 == 4 else HUMAN
        specs.append(
            DatasetSpec(
                f"bench-{i:03d}",
                n_cells=n,
                cell_organisms=(org,),
                gene_organisms=(org,),
                n_genes=genes,
                density=density,
                use_raw=(i % 4 == 3),
                n_spike_ins=10,
                seed=i,
                chunk_cells=20_000,
                compression=compression,
                assays=("EFO:0009922", "EFO:0009899", "EFO:0008931") if i % 3 == 0 else ("EFO:0009922",),
            )
        )
        remaining -= n
        i += 1
    return specs


def _write(args: tuple[str, DatasetSpec]) -> str:
    path, spec = args
    write_h5ad(path, spec)
    return path


def write_missing(out: Path, specs: Sequence[SpecT], write: Callable[[tuple[str, SpecT]], str], processes: int) -> None:
    """Write ``out/<dataset_id>.h5ad`` of each spec not written yet, ``processes`` at a time (``write``: a
    module-level function of (path, spec), so that it pickles)."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [(str(out / f"{s.dataset_id}.h5ad"), s) for s in specs if not (out / f"{s.dataset_id}.h5ad").is_file()]
    # spawn, never fork: a forked child of a process where TileDB has started its threads can deadlock
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        for p in pool.map(write, todo):
            logger.info("wrote %s", p)


def write_corpus(out: Path, specs: list[DatasetSpec], *, processes: int = 2) -> Path:
    """Write the corpus (in parallel) and its manifest; datasets already written are kept."""
    write_missing(out, specs, _write, processes)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset_id", "h5ad_uri"])
        for s in specs:
            w.writerow([s.dataset_id, f"{s.dataset_id}.h5ad"])
    return manifest


def main() -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description="Write a benchmark corpus (the one benchmarks.run builds).")
    ap.add_argument("--cells", type=int, required=True)
    ap.add_argument("--genes", type=int, default=30_000)
    ap.add_argument("--nnz-per-cell", type=int, default=1000)
    ap.add_argument("--compression", choices=COMPRESSIONS, default="none")
    ap.add_argument("--data", type=Path, default=Path("benchmarks/data"))
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    specs = corpus_specs(args.cells, genes=args.genes, nnz_per_cell=args.nnz_per_cell, compression=args.compression)
    print(write_corpus(args.data / corpus_dir_name(args.cells, args.compression), specs, processes=args.processes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The consumer-read benchmark corpus (issue 17, part 3): dataset schema 7.0.0 H5ADs that both builders take.

    python -m benchmarks.corpus_7 OUT_DIR [--cells 400000] [--processes 2] [--schema-4]

Mostly 10x assays, human and mouse, CSR only (the reference builder cannot take a dense matrix whose cells and
genes are both filtered) and no all-zero cell (``zero_cell=False``, which the reference also rejects).
``var/feature_length`` is what the generator writes by default, a categorical of int64 as in real 7.0.0 files,
which the reference takes (it refuses an unsigned column).

``--schema-4`` writes the same datasets (ids, sizes, seeds, assays, gene draws) as dataset schema 4.0.0 H5ADs
with every cell's tissue_type "tissue", for a Census 1.3.0 build of equivalent content (1.3.0 keeps tissue only;
the 2.4.0 builds also keep human-b's organoid cells and drop mouse-b's primary cell culture ones).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.corpus import write_missing
from census_builder.testing.synthetic import DatasetSpec, write_h5ad
from census_builder.testing.synthetic_7 import HUMAN, MOUSE, DatasetSpec7, write_h5ad_7

logger = logging.getLogger("benchmarks.corpus_7")

#: (dataset id suffix, organism, share of the cells, assays, tissue types, raw layer)
_PLAN: tuple[tuple[str, str, float, tuple[str, ...], tuple[str, ...], bool], ...] = (
    ("human-a", HUMAN, 0.30, ("EFO:0009922", "EFO:0009899"), ("tissue",), False),
    ("human-b", HUMAN, 0.25, ("EFO:0009922",), ("tissue", "tissue", "tissue", "organoid"), False),
    ("human-c", HUMAN, 0.15, ("EFO:0009900", "EFO:0008931"), ("tissue",), True),
    ("mouse-a", MOUSE, 0.20, ("EFO:0009922", "EFO:0030059"), ("tissue",), False),
    ("mouse-b", MOUSE, 0.10, ("EFO:0009899",), ("tissue", "primary cell culture"), False),
)


def corpus_specs_7(n_cells: int, *, genes: int = 12_000, nnz_per_cell: int = 840) -> list[DatasetSpec7]:
    """Return the five datasets of the corpus, ``n_cells`` in all (see the module docstring)."""
    density = nnz_per_cell / genes
    return [
        DatasetSpec7(
            f"bench7-{name}",
            organism=org,
            n_cells=max(int(n_cells * share), 100),
            n_genes=genes,
            density=density,
            assays=assays,
            tissue_types=ttypes,
            use_raw=raw,
            zero_cell=False,
            n_spike_ins=10,
            collection_id=f"collection-{i % 2}",
            seed=700 + i,
        )
        for i, (name, org, share, assays, ttypes, raw) in enumerate(_PLAN)
    ]


def as_schema_4(spec: DatasetSpec7) -> DatasetSpec:
    """Return the dataset schema 4.0.0 spec of the same dataset (tissue_type "tissue" for every cell)."""
    return DatasetSpec(
        spec.dataset_id,
        n_cells=spec.n_cells,
        cell_organisms=(spec.organism,),
        gene_organisms=(spec.organism,),
        n_genes=spec.n_genes,
        n_spike_ins=spec.n_spike_ins,
        use_raw=spec.use_raw,
        assays=spec.assays,
        density=spec.density,
        zero_cell=spec.zero_cell,
        seed=spec.seed,
    )


def _write(args: tuple[str, DatasetSpec7 | DatasetSpec]) -> str:
    path, spec = args
    if isinstance(spec, DatasetSpec):
        write_h5ad(path, spec)
    else:
        write_h5ad_7(path, spec)
    return path


def write_corpus_7_parallel(out: Path, specs: Sequence[DatasetSpec7 | DatasetSpec], *, processes: int = 2) -> Path:
    """Write the datasets (in parallel; ones already written are kept) and their manifest; return the manifest."""
    write_missing(out, specs, _write, processes)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset_id", "h5ad_uri", "dataset_version_id", "collection_id", "collection_name"])
        for s in specs:
            coll = s.collection_id if isinstance(s, DatasetSpec7) else "collection-4"
            w.writerow([s.dataset_id, f"{s.dataset_id}.h5ad", f"{s.dataset_id}-v1", coll, f"Bench {coll}"])
    return manifest


def main() -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--cells", type=int, default=400_000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--schema-4", action="store_true", help="the same datasets as dataset schema 4.0.0 H5ADs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    specs7 = corpus_specs_7(args.cells)
    specs = [as_schema_4(s) for s in specs7] if args.schema_4 else specs7
    print(write_corpus_7_parallel(args.out, specs, processes=args.processes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

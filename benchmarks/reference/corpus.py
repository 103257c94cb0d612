"""The 7.0.0 corpus on which our Census 2.4.0 release is compared with the reference builder's.

    python -m benchmarks.reference.corpus --out DIR

writes ``DIR/<dataset_id>.h5ad`` for each of :func:`reference_specs_7` and ``DIR/manifest.csv`` (our manifest
form, with the reference's ``collection_doi_label`` column; ``benchmarks.reference.run`` turns it into the
reference's form). About 3,000 cells in nine datasets and three collections, written in a few seconds.

What the corpus covers: the five Census 2.4.0 organisms; tissue, organoid, primary cell culture and cell line
cells; SARS-CoV-2 and ERCC features; counts in X and in raw.X (X then author-normalized); CSR, CSC and dense
matrices; full-gene assays (Smart-seq2, Smart-seq v4); an excluded assay (MERFISH) both mixed with included
assays and as a whole dataset; duplicate entries and explicitly stored zeros; census_spatial_sequencing: one
Visium V1 section and one Slide-seqV2 puck (:func:`reference_spatial_specs`).

What it leaves out, because the reference builder cannot take it (each named where it applies below):

- A dense matrix whose cells *and* genes are both filtered: the reference's ``AnnDataProxy.X``
  (build_soma/anndata.py) indexes a dense ``h5py.Dataset`` with two index arrays at once, which h5py refuses
  ("Only one indexing vector or array is currently allowed for fancy indexing"). Dense datasets here filter
  one axis only: cells (no ERCC / SARS-CoV-2 features) or genes (every cell kept).
- Spatial datasets the reference drops or crashes on (non-primary spots, organisms other than human and mouse,
  a dataset whose filter drops some rows): see docs/spatial-2.4.0-notes.md, points 10-12.
- A cell without counts (``DatasetSpec7.zero_cell``): the reference's own validation asserts that every cell
  has a count > 0 (``validate_soma.py``, ``assert np.all(census_obs_nnz > 0)``). Dataset schema 7.0.0 forbids
  such cells anyway: "Each cell MUST contain at least one non-zero value" (X section, scRNA-seq UMI and
  non-UMI rows of the raw-matrix table).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

from census_builder.testing.synthetic_7 import (
    CHIMP,
    HUMAN,
    MARMOSET,
    MOUSE,
    RHESUS,
    DatasetSpec7,
    write_h5ad_7,
)
from census_builder.testing.synthetic_spatial import SLIDE_SEQ_V2, VISIUM_V1, SpatialSpec, write_spatial_h5ad

#: collection_id -> (collection_name, collection_doi, collection_doi_label)
COLLECTIONS: dict[str, tuple[str, str, str]] = {
    "ref-collection-a": ("Human and primate atlas", "10.1000/ref.atlas.2025", "Atlas et al. (2025) Cell"),
    "ref-collection-b": ("Mouse cell states", "10.1000/ref.mouse.2024", "Murine et al. (2024) Nature"),
    "ref-collection-c": ("Cross-species organoids", "10.1000/ref.organoid.2026", "Organoid et al. (2026) Science"),
    "ref-collection-s": ("Spatial sections", "10.1000/ref.spatial.2026", "Spatial et al. (2026) Nature Methods"),
}
CorpusSpec = DatasetSpec7 | SpatialSpec
MANIFEST_COLUMNS = (
    "dataset_id",
    "h5ad_uri",
    "dataset_version_id",
    "collection_id",
    "collection_name",
    "collection_doi",
    "collection_doi_label",
)
MERFISH = "EFO:0008992"  # excluded from census_data (not in the 2.4.0 allowlist, not a spatial assay of it)


def _spec(dataset_id: str, collection_id: str, **kwargs: object) -> DatasetSpec7:
    # zero_cell=False everywhere: see the module docstring (the reference asserts, and 7.0.0 forbids, it)
    base = DatasetSpec7(dataset_id, collection_id=collection_id, doi=COLLECTIONS[collection_id][1], zero_cell=False)
    return base.with_(**kwargs)


def reference_specs_7() -> list[DatasetSpec7]:
    """Return the comparison corpus: every 2.4.0 case the reference builder can take, about 3,000 cells."""
    return [
        _spec(
            "ref-human-lung-10x",
            "ref-collection-a",
            n_cells=700,
            n_genes=400,
            assays=("EFO:0009922", "EFO:0009899", "EFO:0009900"),
            tissue_types=("tissue", "tissue", "tissue", "organoid"),
            explicit_zeros=True,
            n_sars_cov_2=4,
            batch_condition=("donor_id",),
            seed=101,
        ),
        _spec(  # full-gene assays, counts in raw.X, CSC with duplicates; cell-line cells filtered out
            "ref-human-smartseq-raw",
            "ref-collection-a",
            n_cells=300,
            assays=("EFO:0008931", "EFO:0700016"),
            layout="csc",
            use_raw=True,
            duplicates=True,
            density=0.2,
            tissue_types=("tissue", "cell line"),
            seed=102,
        ),
        _spec(  # dense, cells filtered (cell lines, MERFISH), so no gene may be: no ERCC, no SARS-CoV-2
            "ref-human-dense-cells-filtered",
            "ref-collection-a",
            n_cells=200,
            assays=("EFO:0008931", "EFO:0009922", MERFISH),
            layout="dense",
            use_raw=True,
            density=0.2,
            tissue_types=("tissue", "cell line", "organoid"),
            n_spike_ins=0,
            seed=103,
        ),
        _spec(
            "ref-mouse-brain-csc",
            "ref-collection-b",
            organism=MOUSE,
            n_cells=500,
            layout="csc",
            assays=("EFO:0009922", "EFO:0030059"),
            tissue_types=("tissue", "primary cell culture", "tissue"),
            duplicates=True,
            seed=104,
        ),
        _spec(  # an excluded assay mixed with included ones; both matrix oddities in raw.X
            "ref-mouse-blood-raw",
            "ref-collection-b",
            organism=MOUSE,
            n_cells=400,
            use_raw=True,
            assays=("EFO:0009922", MERFISH, "EFO:0011025"),
            tissue_types=("tissue", "cell line"),
            duplicates=True,
            explicit_zeros=True,
            seed=105,
        ),
        _spec(
            "ref-marmoset-organoid",
            "ref-collection-c",
            organism=MARMOSET,
            n_cells=300,
            assays=("EFO:0022604", "EFO:0011025"),
            tissue_types=("organoid", "tissue", "primary cell culture"),
            tissues=(("UBERON:0000955", "brain"),),
            seed=106,
        ),
        _spec(
            "ref-macaque-kidney-raw",
            "ref-collection-c",
            organism=RHESUS,
            n_cells=300,
            layout="csc",
            use_raw=True,
            assays=("EFO:0009900", "EFO:0008931"),
            n_sars_cov_2=2,
            seed=107,
        ),
        _spec(  # dense, genes filtered (ERCC), so every cell is kept: tissue only, included assays only
            "ref-chimp-heart-dense",
            "ref-collection-c",
            organism=CHIMP,
            n_cells=200,
            layout="dense",
            assays=("EFO:0009922", "EFO:0700016"),
            tissues=(("UBERON:0002082", "cardiac ventricle"),),
            n_spike_ins=2,
            seed=108,
        ),
        _spec(  # no cell reaches census_data: an excluded assay only
            "ref-human-merfish-only",
            "ref-collection-a",
            organism=HUMAN,
            n_cells=100,
            assays=(MERFISH,),
            seed=109,
        ),
    ]


def reference_spatial_specs() -> list[SpatialSpec]:
    """Return the spatial part of the comparison corpus: what the reference builder can take.

    One human Visium V1 section (the 4992 spots and 2000-pixel hires image 7.0.0 requires) and one mouse
    Slide-seqV2 puck (800 beads). The reference keeps only primary cells, only human and mouse, and crashes on a
    dataset its filter drops some rows of (docs/spatial-2.4.0-notes.md, points 10-12): every spot is primary,
    tissue_type tissue, is_single True.
    """
    doi = COLLECTIONS["ref-collection-s"][1]
    return [
        SpatialSpec(
            "ref-human-visium",
            assay=VISIUM_V1,
            organism=HUMAN,
            n_spots=None,  # 4992: 7.0.0 requires a single section's unfiltered matrix
            collection_id="ref-collection-s",
            doi=doi,
            seed=121,
        ),
        SpatialSpec(
            "ref-mouse-slideseq",
            assay=SLIDE_SEQ_V2,
            organism=MOUSE,
            n_spots=800,
            tissue=("UBERON:0002113", "kidney"),
            use_raw=True,
            collection_id="ref-collection-s",
            doi=doi,
            seed=122,
        ),
    ]


def reference_corpus() -> list[CorpusSpec]:
    """Return the whole comparison corpus: :func:`reference_specs_7` and :func:`reference_spatial_specs`."""
    return [*reference_specs_7(), *reference_spatial_specs()]


def n_observations(spec: CorpusSpec) -> int:
    """Return the number of cells (or spots) in ``spec``'s file."""
    return spec.n_obs if isinstance(spec, SpatialSpec) else spec.n_cells


def write_reference_corpus(out_dir: str | Path, specs: Sequence[CorpusSpec] | None = None) -> Path:
    """Write the H5ADs of ``specs`` (default :func:`reference_corpus`) and their manifest; return the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(MANIFEST_COLUMNS)
        for s in reference_corpus() if specs is None else specs:
            target = out / f"{s.dataset_id}.h5ad"
            path = write_spatial_h5ad(target, s) if isinstance(s, SpatialSpec) else write_h5ad_7(target, s)
            name, doi, label = COLLECTIONS[s.collection_id]
            w.writerow([s.dataset_id, path.name, f"{s.dataset_id}-v1", s.collection_id, name, doi, label])
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the comparison corpus under ``--out``; print its manifest's path."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference.corpus", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="directory for the H5ADs and manifest.csv")
    args = p.parse_args(argv)
    print(write_reference_corpus(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

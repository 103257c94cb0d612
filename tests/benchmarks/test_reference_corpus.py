"""benchmarks.reference.corpus: the comparison corpus covers every 2.4.0 case and only what the reference takes."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata.io import read_elem

from benchmarks.reference.corpus import COLLECTIONS, main, reference_corpus, reference_spatial_specs, reference_specs_7
from census_builder.census.schema import load_schema
from census_builder.testing import synthetic_7 as s7
from census_builder.testing.synthetic_spatial import SLIDE_SEQ_V2, VISIUM_V1

SPECS = reference_specs_7()
SCHEMA = load_schema("2.4.0")


def _filters_genes(spec: s7.DatasetSpec7) -> bool:
    return spec.n_spike_ins > 0 or spec.n_sars_cov_2 > 0  # both have a feature_reference not the organism's


def _filters_cells(spec: s7.DatasetSpec7) -> bool:
    kept_types = set(spec.tissue_types) <= SCHEMA.tissue_type_kept
    return not (kept_types and set(spec.assays) <= set(SCHEMA.included_assays))


def test_the_corpus_covers_every_2_4_0_case() -> None:
    assert {s.organism for s in SPECS} == set(s7.ORGANISMS)
    assert {t for s in SPECS for t in s.tissue_types} == set(s7.TISSUE_TYPES)
    assert any(s.n_sars_cov_2 for s in SPECS) and any(s.n_spike_ins for s in SPECS)
    assert {s.use_raw for s in SPECS} == {True, False}
    assert {s.layout for s in SPECS} == {"csr", "csc", "dense"}
    assays = {a for s in SPECS for a in s.assays}
    assert assays & SCHEMA.feature_length_assays  # a full-gene (Smart-seq) assay
    excluded = assays - set(SCHEMA.included_assays) - set(SCHEMA.spatial_assays)
    assert excluded == {"EFO:0008992"}
    assert any(len(s.assays) > 1 and set(s.assays) & excluded for s in SPECS)  # mixed with included ones
    assert any(set(s.assays) <= excluded for s in SPECS)  # and a whole dataset without a census_data cell
    assert any(s.duplicates for s in SPECS) and any(s.explicit_zeros for s in SPECS)
    assert len({s.collection_id for s in SPECS}) >= 2
    assert sum(s.n_cells for s in SPECS) >= 3000
    assert len({s.dataset_id for s in SPECS}) == len(SPECS)


def test_the_corpus_leaves_out_only_what_the_reference_cannot_take() -> None:
    assert not any(s.zero_cell for s in SPECS)  # 7.0.0: "Each cell MUST contain at least one non-zero value"
    dense = [s for s in SPECS if s.layout == "dense"]
    assert not [s.dataset_id for s in dense if _filters_cells(s) and _filters_genes(s)]
    assert {_filters_cells(s) for s in dense} == {True, False}  # each axis filtered in some dense dataset


def _counts(f: h5py.File) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Return the counts (duplicate entries summed) and their var."""
    raw = "raw" in f
    node, var = f["raw/X" if raw else "X"], read_elem(f["raw/var" if raw else "var"])
    if isinstance(node, h5py.Dataset):
        return sp.csr_matrix(node[...]), var
    kind = sp.csr_matrix if node.attrs["encoding-type"] == "csr_matrix" else sp.csc_matrix
    parts = (node["data"][...], node["indices"][...].astype(np.int64), node["indptr"][...].astype(np.int64))
    m = kind(parts, shape=tuple(node.attrs["shape"]))
    return sp.coo_matrix(m).tocsr(), var  # through COO: duplicate entries summed


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("refcorpus")
    assert main(["--out", str(out)]) == 0
    return out / "manifest.csv"


def test_main_writes_every_dataset_and_a_manifest_with_collection_labels(written: Path) -> None:
    with written.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    corpus = reference_corpus()  # reference_specs_7 and the spatial datasets
    assert [r["dataset_id"] for r in rows] == [s.dataset_id for s in corpus]
    for r, s in zip(rows, corpus, strict=True):
        assert (written.parent / r["h5ad_uri"]).is_file()
        name, doi, label = COLLECTIONS[s.collection_id]
        assert (r["collection_id"], r["collection_name"], r["collection_doi"]) == (s.collection_id, name, doi)
        assert r["collection_doi_label"] == label  # never empty: benchmarks.reference.run keeps the column


def test_every_kept_cell_has_a_count_in_a_gene_of_its_organism(written: Path) -> None:
    """The reference asserts it (validate_soma.py: census_obs_nnz > 0); a cell without would stop its build."""
    for s in SPECS:
        with h5py.File(written.parent / f"{s.dataset_id}.h5ad", "r") as f:
            m, var = _counts(f)
            obs = read_elem(f["obs"])
        kept: npt.NDArray[np.bool_] = ~s7.census_excluded_rows(obs)
        genes = (var["feature_reference"] == s.organism).to_numpy()
        per_cell = np.asarray((m[:, genes] > 0).sum(axis=1)).ravel()
        assert (per_cell[kept] > 0).all(), s.dataset_id


def test_the_spatial_part_is_what_the_reference_can_take() -> None:
    spatial = reference_spatial_specs()
    assert [s.assay for s in spatial] == [VISIUM_V1, SLIDE_SEQ_V2]
    assert {s.organism for s in spatial} == {s7.HUMAN, s7.MOUSE}  # the reference's only spatial organisms
    assert all(s.is_single and s.dataset_spec_7().primary_fraction == 1.0 for s in spatial)  # nothing filtered
    assert all(s.planted_problems() == [] for s in spatial)  # valid 7.0.0 (the 2000-pixel hires side)
    assert all(s.collection_id in COLLECTIONS for s in spatial)
    ids: list[str] = [s.dataset_id for s in SPECS] + [s.dataset_id for s in spatial]
    assert [s.dataset_id for s in reference_corpus()] == ids

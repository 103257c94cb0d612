"""One CLI build of Census 2.4.0 from a small dataset schema 7.0.0 corpus, checked against the sources.

Expected values come from the H5ADs (anndata) and the schema text, never from the builder's helpers.
The build ends with the independent validator, which must pass (the validator's own 2.4.0 tests are in
tests/validation/test_release_2_4_0.py).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tiledbsoma as soma

from census_builder.cli.main import main
from census_builder.testing.synthetic_7 import CHIMP, HUMAN, MARMOSET, MOUSE, RHESUS, DatasetSpec7, write_h5ad_7
from tests.census_builder.build.h5ad_edits import as_dtype, rename_category
from tests.conftest import run_main_once
from tests.spatial_build import Built

ZEBRAFISH, VISIUM, MERFISH, SMART_SEQ2 = "NCBITaxon:7955", "EFO:0022857", "EFO:0008992", "EFO:0008931"
KEPT_TISSUE_TYPES = ("tissue", "organoid")  # Census schema 2.4.0, "Sample types"
ORGANISMS = [  # Census schema 2.4.0, the organisms table, in the schema file's order
    ("NCBITaxon:9483", "Callithrix jacchus", "callithrix_jacchus"),
    ("NCBITaxon:9606", "Homo sapiens", "homo_sapiens"),
    ("NCBITaxon:9544", "Macaca mulatta", "macaca_mulatta"),
    ("NCBITaxon:10090", "Mus musculus", "mus_musculus"),
    ("NCBITaxon:9598", "Pan troglodytes", "pan_troglodytes"),
]
SPECS = [
    DatasetSpec7(  # 10x and Smart-seq2 (full-gene), every tissue type, SARS-CoV-2 and ERCC features
        "human-mixed",
        n_cells=50,
        n_genes=40,
        assays=("EFO:0009922", SMART_SEQ2),
        tissue_types=("tissue", "organoid", "tissue", "primary cell culture", "cell line"),
        n_sars_cov_2=3,
        n_spike_ins=2,
        seed=1,
    ),
    DatasetSpec7("human-spatial", n_cells=20, n_genes=30, assays=("EFO:0009922", MERFISH), seed=2),  # -> Visium
    DatasetSpec7("mouse-csc", organism=MOUSE, n_cells=30, n_genes=30, layout="csc", use_raw=True, seed=3),
    DatasetSpec7("marmoset", organism=MARMOSET, n_cells=20, n_genes=25, tissue_types=("tissue", "organoid"), seed=4),
    DatasetSpec7("macaque", organism=RHESUS, n_cells=20, n_genes=25, n_sars_cov_2=2, seed=5),
    DatasetSpec7("chimp", organism=CHIMP, n_cells=20, n_genes=25, layout="dense", seed=6),
    DatasetSpec7("zebrafish", n_cells=20, n_genes=25, extra_uns={"organism_ontology_term_id": ZEBRAFISH}, seed=7),
]
ORGANISM_OF = {"human-mixed": HUMAN, "human-spatial": HUMAN, "mouse-csc": MOUSE, "marmoset": MARMOSET}
ORGANISM_OF |= {"macaque": RHESUS, "chimp": CHIMP}
DOI_LABELS = {"human-mixed": "Smith et al. (2025) Cell", "mouse-csc": "Doe et al. (2024) Nature"}


def _write_corpus(corpus: Path) -> Path:
    for spec in SPECS:
        write_h5ad_7(corpus / f"{spec.dataset_id}.h5ad", spec)
    as_dtype(corpus / "human-mixed.h5ad", "var/feature_length", np.uint64)  # 7.0.0 may store lengths unsigned
    rename_category(corpus / "human-spatial.h5ad", "obs/assay_ontology_term_id", MERFISH, VISIUM)
    rename_category(corpus / "human-spatial.h5ad", "obs/assay", "MERFISH", "Visium Spatial Gene Expression V1")
    rename_category(corpus / "zebrafish.h5ad", "var/feature_reference", HUMAN, ZEBRAFISH)
    manifest = corpus / "manifest.csv"  # the reference builder's form
    with manifest.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["dataset_id", "dataset_asset_h5ad_uri", "collection_id", "collection_doi_label", "schema_version"])
        for spec in SPECS:
            path = corpus / f"{spec.dataset_id}.h5ad"
            w.writerow([spec.dataset_id, str(path), spec.collection_id, DOI_LABELS.get(spec.dataset_id, ""), "7.0.0"])
    return manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    corpus = tmp_path_factory.mktemp("corpus7")
    manifest = _write_corpus(corpus)
    workdir = tmp_path_factory.mktemp("build7")
    argv = ["build", "--census-schema", "2.4.0", "--version", "v24", "--manifest", str(manifest)]
    argv += ["--workdir", str(workdir), "--workers", "1", "--build-date", "2026-11-22"]
    assert run_main_once(argv) == 0
    yield Built(corpus=corpus, root=workdir / "v24")


def _frame(census: Any, path: str) -> pd.DataFrame:
    node = census
    for part in path.split("/"):
        node = node[part]
    out: pd.DataFrame = node.read().concat().to_pandas().sort_values("soma_joinid").reset_index(drop=True)
    return out


def _expected_cells(source: anndata.AnnData, dataset_id: str) -> pd.DataFrame:
    """The source cells the Census 2.4.0 rules keep: an accepted (non-spatial) assay and tissue or organoid."""
    obs = source.obs
    accepted = obs["assay_ontology_term_id"].isin(["EFO:0009922", SMART_SEQ2])
    kept: pd.DataFrame = obs[accepted & obs["tissue_type"].isin(KEPT_TISSUE_TYPES)]
    return kept


def _expected_genes(source: anndata.AnnData, organism: str) -> pd.DataFrame:
    var = source.raw.var if source.raw is not None else source.var
    genes: pd.DataFrame = var[(var["feature_reference"] == organism) & (var["feature_biotype"] == "gene")]
    return genes


def test_five_organisms_five_experiments_and_the_organisms_table(built: Built) -> None:
    census: Any
    with soma.open(built.soma) as census:
        assert sorted(census["census_data"].keys()) == [name for _, _, name in ORGANISMS]
        table = _frame(census, "census_info/organisms")
        meta = dict(census.metadata)
    assert list(table.columns) == ["soma_joinid", "organism_ontology_term_id", "organism_label", "organism"]
    assert list(table.itertuples(index=False, name=None)) == [(i, *o) for i, o in enumerate(ORGANISMS)]
    assert (meta["census_schema_version"], meta["dataset_schema_version"]) == ("2.4.0", "7.0.0")
    report = json.loads((built.root / "build_report.json").read_text(encoding="utf-8"))
    assert (report["census_schema_version"], report["dataset_schema_version"]) == ("2.4.0", "7.0.0")


def test_cells_are_tissue_and_organoid_of_accepted_assays(built: Built) -> None:
    census: Any
    with soma.open(built.soma) as census:
        obs = {name: _frame(census, f"census_data/{name}/obs") for _, _, name in ORGANISMS}
    for dataset_id, term in ORGANISM_OF.items():
        name = next(n for t, _, n in ORGANISMS if t == term)
        got = obs[name][obs[name]["dataset_id"] == dataset_id]
        expected = _expected_cells(built.source(dataset_id), dataset_id)
        assert list(got["observation_joinid"]) == list(expected["observation_joinid"]), dataset_id
        assert list(got["tissue_type"]) == list(expected["tissue_type"].astype(str)), dataset_id
    human = obs["homo_sapiens"]
    assert set(human["tissue_type"]) == {"tissue", "organoid"}  # primary cell culture and cell line dropped
    source = built.source("human-mixed").obs
    assert {"primary cell culture", "cell line"} <= set(source["tissue_type"])
    spatial = built.source("human-spatial").obs
    visium = spatial[spatial["assay_ontology_term_id"] == VISIUM]["observation_joinid"]
    assert len(visium) == 10 and not set(visium) & set(human["observation_joinid"])
    assert VISIUM not in set(human["assay_ontology_term_id"])
    assert set(pd.concat(obs.values())["dataset_id"]) == set(ORGANISM_OF)  # zebrafish contributes no cells


def test_genes_are_the_organisms_own_with_feature_length_as_int64(built: Built) -> None:
    census: Any
    with soma.open(built.soma) as census:
        var = {name: _frame(census, f"census_data/{name}/ms/RNA/var") for _, _, name in ORGANISMS}
    for term, _, name in ORGANISMS:
        ids = [d for d, t in ORGANISM_OF.items() if t == term]
        expected = pd.concat([_expected_genes(built.source(d), term) for d in ids])
        expected = expected[~expected.index.duplicated()].sort_index()
        assert list(var[name]["feature_id"]) == list(expected.index), name
        assert var[name]["feature_length"].dtype == np.int64
        np.testing.assert_array_equal(var[name]["feature_length"], expected["feature_length"].astype(np.int64))
        assert not any(f.startswith(("ENSSASG", "ERCC-")) for f in var[name]["feature_id"])
    human_source = built.source("human-mixed").var
    assert human_source["feature_length"].dtype == np.uint64
    assert human_source["feature_reference"].isin(["NCBITaxon:2697049", "NCBITaxon:32630"]).sum() == 5


def test_full_gene_assay_is_normalized_by_feature_length(built: Built) -> None:
    source = built.source("human-mixed")
    census: Any
    with soma.open(built.soma) as census:
        exp = census["census_data"]["homo_sapiens"]
        obs = _frame(census, "census_data/homo_sapiens/obs")
        var = _frame(census, "census_data/homo_sapiens/ms/RNA/var")
        cells = obs[obs["dataset_id"] == "human-mixed"]
        rows = cells["soma_joinid"].to_numpy()
        raw = exp.ms["RNA"].X["raw"].read((rows,)).tables().concat().to_pandas()
        norm = exp.ms["RNA"].X["normalized"].read((rows,)).tables().concat().to_pandas()
    counts = sp.csr_matrix(source.X)
    genes = _expected_genes(source, HUMAN)
    in_source = source.obs["observation_joinid"].isin(cells["observation_joinid"]).to_numpy()
    src_rows = np.nonzero(in_source)[0]
    assert list(source.obs["observation_joinid"].to_numpy()[src_rows]) == list(cells["observation_joinid"])
    src_cols = source.var_names.get_indexer(var["feature_id"])  # -1: a gene of the other human dataset only
    x = np.zeros((len(rows), len(var)))
    x[:, src_cols >= 0] = counts[src_rows][:, src_cols[src_cols >= 0]].toarray()
    assert set(var["feature_id"][src_cols >= 0]) == set(genes.index)
    smart = (source.obs["assay_ontology_term_id"].to_numpy()[src_rows] == SMART_SEQ2)[:, None]
    assert smart.any() and not smart.all()
    length = var["feature_length"].to_numpy(dtype=np.float64)[None, :]
    weighted = np.where(smart, x / length, x)
    sums = weighted.sum(axis=1, keepdims=True)
    expected_norm = weighted / np.where(sums > 0, sums, 1.0)  # the all-zero cell stores nothing
    assert (sums == 0).sum() == 1
    row_of = {j: i for i, j in enumerate(rows)}
    got_raw = np.zeros_like(x)
    got_norm = np.zeros_like(x)
    got_raw[[row_of[r] for r in raw["soma_dim_0"]], raw["soma_dim_1"]] = raw["soma_data"]
    got_norm[[row_of[r] for r in norm["soma_dim_0"]], norm["soma_dim_1"]] = norm["soma_data"]
    np.testing.assert_array_equal(got_raw, x)
    np.testing.assert_allclose(got_norm, expected_norm, rtol=2.0**-16 + 2.0**-24, atol=0)  # 15 mantissa bits


def test_census_info_datasets_and_summary(built: Built) -> None:
    census: Any
    with soma.open(built.soma) as census:
        datasets = _frame(census, "census_info/datasets")
        summary = _frame(census, "census_info/summary")
    assert list(datasets["dataset_id"]) == list(ORGANISM_OF)  # manifest order, without zebrafish
    labels = dict(zip(datasets["dataset_id"], datasets["collection_doi_label"], strict=True))
    assert labels == {d: DOI_LABELS.get(d, "") for d in ORGANISM_OF}
    total = sum(len(_expected_cells(built.source(d), d)) for d in ORGANISM_OF)
    unique = sum(int(_expected_cells(built.source(d), d)["is_primary_data"].sum()) for d in ORGANISM_OF)
    assert list(summary.itertuples(index=False, name=None)) == [
        (0, "census_schema_version", "2.4.0"),
        (1, "census_build_date", "2026-11-22"),
        (2, "dataset_schema_version", "7.0.0"),
        (3, "total_cell_count", str(total)),
        (4, "unique_cell_count", str(unique)),
    ]


def test_build_report_names_the_spatial_cells_and_the_foreign_organism(built: Built) -> None:
    report = json.loads((built.root / "build_report.json").read_text(encoding="utf-8"))
    assert (
        "10 cell(s) of spatial assays are left out of census_data (EFO:0022857 (Visium Spatial Gene Expression V1): "
        "10 cell(s)); census_spatial_sequencing takes only datasets whose cells are all of one spatial assay, and "
        "this dataset has other assays too"
    ) in report["inputs"]["warnings"]["human-spatial"]
    (no_cells,) = report["inputs"]["no_cells"]
    assert no_cells["dataset_id"] == "zebrafish"
    assert no_cells["reason"].startswith("organism 'NCBITaxon:7955' is not a Census organism of Census schema 2.4.0")


def test_publish_notes_and_release_list_work_on_a_2_4_0_release(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The release commands on a 2.4.0 release: five organisms, no number_donors rows, the organisms table.

    The build validated the release (its report passed), so publish takes it as it is.
    """
    root = tmp_path / "w" / "v24"
    shutil.copytree(built.root, root)
    assert json.loads((root / "validation_report.json").read_text(encoding="utf-8"))["passed"] is True
    dest = tmp_path / "dest"
    argv = ["publish", "--version", "v24", "--workdir", str(tmp_path / "w"), "--to", str(dest)]
    assert main([*argv, "--release-date", "2026-11-23"]) == 0
    entry = json.loads((dest / "release.json").read_text(encoding="utf-8"))["v24"]
    assert (entry["census_schema_version"], entry["dataset_schema_version"]) == ("2.4.0", "7.0.0")
    census: Any
    with soma.open(str(dest / "v24" / "soma")) as census:
        assert sorted(census["census_data"].keys()) == [name for _, _, name in ORGANISMS]
        assert len(_frame(census, "census_info/organisms")) == 5
    assert main(["release", "list", "--to", str(dest)]) == 0
    assert "v24" in capsys.readouterr().out
    assert main(["notes", "--version", "v24", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "n")]) == 0
    notes = (tmp_path / "n" / "v24.md").read_text(encoding="utf-8")
    assert "with census schema 2.4.0" in notes and "| Pan troglodytes |" in notes


def test_presence_lists_every_census_gene_of_the_dataset_and_drives_n_measured(built: Built) -> None:
    """2.4.0's presence rule (schema data ``rule: listed``): a dataset's row is True for every Census gene of its
    var, counts or not (cellxgene-census #1284 / PR #1320); n_measured_vars and n_measured_obs are its sums."""
    census: Any
    with soma.open(built.soma) as census:
        datasets = _frame(census, "census_info/datasets").set_index("dataset_id")["soma_joinid"]
        for term, _, name in ORGANISMS:
            var = _frame(census, f"census_data/{name}/ms/RNA/var")
            obs = _frame(census, f"census_data/{name}/obs")
            pm = census["census_data"][name]["ms"]["RNA"]["feature_dataset_presence_matrix"]
            coo = pm.read().tables().concat().to_pandas()
            cells = obs.groupby("dataset_id", observed=True).size()
            n_measured_obs = pd.Series(0, index=var["feature_id"])
            for d in [d for d, t in ORGANISM_OF.items() if t == term and d in datasets.index]:
                source = built.source(d)
                expected = set(_expected_genes(source, term).index)
                row = coo[coo["soma_dim_0"] == datasets[d]]
                present = set(var["feature_id"].to_numpy()[row["soma_dim_1"].to_numpy()])
                assert present == expected, d
                assert row["soma_data"].all()
                assert set(obs.loc[obs["dataset_id"] == d, "n_measured_vars"]) == {len(expected)}
                n_measured_obs[list(expected)] += int(cells[d])
            np.testing.assert_array_equal(var["n_measured_obs"].to_numpy(), n_measured_obs.to_numpy(), name)

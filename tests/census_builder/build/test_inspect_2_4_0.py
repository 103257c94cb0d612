"""Preflight of Census 2.4.0 on tiny dataset schema 7.0.0 H5ADs: the dataset-organism rule and its errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from census_builder.build.inspect import DatasetPlan, PlanFiles, inspect_dataset
from census_builder.census.schema import CensusSchema, load_schema
from census_builder.errors import InputError
from census_builder.testing.synthetic import DatasetSpec, write_h5ad
from census_builder.testing.synthetic_7 import MARMOSET, DatasetSpec7, write_h5ad_7
from tests.census_builder.build.h5ad_edits import as_dtype, delete, rename_category, rewrite

V2_4 = load_schema("2.4.0")
V1_3 = load_schema("1.3.0")
ERCC, MOUSE, ZEBRAFISH = "NCBITaxon:32630", "NCBITaxon:10090", "NCBITaxon:7955"


def _write(tmp_path: Path, spec: DatasetSpec7) -> Path:
    return write_h5ad_7(tmp_path / f"{spec.dataset_id}.h5ad", spec)


def _inspect(tmp_path: Path, path: Path, dataset_id: str, schema: CensusSchema = V2_4) -> DatasetPlan:
    return inspect_dataset(dataset_id, str(path), schema, 1000, str(tmp_path / "plan"))


def _error(tmp_path: Path, path: Path, dataset_id: str, schema: CensusSchema = V2_4) -> InputError:
    with pytest.raises(InputError) as info:
        _inspect(tmp_path, path, dataset_id, schema)
    return info.value


def test_a_census_organism_keeps_its_genes_and_tissue_and_organoid_cells(tmp_path: Path) -> None:
    spec = DatasetSpec7(
        "m",
        organism=MARMOSET,
        n_cells=40,
        n_genes=30,
        n_spike_ins=2,
        n_sars_cov_2=3,
        tissue_types=("tissue", "organoid", "primary cell culture"),
    )
    path = _write(tmp_path, spec)
    plan = _inspect(tmp_path, path, "m")
    source = anndata.read_h5ad(path)
    files = PlanFiles(tmp_path / "plan", "m")
    expected_cells = source.obs.index[source.obs["tissue_type"].isin(["tissue", "organoid"])]
    assert plan.organism == "callithrix_jacchus"
    assert plan.n_cells == len(expected_cells) == 27
    kept = files.load_arrays()["kept_rows"]
    assert list(source.obs.index[kept]) == list(expected_cells)
    genes = pd.read_parquet(files.genes)
    expected_genes = source.var.index[source.var["feature_reference"] == MARMOSET]
    assert sorted(genes["feature_id"]) == sorted(expected_genes) and len(expected_genes) == 30
    assert plan.warnings == ()


def test_a_dataset_of_another_organism_contributes_no_cells_with_the_reason(tmp_path: Path) -> None:
    spec = DatasetSpec7("z", n_cells=20, n_genes=10, extra_uns={"organism_ontology_term_id": ZEBRAFISH})
    path = _write(tmp_path, spec)  # a zebrafish dataset (7.0.0 allows it): its genes are zebrafish genes
    rename_category(path, "var/feature_reference", "NCBITaxon:9606", ZEBRAFISH)
    plan = _inspect(tmp_path, path, "z")
    assert (plan.organism, plan.n_cells, plan.n_genes) == (None, 0, 0)
    assert plan.excluded_reason.startswith(
        "organism 'NCBITaxon:7955' is not a Census organism of Census schema 2.4.0 (NCBITaxon:9483 (Callithrix"
    )


def test_missing_uns_organism_is_an_error_naming_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, DatasetSpec7("u", n_cells=10, n_genes=10))
    delete(path, "uns/organism_ontology_term_id")
    e = _error(tmp_path, path, "u")
    assert str(e) == f"dataset 'u' ({path}), field 'uns/organism_ontology_term_id': missing from uns"


def test_empty_uns_organism_is_an_error_naming_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, DatasetSpec7("u", n_cells=10, n_genes=10, extra_uns={"organism_ontology_term_id": " "}))
    e = _error(tmp_path, path, "u")
    assert str(e) == (
        f"dataset 'u' ({path}), field 'uns/organism_ontology_term_id': is empty; it must name the dataset's "
        "organism (an NCBITaxon term)"
    )


@pytest.mark.parametrize("use_raw", [False, True])
def test_a_foreign_feature_reference_is_an_error_naming_each_value_and_its_genes(tmp_path: Path, use_raw: bool) -> None:
    path = _write(tmp_path, DatasetSpec7("f", n_cells=10, n_genes=12, n_spike_ins=3, use_raw=use_raw))
    var = "raw/var" if use_raw else "var"
    rename_category(path, f"{var}/feature_reference", ERCC, MOUSE)
    e = _error(tmp_path, path, "f")
    assert (e.dataset_id, e.uri, e.field) == ("f", str(path), f"{var}/feature_reference")
    assert e.reason == (
        "1 value(s) are neither the dataset's organism 'NCBITaxon:9606' (uns/organism_ontology_term_id) nor one of "
        "the other references Census schema 2.4.0 allows (NCBITaxon:2697049 (SARS-CoV-2), NCBITaxon:32630 (ERCC "
        "Spike-Ins)): 'NCBITaxon:10090' (3 gene(s))"
    )


def test_a_4_0_0_file_in_a_2_4_0_build_names_both_versions(tmp_path: Path) -> None:
    path = write_h5ad(tmp_path / "old.h5ad", DatasetSpec("old", n_cells=10))
    e = _error(tmp_path, path, "old")
    assert str(e) == (
        f"dataset 'old' ({path}), field 'uns/schema_version': dataset schema version is '4.0.0'; Census schema "
        "2.4.0 requires '7.0.0'"
    )


def test_a_7_0_0_file_in_a_1_3_0_build_names_both_versions(tmp_path: Path) -> None:
    path = _write(tmp_path, DatasetSpec7("new", n_cells=10, n_genes=10))
    e = _error(tmp_path, path, "new", V1_3)
    assert str(e) == (
        f"dataset 'new' ({path}), field 'uns/schema_version': dataset schema version is '7.0.0'; Census schema "
        "1.3.0 requires '4.0.0'"
    )


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_unsigned_feature_length_is_read_exactly(tmp_path: Path, dtype: type[np.generic]) -> None:
    path = _write(tmp_path, DatasetSpec7("s", n_cells=10, n_genes=20, assays=("EFO:0008931",)))  # Smart-seq2
    as_dtype(path, "var/feature_length", dtype)
    _inspect(tmp_path, path, "s")
    source = anndata.read_h5ad(path).var
    assert source["feature_length"].dtype == dtype
    genes = pd.read_parquet(PlanFiles(tmp_path / "plan", "s").genes).set_index("feature_id")
    assert genes["feature_length"].dtype == np.int64
    expected = source.loc[genes.index, "feature_length"].astype(np.int64)
    pd.testing.assert_series_equal(genes["feature_length"], expected, check_names=False, check_index_type=False)


def test_a_feature_length_above_int64_is_an_error_naming_the_gene(tmp_path: Path) -> None:
    path = _write(tmp_path, DatasetSpec7("big", n_cells=10, n_genes=20, n_spike_ins=0))
    source = anndata.read_h5ad(path).var
    gene = str(source.index[4])

    def huge(v: Any) -> npt.NDArray[np.uint64]:
        out = np.asarray(v).astype(np.uint64)
        out[4] = np.uint64(2**63 + 5)
        return out

    rewrite(path, "var/feature_length", huge)
    e = _error(tmp_path, path, "big")
    assert e.field == "var/feature_length"
    assert e.reason == (
        f"feature_length 9223372036854775813 of gene {gene!r} does not fit the release's int64 (1 gene(s) above "
        "9223372036854775807)"
    )


def test_spatial_assay_cells_are_left_out_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, DatasetSpec7("sp", n_cells=20, n_genes=10, assays=("EFO:0009922", "EFO:0008992")))
    rename_category(path, "obs/assay_ontology_term_id", "EFO:0008992", "EFO:0022857")  # Visium V1
    rename_category(path, "obs/assay", "MERFISH", "Visium Spatial Gene Expression V1")
    plan = _inspect(tmp_path, path, "sp")
    obs = anndata.read_h5ad(path).obs
    n_spatial = int((obs["assay_ontology_term_id"] == "EFO:0022857").sum())
    assert n_spatial == 10 and plan.n_cells == 10
    assert plan.warnings == (
        f"{n_spatial} cell(s) of spatial assays are left out of census_data (EFO:0022857 (Visium Spatial Gene "
        f"Expression V1): {n_spatial} cell(s)); they belong in census_spatial_sequencing, which this "
        "census-builder does not write yet (issue #16)",
    )
    kept = PlanFiles(tmp_path / "plan", "sp").load_arrays()["kept_rows"]
    assert not re.search("EFO:0022857", " ".join(obs["assay_ontology_term_id"].to_numpy()[kept]))

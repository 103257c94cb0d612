"""The validator's expected model for Census schema 2.4.0 (rule ``dataset_organism``) on 7.0.0 sources.

The organism is the dataset's ``uns`` term; genes are feature_biotype "gene" of that organism (SARS-CoV-2 and
ERCC features are never kept, any other feature_reference makes the source invalid); cells are those of an
included assay (spatial assays are not) and a kept tissue_type (tissue, organoid). 1.3.0's rule is unchanged
(tests/validation/test_sources.py).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from census_builder.testing.synthetic_7 import ERCC, HUMAN, MOUSE, SARS_COV_2, DatasetSpec7, write_h5ad_7
from tests.census_builder.build.h5ad_edits import delete, rename_category, rewrite
from validation.expected.dataset import DatasetPlan, PlanTask, plan_dataset
from validation.expected.filters import keep_rows
from validation.expected.spec import load_spec
from validation.inputs.source import SourceFile

VISIUM = "EFO:0022857"  # a spatial assay of Census 2.4.0 (cells go to census_spatial_sequencing)
ZEBRAFISH = "NCBITaxon:7955"  # a CELLxGENE organism that is not a Census organism


def _plan(path: Path, version: str = "2.4.0") -> DatasetPlan:
    return plan_dataset(PlanTask(path.stem, str(path), version, 1000))


def test_cells_genes_and_organism_from_uns(tmp_path: Path) -> None:
    spec = DatasetSpec7(
        "human-mixed",
        n_cells=80,
        n_genes=60,
        n_sars_cov_2=4,
        n_spike_ins=3,
        assays=("EFO:0009922", "EFO:0009899", "EFO:0008992"),  # 10x 3' v3, 10x 3' v2 (made spatial below), MERFISH
        tissue_types=("tissue", "organoid", "primary cell culture", "cell line"),
    )
    path = write_h5ad_7(tmp_path / "human-mixed.h5ad", spec)
    rename_category(path, "obs/assay_ontology_term_id", "EFO:0009899", VISIUM)
    adata = ad.read_h5ad(path)
    obs, var = adata.obs, adata.var
    keep = obs["tissue_type"].isin(["tissue", "organoid"]) & (obs["assay_ontology_term_id"] == "EFO:0009922")
    assert 0 < int(keep.sum()) < int(obs["tissue_type"].isin(["tissue", "organoid"]).sum())

    plan = _plan(path)

    assert plan.readable and plan.contributes, plan.problems
    assert plan.organism == "homo_sapiens" and plan.organism_term == HUMAN
    assert plan.n_cells == int(keep.sum())
    assert plan.n_primary == int(obs["is_primary_data"][keep].sum())
    human_genes = (var["feature_reference"] == HUMAN) & (var["feature_biotype"] == "gene")
    assert plan.gene_ids == list(var.index[human_genes])
    assert len(plan.gene_ids) == 60
    sars = set(var.index[var["feature_reference"] == SARS_COV_2])
    ercc = set(var.index[var["feature_reference"] == ERCC])
    assert len(sars) == 4 and len(ercc) == 3 and not (sars | ercc) & set(plan.gene_ids)
    assert plan.cell_counts[("all", "na", "na")] == [int(keep.sum()), int(obs["is_primary_data"][keep].sum())]
    assert {k[1] for k in plan.cell_counts if k[0] == "assay"} == {"EFO:0009922"}

    with SourceFile(path) as src:  # the row filter: the dataset's organism for every cell, or none
        spec_2_4 = load_spec("2.4.0")
        assert np.array_equal(keep_rows(spec_2_4, HUMAN, src), keep.to_numpy())
        assert not keep_rows(spec_2_4, MOUSE, src).any()
        assert np.array_equal(keep_rows(spec_2_4, HUMAN, src, 10, 30), keep.to_numpy()[10:30])


def test_other_census_organism(tmp_path: Path) -> None:
    path = write_h5ad_7(tmp_path / "mouse.h5ad", DatasetSpec7("mouse", organism=MOUSE, n_cells=30, n_sars_cov_2=2))
    plan = _plan(path)
    assert plan.organism == "mus_musculus" and plan.organism_term == MOUSE and plan.n_cells == 30
    assert all(g.startswith("ENSMUSG") for g in plan.gene_ids) and len(plan.gene_ids) == 300


def test_organism_outside_the_census_contributes_no_cells(tmp_path: Path) -> None:
    path = write_h5ad_7(tmp_path / "fish.h5ad", DatasetSpec7("fish", n_cells=20))
    rewrite(path, "uns/organism_ontology_term_id", lambda _: ZEBRAFISH)
    rename_category(path, "var/feature_reference", HUMAN, ZEBRAFISH)
    plan = _plan(path)
    assert plan.readable and not plan.contributes and plan.organism is None
    assert plan.exclusion == "its organism NCBITaxon:7955 (uns/organism_ontology_term_id) is not a Census organism"


def test_feature_reference_of_another_organism_is_an_invalid_source(tmp_path: Path) -> None:
    path = write_h5ad_7(tmp_path / "bad-ref.h5ad", DatasetSpec7("bad-ref", n_cells=20))
    rename_category(path, "var/feature_reference", ERCC, MOUSE)
    plan = _plan(path)
    assert not plan.readable and not plan.contributes
    assert plan.problems == [
        "var/feature_reference has NCBITaxon:10090: Census schema 2.4.0 requires each feature_reference to be "
        "the dataset's organism (uns/organism_ontology_term_id NCBITaxon:9606) or one of NCBITaxon:2697049, "
        "NCBITaxon:32630"
    ]


def test_missing_uns_organism_is_an_invalid_source(tmp_path: Path) -> None:
    path = write_h5ad_7(tmp_path / "no-org.h5ad", DatasetSpec7("no-org", n_cells=20))
    delete(path, "uns/organism_ontology_term_id")
    plan = _plan(path)
    assert plan.problems == [
        "uns/organism_ontology_term_id does not give the dataset's one organism; dataset schema 7.0.0 requires it"
    ]


def test_no_genes_of_the_organism_contributes_no_cells(tmp_path: Path) -> None:
    path = write_h5ad_7(
        tmp_path / "only-virus.h5ad", DatasetSpec7("only-virus", n_cells=20, n_sars_cov_2=3, n_spike_ins=0)
    )
    rename_category(path, "var/feature_biotype", "gene", "spike-in")  # no feature is a gene any more
    plan = _plan(path)
    assert plan.readable and not plan.contributes
    assert plan.exclusion == "no genes with feature_biotype 'gene' of its organism NCBITaxon:9606"


@pytest.mark.parametrize("version", ["1.3.0", "2.4.0"])
def test_dataset_schema_version_is_the_census_schemas(tmp_path: Path, version: str) -> None:
    """A 7.0.0 file is a problem for Census 1.3.0 (which needs 4.0.0), and planned for 2.4.0."""
    plan = _plan(write_h5ad_7(tmp_path / "d.h5ad", DatasetSpec7("d", n_cells=10)), version)
    if version == "1.3.0":
        assert plan.problems == ["uns/schema_version is '7.0.0'; Census schema 1.3.0 requires dataset schema '4.0.0'"]
    else:
        assert plan.readable and plan.organism == "homo_sapiens"


@pytest.mark.parametrize(("version", "rule"), [("1.3.0", "nonzero"), ("2.4.0", "listed")])
def test_presence_rule_is_the_schema_datas(tmp_path: Path, version: str, rule: str) -> None:
    """2.4.0 (rule 'listed'): every kept gene of the dataset's var is present before any count is seen; 1.3.0
    (rule 'nonzero'): only the genes the chunk results find counts for (none yet)."""
    from validation.expected.model import build_model
    from validation.inputs.manifest import Source

    path = write_h5ad_7(tmp_path / "d.h5ad", DatasetSpec7("d", n_cells=20, n_genes=25))
    spec = load_spec(version)
    assert spec.presence_rule == rule
    plan = _plan(path)  # planned as 2.4.0 (a 7.0.0 file); the model takes the rule of `spec`
    org = build_model(spec, {"d": Source("d", str(path), 2)}, [plan]).organisms["homo_sapiens"]
    assert org.presence_rule == rule
    assert org.n_measured_vars("d") == (25 if rule == "listed" else 0)
    assert org.n_measured_obs().tolist() == [20 if rule == "listed" else 0] * 25

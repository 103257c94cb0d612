"""Census 2.4.0's dataset-organism rule as pure functions: the schema's organisms, references and assays."""

from __future__ import annotations

import numpy as np
import pytest

from census_builder.census import filters
from census_builder.census.schema import CensusSchema, load_schema

HUMAN, MARMOSET, ZEBRAFISH = "NCBITaxon:9606", "NCBITaxon:9483", "NCBITaxon:7955"
SARS_COV_2, ERCC, MOUSE = "NCBITaxon:2697049", "NCBITaxon:32630", "NCBITaxon:10090"
TENX, VISIUM, SLIDE_SEQ, MERFISH = "EFO:0009922", "EFO:0022857", "EFO:0030062", "EFO:0008992"


@pytest.fixture(scope="module")
def schema() -> CensusSchema:
    return load_schema("2.4.0")


def test_a_census_organism_contributes_cells(schema: CensusSchema) -> None:
    assert filters.dataset_organism_choice(10, 5, MARMOSET, schema) == filters.OrganismChoice(MARMOSET)


def test_another_organism_contributes_no_cells_and_the_reason_names_it(schema: CensusSchema) -> None:
    choice = filters.dataset_organism_choice(10, 5, ZEBRAFISH, schema)
    assert choice.term is None
    assert choice.reason == (
        "organism 'NCBITaxon:7955' is not a Census organism of Census schema 2.4.0 (NCBITaxon:9483 (Callithrix "
        "jacchus), NCBITaxon:9606 (Homo sapiens), NCBITaxon:9544 (Macaca mulatta), NCBITaxon:10090 (Mus musculus), "
        "NCBITaxon:9598 (Pan troglodytes)): no cells are included"
    )


def test_an_empty_obs_or_var_contributes_no_cells(schema: CensusSchema) -> None:
    assert filters.dataset_organism_choice(0, 5, HUMAN, schema) == filters.OrganismChoice(None, filters.NO_CELLS)
    assert filters.dataset_organism_choice(3, 0, HUMAN, schema) == filters.OrganismChoice(None, filters.NO_GENES)


def test_foreign_references_are_those_neither_the_organism_nor_other_references(schema: CensusSchema) -> None:
    refs = [HUMAN, SARS_COV_2, ERCC, MOUSE, HUMAN, MOUSE, ZEBRAFISH]
    assert filters.foreign_references(refs, HUMAN, schema) == [(MOUSE, 2), (ZEBRAFISH, 1)]
    assert filters.foreign_references([HUMAN, SARS_COV_2, ERCC], HUMAN, schema) == []
    # The 1.3.0 schema has no other references: SARS-CoV-2 is foreign there.
    assert filters.foreign_references([HUMAN, SARS_COV_2], HUMAN, load_schema("1.3.0")) == [(SARS_COV_2, 1)]


def test_genes_are_the_kept_biotype_of_the_dataset_organism_only(schema: CensusSchema) -> None:
    biotype = ["gene", "gene", "spike-in", "gene", "gene"]
    refs = [HUMAN, SARS_COV_2, ERCC, HUMAN, MOUSE]
    np.testing.assert_array_equal(filters.organism_gene_columns(biotype, refs, HUMAN, schema), [0, 3])
    assert filters.organism_gene_columns(biotype, refs, HUMAN, schema).dtype == np.int64


def test_cells_need_an_included_assay_and_tissue_or_organoid(schema: CensusSchema) -> None:
    assays = [TENX, TENX, TENX, TENX, VISIUM, MERFISH]
    tissue_types = ["tissue", "organoid", "primary cell culture", "cell line", "tissue", "tissue"]
    np.testing.assert_array_equal(
        filters.assay_and_tissue_cells(assays, tissue_types, schema), [True, True, False, False, False, False]
    )


def test_spatial_assay_cells_are_counted_per_assay(schema: CensusSchema) -> None:
    assays = [VISIUM, TENX, SLIDE_SEQ, VISIUM, MERFISH]
    assert filters.spatial_assay_cells(assays, schema) == [(VISIUM, 2), (SLIDE_SEQ, 1)]
    assert filters.spatial_assay_cells([TENX], schema) == []
    # Spatial assays are classified: no "not a Census assay" warning for them; MERFISH is not classified in 2.4.0.
    assert filters.unclassified_assays([(VISIUM, 2), (MERFISH, 1), (TENX, 4)], schema) == [(MERFISH, 1)]

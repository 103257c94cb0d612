"""The Census filters as pure functions: tiny columns in, exact masks and decisions out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from census_builder.census import filters
from census_builder.census.schema import CensusSchema, load_schema

HUMAN, MOUSE = "NCBITaxon:9606", "NCBITaxon:10090"
TENX, SMART, MULTIOME = "EFO:0009922", "EFO:0008930", "EFO:0030059"  # included, included (length), excluded


@pytest.fixture(scope="module")
def schema() -> CensusSchema:
    return load_schema("1.3.0")


def test_census_genes_need_the_biotype_and_a_census_organism(schema: CensusSchema) -> None:
    biotype = ["gene", "gene", "spike-in", "gene", "gene"]
    reference = [HUMAN, MOUSE, HUMAN, "NCBITaxon:7955", HUMAN]
    assert filters.census_genes(biotype, reference, schema).tolist() == [True, True, False, False, True]
    cat = pd.Series(pd.Categorical(biotype)), pd.Series(pd.Categorical(reference))  # as H5AD columns come
    assert filters.census_genes(*cat, schema).tolist() == [True, True, False, False, True]


def test_the_multi_species_rule() -> None:
    assert filters.dataset_organism(5, 3, [HUMAN]) == filters.OrganismChoice(HUMAN)
    assert filters.dataset_organism(5, 3, [MOUSE, HUMAN]) == filters.OrganismChoice(
        None, f"genes from several organisms ({MOUSE}, {HUMAN}): no cells are included"
    )
    assert filters.dataset_organism(5, 3, []).reason == "no genes with feature_biotype 'gene' from a Census organism"
    assert filters.dataset_organism(0, 3, [HUMAN]).reason == "the file has no cells (obs is empty)"
    assert filters.dataset_organism(5, 0, []).reason == "the file has no genes (var is empty)"


def test_gene_organisms_and_kept_columns(schema: CensusSchema) -> None:
    reference = [MOUSE, HUMAN, HUMAN, MOUSE]
    is_gene = np.array([False, True, True, True])
    assert filters.gene_organisms(reference, is_gene) == sorted([HUMAN, MOUSE])
    assert filters.kept_gene_columns(reference, is_gene, [HUMAN]).tolist() == [1, 2]
    assert filters.kept_gene_columns(reference, is_gene, [HUMAN, MOUSE]).tolist() == []
    assert filters.kept_gene_columns(reference, is_gene, []).tolist() == []
    assert filters.kept_gene_columns(reference, is_gene, [HUMAN]).dtype == np.int64


def test_census_cells_organism_assay_and_tissue_type(schema: CensusSchema) -> None:
    organisms = [HUMAN, HUMAN, MOUSE, HUMAN, HUMAN]
    assays = [TENX, SMART, TENX, MULTIOME, TENX]
    tissue_types = ["tissue", "tissue", "tissue", "tissue", "organoid"]
    assert filters.census_cells(organisms, assays, tissue_types, HUMAN, schema).tolist() == [
        True,
        True,
        False,  # another organism
        False,  # an excluded assay
        False,  # organoid
    ]
    assert filters.uses_feature_length(assays, schema).tolist() == [False, True, False, False, False]


def test_assay_and_tissue_type_checks(schema: CensusSchema) -> None:
    counts = [(TENX, 3), ("EFO:0009922 ", 2), ("EFO:123", 1), ("EFO:0000000", 4), (MULTIOME, 5)]
    assert filters.malformed_assay_terms(counts) == [("EFO:0009922 ", 2), ("EFO:123", 1)]
    assert filters.unclassified_assays(counts, schema) == [("EFO:0009922 ", 2), ("EFO:123", 1), ("EFO:0000000", 4)]
    assert filters.tissue_types_outside_vocabulary(["tissue", "Tissue", "organoid", "blob", "blob"], schema) == [
        "Tissue",
        "blob",
    ]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([HUMAN, MOUSE, "NCBITaxon:7955"]),
            st.sampled_from([TENX, SMART, MULTIOME, "EFO:0000000"]),
            st.sampled_from(["tissue", "organoid", "cell culture"]),
        ),
        max_size=30,
    )
)
def test_census_cells_is_the_conjunction_of_the_three_rules(cells: list[tuple[str, str, str]]) -> None:
    schema = load_schema("1.3.0")
    org, assay, tt = ([c[i] for c in cells] for i in range(3))
    got = filters.census_cells(org, assay, tt, HUMAN, schema)
    expected = [o == HUMAN and a in schema.included_assays and t == "tissue" for o, a, t in cells]
    assert got.dtype == bool and got.tolist() == expected

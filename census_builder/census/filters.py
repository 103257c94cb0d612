"""The Census filters: which genes and cells of a dataset the Census takes.

Pure functions over column values (numpy arrays, pandas Series or lists) and the :class:`CensusSchema`; no
files. The build's preflight (``build/inspect.py``) reads the columns and calls these; the validator
(``validation/``) implements the same rules independently.

- genes: feature_biotype "gene" from a Census organism (:func:`census_genes`);
- the multi-species rule: a dataset whose genes come from exactly one Census organism contributes that
  organism's cells; genes from several organisms (or none) mean no cells (:func:`dataset_organism`);
- cells: of that organism, with an included assay and a kept tissue_type (:func:`census_cells`).

The dataset-organism rule (Census 2.4.0, ``organism_rule: dataset_organism``) replaces the multi-species
rule: the dataset names its one organism (``uns``); a Census organism's dataset contributes its cells with an
included assay and a kept tissue_type (:func:`dataset_organism_choice`, :func:`assay_and_tissue_cells`),
and the genes of that organism (:func:`organism_gene_columns`). Every ``feature_reference`` must be the
organism or one of the schema's other references (:func:`foreign_references`); cells of spatial assays
never go to census_data (:func:`spatial_assay_cells`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from census_builder.census.schema import CensusSchema

ASSAY_TERM_ID = re.compile(r"^EFO:[0-9]{7}$")  # dataset schema 4.0.0: assays are EFO terms
NO_CELLS = "the file has no cells (obs is empty)"
NO_GENES = "the file has no genes (var is empty)"
NO_CENSUS_GENES = "no genes with feature_biotype 'gene' from a Census organism"
NO_CELLS_PASS = "no cells pass the Census filters (organism, assay, tissue_type)"
NO_CELLS_PASS_DATASET_ORGANISM = "no cells pass the Census filters (assay, tissue_type)"


def _strings(values: Any) -> npt.NDArray[Any]:
    return pd.Series(values).astype(str).to_numpy()


def _isin(values: Any, allowed: Iterable[str]) -> npt.NDArray[np.bool_]:
    return np.asarray(pd.Series(values).isin(list(allowed)).to_numpy(), dtype=bool)


def census_genes(feature_biotype: Any, feature_reference: Any, schema: CensusSchema) -> npt.NDArray[np.bool_]:
    """Per var row: True for a gene the Census can take (the schema's biotype, from a Census organism)."""
    refs = _strings(feature_reference)
    biotype_kept: npt.NDArray[np.bool_] = _strings(feature_biotype) == schema.feature_biotype_kept
    return biotype_kept & np.isin(refs, list(schema.organism_terms))


def gene_organisms(feature_reference: Any, is_gene: npt.NDArray[np.bool_]) -> list[str]:
    """Return the organism terms the Census genes (``is_gene``) come from, sorted."""
    return sorted(set(_strings(feature_reference)[is_gene]))


@dataclass(frozen=True)
class OrganismChoice:
    """The multi-species rule's outcome: the organism term whose cells are taken, or why no cells are."""

    term: str | None
    reason: str = ""


def dataset_organism(n_cells: int, n_genes: int, organisms: Sequence[str]) -> OrganismChoice:
    """Apply the multi-species rule to a dataset of ``n_cells`` x ``n_genes`` whose genes come from ``organisms``.

    Exactly one organism: its cells are candidates. None, several, or an empty obs or var: no cells, and
    the reason says why.
    """
    if n_cells == 0:
        return OrganismChoice(None, NO_CELLS)
    if n_genes == 0:
        return OrganismChoice(None, NO_GENES)
    if not organisms:
        return OrganismChoice(None, NO_CENSUS_GENES)
    if len(organisms) > 1:
        return OrganismChoice(None, f"genes from several organisms ({', '.join(organisms)}): no cells are included")
    return OrganismChoice(organisms[0])


def kept_gene_columns(
    feature_reference: Any, is_gene: npt.NDArray[np.bool_], organisms: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Column positions of the Census genes of the dataset's one organism (none when several or none)."""
    one = organisms[0] if len(organisms) == 1 else ""
    return np.nonzero(is_gene & (_strings(feature_reference) == one))[0].astype(np.int64)


def census_cells(
    organism_term_ids: Any, assay_term_ids: Any, tissue_types: Any, organism_term: str, schema: CensusSchema
) -> npt.NDArray[np.bool_]:
    """Per obs row: True for a cell of ``organism_term`` with an included assay and a kept tissue_type."""
    return (
        _isin(organism_term_ids, [organism_term])
        & _isin(assay_term_ids, schema.included_assays)
        & _isin(tissue_types, schema.tissue_type_kept)
    )


def dataset_organism_choice(n_cells: int, n_genes: int, organism_term: str, schema: CensusSchema) -> OrganismChoice:
    """Apply the dataset-organism rule to a dataset of ``n_cells`` x ``n_genes`` whose organism is ``organism_term``.

    A Census organism: its cells are candidates. Any other organism (one the dataset schema allows but the
    Census does not include, e.g. zebrafish), or an empty obs or var: no cells, and the reason says why.
    """
    if n_cells == 0:
        return OrganismChoice(None, NO_CELLS)
    if n_genes == 0:
        return OrganismChoice(None, NO_GENES)
    if organism_term not in schema.organism_terms:
        known = ", ".join(f"{o.ontology_term_id} ({o.label})" for o in schema.organisms)
        return OrganismChoice(
            None,
            f"organism {organism_term!r} is not a Census organism of Census schema {schema.version} ({known}): "
            "no cells are included",
        )
    return OrganismChoice(organism_term)


def foreign_references(feature_reference: Any, organism_term: str, schema: CensusSchema) -> list[tuple[str, int]]:
    """Return the (feature_reference, genes) pairs that are neither ``organism_term`` nor an other reference, sorted."""
    counts = pd.Series(_strings(feature_reference)).value_counts()
    allowed = {organism_term, *schema.other_references}
    return sorted((str(ref), int(n)) for ref, n in counts.items() if ref not in allowed)


def organism_gene_columns(
    feature_biotype: Any, feature_reference: Any, organism_term: str, schema: CensusSchema
) -> npt.NDArray[np.int64]:
    """Column positions of the Census genes of a dataset of ``organism_term``: the kept biotype, that reference."""
    biotype_kept = _strings(feature_biotype) == schema.feature_biotype_kept
    return np.nonzero(biotype_kept & (_strings(feature_reference) == organism_term))[0].astype(np.int64)


def assay_and_tissue_cells(assay_term_ids: Any, tissue_types: Any, schema: CensusSchema) -> npt.NDArray[np.bool_]:
    """Per obs row: True for a cell with an included assay and a kept tissue_type (the dataset's organism decided)."""
    return _isin(assay_term_ids, schema.included_assays) & _isin(tissue_types, schema.tissue_type_kept)


def spatial_assay_cells(assay_term_ids: Any, schema: CensusSchema) -> list[tuple[str, int]]:
    """Return the (assay, cells) pairs of the schema's spatial assays, sorted: never census_data's cells."""
    counts = pd.Series(_strings(assay_term_ids)).value_counts()
    return sorted((str(t), int(n)) for t, n in counts.items() if t in schema.spatial_assays)


def uses_feature_length(assay_term_ids: Any, schema: CensusSchema) -> npt.NDArray[np.bool_]:
    """Per cell: True when its assay is normalized by gene length (Smart-seq)."""
    return _isin(assay_term_ids, schema.feature_length_assays)


def tissue_types_outside_vocabulary(tissue_types: Any, schema: CensusSchema) -> list[str]:
    """Return the tissue_type values that the dataset schema does not allow, sorted."""
    return sorted({str(v) for v in pd.Series(tissue_types).unique()} - set(schema.tissue_type_vocabulary))


def malformed_assay_terms(assay_counts: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Return the (assay, cells) pairs whose assay is no EFO term id at all (whitespace, typo)."""
    return [(t, n) for t, n in assay_counts if not ASSAY_TERM_ID.match(t)]


def unclassified_assays(assay_counts: Iterable[tuple[str, int]], schema: CensusSchema) -> list[tuple[str, int]]:
    """Return the (assay, cells) pairs whose assay the Census schema neither includes, excludes nor calls spatial."""
    known = {*schema.included_assays, *schema.excluded_assays, *schema.spatial_assays}
    return [(t, n) for t, n in assay_counts if t not in known]

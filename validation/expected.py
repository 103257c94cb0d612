"""What the release must hold for one source dataset, re-derived from the source file and the schema data.

``plan_dataset`` runs once per manifest entry (a dask task): it reads obs and var (never the matrix
values), applies the Census rules in the plainest way, and returns the dataset's expectations: its
organism, kept-cell count, kept genes, row chunks, tissue_general mapping and summary-count tallies.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.source import SourceError, SourceFile
from validation.spec import Spec, load_spec

logger = logging.getLogger(__name__)

FILTER_COLUMNS = ("organism_ontology_term_id", "assay_ontology_term_id", "tissue_type")
VAR_COLUMNS = ("feature_name", "feature_reference", "feature_biotype")


@dataclass(frozen=True)
class PlanTask:
    dataset_id: str
    path: str
    schema_version: str
    chunk_entries: int


@dataclass
class DatasetPlan:
    dataset_id: str
    path: str
    problems: list[str] = field(default_factory=list)  # source problems (the dataset cannot be validated)
    warnings: list[str] = field(default_factory=list)  # source issues that do not stop validation
    organism: str | None = None  # census_data key of the organism its cells go to, None if it contributes none
    organism_term: str = ""
    exclusion: str = ""
    matrix_key: str = ""
    matrix_format: str = ""
    n_source_obs: int = 0
    n_source_var: int = 0
    n_cells: int = 0
    n_primary: int = 0
    gene_cols: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    gene_ids: list[str] = field(default_factory=list)
    gene_names: list[str] = field(default_factory=list)
    gene_lengths: list[int] = field(default_factory=list)
    chunks: list[tuple[int, int, int, int]] = field(default_factory=list)  # (row start, stop, kept before, kept in)
    tissue_general: dict[str, tuple[str, str]] = field(default_factory=dict)
    donors: set[str] = field(default_factory=set)
    cell_counts: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)  # (cat, term, label) -> [t, u]
    title: str = ""
    citation: str = ""

    @property
    def readable(self) -> bool:
        return not self.problems

    @property
    def contributes(self) -> bool:
        return self.readable and self.organism is not None and self.n_cells > 0


class TissueGeneral:
    """tissue term -> (tissue_general term, label): the first of the guide's high-level tissues that the term
    is, or descends from; a term the shipped ontology does not know maps to itself with its source label."""

    def __init__(self) -> None:
        from cellxgene_ontology_guide.curated_ontology_term_lists import get_curated_ontology_term_list
        from cellxgene_ontology_guide.entities import CuratedOntologyTermList
        from cellxgene_ontology_guide.ontology_parser import OntologyParser

        self.parser: Any = OntologyParser()
        self.high_level = list(get_curated_ontology_term_list(CuratedOntologyTermList.TISSUE_GENERAL))

    def lookup(self, term: str, source_label: str) -> tuple[str, str, bool]:
        try:
            hits = self.parser.get_high_level_terms(term, self.high_level)
        except (KeyError, ValueError):
            return term, source_label, False
        general = str(hits[0]) if hits else term
        return general, str(self.parser.get_term_label(general)), True


@cache
def _tissue_general() -> TissueGeneral:
    return TissueGeneral()


def keep_mask(spec: Spec, organism_term: str, columns: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.bool_]:
    """The Census cell filter: the dataset's gene organism, an allowed assay, primary tissue."""
    org = columns["organism_ontology_term_id"]
    assay = columns["assay_ontology_term_id"]
    tissue_type = columns["tissue_type"]
    return np.array([o == organism_term and a in spec.included_assays and t in spec.tissue_types_kept
                     for o, a, t in zip(org, assay, tissue_type, strict=True)], dtype=bool)


def as_bools(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    if values.dtype == bool:
        return values
    return np.array([bool(v) if v is not None else False for v in values], dtype=bool)


def plan_dataset(task: PlanTask) -> DatasetPlan:
    """Phase 1 for one dataset (a dask task; never raises for a bad source: problems are recorded)."""
    plan = DatasetPlan(task.dataset_id, task.path)
    try:
        with SourceFile(task.path) as src:
            _plan(src, load_spec(task.schema_version), task, plan)
    except SourceError as e:
        plan.problems.append(str(e))
    except OSError as e:
        plan.problems.append(f"cannot read the file as HDF5/H5AD: {e}")
    except Exception as e:  # a malformed file can make h5py raise many things; report, do not crash
        plan.problems.append(f"cannot read the file: {type(e).__name__}: {e}")
    return plan


def _plan(src: SourceFile, spec: Spec, task: PlanTask, plan: DatasetPlan) -> None:
    version = src.uns_string(spec.uns_schema_version_key)
    if version != spec.dataset_schema_version:
        plan.problems.append(f"uns/{spec.uns_schema_version_key} is {version!r}; Census schema {spec.version} "
                             f"requires dataset schema {spec.dataset_schema_version!r}")
        return
    plan.title = src.uns_string("title") or ""
    plan.citation = src.uns_string("citation") or ""
    counts = src.counts()
    matrix = src.matrix(counts.matrix)
    plan.matrix_key, plan.matrix_format = counts.matrix, matrix.format
    plan.n_source_obs = src.n_rows("obs")
    feature_ids = src.index(counts.var)
    plan.n_source_var = int(feature_ids.shape[0])
    if matrix.shape != (plan.n_source_obs, plan.n_source_var):
        plan.problems.append(f"{counts.matrix} has shape {matrix.shape}, obs x {counts.var} is "
                             f"({plan.n_source_obs}, {plan.n_source_var})")
        return

    # Genes: feature_biotype "gene" from a Census organism; the cells go to the organism of those genes.
    var = {c: src.column(counts.var, c) for c in VAR_COLUMNS}
    organism_terms = {o.term for o in spec.organisms}
    is_gene = np.array([b == spec.feature_biotype and r in organism_terms
                        for b, r in zip(var["feature_biotype"], var["feature_reference"], strict=True)], dtype=bool)
    gene_orgs = sorted({str(r) for r in var["feature_reference"][is_gene]})
    if not gene_orgs:
        plan.exclusion = "no genes with feature_biotype 'gene' from a Census organism"
        return
    if len(gene_orgs) > 1:
        plan.exclusion = f"genes from several organisms ({', '.join(gene_orgs)}): no cells may be included"
        return
    organism = spec.organism_by_term(gene_orgs[0])
    if organism is None:  # cannot happen: gene_orgs are Census organisms
        return
    plan.organism_term = organism.term
    cols = np.nonzero(is_gene)[0].astype(np.int64)
    plan.gene_cols = cols
    plan.gene_ids = [str(feature_ids[i]) for i in cols]
    plan.gene_names = [str(var["feature_name"][i]) for i in cols]
    if src.has_column(counts.var, "feature_length"):
        lengths = src.column(counts.var, "feature_length")
        plan.gene_lengths = [int(lengths[i]) if lengths[i] is not None else 0 for i in cols]
    else:
        plan.gene_lengths = [0] * cols.size

    obs = {c: src.column("obs", c) for c in FILTER_COLUMNS}
    keep = keep_mask(spec, organism.term, obs)
    plan.n_cells = int(keep.sum())
    if plan.n_cells == 0:
        plan.exclusion = "no cell passes the Census filters (organism, assay, tissue_type)"
        return
    plan.organism = organism.name
    smart = np.isin(obs["assay_ontology_term_id"][keep].astype(str), sorted(spec.length_normalized_assays))
    if smart.any() and min(plan.gene_lengths, default=1) <= 0:
        plan.warnings.append("Smart-seq cells, but some genes have no positive feature_length")
    primary = as_bools(src.column("obs", "is_primary_data"))[keep]
    plan.n_primary = int(primary.sum())
    plan.donors = {str(d) for d in src.column("obs", "donor_id")[keep]}

    tissue = src.column("obs", "tissue_ontology_term_id")[keep]
    tissue_label = src.column("obs", "tissue")[keep]
    mapper = _tissue_general()
    for term, label in sorted({(str(t), str(lbl)) for t, lbl in zip(tissue, tissue_label, strict=True)}):
        if term in plan.tissue_general:
            continue
        general, general_label, known = mapper.lookup(term, label)
        plan.tissue_general[term] = (general, general_label)
        if not known:
            plan.warnings.append(f"tissue {term!r} is not in the shipped ontology; tissue_general is itself")

    kept_columns: dict[str, npt.NDArray[Any]] = {"tissue_ontology_term_id": tissue, "tissue": tissue_label}
    kept_columns["tissue_general_ontology_term_id"] = np.array([plan.tissue_general[str(t)][0] for t in tissue],
                                                               dtype=object)
    kept_columns["tissue_general"] = np.array([plan.tissue_general[str(t)][1] for t in tissue], dtype=object)
    for cat in spec.categories:
        for c in (cat.label_column, cat.term_column):
            if c and c not in kept_columns:
                kept_columns[c] = src.column("obs", c)[keep]
        terms = kept_columns[cat.term_column] if cat.term_column else np.full(plan.n_cells, "na", dtype=object)
        labels = kept_columns[cat.label_column] if cat.label_column else np.full(plan.n_cells, "na", dtype=object)
        total = Counter(zip(map(str, terms), map(str, labels), strict=True))
        unique = Counter(zip(map(str, terms[primary]), map(str, labels[primary]), strict=True))
        for (term, label), n in total.items():
            plan.cell_counts[(cat.name, term, label)] = [n, unique.get((term, label), 0)]

    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    for a, b in matrix.row_chunks(task.chunk_entries):
        n = int(kept_before[b] - kept_before[a])
        if n:
            plan.chunks.append((a, b, int(kept_before[a]), n))

"""What the release must hold for one source dataset, re-derived from the source file and the schema data.

``plan_dataset`` runs once per manifest entry (a dask task): it reads obs and var (never the matrix
values), applies the Census rules in the plainest way, and returns the dataset's expectations: its
organism, kept-cell count, kept genes, row chunks, tissue_general mapping and summary-count tallies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from validation.source import SourceError, SourceFile
from validation.spec import Spec, load_spec

logger = logging.getLogger(__name__)

MAX_CHUNK_ROWS = 50_000  # cells per phase-2 task (bounds the obs strings it holds)
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


def keep_rows(spec: Spec, organism_term: str, src: SourceFile, start: int | None = None,
              stop: int | None = None) -> npt.NDArray[np.bool_]:
    """The Census cell filter for obs rows [start, stop): the organism of the dataset's genes, an allowed
    assay, primary tissue (tissue_type "tissue")."""

    def allowed(column: str, values: frozenset[str]) -> npt.NDArray[np.bool_]:
        codes, names = src.codes("obs", column, start, stop)
        ok = np.array([n in values for n in names] + [False], dtype=bool)  # the extra False: code -1 (NA)
        return ok[codes]

    return (allowed("organism_ontology_term_id", frozenset([organism_term]))
            & allowed("assay_ontology_term_id", spec.included_assays)
            & allowed("tissue_type", spec.tissue_types_kept))


def pair_counts(a: tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]],
                b: tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]],
                primary: npt.NDArray[np.bool_]) -> dict[tuple[str, str], list[int]]:
    """(a value, b value) -> [cells, primary cells], for two coded columns of the same rows."""
    (ac, an), (bc, bn) = a, b
    width = len(bn) + 1
    idx = (ac + 1) * width + (bc + 1)  # code -1 (NA) becomes 0
    if (len(an) + 1) * width <= 10_000_000:  # dense tally over every possible pair
        total = np.bincount(idx, minlength=(len(an) + 1) * width)
        unique = np.bincount(idx, weights=primary.astype(np.float64), minlength=total.size)
        keys = np.nonzero(total)[0]
        total, unique = total[keys], unique[keys]
    else:
        inverse, uniques = pd.factorize(idx)
        keys = np.asarray(uniques, dtype=np.int64)
        total = np.bincount(inverse, minlength=keys.size)
        unique = np.bincount(inverse, weights=primary.astype(np.float64), minlength=keys.size)
    names_a, names_b = np.append(an, "nan"), np.append(bn, "nan")  # index -1: NA
    return {(str(names_a[k // width - 1]), str(names_b[k % width - 1])): [int(t), int(u)]
            for k, t, u in zip(keys, total, unique, strict=True)}


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

    keep = keep_rows(spec, organism.term, src)
    plan.n_cells = int(keep.sum())
    if plan.n_cells == 0:
        plan.exclusion = "no cell passes the Census filters (organism, assay, tissue_type)"
        return
    plan.organism = organism.name

    def kept(column: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
        codes, names = src.codes("obs", column)
        if (codes[keep] < 0).any():
            plan.warnings.append(f"obs/{column} has missing (NA) values in cells that pass the filters")
        return codes[keep], names

    assay = kept("assay_ontology_term_id")
    if np.isin(assay[1], sorted(spec.length_normalized_assays))[assay[0]].any() \
            and min(plan.gene_lengths, default=1) <= 0:
        plan.warnings.append("Smart-seq cells, but some genes have no positive feature_length")
    primary = as_bools(src.column("obs", "is_primary_data"))[keep]
    plan.n_primary = int(primary.sum())
    donor_codes, donor_names = kept("donor_id")
    plan.donors = {str(donor_names[c]) if c >= 0 else "nan" for c in np.nonzero(
        np.bincount(donor_codes + 1, minlength=len(donor_names) + 1))[0] - 1}

    na = (np.zeros(plan.n_cells, dtype=np.int64), np.array(["na"], dtype=object))
    columns: dict[str | None, tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]] = {None: na}
    mapper = _tissue_general()
    for cat in spec.categories:
        if cat.name == "tissue_general":
            continue  # a function of the tissue: tallied from the tissue's counts below
        for c in (cat.term_column, cat.label_column):
            if c not in columns:
                columns[c] = kept(str(c))
        tally = pair_counts(columns[cat.term_column], columns[cat.label_column], primary)
        for (term, label), pair in tally.items():
            plan.cell_counts[(cat.name, term, label)] = pair
        if cat.name == "tissue":
            for (term, label), (total, unique) in tally.items():
                if term not in plan.tissue_general:
                    general, general_label, known = mapper.lookup(term, label)
                    plan.tissue_general[term] = (general, general_label)
                    if not known:
                        plan.warnings.append(f"tissue {term!r} is not in the shipped ontology; tissue_general is "
                                             "itself")
                acc = plan.cell_counts.setdefault(("tissue_general", *plan.tissue_general[term]), [0, 0])
                acc[0] += total
                acc[1] += unique

    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    for a, b in matrix.row_chunks(task.chunk_entries, MAX_CHUNK_ROWS):
        n = int(kept_before[b] - kept_before[a])
        if n:
            plan.chunks.append((a, b, int(kept_before[a]), n))

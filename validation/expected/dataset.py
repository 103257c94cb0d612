"""What the release must hold for one source dataset, re-derived from the source file and the schema data.

``plan_dataset`` runs once per manifest entry (a dask task): it reads obs and var (never the matrix
values), applies the Census rules in the plainest way, and returns the dataset's expectations: its
organism, kept-cell count, kept genes, row chunks, tissue_general mapping and summary-count tallies.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from validation.expected.filters import as_bools, keep_rows
from validation.expected.spec import Organism, Spec, load_spec
from validation.expected.statistics import pair_counts
from validation.expected.tissue import tissue_general
from validation.inputs.source import Counts, Matrix, SourceError, SourceFile

logger = logging.getLogger(__name__)

# Source rows per row chunk, the unit X is read and compared in (validation.contents.chunks). chunk_entries
# (stored entries) is the main bound; this one caps chunks of very sparse rows (and of CSC and dense sources).
# A chunk is also the largest phase-2 task: consecutive chunks are grouped into tasks of DEFAULT_TASK_ROWS
# source rows, a longer chunk is a task of its own, so this bounds the obs rows (and strings) one task holds.
MAX_CHUNK_ROWS = 50_000
VAR_COLUMNS = ("feature_name", "feature_reference", "feature_biotype")


@dataclass(frozen=True)
class PlanTask:
    """Plan one dataset: its source file, the schema version, the target chunk size in stored entries."""

    dataset_id: str
    path: str
    schema_version: str
    chunk_entries: int
    spatial: bool = False  # plan the dataset's census_spatial_sequencing cells (validation.expected.filters)


@dataclass
class DatasetPlan:
    """What the release must hold for one dataset (``problems``: it cannot be validated against)."""

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
    gene_lengths: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    chunks: list[tuple[int, int, int, int]] = field(default_factory=list)  # (row start, stop, kept before, kept in)
    tissue_general: dict[str, tuple[str, str]] = field(default_factory=dict)
    donors: set[str] = field(default_factory=set)
    cell_counts: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)  # (cat, term, label) -> [t, u]
    title: str = ""
    citation: str = ""

    def share_strings(self) -> None:
        """Make the gene ids and names the same string objects as every other plan's (``sys.intern``).

        The driver holds every dataset's plan until the expected release is built. Unpickled, each plan's
        genes are new strings: a benchmark dataset of 30,000 genes took 5.7 MB in the driver (290 MB for the 51
        datasets of the 5 M-cell corpus); with the strings shared and the lengths in an array, 1.0 MB.
        """
        self.gene_ids = [sys.intern(g) for g in self.gene_ids]
        self.gene_names = [sys.intern(g) for g in self.gene_names]

    @property
    def readable(self) -> bool:
        """The source could be read and planned."""
        return not self.problems

    @property
    def contributes(self) -> bool:
        """Some of its cells belong in the release."""
        return self.readable and self.organism is not None and self.n_cells > 0


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
    """Fill ``plan`` step by step.

    A step that finds the dataset unusable or excluded says so in ``plan`` and the rest is skipped.
    """
    if not _schema_version_ok(src, spec, plan):
        return
    plan.title = src.uns_string("title") or ""
    plan.citation = src.uns_string("citation") or ""
    found = _counts(src, plan)
    if found is None:
        return
    counts, feature_ids = found
    organism = _genes(src, spec, counts, feature_ids, plan)
    if organism is None:
        return
    keep = keep_rows(spec, organism.term, src, spatial=task.spatial)
    plan.n_cells = int(keep.sum())
    if plan.n_cells == 0:
        plan.exclusion = "no cell passes the Census filters (organism, assay, tissue_type)"
        if task.spatial:
            plan.exclusion = "no spatial cell passes the Census filters (organism, assay, tissue_type, is_single)"
        return
    plan.organism = organism.name
    _check_feature_lengths(src, spec, keep, plan)
    primary = as_bools(src.column("obs", "is_primary_data"))[keep]
    plan.n_primary = int(primary.sum())
    _donors(src, keep, plan)
    _cell_counts(src, spec, keep, primary, plan)
    _row_chunks(src.matrix(counts.matrix), keep, task.chunk_entries, plan)


def _schema_version_ok(src: SourceFile, spec: Spec, plan: DatasetPlan) -> bool:
    """Check the dataset schema version the Census schema requires (else a problem)."""
    version = src.uns_string(spec.uns_schema_version_key)
    if version != spec.dataset_schema_version:
        plan.problems.append(
            f"uns/{spec.uns_schema_version_key} is {version!r}; Census schema {spec.version} "
            f"requires dataset schema {spec.dataset_schema_version!r}"
        )
        return False
    return True


def _counts(src: SourceFile, plan: DatasetPlan) -> tuple[Counts, npt.NDArray[np.object_]] | None:
    """Find the counts: where they are, their layout and shape; return them with the var index (feature_ids).

    None, with a problem, if the shape is not obs x var.
    """
    counts = src.counts()
    matrix = src.matrix(counts.matrix)
    plan.matrix_key, plan.matrix_format = counts.matrix, matrix.format
    plan.n_source_obs = src.n_rows("obs")
    feature_ids = src.index(counts.var)
    plan.n_source_var = int(feature_ids.shape[0])
    if matrix.shape != (plan.n_source_obs, plan.n_source_var):
        plan.problems.append(
            f"{counts.matrix} has shape {matrix.shape}, obs x {counts.var} is "
            f"({plan.n_source_obs}, {plan.n_source_var})"
        )
        return None
    return counts, feature_ids


def _genes(
    src: SourceFile, spec: Spec, counts: Counts, feature_ids: npt.NDArray[np.object_], plan: DatasetPlan
) -> Organism | None:
    """Find the kept genes and the organism the cells go to, by the schema's organism rule.

    None (with the exclusion, or a problem for an invalid source) if the dataset contributes no cells.
    """
    var = {c: src.column(counts.var, c) for c in VAR_COLUMNS}
    if spec.organism_rule == "dataset_organism":
        found = _dataset_organism_genes(src, spec, counts, var, plan)
    else:
        found = _multi_species_genes(spec, var, plan)
    if found is None:
        return None
    organism, is_gene = found
    plan.organism_term = organism.term
    cols = np.nonzero(is_gene)[0].astype(np.int64)
    plan.gene_cols = cols
    plan.gene_ids = [str(feature_ids[i]) for i in cols]
    plan.gene_names = [str(var["feature_name"][i]) for i in cols]
    if src.has_column(counts.var, "feature_length"):
        lengths = src.column(counts.var, "feature_length")
        plan.gene_lengths = np.array([int(lengths[i]) if lengths[i] is not None else 0 for i in cols], np.int64)
    else:
        plan.gene_lengths = np.zeros(cols.size, np.int64)
    return organism


def _multi_species_genes(
    spec: Spec, var: dict[str, npt.NDArray[np.object_]], plan: DatasetPlan
) -> tuple[Organism, npt.NDArray[np.bool_]] | None:
    """Census 1.3.0's rule: the kept genes are feature_biotype "gene" from a Census organism.

    The cells go to the organism of those genes. None (with the exclusion) if there are none, or genes of
    several organisms.
    """
    organism_terms = {o.term for o in spec.organisms}
    is_gene = np.array(
        [
            b == spec.feature_biotype and r in organism_terms
            for b, r in zip(var["feature_biotype"], var["feature_reference"], strict=True)
        ],
        dtype=bool,
    )
    gene_orgs = sorted({str(r) for r in var["feature_reference"][is_gene]})
    if not gene_orgs:
        plan.exclusion = "no genes with feature_biotype 'gene' from a Census organism"
        return None
    if len(gene_orgs) > 1:
        plan.exclusion = f"genes from several organisms ({', '.join(gene_orgs)}): no cells may be included"
        return None
    organism = spec.organism_by_term(gene_orgs[0])
    if organism is None:  # cannot happen: gene_orgs are Census organisms
        return None
    return organism, is_gene


def dataset_organism(src: SourceFile, spec: Spec) -> str | None:
    """Return the dataset's one organism term (``uns`` or an ``obs`` column, as the schema data says).

    None if the file does not give exactly one.
    """
    if spec.organism_in == "uns":
        return src.uns_string(spec.organism_key) or None
    codes, names = src.codes("obs", spec.organism_key)
    used = {str(names[c]) for c in np.unique(codes) if c >= 0}
    return used.pop() if len(used) == 1 else None


def _dataset_organism_genes(
    src: SourceFile, spec: Spec, counts: Counts, var: dict[str, npt.NDArray[np.object_]], plan: DatasetPlan
) -> tuple[Organism, npt.NDArray[np.bool_]] | None:
    """Census 2.4.0's rule: the dataset has one organism; its genes are feature_biotype "gene" of that organism.

    Every feature_reference must be the organism or one of the schema's other references (never included):
    any other makes the source invalid (a problem). A dataset of an organism outside the Census, or without
    genes of its organism, contributes no cells (the exclusion).
    """
    where = f"{spec.organism_in}/{spec.organism_key}"
    term = dataset_organism(src, spec)
    if term is None:
        plan.problems.append(
            f"{where} does not give the dataset's one organism; dataset schema {spec.dataset_schema_version} "
            "requires it"
        )
        return None
    refs = var["feature_reference"]
    foreign = sorted({str(r) for r in refs} - {term} - spec.other_references)
    if foreign:
        plan.problems.append(
            f"{counts.var}/feature_reference has {', '.join(foreign)}: Census schema {spec.version} requires each "
            f"feature_reference to be the dataset's organism ({where} {term}) or one of "
            f"{', '.join(sorted(spec.other_references))}"
        )
        return None
    organism = spec.organism_by_term(term)
    if organism is None:
        plan.exclusion = f"its organism {term} ({where}) is not a Census organism"
        return None
    is_gene = np.array(
        [b == spec.feature_biotype and r == term for b, r in zip(var["feature_biotype"], refs, strict=True)],
        dtype=bool,
    )
    if not is_gene.any():
        plan.exclusion = f"no genes with feature_biotype 'gene' of its organism {term}"
        return None
    return organism, is_gene


def _kept(
    src: SourceFile, keep: npt.NDArray[np.bool_], plan: DatasetPlan, column: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Return an obs column of the kept cells as (codes, values); warn if a kept cell has no value (NA)."""
    codes, names = src.codes("obs", column)
    if (codes[keep] < 0).any():
        plan.warnings.append(f"obs/{column} has missing (NA) values in cells that pass the filters")
    return codes[keep], names


def _check_feature_lengths(src: SourceFile, spec: Spec, keep: npt.NDArray[np.bool_], plan: DatasetPlan) -> None:
    """Warn if Smart-seq cells (normalized by feature_length) meet genes without a positive length."""
    codes, names = _kept(src, keep, plan, "assay_ontology_term_id")
    if np.isin(names, sorted(spec.length_normalized_assays))[codes].any() and plan.gene_lengths.min(initial=1) <= 0:
        plan.warnings.append("Smart-seq cells, but some genes have no positive feature_length")


def _donors(src: SourceFile, keep: npt.NDArray[np.bool_], plan: DatasetPlan) -> None:
    """Collect the distinct donor_id values of the kept cells (a missing one as "nan")."""
    donor_codes, donor_names = _kept(src, keep, plan, "donor_id")
    plan.donors = {
        str(donor_names[c]) if c >= 0 else "nan"
        for c in np.nonzero(np.bincount(donor_codes + 1, minlength=len(donor_names) + 1))[0] - 1
    }


def _cell_counts(
    src: SourceFile, spec: Spec, keep: npt.NDArray[np.bool_], primary: npt.NDArray[np.bool_], plan: DatasetPlan
) -> None:
    """summary_cell_counts tallies per (category, term, label), and each tissue's tissue_general."""
    na = (np.zeros(plan.n_cells, dtype=np.int64), np.array(["na"], dtype=object))
    columns: dict[str | None, tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]] = {None: na}
    mapper = tissue_general()
    for cat in spec.categories:
        if cat.name == "tissue_general":
            continue  # a function of the tissue: tallied from the tissue's counts below
        for c in (cat.term_column, cat.label_column):
            if c not in columns:
                columns[c] = _kept(src, keep, plan, str(c))
        tally = pair_counts(columns[cat.term_column], columns[cat.label_column], primary)
        for (term, label), pair in tally.items():
            plan.cell_counts[(cat.name, term, label)] = pair
        if cat.name == "tissue":
            for (term, label), (total, unique) in tally.items():
                if term not in plan.tissue_general:
                    general, general_label, known = mapper.lookup(term, label)
                    plan.tissue_general[term] = (general, general_label)
                    if not known:
                        plan.warnings.append(
                            f"tissue {term!r} is not in the shipped ontology; tissue_general is itself"
                        )
                acc = plan.cell_counts.setdefault(("tissue_general", *plan.tissue_general[term]), [0, 0])
                acc[0] += total
                acc[1] += unique


def _row_chunks(matrix: Matrix, keep: npt.NDArray[np.bool_], chunk_entries: int, plan: DatasetPlan) -> None:
    """List the row chunks phase 2 compares X in, those with kept cells only.

    Each is (source start, stop, kept cells before, kept cells in).
    """
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    for a, b in matrix.row_chunks(chunk_entries, MAX_CHUNK_ROWS):
        n = int(kept_before[b] - kept_before[a])
        if n:
            plan.chunks.append((a, b, int(kept_before[a]), n))

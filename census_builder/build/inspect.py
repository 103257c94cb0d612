"""Preflight: inspect one staged dataset and decide what the Census takes from it.

Reads obs, var and a pass over the counts' values (never the whole matrix at once), applies the Census
filters (schema data: organisms and the organism rule (1.3.0's multi-species rule, or 2.4.0's one
organism per dataset, named in uns), assay allowlist, spatial assays, tissue type, gene biotype and
reference) and records a :class:`DatasetPlan`: kept rows, kept gene columns, row chunks for the matrix
stage, and the kept cells' metadata (including tissue_general). Any violation raises InputError naming
the dataset, file and field.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from census_builder.census import filters
from census_builder.census.schema import CensusSchema
from census_builder.census.tissue_general import TissueMapper
from census_builder.errors import InputError
from census_builder.soma.layout import CENSUS_DATA, CENSUS_SPATIAL
from census_builder.sources.h5ad import H5AD, plan_row_chunks
from census_builder.sources.spatial import VISIUM_V1, SpatialSource, read_spatial, spatial_problems

logger = logging.getLogger(__name__)

SPATIAL_OBS_COLUMNS = ("in_tissue", "array_row", "array_col")  # Census 2.4.0 spatial obs; int64 in the release
SPATIAL_OBS_MISSING = int(np.iinfo(np.int64).min)  # those columns for Slide-seqV2 beads (no such source columns)

_MAPPER: TissueMapper | None = None  # one per process: the ontology loads once


def _tissue_mapper() -> TissueMapper:
    global _MAPPER  # noqa: PLW0603
    if _MAPPER is None:
        _MAPPER = TissueMapper()
    return _MAPPER


@dataclass(frozen=True)
class DatasetPlan:
    """What the Census takes from one dataset: its cells, genes and row chunks (``.build/plan/<id>.json``)."""

    dataset_id: str
    h5ad_path: str
    organism: str | None  # census_data key, or None when the dataset contributes no cells
    excluded_reason: str
    n_source_obs: int
    n_source_var: int
    counts_matrix: str  # "raw/X" or "X"
    matrix_format: str
    n_cells: int  # kept cells
    n_primary: int
    n_genes: int  # kept genes
    title: str
    citation: str
    chunks: tuple[tuple[int, int], ...] = ()  # source row ranges that hold kept rows
    chunk_cells: tuple[int, ...] = ()  # kept rows in each chunk
    warnings: tuple[str, ...] = field(default_factory=tuple)
    experiment: str = CENSUS_DATA  # census_data, or census_spatial_sequencing (Census 2.4.0 spatial datasets)
    spatial: dict[str, Any] | None = None  # spatial datasets: assay, library (Visium), positions' columns and dtype

    def to_json(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DatasetPlan:
        """Read a plan written by :meth:`to_json`."""
        d = dict(d)
        d["chunks"] = tuple(tuple(c) for c in d["chunks"])
        d["chunk_cells"] = tuple(d["chunk_cells"])
        d["warnings"] = tuple(d["warnings"])
        return cls(**d)


@dataclass(frozen=True)
class PlanFiles:
    """Where a dataset's plan lives under ``.build/plan``."""

    dir: Path
    dataset_id: str

    @property
    def meta(self) -> Path:
        """The plan (:class:`DatasetPlan` as JSON)."""
        return self.dir / f"{self.dataset_id}.json"

    @property
    def arrays(self) -> Path:
        """Kept rows, gene columns and Smart-seq flags (``.npz``)."""
        return self.dir / f"{self.dataset_id}.npz"

    @property
    def obs(self) -> Path:
        """The kept cells' obs columns (Parquet)."""
        return self.dir / f"{self.dataset_id}.obs.parquet"

    @property
    def genes(self) -> Path:
        """The kept genes (Parquet)."""
        return self.dir / f"{self.dataset_id}.genes.parquet"

    def load(self) -> DatasetPlan:
        """Read the plan."""
        with self.meta.open(encoding="utf-8") as f:
            return DatasetPlan.from_json(json.load(f))

    def load_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Read the plan's arrays, by name."""
        with np.load(self.arrays) as z:
            return {k: z[k] for k in z.files}


def inspect_dataset(
    dataset_id: str, h5ad_path: str, schema: CensusSchema, chunk_target: int, out_dir: str, *, source: str = ""
) -> DatasetPlan:
    """Preflight one dataset and write its plan files; returns the plan. Errors name ``source`` (the user's
    file from the manifest) when given, else ``h5ad_path``."""
    files = PlanFiles(Path(out_dir), dataset_id)
    with H5AD(h5ad_path, dataset_id, source=source) as h5:
        plan, arrays, obs, genes = _inspect(h5, schema, chunk_target)
    files.dir.mkdir(parents=True, exist_ok=True)
    obs.to_parquet(files.obs, index=False)
    genes.to_parquet(files.genes, index=False)
    np.savez(files.arrays, **arrays)  # type: ignore[arg-type]
    files.meta.write_text(json.dumps(plan.to_json(), indent=1), encoding="utf-8")  # written last: marks the plan done
    return plan


def _inspect(
    h5: H5AD, schema: CensusSchema, chunk_target: int
) -> tuple[DatasetPlan, dict[str, npt.NDArray[Any]], pd.DataFrame, pd.DataFrame]:
    version = h5.uns_string(schema.uns_schema_version_key)
    if version != schema.dataset_schema_version:
        raise h5.error(
            f"dataset schema version is {version!r}; Census schema {schema.version} requires "
            f"{schema.dataset_schema_version!r}",
            field=f"uns/{schema.uns_schema_version_key}",
        )
    title = h5.uns_string("title", default="")
    citation = h5.uns_string("citation", default="")

    obs_cols = list(schema.source_obs_columns)
    if schema.organism_in == "obs":  # 1.3.0: a per-cell column; 2.4.0: one organism per dataset, in uns
        obs_cols = list(dict.fromkeys([*obs_cols, schema.organism_key]))
    obs = h5.read_dataframe("obs", obs_cols)
    _check_obs(h5, obs, schema)
    warnings: list[str] = []
    _check_assays(h5, obs, schema, warnings)

    loc = h5.counts_location()
    var_key = loc.var if loc.var in h5.file else "var"
    var_required = [c for c in schema.source_var_columns if c != "feature_length"]
    var = h5.read_dataframe(var_key, [*var_required, "feature_length"], required=False)
    missing = [c for c in var_required if c not in var.columns]
    if missing:
        raise h5.error(f"required column(s) missing: {', '.join(missing)}", field=f"{var_key}/{missing[0]}")
    if not var.index.is_unique:
        dup = var.index[var.index.duplicated()][0]
        raise h5.error(f"duplicate feature id {dup!r}", field=f"{var_key}/index")

    matrix = h5.counts(loc)
    if matrix.shape != (len(obs), len(var)):
        raise h5.error(
            f"matrix shape {matrix.shape} does not match obs x var ({len(obs)}, {len(var)})", field=loc.matrix
        )
    joinids = obs["observation_joinid"].astype(str).to_numpy()

    def cell_and_gene(row: int, col: int) -> str:
        cell = f"cell {obs.index[row]!r} (observation_joinid {joinids[row]!r})" if 0 <= row < len(obs) else f"row {row}"
        return cell if col < 0 else f"{cell}, gene {var.index[col]!r}" if col < len(var) else f"{cell}, column {col}"

    matrix.check_values(name=cell_and_gene)

    spatial: SpatialSource | None = None
    if schema.organism_rule == "dataset_organism":
        choice, keep, gene_cols, spatial = _dataset_organism_rule(h5, obs, var, var_key, schema, warnings)
    else:
        choice, keep, gene_cols = _multi_species_rule(obs, var, schema)
    org = schema.organism_by_term(choice.term) if choice.term else None
    organism = org.name if org else None
    reason = choice.reason
    if organism is not None and not keep.any():
        reason = (
            filters.NO_CELLS_PASS if schema.organism_rule == "multi_species" else filters.NO_CELLS_PASS_DATASET_ORGANISM
        )
    kept_rows = np.nonzero(keep)[0].astype(np.int64)
    if kept_rows.size == 0:
        organism = None

    kept_obs = obs.iloc[kept_rows]
    smart = filters.uses_feature_length(kept_obs["assay_ontology_term_id"], schema)
    genes = pd.DataFrame(
        {
            "feature_id": var.index[gene_cols].astype(str),
            "feature_name": var["feature_name"].astype(str).to_numpy()[gene_cols],
            "feature_length": _feature_lengths(h5, var, gene_cols, var_key, required=bool(smart.any())),
        }
    )

    out_obs = pd.DataFrame({c: _as_output(kept_obs[c]) for c in schema.obs_source_columns})
    tg_ids, tg_labels = _tissue_general(out_obs, warnings)
    out_obs["tissue_general_ontology_term_id"] = tg_ids
    out_obs["tissue_general"] = tg_labels
    if spatial is not None:
        for c, values in _spatial_obs(h5, spatial, kept_rows).items():
            out_obs[c] = values

    chunks: list[tuple[int, int]] = []
    chunk_cells: list[int] = []
    if kept_rows.size:
        costs = matrix.row_costs()
        for a, b in plan_row_chunks(costs, chunk_target, matrix.row_align()):
            n = int(np.searchsorted(kept_rows, b) - np.searchsorted(kept_rows, a))
            if n:
                chunks.append((a, b))
                chunk_cells.append(n)

    plan = DatasetPlan(
        dataset_id=h5.dataset_id,
        h5ad_path=str(h5.path),
        organism=organism,
        excluded_reason=reason,
        n_source_obs=len(obs),
        n_source_var=len(var),
        counts_matrix=loc.matrix,
        matrix_format=matrix.format,
        n_cells=int(kept_rows.size),
        n_primary=int(out_obs["is_primary_data"].sum()) if len(out_obs) else 0,
        n_genes=int(gene_cols.size),
        title=title,
        citation=citation,
        chunks=tuple(chunks),
        chunk_cells=tuple(chunk_cells),
        warnings=tuple(warnings),
        experiment=CENSUS_DATA if spatial is None else CENSUS_SPATIAL,
        spatial=None if spatial is None else _spatial_json(spatial),
    )
    arrays = {"kept_rows": kept_rows, "gene_cols": gene_cols, "smart": smart}
    return plan, arrays, out_obs, genes


def _multi_species_rule(
    obs: pd.DataFrame, var: pd.DataFrame, schema: CensusSchema
) -> tuple[filters.OrganismChoice, npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Census 1.3.0: the one organism the genes come from; its cells and genes (several organisms: no cells)."""
    # Genes: biotype "gene" from a Census organism. The multi-species rule keeps only the cells of the one
    # organism the genes come from; genes from several organisms mean no cells at all.
    is_gene = filters.census_genes(var["feature_biotype"], var["feature_reference"], schema)
    gene_orgs = filters.gene_organisms(var["feature_reference"], is_gene)
    choice = filters.dataset_organism(len(obs), len(var), gene_orgs)
    keep = np.zeros(len(obs), dtype=bool)
    if choice.term is not None and schema.organism_by_term(choice.term) is not None:
        keep = filters.census_cells(
            obs[schema.organism_key], obs["assay_ontology_term_id"], obs["tissue_type"], choice.term, schema
        )
    return choice, keep, filters.kept_gene_columns(var["feature_reference"], is_gene, gene_orgs)


def _dataset_organism_rule(
    h5: H5AD, obs: pd.DataFrame, var: pd.DataFrame, var_key: str, schema: CensusSchema, warnings: list[str]
) -> tuple[filters.OrganismChoice, npt.NDArray[np.bool_], npt.NDArray[np.int64], SpatialSource | None]:
    """Census 2.4.0: the dataset's one organism; its genes, and its cells of included assays and kept tissue types.

    Every feature_reference must be that organism or an other reference (SARS-CoV-2, ERCC: never included).
    A dataset whose cells are all of one spatial assay is a spatial dataset (:func:`_spatial_rule`): its
    structure is checked and its cells go to census_spatial_sequencing. Spatial cells in a dataset that also
    has other assays stay out of the release, with a warning.
    """
    term = _organism_term(h5, obs, schema)
    foreign = filters.foreign_references(var["feature_reference"], term, schema)
    if foreign:
        shown = ", ".join(f"{ref!r} ({n} gene(s))" for ref, n in foreign)
        others = ", ".join(f"{k} ({v})" for k, v in schema.other_references.items()) or "none"
        raise h5.error(
            f"{len(foreign)} value(s) are neither the dataset's organism {term!r} ({_organism_field(schema)}) nor "
            f"one of the other references Census schema {schema.version} allows ({others}): {shown}",
            field=f"{var_key}/feature_reference",
        )
    choice = filters.dataset_organism_choice(len(obs), len(var), term, schema)
    if choice.term is None:
        return choice, np.zeros(len(obs), dtype=bool), np.zeros(0, dtype=np.int64), None
    genes = filters.organism_gene_columns(var["feature_biotype"], var["feature_reference"], term, schema)
    spatial = filters.spatial_assay_cells(obs["assay_ontology_term_id"], schema)
    if len(spatial) == 1 and spatial[0][1] == len(obs):
        choice, keep, source = _spatial_rule(h5, obs, choice, spatial[0][0], schema, warnings)
        return choice, keep, genes, source
    if spatial:
        shown = ", ".join(f"{t} ({schema.spatial_assays[t]}): {n} cell(s)" for t, n in spatial)
        warnings.append(
            f"{sum(n for _, n in spatial)} cell(s) of spatial assays are left out of census_data ({shown}); "
            "census_spatial_sequencing takes only datasets whose cells are all of one spatial assay, and this "
            "dataset has other assays too"
        )
    keep = filters.assay_and_tissue_cells(obs["assay_ontology_term_id"], obs["tissue_type"], schema)
    return choice, keep, genes, None


def _spatial_rule(
    h5: H5AD, obs: pd.DataFrame, choice: filters.OrganismChoice, assay: str, schema: CensusSchema, warnings: list[str]
) -> tuple[filters.OrganismChoice, npt.NDArray[np.bool_], SpatialSource | None]:
    """Check a spatial dataset's structure (every cell of ``assay``) and keep its cells of kept tissue types.

    Structural problems (missing image, positions of the wrong shape, several library ids, ...) are input
    errors. ``uns["spatial"]["is_single"]`` False: no cells (Census 2.4.0: "Census MUST NOT include the
    corresponding observations"), with a warning. Every kept cell is included, primary or not, in tissue or not.
    """
    problems = spatial_problems(h5, assay)
    if problems:
        if len(problems) == 1:
            raise problems[0]
        first = problems[0]
        also = "; ".join(f"{p.field or 'dataset'}: {p.reason}" for p in problems[1:])
        raise InputError(
            first.dataset_id, f"{first.reason} (and {len(problems) - 1} more: {also})", uri=first.uri, field=first.field
        )
    source = read_spatial(h5, assay)
    if not source.is_single:
        reason = (
            f"uns['spatial']['is_single'] is False: Census schema {schema.version} includes only single "
            f"{schema.spatial_assays[assay]} sections in census_spatial_sequencing, so its {len(obs)} cell(s) are "
            "left out"
        )
        warnings.append(reason)
        return filters.OrganismChoice(None, reason), np.zeros(len(obs), dtype=bool), None
    keep = filters.spatial_cells(obs["assay_ontology_term_id"], obs["tissue_type"], schema)
    return choice, keep, source


def _spatial_json(source: SpatialSource) -> dict[str, Any]:
    lib = source.library
    return {
        "assay": source.assay,
        "positions_columns": source.positions_columns,
        "positions_dtype": source.positions_dtype,
        "library": None if lib is None else {**asdict(lib), "hires_shape": list(lib.hires_shape)},
    }


def _spatial_obs(h5: H5AD, source: SpatialSource, kept_rows: npt.NDArray[np.int64]) -> dict[str, Any]:
    """Return the kept cells' in_tissue, array_row, array_col: the source's (Visium), else the placeholder.

    Slide-seqV2 sources have no such columns (7.0.0 forbids them): the release holds :data:`SPATIAL_OBS_MISSING`
    (int64's minimum, as the reference builder), since every release column is a non-nullable encoding.
    """
    if source.assay != VISIUM_V1:
        return {c: np.full(kept_rows.size, SPATIAL_OBS_MISSING, dtype=np.int64) for c in SPATIAL_OBS_COLUMNS}
    obs = h5.read_dataframe("obs", list(SPATIAL_OBS_COLUMNS))
    out: dict[str, Any] = {}
    for c in SPATIAL_OBS_COLUMNS:
        values = pd.to_numeric(obs[c], errors="coerce").to_numpy(dtype=np.float64)[kept_rows]
        if np.isnan(values).any():
            raise h5.error("must be an integer for every spot of a Visium section", field=f"obs/{c}")
        out[c] = values.astype(np.int64)
    return out


def _organism_field(schema: CensusSchema) -> str:
    return f"{schema.organism_in}/{schema.organism_key}"


def _organism_term(h5: H5AD, obs: pd.DataFrame, schema: CensusSchema) -> str:
    """Return the dataset's one organism term: ``uns[key]``, or the one value of obs column ``key``."""
    if schema.organism_in == "uns":
        term = h5.uns_string(schema.organism_key).strip()
        if not term:
            raise h5.error(
                "is empty; it must name the dataset's organism (an NCBITaxon term)", field=_organism_field(schema)
            )
        return term
    values = sorted({str(v) for v in obs[schema.organism_key].unique()})
    if len(values) != 1:
        raise h5.error(f"must hold exactly one organism for the dataset, found {values}", field=_organism_field(schema))
    return values[0]


def _check_obs(h5: H5AD, obs: pd.DataFrame, schema: CensusSchema) -> None:
    ipd = obs["is_primary_data"]
    if ipd.dtype != bool:
        raise h5.error(f"must be boolean, found dtype {ipd.dtype}", field="obs/is_primary_data")
    bad = filters.tissue_types_outside_vocabulary(obs["tissue_type"], schema)
    if bad:
        raise h5.error(
            f"values {bad} are not in the dataset schema vocabulary {list(schema.tissue_type_vocabulary)}",
            field="obs/tissue_type",
        )
    oj = obs["observation_joinid"].astype(str)
    if not oj.is_unique:
        raise h5.error(f"duplicate observation_joinid {oj[oj.duplicated()].iloc[0]!r}", field="obs/observation_joinid")
    for c in schema.obs_source_columns:
        if c != "is_primary_data" and obs[c].isna().any():
            raise h5.error("has missing (NA) values", field=f"obs/{c}")


def _check_assays(h5: H5AD, obs: pd.DataFrame, schema: CensusSchema, warnings: list[str]) -> None:
    """Reject assay values that are no EFO term id (whitespace, typo); warn of unknown well-formed terms.

    A well-formed term the Census schema neither includes nor excludes is a warning with its cell count.
    Known excluded assays (multiome, spatial, ...) are the Census rules at work and say nothing.
    """
    counts = obs["assay_ontology_term_id"].astype(str).value_counts(sort=False)
    counts = counts[counts > 0]
    pairs = [(str(t), int(n)) for t, n in counts.items()]
    malformed = filters.malformed_assay_terms(pairs)
    if malformed:
        shown = ", ".join(
            f"{t!r} ({n} cell(s){', leading/trailing whitespace' if t != t.strip() else ''})" for t, n in malformed
        )
        raise h5.error(
            f"{len(malformed)} value(s) are not EFO term ids (EFO:NNNNNNN): {shown}; fix the file, or its cells "
            "would be dropped without a word",
            field="obs/assay_ontology_term_id",
        )
    for term, n in filters.unclassified_assays(pairs, schema):
        warnings.append(
            f"assay {term!r} is not a Census assay (neither included nor excluded by Census schema "
            f"{schema.version}): its {n} cell(s) are left out"
        )


def _feature_lengths(
    h5: H5AD, var: pd.DataFrame, cols: npt.NDArray[np.int64], var_key: str, *, required: bool
) -> npt.NDArray[np.int64]:
    if "feature_length" not in var.columns:
        if required:
            raise h5.error(
                "missing, but the dataset has Smart-seq cells, whose normalization needs it",
                field=f"{var_key}/feature_length",
            )
        return np.zeros(cols.size, dtype=np.int64)
    ids = var.index[cols]
    stored = var["feature_length"].to_numpy()
    if stored.dtype.kind == "u":  # dataset schema 7.0.0 may store lengths unsigned (uint32, uint64)
        return _unsigned_feature_lengths(h5, stored[cols], ids, f"{var_key}/feature_length", required=required)
    fl = pd.to_numeric(var["feature_length"], errors="coerce").to_numpy(dtype=np.float64)[cols]
    negative = np.nonzero(fl < 0)[0]
    if negative.size:
        raise h5.error(
            f"negative feature_length {fl[negative[0]]:g} for gene {ids[negative[0]]!r} "
            f"({negative.size} gene(s) negative); lengths are base pairs, >= 0",
            field=f"{var_key}/feature_length",
        )
    if required:
        bad = np.nonzero(np.isnan(fl) | (fl <= 0))[0]
        if bad.size:
            raise h5.error(
                f"must be a positive integer for every gene of a Smart-seq dataset: gene {ids[bad[0]]!r} has "
                f"{fl[bad[0]]:g} ({bad.size} gene(s) missing or 0)",
                field=f"{var_key}/feature_length",
            )
    return np.asarray(np.nan_to_num(fl), dtype=np.int64)


def _unsigned_feature_lengths(
    h5: H5AD, lengths: npt.NDArray[Any], ids: pd.Index, where: str, *, required: bool
) -> npt.NDArray[np.int64]:
    """Return unsigned feature lengths exactly as int64 (the release's encoding); too large ones are errors."""
    too_large = np.nonzero(lengths > np.iinfo(np.int64).max)[0]
    if too_large.size:
        raise h5.error(
            f"feature_length {int(lengths[too_large[0]])} of gene {ids[too_large[0]]!r} does not fit the release's "
            f"int64 ({too_large.size} gene(s) above {np.iinfo(np.int64).max})",
            field=where,
        )
    out = lengths.astype(np.int64)
    if required:
        bad = np.nonzero(out == 0)[0]
        if bad.size:
            raise h5.error(
                f"must be a positive integer for every gene of a Smart-seq dataset: gene {ids[bad[0]]!r} has "
                f"0 ({bad.size} gene(s) missing or 0)",
                field=where,
            )
    return out


def _as_output(col: pd.Series) -> Any:
    """Booleans as they are; everything else as a categorical of strings (compact: codes + categories,
    stored dictionary-encoded in the plan's parquet, never one Python string per cell)."""
    if col.dtype == bool:
        return col.to_numpy()
    cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
    cat = cat.cat.remove_unused_categories()
    names = cat.cat.categories.astype(str)
    if names.is_unique:
        return pd.Categorical.from_codes(cat.cat.codes.to_numpy(), categories=names)
    return cat.astype(str).astype("category").array


def _recode(col: pd.Series, mapping: dict[str, str]) -> pd.Categorical[str]:
    """Return a categorical column with each category replaced through ``mapping`` (categories may merge)."""
    new = [mapping[str(c)] for c in col.cat.categories]
    unique = list(dict.fromkeys(new))
    position = {v: i for i, v in enumerate(unique)}
    lut = np.array([position[v] for v in new], dtype=np.int32)
    return pd.Categorical.from_codes(lut[col.cat.codes.to_numpy()], categories=pd.Index(unique))


def _tissue_general(obs: pd.DataFrame, warnings: list[str]) -> tuple[pd.Categorical[str], pd.Categorical[str]]:
    mapper = _tissue_mapper()
    pairs = obs[["tissue_ontology_term_id", "tissue"]].drop_duplicates()
    ids: dict[str, str] = {}
    labels: dict[str, str] = {}
    for term, label in pairs.itertuples(index=False):
        tg = mapper.map(term, label)
        ids[term], labels[term] = tg.ontology_term_id, tg.label
        if not tg.known:
            warnings.append(f"tissue {term!r} is not in the shipped UBERON; tissue_general maps it to itself")
    terms = obs["tissue_ontology_term_id"]
    return _recode(terms, ids), _recode(terms, labels)


def unreadable(dataset_id: str, path: str, e: Exception) -> InputError:
    """Return the error for an exception nobody expected while inspecting ``path``."""
    return InputError(dataset_id, f"unexpected error while inspecting: {type(e).__name__}: {e}", uri=path)

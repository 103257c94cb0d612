"""Reading two releases and diffing them, for the notes command (:mod:`census_builder.release.notes`).

    read_release   facts of one release (root metadata, census_info tables, per-organism counts) via tiledbsoma
    read_spatial   facts of census_spatial_sequencing (Census 2.4.0): per organism its datasets, spots (total,
                   primary) per assay, scenes and genes; from obs columns and the scene collection's keys only
    diff_releases  datasets added / removed / changed and cell-count changes versus the previous release
    diff_spatial   spatial datasets added / removed and spot changes versus the previous release

Counts by category come from ``census_info/summary_cell_counts``; a category missing there is counted from
obs, one batch at a time. The measurement read (genes per organism) is the one the release's Census schema
names (:func:`release_schema`, :class:`~census_builder.soma.layout.ReleaseLayout`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from census_builder.census.schema import CensusSchema, load_schema
from census_builder.errors import CensusBuilderError
from census_builder.soma.layout import CENSUS_DATA, CENSUS_INFO, CENSUS_SPATIAL, SPATIAL, ReleaseLayout

logger = logging.getLogger(__name__)

CATEGORIES = ("assay", "tissue_general", "disease")
CATEGORY_TITLES = {"assay": "assay", "tissue_general": "tissue (tissue_general)", "disease": "disease"}
DATASET_FIELDS = (
    "dataset_version_id",
    "dataset_title",
    "collection_id",
    "collection_name",
    "collection_doi",
    "citation",
    "dataset_h5ad_path",
)


@dataclass(frozen=True)
class DatasetFacts:
    """One dataset of a release (a row of census_info/datasets)."""

    dataset_id: str
    cells: int
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The dataset's title ("" if unknown)."""
        return self.fields.get("dataset_title", "")


@dataclass(frozen=True)
class OrganismFacts:
    """One organism (experiment) of a release: totals and cells by category."""

    name: str  # census_data key, e.g. homo_sapiens
    label: str  # e.g. Homo sapiens
    cells: int
    unique_cells: int
    genes: int
    by_category: Mapping[str, Mapping[str, int]]  # category -> label -> cells


@dataclass(frozen=True)
class SpatialDatasetFacts:
    """One dataset of census_spatial_sequencing: its spots (observations) and its scene."""

    dataset_id: str
    organism: str  # census_spatial_sequencing key, e.g. homo_sapiens
    assay: str  # e.g. Visium Spatial Gene Expression V1, Slide-seqV2
    spots: int
    primary_spots: int  # is_primary_data True
    has_scene: bool  # spatial[dataset_id] exists


@dataclass(frozen=True)
class SpatialOrganismFacts:
    """One organism (experiment) of census_spatial_sequencing."""

    name: str
    label: str
    genes: int
    scenes: int  # keys of its spatial collection
    datasets: Mapping[str, SpatialDatasetFacts]

    @property
    def spots(self) -> int:
        """Spots (observations) of every dataset."""
        return sum(d.spots for d in self.datasets.values())

    @property
    def primary_spots(self) -> int:
        """Spots with is_primary_data True."""
        return sum(d.primary_spots for d in self.datasets.values())

    def by_assay(self) -> dict[str, tuple[int, int, int]]:
        """Assay label -> (datasets, spots, primary spots)."""
        out: dict[str, tuple[int, int, int]] = {}
        for d in self.datasets.values():
            n, s, p = out.get(d.assay, (0, 0, 0))
            out[d.assay] = (n + 1, s + d.spots, p + d.primary_spots)
        return out


@dataclass(frozen=True)
class ReleaseFacts:
    """Everything the notes say about one release."""

    version: str
    uri: str
    metadata: Mapping[str, str]
    summary: Mapping[str, str]
    organisms: Mapping[str, OrganismFacts]
    datasets: Mapping[str, DatasetFacts]
    spatial: Mapping[str, SpatialOrganismFacts] = field(default_factory=dict)  # empty before Census 2.4.0

    @property
    def spatial_datasets(self) -> dict[str, SpatialDatasetFacts]:
        """Every census_spatial_sequencing dataset, by dataset_id."""
        return {d.dataset_id: d for o in self.spatial.values() for d in o.datasets.values()}

    @property
    def total_cells(self) -> int:
        """Cells of every organism."""
        return sum(o.cells for o in self.organisms.values())


@dataclass(frozen=True)
class DatasetChange:
    """A dataset in both releases whose cells or metadata differ."""

    dataset_id: str
    before: DatasetFacts
    after: DatasetFacts
    changed_fields: tuple[str, ...]

    @property
    def cell_delta(self) -> int:
        """Cells after minus cells before."""
        return self.after.cells - self.before.cells


@dataclass(frozen=True)
class ReleaseDiff:
    """Datasets added, removed and changed versus the previous release."""

    previous: str
    added: tuple[DatasetFacts, ...]
    removed: tuple[DatasetFacts, ...]
    changed: tuple[DatasetChange, ...]
    unchanged: int


@dataclass(frozen=True)
class SpatialDiff:
    """census_spatial_sequencing datasets added, removed and with other spot counts versus the previous release."""

    added: tuple[SpatialDatasetFacts, ...]
    removed: tuple[SpatialDatasetFacts, ...]
    changed: tuple[tuple[SpatialDatasetFacts, SpatialDatasetFacts], ...]  # (before, after): spots differ

    @property
    def spot_delta(self) -> int:
        """Spots after minus spots before, over every spatial dataset."""
        before = sum(d.spots for d in self.removed) + sum(b.spots for b, _ in self.changed)
        return sum(d.spots for d in self.added) + sum(a.spots for _, a in self.changed) - before


# -- reading -----------------------------------------------------------------------------------------------


def release_schema(schema_version: str) -> CensusSchema:
    """Return the Census schema a release was built with (its root metadata's ``census_schema_version``).

    A schema version this package does not have falls back to the default schema, with a warning.
    """
    try:
        return load_schema(schema_version)
    except CensusBuilderError as e:
        logger.warning("Census schema %r is unknown here (%s); reading with the default schema", schema_version, e)
        return load_schema()


def _organism_label(name: str, schema: CensusSchema) -> str:
    labels = {o.name: o.label for o in schema.organisms}
    return labels.get(name, name.replace("_", " ").capitalize())


def _count_rows(uri: str, context: Any) -> int:
    import tiledbsoma as soma

    if not soma.DataFrame.exists(uri, context=context):
        return 0
    with soma.DataFrame.open(uri, context=context) as df:
        return int(df.count)


def _count_obs_column(obs: Any, column: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for batch in obs.read(column_names=[column]):
        counts.update(str(v) for v in batch.column(column).to_pylist())
    return dict(counts)


def read_release(uri: str, *, version: str | None = None, context: Any = None) -> ReleaseFacts:
    """Read everything the notes say about one release with tiledbsoma from ``uri`` (its root collection)."""
    import tiledbsoma as soma

    root: Any
    with soma.Collection.open(uri, context=context) as root:
        metadata = {k: str(v) for k, v in root.metadata.items() if not k.startswith("soma_")}
        info = root[CENSUS_INFO]
        summary_df = info["summary"].read().concat().to_pandas()
        summary = dict(zip(summary_df["label"].astype(str), summary_df["value"].astype(str), strict=True))
        ds_df = info["datasets"].read().concat().to_pandas()
        datasets = {
            str(r["dataset_id"]): DatasetFacts(
                dataset_id=str(r["dataset_id"]),
                cells=int(r["dataset_total_cell_count"]),
                fields={f: str(r[f]) for f in DATASET_FIELDS if f in ds_df.columns},
            )
            for _, r in ds_df.iterrows()
        }
        counts = info["summary_cell_counts"].read().concat().to_pandas()
        schema_version = metadata.get("census_schema_version") or summary.get("census_schema_version", "")
        schema = release_schema(schema_version)
        layout = ReleaseLayout(uri.rstrip("/"), schema)
        spatial = read_spatial(root, layout, context) if CENSUS_SPATIAL in root else {}
        organisms: dict[str, OrganismFacts] = {}
        for name in sorted(set(root[CENSUS_DATA].keys()) | set(spatial)):
            # an organism with spatial data only is in census_info's tables: read its spatial experiment
            in_data = name in root[CENSUS_DATA]
            exp = root[CENSUS_DATA][name] if in_data else root[CENSUS_SPATIAL][name]
            label = _organism_label(name, schema)
            mine = counts[counts["organism"] == label]
            every = mine[mine["category"] == "all"]
            cells = int(every["total_cell_count"].sum()) if len(every) else int(exp.obs.count)
            unique = int(every["unique_cell_count"].sum()) if len(every) else 0
            by_category: dict[str, dict[str, int]] = {}
            for cat in CATEGORIES:
                rows = mine[mine["category"] == cat]
                if len(rows):
                    by_category[cat] = {
                        str(k): int(v) for k, v in rows.groupby("label")["total_cell_count"].sum().items()
                    }
                elif cat in exp.obs.schema.names:
                    logger.info("%s: %s is not in summary_cell_counts; counting it from obs", name, cat)
                    by_category[cat] = _count_obs_column(exp.obs, cat)
                else:
                    by_category[cat] = {}
            genes = _count_rows(layout.experiment(name).var, context) if in_data else spatial[name].genes
            organisms[name] = OrganismFacts(
                name=name, label=label, cells=cells, unique_cells=unique, genes=genes, by_category=by_category
            )
    return ReleaseFacts(
        version=version or metadata.get("census_version") or Path(uri.rstrip("/")).parent.name,
        uri=uri,
        metadata=metadata,
        summary=summary,
        organisms=organisms,
        datasets=datasets,
        spatial=spatial,
    )


def read_spatial(root: Any, layout: ReleaseLayout, context: Any = None) -> dict[str, SpatialOrganismFacts]:
    """Read census_spatial_sequencing of the open release ``root`` (at ``layout``): obs's dataset_id, assay and
    is_primary_data columns, the scene collection's keys and var's row count; never X, points or images."""
    out: dict[str, SpatialOrganismFacts] = {}
    for name in sorted(root[CENSUS_SPATIAL].keys()):
        exp = root[CENSUS_SPATIAL][name]
        counts: Counter[tuple[str, str]] = Counter()
        primary: Counter[tuple[str, str]] = Counter()
        for batch in exp.obs.read(column_names=["dataset_id", "assay", "is_primary_data"]):
            keys = zip(batch.column("dataset_id").to_pylist(), batch.column("assay").to_pylist(), strict=True)
            for (d, a), p in zip(keys, batch.column("is_primary_data").to_pylist(), strict=True):
                counts[(str(d), str(a))] += 1
                primary[(str(d), str(a))] += bool(p)
        scenes = set(exp[SPATIAL].keys()) if SPATIAL in exp else set()
        datasets = {
            d: SpatialDatasetFacts(d, name, a, n, primary[(d, a)], d in scenes) for (d, a), n in sorted(counts.items())
        }
        genes = _count_rows(layout.experiment(name, CENSUS_SPATIAL).var, context)
        label = _organism_label(name, layout.schema)
        out[name] = SpatialOrganismFacts(name, label, genes, len(scenes), datasets)
    return out


def diff_releases(previous: ReleaseFacts, current: ReleaseFacts) -> ReleaseDiff:
    """Compare the datasets of two releases (by dataset_id: cell counts and DATASET_FIELDS)."""
    before, after = previous.datasets, current.datasets
    added = tuple(after[d] for d in sorted(set(after) - set(before)))
    removed = tuple(before[d] for d in sorted(set(before) - set(after)))
    changed: list[DatasetChange] = []
    unchanged = 0
    for d in sorted(set(before) & set(after)):
        b, a = before[d], after[d]
        fields = tuple(f for f in DATASET_FIELDS if b.fields.get(f) != a.fields.get(f))
        if b.cells != a.cells:
            fields = ("dataset_total_cell_count", *fields)
        if fields:
            changed.append(DatasetChange(d, b, a, fields))
        else:
            unchanged += 1
    return ReleaseDiff(previous.version, added, removed, tuple(changed), unchanged)


def diff_spatial(previous: ReleaseFacts, current: ReleaseFacts) -> SpatialDiff:
    """Compare the census_spatial_sequencing datasets of two releases (a release without any has none)."""
    before, after = previous.spatial_datasets, current.spatial_datasets
    return SpatialDiff(
        added=tuple(after[d] for d in sorted(set(after) - set(before))),
        removed=tuple(before[d] for d in sorted(set(before) - set(after))),
        changed=tuple(
            (before[d], after[d])
            for d in sorted(set(before) & set(after))
            if (before[d].spots, before[d].primary_spots) != (after[d].spots, after[d].primary_spots)
        ),
    )


def signed(n: int) -> str:
    """Format a change in counts, signed and with thousands separators (``+1,234``, ``-5``, ``+0``)."""
    return f"{n:+,}"

"""Reading two releases and diffing them, for the notes command (:mod:`census_builder.release.notes`).

    read_release   facts of one release (root metadata, census_info tables, per-organism counts) via tiledbsoma
    diff_releases  datasets added / removed / changed and cell-count changes versus the previous release

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
from census_builder.soma.layout import CENSUS_DATA, CENSUS_INFO, ReleaseLayout

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
class ReleaseFacts:
    """Everything the notes say about one release."""

    version: str
    uri: str
    metadata: Mapping[str, str]
    summary: Mapping[str, str]
    organisms: Mapping[str, OrganismFacts]
    datasets: Mapping[str, DatasetFacts]

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
        organisms: dict[str, OrganismFacts] = {}
        for name in sorted(root[CENSUS_DATA].keys()):
            exp = root[CENSUS_DATA][name]
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
            genes = _count_rows(layout.experiment(name).var, context)
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
    )


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


def signed(n: int) -> str:
    """Format a change in counts, signed and with thousands separators (``+1,234``, ``-5``, ``+0``)."""
    return f"{n:+,}"

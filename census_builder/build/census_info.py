"""The census_info tables of the write_tables stage: datasets, summary_cell_counts, summary (and organisms).

Cell and donor counts are accumulated dataset by dataset (nothing holds more than one dataset's cells).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from census_builder.build.inspect import DatasetPlan
from census_builder.build.outputs import DatasetAxes
from census_builder.build.state import BuildPaths
from census_builder.census.schema import CensusSchema, Column
from census_builder.errors import BuildStateError
from census_builder.soma import writers
from census_builder.soma.layout import ReleaseLayout
from census_builder.soma.platform import DATAFRAME_PLATFORM_CONFIG, context
from census_builder.sources.manifest import ManifestEntry


@dataclass
class CellCounts:
    """summary_cell_counts and donor counts, accumulated dataset by dataset."""

    schema: CensusSchema
    counts: dict[tuple[str, str, str, str], list[int]] = field(default_factory=dict)  # (org, cat, term, label)
    donors: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def add(self, organism_label: str, organism: str, dataset_id: str, obs: pd.DataFrame) -> None:
        """Count one dataset's cells (obs columns may be categoricals: nothing is expanded per cell).

        Per category, each cell's (term, label) pair is one integer code, counted with ``np.bincount`` (cells
        with a missing term or label are not counted, as pandas' groupby leaves them out).
        """
        n = len(obs)
        primary = obs["is_primary_data"].to_numpy(dtype=bool)
        na: tuple[npt.NDArray[np.int64], list[Any]] = (np.zeros(n, dtype=np.int64), ["na"])
        for cat in self.schema.summary_categories:
            t_codes, terms = _codes(obs[cat.ontology_column]) if cat.ontology_column else na
            l_codes, labels = _codes(obs[cat.label_column]) if cat.label_column else na
            for (t, lab), total, unique in _pair_counts(t_codes, l_codes, len(labels), primary):
                acc = self.counts.setdefault((organism_label, cat.name, str(terms[t]), str(labels[lab])), [0, 0])
                acc[0] += total
                acc[1] += unique
        self.donors.setdefault(organism, set()).update((dataset_id, str(d)) for d in obs["donor_id"].unique())

    def table(self) -> dict[str, list[Any]]:
        """Return the summary_cell_counts rows, sorted by organism, category order, label, term."""
        order = {c.name: i for i, c in enumerate(self.schema.summary_categories)}
        keys = sorted(self.counts, key=lambda k: (k[0], order[k[1]], k[3], k[2]))
        return {
            "soma_joinid": list(range(len(keys))),
            "organism": [k[0] for k in keys],
            "category": [k[1] for k in keys],
            "ontology_term_id": [k[2] for k in keys],
            "unique_cell_count": [self.counts[k][1] for k in keys],
            "total_cell_count": [self.counts[k][0] for k in keys],
            "label": [k[3] for k in keys],
        }


def _codes(column: pd.Series) -> tuple[npt.NDArray[np.int64], list[Any]]:
    """Return a column's integer codes (-1: missing) and the values they stand for."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64), list(column.cat.categories)
    codes, uniques = pd.factorize(column.to_numpy())
    return codes.astype(np.int64), list(uniques)


def _pair_counts(
    a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], n_b: int, primary: npt.NDArray[np.bool_]
) -> list[tuple[tuple[int, int], int, int]]:
    """Return each observed (a, b) code pair with its cell count and primary cell count (missing codes left out)."""
    ok = (a >= 0) & (b >= 0)
    key = a[ok] * max(n_b, 1) + b[ok]
    weights = primary[ok].astype(np.float64)
    if key.size and int(key.max()) < 4 * key.size + 4096:  # few pairs: count them directly
        totals = np.bincount(key)
        uniques = np.bincount(key, weights=weights, minlength=totals.size)
        keys = np.nonzero(totals)[0]
        totals, uniques = totals[keys], uniques[keys]
    else:
        keys, inverse = np.unique(key, return_inverse=True)
        totals = np.bincount(inverse, minlength=keys.size)
        uniques = np.bincount(inverse, weights=weights, minlength=keys.size)
    return [
        ((int(k) // max(n_b, 1), int(k) % max(n_b, 1)), int(t), int(u))
        for k, t, u in zip(keys, totals, np.rint(uniques), strict=True)
    ]


def count_columns(schema: CensusSchema) -> set[str]:
    """Return the plan obs columns :class:`CellCounts` reads."""
    cols = {"is_primary_data", "donor_id"}
    for c in schema.summary_categories:
        cols.update(x for x in (c.label_column, c.ontology_column) if x)
    return cols


def summary_table(
    schema: CensusSchema, build_date: str, total: int, unique: int, donors: Mapping[str, int]
) -> dict[str, list[Any]]:
    """Return the summary rows the schema lists (label, value)."""
    values = {
        "census_schema_version": schema.version,
        "census_build_date": build_date,
        "dataset_schema_version": schema.dataset_schema_version,
        "total_cell_count": str(total),
        "unique_cell_count": str(unique),
        **{f"number_donors_{o.name}": str(donors.get(o.name, 0)) for o in schema.organisms},
    }
    missing = [r for r in schema.summary_rows if r not in values]
    if missing:
        raise BuildStateError(
            f"census_info summary rows {missing} required by Census schema {schema.version} are not computed by "
            "this census_builder; this is a bug in census_builder: please report it"
        )
    return {
        "soma_joinid": list(range(len(schema.summary_rows))),
        "label": list(schema.summary_rows),
        "value": [values[r] for r in schema.summary_rows],
    }


def organisms_table(schema: CensusSchema, with_cells: Collection[str]) -> dict[str, list[Any]]:
    """Return the census_info organisms rows: the organisms (census_data keys) ``with_cells``, in schema order."""
    rows = [o for o in schema.organisms if o.name in with_cells]
    values: dict[str, list[Any]] = {
        "soma_joinid": list(range(len(rows))),
        "organism_ontology_term_id": [o.ontology_term_id for o in rows],
        "organism_label": [o.label for o in rows],
        "organism": [o.name for o in rows],
    }
    unknown = [c.name for c in schema.organisms_columns if c.name not in values]
    if unknown:
        raise BuildStateError(
            f"census_info organisms columns {unknown} required by Census schema {schema.version} are not computed "
            "by this census_builder; this is a bug in census_builder: please report it"
        )
    return {c.name: values[c.name] for c in schema.organisms_columns}


def datasets_table(
    schema: CensusSchema,
    paths: BuildPaths,
    datasets: tuple[DatasetAxes, ...],
    entries: Mapping[str, ManifestEntry],
    plans: Mapping[str, DatasetPlan],
) -> dict[str, list[Any]]:
    """Return the census_info datasets rows: one per contributing dataset, in joinid order."""
    rows: dict[str, list[Any]] = {c.name: [] for c in schema.datasets_columns}
    for d in datasets:
        e, p = entries[d.dataset_id], plans[d.dataset_id]
        values = {
            "soma_joinid": d.joinid,
            "citation": e.citation or p.citation,  # the manifest's (a reference builder's manifest), else uns
            "collection_id": e.collection_id,
            "collection_name": e.collection_name,
            "collection_doi": e.collection_doi,
            "collection_doi_label": e.collection_doi_label,
            "dataset_id": e.dataset_id,
            "dataset_version_id": e.dataset_version_id,
            "dataset_title": e.dataset_title or p.title,
            "dataset_h5ad_path": paths.h5ad_relative(e.dataset_id),
            "dataset_total_cell_count": p.n_cells,
        }
        for c in schema.datasets_columns:
            rows[c.name].append(values[c.name])
    return rows


def write_census_info_table(
    release: ReleaseLayout, name: str, columns: tuple[Column, ...], data: Mapping[str, Any]
) -> None:
    """Create (or, on a resumed run, rewrite with the same rows) one census_info dataframe."""
    import tiledbsoma as soma

    n = len(next(iter(data.values())))
    ctx = context()
    with soma.Collection.open(release.census_info, "w", context=ctx) as info:  # type: ignore[var-annotated]
        if name in info:
            df = soma.DataFrame.open(release.census_info_table(name), "w", context=ctx)
        else:
            df = info.add_new_dataframe(
                name,
                schema=CensusSchema.arrow_schema(columns),
                domain=[(0, max(n, 1) - 1)],
                index_column_names=["soma_joinid"],
                platform_config=DATAFRAME_PLATFORM_CONFIG,
            )
        with df:
            df.write(writers.arrow_table(columns, data))

"""Stage 4, write_tables: obs, var, the presence matrix and census_info (its organisms table when the schema has one).

obs is written by one dask task per dataset (build/obs_task.py), census_info by build/census_info.py.

obs and var are written once the matrix stage's statistics are known: the chunk results are reduced
here, one result file at a time, to per-gene nnz and per-dataset presence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from census_builder.build.census_info import (
    CellCounts,
    count_columns,
    datasets_table,
    organisms_table,
    summary_table,
    write_census_info_table,
)
from census_builder.build.inspect import PlanFiles
from census_builder.build.obs_task import ObsTask, write_obs
from census_builder.build.outputs import AxesPlan, OrganismFigures, TablesWritten
from census_builder.build.plan_axes import var_path
from census_builder.build.spatial import write_spatial
from census_builder.build.timestamps import Timestamps
from census_builder.build.write_matrices import ChunkTask, chunk_tasks, load_result
from census_builder.census.schema import CensusSchema
from census_builder.runtime.cluster import run_tasks
from census_builder.runtime.progress import Progress
from census_builder.soma import consolidation, writers
from census_builder.soma.layout import CENSUS_DATA, CENSUS_SPATIAL

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger(__name__)


def write_tables(run: BuildRun) -> TablesWritten:
    """Write obs, var, the presence matrices and the census_info tables; return the release's figures."""
    axes = run.axes()
    plans = {p.dataset_id: p for p in run.plans()}
    release = run.layout
    tasks_by_ds: dict[str, list[tuple[int, ChunkTask]]] = {}
    all_chunks = chunk_tasks(run)
    timestamps = Timestamps(axes.timestamp_base, len(all_chunks))
    for k, t in enumerate(all_chunks):
        tasks_by_ds.setdefault(t.dataset_id, []).append((k, t))
    reducers = {
        (kind, org): PresenceReducer(v.n_var)
        for kind in (CENSUS_DATA, CENSUS_SPATIAL)
        for org, v in axes.experiment_axes(kind).items()
    }
    for d in axes.datasets:
        reducer = reducers[(d.experiment, d.organism)]
        if run.schema.presence_rule == "listed":  # every Census gene of the dataset's var, counts or not
            with np.load(run.paths.state / "axes" / f"{d.dataset_id}.npz") as arrays:
                reducer.add_listed(d.dataset_id, arrays["col_map"])
        for _, t in tasks_by_ds.get(d.dataset_id, []):
            reducer.add(d.dataset_id, t.result_path)

    obs_tasks = dataset_obs_tasks(run, axes, tasks_by_ds, reducers, timestamps)
    todo = [t for t in obs_tasks if not Path(t.marker_path).is_file()]
    for uri in sorted({t.obs_uri for t in todo}):  # likewise obs rows of datasets without a marker
        consolidation.delete_fragments_at(uri, {ts for t in todo if t.obs_uri == uri for ts in t.timestamps})
    progress = Progress("write_tables:obs", len(todo), "datasets", total_cells=sum(t.n_cells for t in todo))
    run_tasks(run.client, write_obs, todo, on_result=lambda t, n: progress.update(1, n))

    figures: dict[str, dict[str, OrganismFigures]] = {CENSUS_DATA: {}, CENSUS_SPATIAL: {}}
    joinids = {d.dataset_id: d.joinid for d in axes.datasets}
    counts = CellCounts(run.schema)  # census_data and census_spatial_sequencing cells alike (Census 2.4.0)
    for kind in (CENSUS_DATA, CENSUS_SPATIAL):
        for org in run.schema.organisms:
            if org.name not in axes.experiment_axes(kind):
                continue
            red = reducers[(kind, org.name)]
            members = axes.members(org.name, kind)
            exp = release.experiment(org.name, kind)
            cells = {d.dataset_id: d.n_cells for d in members}
            var = pd.read_parquet(var_path(run, kind, org.name))
            write_var(exp.var, run.schema, var, red.var_nnz, red.n_measured_obs(cells))
            n_true = write_presence(exp.presence, joinids, red.present, run.schema.presence_arrow_type)
            for d in members:
                plan_obs = PlanFiles(run.paths.plans, d.dataset_id).obs
                obs = pd.read_parquet(plan_obs, columns=list(count_columns(run.schema)))
                counts.add(org.label, org.name, d.dataset_id, obs)
            figures[kind][org.name] = OrganismFigures(
                cells=sum(cells.values()),
                genes=len(var),
                nnz=int(red.var_nnz.sum()),
                presence_true=n_true,
                datasets=len(members),
            )
    if axes.spatial:
        write_spatial(run)  # obs_spatial_presence, the scenes' points and images (build/spatial.py)

    entries = {e.dataset_id: e for e in run.manifest.entries}
    datasets_rows = datasets_table(run.schema, run.paths, axes.datasets, entries, plans)
    write_census_info_table(release, "datasets", run.schema.datasets_columns, datasets_rows)
    write_census_info_table(release, "summary_cell_counts", run.schema.summary_cell_counts_columns, counts.table())
    total = sum(d.n_cells for d in axes.datasets)
    unique = sum(plans[d.dataset_id].n_primary for d in axes.datasets)
    donors = {k: len(v) for k, v in counts.donors.items()}
    summary = summary_table(run.schema, run.build_date, total, unique, donors)
    write_census_info_table(release, "summary", run.schema.summary_columns, summary)
    if run.schema.organisms_columns:  # Census 2.4.0: one row per organism with cells (census_data or spatial)
        organisms = organisms_table(run.schema, {*figures[CENSUS_DATA], *figures[CENSUS_SPATIAL]})
        write_census_info_table(release, "organisms", run.schema.organisms_columns, organisms)
    return TablesWritten(
        organisms=figures[CENSUS_DATA],
        total_cell_count=total,
        unique_cell_count=unique,
        donors=donors,
        spatial=figures[CENSUS_SPATIAL],
    )


def dataset_obs_tasks(
    run: BuildRun,
    axes: AxesPlan,
    tasks_by_ds: Mapping[str, list[tuple[int, ChunkTask]]],
    reducers: Mapping[tuple[str, str], PresenceReducer],
    timestamps: Timestamps,
) -> list[ObsTask]:
    """Return the obs task of every contributing dataset (joinid order): paths and offsets, no cell data."""
    release = run.layout
    return [
        ObsTask(
            dataset_id=d.dataset_id,
            obs_uri=release.experiment(d.organism, d.experiment).obs,
            obs_offset=d.obs_offset,
            n_cells=d.n_cells,
            plan_obs_path=str(PlanFiles(run.paths.plans, d.dataset_id).obs),
            result_paths=tuple(t.result_path for _, t in tasks_by_ds.get(d.dataset_id, [])),
            n_measured_vars=reducers[(d.experiment, d.organism)].n_measured_vars(d.dataset_id),
            marker_path=str(run.paths.state / "obs" / f"{d.dataset_id}.done"),
            lock_path=str(run.paths.lock),
            run_id=run.run_id,
            schema_version=run.schema.version,
            timestamps=tuple(timestamps.obs(k) for k, _ in tasks_by_ds.get(d.dataset_id, [])),
            spatial=d.experiment == CENSUS_SPATIAL,
        )
        for d in axes.datasets
    ]


@dataclass
class PresenceReducer:
    """Reduces chunk results to per-gene nnz and per-dataset presence, one result file at a time.

    Presence is a stored count > 0 (the schema's rule ``nonzero``), plus, under ``listed``, every gene the
    dataset's var holds (:meth:`add_listed`).
    """

    n_var: int
    var_nnz: npt.NDArray[np.int64] = field(init=False)
    present: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.var_nnz = np.zeros(self.n_var, dtype=np.int64)

    def add(self, dataset_id: str, result_path: str) -> None:
        """Add one chunk result of ``dataset_id``."""
        self.add_result(dataset_id, load_result(result_path))

    def add_result(self, dataset_id: str, r: Mapping[str, npt.NDArray[Any]]) -> None:
        """Add one loaded chunk result (:func:`load_result`) of ``dataset_id``."""
        self.var_nnz[r["col_ids"]] += r["col_nnz"]
        p = self.present.setdefault(dataset_id, np.zeros(self.n_var, dtype=bool))
        p[r["col_ids"]] = True  # every stored raw value is > 0, so a stored entry means presence

    def add_listed(self, dataset_id: str, col_map: npt.NDArray[np.int64]) -> None:
        """Mark the genes of ``dataset_id``'s var present (``col_map``: source column -> var joinid, -1: not kept)."""
        p = self.present.setdefault(dataset_id, np.zeros(self.n_var, dtype=bool))
        p[col_map[col_map >= 0]] = True

    def n_measured_vars(self, dataset_id: str) -> int:
        """Genes present in ``dataset_id`` (the presence matrix's row sum)."""
        return int(self.present.get(dataset_id, np.zeros(0, bool)).sum())

    def n_measured_obs(self, cells: Mapping[str, int]) -> npt.NDArray[np.int64]:
        """Per gene: the cells of the datasets that measured it (``cells``: dataset -> cell count)."""
        out = np.zeros(self.n_var, dtype=np.int64)
        for ds, p in self.present.items():
            out[p] += cells[ds]
        return out


def write_var(
    uri: str, schema: CensusSchema, var: pd.DataFrame, nnz: npt.NDArray[np.int64], n_measured_obs: npt.NDArray[np.int64]
) -> None:
    """Write an organism's var dataframe with its statistics."""
    data = {
        "soma_joinid": np.arange(len(var), dtype=np.int64),
        "feature_id": var["feature_id"].to_numpy(),
        "feature_name": var["feature_name"].to_numpy(),
        "feature_length": var["feature_length"].to_numpy(dtype=np.int64),
        "nnz": nnz,
        "n_measured_obs": n_measured_obs,
    }
    writers.write_dataframe(uri, schema.var, data)


def write_presence(
    uri: str,
    dataset_joinids: Mapping[str, int],
    present: Mapping[str, npt.NDArray[np.bool_]],
    value_type: pa.DataType,
) -> int:
    """Write the presence matrix; only present entries are stored (the fill value means absent).

    ``value_type``: the schema's presence encoding. Returns how many entries were stored.
    """
    r, c = presence_entries(dataset_joinids, present)
    if r.size:
        values = np.ones(r.size, dtype=value_type.to_pandas_dtype())
        writers.write_coo(uri, writers.coo_table(r, c, values, value_type))
    return int(r.size)


def presence_entries(
    dataset_joinids: Mapping[str, int], present: Mapping[str, npt.NDArray[np.bool_]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return the presence matrix's stored entries (dataset joinid, gene joinid), sorted by row, then column.

    Filled dataset by dataset in joinid order (each row's columns come sorted): no sort, and nothing held
    but the two coordinate arrays.
    """
    items = sorted(present.items(), key=lambda kv: dataset_joinids[kv[0]])
    n = sum(int(np.count_nonzero(p)) for _, p in items)
    r = np.empty(n, dtype=np.int64)
    c = np.empty(n, dtype=np.int64)
    at = 0
    for ds, p in items:
        idx = np.flatnonzero(p)
        r[at : at + idx.size] = dataset_joinids[ds]
        c[at : at + idx.size] = idx
        at += idx.size
    return r, c

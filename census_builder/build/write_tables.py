"""The tables stage: obs (one dask task per dataset), var, the presence matrix and census_info.

obs and var are written once the matrix stage's statistics are known. Nothing here holds more than one
dataset's cells at a time: census_info counts are accumulated dataset by dataset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from census_builder.soma import writers
from census_builder.build.write_matrices import load_result
from census_builder.census.schema import CensusSchema, Column
from census_builder.build.state import check_owner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObsTask:
    dataset_id: str
    obs_uri: str
    obs_offset: int
    n_cells: int
    plan_obs_path: str
    result_paths: tuple[str, ...]  # chunk results, in chunk (= row) order
    n_measured_vars: int
    marker_path: str
    lock_path: str  # the build lock, and the run that must still hold it for this task to write
    run_id: str
    schema_version: str
    timestamps: tuple[int, ...]  # ms, one per chunk result: the obs fragments' names (see delete_fragments_at)


def write_obs(task: ObsTask) -> int:
    """Write one dataset's obs rows, chunk by chunk: metadata streamed from the plan's parquet, statistics
    from each chunk's result file. Memory is bounded by the chunk, not the dataset."""
    import pyarrow.parquet as pq

    from census_builder.census.schema import load_schema

    schema = load_schema(task.schema_version)
    meta = pq.ParquetFile(task.plan_obs_path)
    if meta.metadata.num_rows != task.n_cells:
        raise RuntimeError(f"{task.dataset_id}: plan has {meta.metadata.num_rows} cells, expected {task.n_cells}")
    rows = _row_stream(meta)
    offset = task.obs_offset
    for path, timestamp in zip(task.result_paths, task.timestamps, strict=True):
        check_owner(task.lock_path, task.run_id)
        stats = load_result(path)
        n = int(stats["nnz"].size)
        block = rows.take(n)
        data: dict[str, Any] = {name: block.column(name) for name in block.column_names}
        data["soma_joinid"] = np.arange(offset, offset + n, dtype=np.int64)
        data["dataset_id"] = pa.array(np.full(n, task.dataset_id, dtype=object), type=pa.large_string())
        data["n_measured_vars"] = np.full(n, task.n_measured_vars, dtype=np.int64)
        data.update({k: stats[k] for k in ("nnz", "raw_sum", "raw_mean_nnz", "raw_variance_nnz")})
        writers.write_dataframe(task.obs_uri, schema.obs, data, timestamp=timestamp)
        offset += n
    if offset - task.obs_offset != task.n_cells or not rows.exhausted():
        raise RuntimeError(
            f"{task.dataset_id}: chunk results hold {offset - task.obs_offset} cells, plan {task.n_cells}"
        )
    Path(task.marker_path).parent.mkdir(parents=True, exist_ok=True)
    Path(task.marker_path).write_text("done\n", encoding="utf-8")
    return task.n_cells


class _RowStream:
    """Hands out consecutive row blocks of exactly the asked size from a parquet file's batches."""

    def __init__(self, batches: Any) -> None:
        self._batches = iter(batches)
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0

    def _fill(self, n: int) -> None:
        while self._buffered < n:
            batch = next(self._batches, None)
            if batch is None:
                return
            self._buffer.append(batch)
            self._buffered += batch.num_rows

    def take(self, n: int) -> pa.Table:
        """The next ``n`` rows; fewer only when the file ends."""
        self._fill(n)
        if not self._buffer:
            raise RuntimeError("plan obs ended before the chunk results did")
        table = pa.Table.from_batches(self._buffer)
        head, rest = table.slice(0, n), table.slice(n)
        self._buffer = [b for b in rest.to_batches() if b.num_rows]
        self._buffered = rest.num_rows
        return head

    def exhausted(self) -> bool:
        self._fill(1)
        return self._buffered == 0


def _row_stream(meta: Any) -> _RowStream:
    return _RowStream(meta.iter_batches(batch_size=65_536))


@dataclass
class PresenceReducer:
    """Reduces chunk results to per-gene nnz and per-dataset presence, one result file at a time."""

    n_var: int
    var_nnz: npt.NDArray[np.int64] = field(init=False)
    present: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    obs_nnz: int = 0

    def __post_init__(self) -> None:
        self.var_nnz = np.zeros(self.n_var, dtype=np.int64)

    def add(self, dataset_id: str, result_path: str) -> None:
        r = load_result(result_path)
        self.var_nnz[r["col_ids"]] += r["col_nnz"]
        self.obs_nnz += int(r["nnz"].sum())
        p = self.present.setdefault(dataset_id, np.zeros(self.n_var, dtype=bool))
        p[r["col_ids"]] = True  # every stored raw value is > 0, so a stored entry means presence

    def n_measured_vars(self, dataset_id: str) -> int:
        return int(self.present.get(dataset_id, np.zeros(0, bool)).sum())

    def n_measured_obs(self, cells: Mapping[str, int]) -> npt.NDArray[np.int64]:
        out = np.zeros(self.n_var, dtype=np.int64)
        for ds, p in self.present.items():
            out[p] += cells[ds]
        return out


def write_var(
    uri: str, schema: CensusSchema, var: pd.DataFrame, nnz: npt.NDArray[np.int64], n_measured_obs: npt.NDArray[np.int64]
) -> None:
    data = {
        "soma_joinid": np.arange(len(var), dtype=np.int64),
        "feature_id": var["feature_id"].to_numpy(),
        "feature_name": var["feature_name"].to_numpy(),
        "feature_length": var["feature_length"].to_numpy(dtype=np.int64),
        "nnz": nnz,
        "n_measured_obs": n_measured_obs,
    }
    writers.write_dataframe(uri, schema.var, data)


def write_presence(uri: str, dataset_joinids: Mapping[str, int], present: Mapping[str, npt.NDArray[np.bool_]]) -> int:
    """Only True entries are stored (False is the fill value); returns how many."""
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    for ds, p in present.items():
        idx = np.nonzero(p)[0].astype(np.int64)
        rows.append(np.full(idx.size, dataset_joinids[ds], dtype=np.int64))
        cols.append(idx)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    if r.size:
        order = np.lexsort((c, r))
        writers.write_coo(uri, writers.coo_table(r[order], c[order], np.ones(r.size, dtype=bool), pa.bool_()))
    return int(r.size)


@dataclass
class CellCounts:
    """summary_cell_counts and donor counts, accumulated dataset by dataset."""

    schema: CensusSchema
    counts: dict[tuple[str, str, str, str], list[int]] = field(default_factory=dict)  # (org, cat, term, label)
    donors: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def add(self, organism_label: str, organism: str, dataset_id: str, obs: pd.DataFrame) -> None:
        """Count one dataset's cells (obs columns may be categoricals: nothing is expanded per cell)."""
        na = pd.Categorical.from_codes(np.zeros(len(obs), dtype=np.int8), categories=pd.Index(["na"]))
        primary = obs["is_primary_data"].to_numpy(dtype=bool).astype(np.int64)
        for cat in self.schema.summary_categories:
            frame = pd.DataFrame(
                {
                    "term": obs[cat.ontology_column].to_numpy() if cat.ontology_column else na,
                    "label": obs[cat.label_column].to_numpy() if cat.label_column else na,
                    "primary": primary,
                }
            )
            grouped = frame.groupby(["term", "label"], sort=False, observed=True)["primary"].agg(["size", "sum"])
            for (term, label), total, unique in zip(grouped.index, grouped["size"], grouped["sum"], strict=True):
                acc = self.counts.setdefault((organism_label, cat.name, str(term), str(label)), [0, 0])
                acc[0] += int(total)
                acc[1] += int(unique)
        self.donors.setdefault(organism, set()).update((dataset_id, str(d)) for d in obs["donor_id"].unique())

    def table(self) -> dict[str, list[Any]]:
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


def summary_table(
    schema: CensusSchema, build_date: str, total: int, unique: int, donors: Mapping[str, int]
) -> dict[str, list[Any]]:
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
        raise RuntimeError(f"summary rows {missing} required by the schema are not computed")
    return {
        "soma_joinid": list(range(len(schema.summary_rows))),
        "label": list(schema.summary_rows),
        "value": [values[r] for r in schema.summary_rows],
    }


def write_census_info_table(root_uri: str, name: str, columns: tuple[Column, ...], data: Mapping[str, Any]) -> None:
    """Create (or, on a resumed run, rewrite with the same rows) one census_info dataframe."""
    import tiledbsoma as soma

    n = len(next(iter(data.values())))
    ctx = writers.context()
    with soma.Collection.open(os.path.join(root_uri, "census_info"), "w", context=ctx) as info:  # type: ignore[var-annotated]
        if name in info:
            df = soma.DataFrame.open(os.path.join(root_uri, "census_info", name), "w", context=ctx)
        else:
            df = info.add_new_dataframe(
                name,
                schema=CensusSchema.arrow_schema(columns),
                domain=[(0, max(n, 1) - 1)],
                index_column_names=["soma_joinid"],
                platform_config=writers.DATAFRAME_PLATFORM_CONFIG,
            )
        with df:
            df.write(writers.arrow_table(columns, data))

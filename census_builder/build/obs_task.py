"""The obs task of the write_tables stage (one dask task per dataset): the dataset's obs rows, chunk by chunk.

Metadata is streamed from the plan's parquet, statistics come from each matrix chunk's result file, and
each chunk's rows are written at that chunk's obs timestamp (build/timestamps.py), so a rerun can delete
the rows of a dataset whose task did not finish. Memory is bounded by the chunk, not the dataset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from census_builder.build.state import check_owner
from census_builder.build.write_matrices import load_result
from census_builder.errors import BuildStateError
from census_builder.soma import writers

logger = logging.getLogger(__name__)

PLAN_OBS_BATCH_ROWS = 65_536  # rows read from the plan's obs parquet at a time
STATISTICS = ("nnz", "raw_sum", "raw_mean_nnz", "raw_variance_nnz")  # obs columns from the chunk results
_BUG = "this is a bug in census_builder: please report it"


@dataclass(frozen=True)
class ObsTask:
    """One dataset's obs rows: where they go, where their values come from."""

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
    timestamps: tuple[int, ...]  # ms, one per chunk result: the obs fragments' names (see build/timestamps.py)
    spatial: bool = False  # census_spatial_sequencing: obs has the spatial columns too (census/spatial.py)


def write_obs(task: ObsTask) -> int:
    """Write one dataset's obs rows, chunk by chunk; then its marker file. Returns its cell count."""
    import pyarrow.parquet as pq

    from census_builder.census.schema import load_schema
    from census_builder.census.spatial import spatial_obs

    schema = load_schema(task.schema_version)
    columns = spatial_obs(schema) if task.spatial else schema.obs
    meta = pq.ParquetFile(task.plan_obs_path)
    if meta.metadata.num_rows != task.n_cells:
        raise BuildStateError(
            f"dataset {task.dataset_id}: plan {task.plan_obs_path} has {meta.metadata.num_rows} cells, expected "
            f"{task.n_cells}; {_BUG}"
        )
    rows = _RowStream(meta.iter_batches(batch_size=PLAN_OBS_BATCH_ROWS), task)
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
        data.update({k: stats[k] for k in STATISTICS})
        writers.write_dataframe(task.obs_uri, columns, data, timestamp=timestamp)
        offset += n
    if offset - task.obs_offset != task.n_cells or not rows.exhausted():
        raise BuildStateError(
            f"dataset {task.dataset_id}: chunk results hold {offset - task.obs_offset} cells, plan "
            f"{task.plan_obs_path} {task.n_cells}; {_BUG}"
        )
    Path(task.marker_path).parent.mkdir(parents=True, exist_ok=True)
    Path(task.marker_path).write_text("done\n", encoding="utf-8")
    return task.n_cells


class _RowStream:
    """Hands out consecutive row blocks of exactly the asked size from a parquet file's batches."""

    def __init__(self, batches: Any, task: ObsTask) -> None:
        self._batches = iter(batches)
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._task = task

    def _fill(self, n: int) -> None:
        while self._buffered < n:
            batch = next(self._batches, None)
            if batch is None:
                return
            self._buffer.append(batch)
            self._buffered += batch.num_rows

    def take(self, n: int) -> pa.Table:
        """Return the next ``n`` rows; fewer only when the file ends."""
        self._fill(n)
        if not self._buffer:
            raise BuildStateError(
                f"dataset {self._task.dataset_id}: plan obs {self._task.plan_obs_path} ended before the chunk "
                f"results did; {_BUG}"
            )
        table = pa.Table.from_batches(self._buffer)
        head, rest = table.slice(0, n), table.slice(n)
        self._buffer = [b for b in rest.to_batches() if b.num_rows]
        self._buffered = rest.num_rows
        return head

    def exhausted(self) -> bool:
        """No rows are left."""
        self._fill(1)
        return self._buffered == 0

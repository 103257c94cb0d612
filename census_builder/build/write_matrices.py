"""The matrix stage: one dask task per (dataset, row chunk).

Each task reads its source rows, keeps the Census cells and genes, writes X["raw"] and X["normalized"]
fragments at precomputed soma_joinid offsets, and records its statistics in a result file that the
driver reduces. Writing a chunk is idempotent (the arrays do not allow duplicate coordinates and a
rewritten chunk holds identical values), and a chunk counts only once its result file exists, so a
chunk half-written by a killed process is rewritten on resume, never counted twice.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from census_builder.soma import writers
from census_builder.sources.h5ad import H5AD, check_counts
from census_builder.build.state import check_owner
from census_builder.census.stats import Counts, chunk_counts, column_nnz, normalize, row_stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkTask:
    dataset_id: str
    chunk: int
    h5ad_path: str
    counts_matrix: str  # "raw/X" or "X"
    row_start: int  # source rows [row_start, row_stop)
    row_stop: int
    obs_offset: int  # soma_joinid of the chunk's first kept cell
    n_cells: int  # kept cells in the chunk
    n_var: int  # the organism's var length
    axes_file: str  # per-dataset arrays: kept_rows, smart, col_map, col_length
    raw_uri: str
    normalized_uri: str
    result_path: str
    lock_path: str  # the build lock, and the run that must still hold it for this task to write
    run_id: str
    timestamp: int  # ms: this chunk's fragments carry it, so a rerun can delete a half-done chunk

    @property
    def key(self) -> str:
        return f"{self.dataset_id}#{self.chunk}"


@dataclass(frozen=True)
class ChunkSummary:
    key: str
    n_cells: int
    nnz: int
    seconds: float


def result_exists(task: ChunkTask) -> bool:
    return Path(task.result_path).is_file()


def chunk_counts_of(task: ChunkTask, axes: dict[str, npt.NDArray[Any]]) -> tuple[Counts, npt.NDArray[np.bool_]]:
    """The chunk's kept cells x the organism's var (duplicates summed, zeros dropped) in X's global order,
    and which of its rows are Smart-seq cells."""
    kept_rows = axes["kept_rows"]
    lo, hi = np.searchsorted(kept_rows, [task.row_start, task.row_stop])
    local = kept_rows[lo:hi] - task.row_start
    with H5AD(task.h5ad_path, task.dataset_id) as h5:
        block = h5.counts().read_rows(task.row_start, task.row_stop)
        check_counts(block.data, h5, task.counts_matrix)
    if local.size != block.shape[0]:
        block = block[local]
    counts = chunk_counts(block, axes["col_map"], task.n_var, row_offset=task.obs_offset, tile=writers.X_TILE)
    return counts, axes["smart"][lo:hi]


def process_chunk(task: ChunkTask) -> ChunkSummary:
    """Read, filter, compute and write one chunk; then record its result file (atomically, last)."""
    t0 = time.perf_counter()
    with np.load(task.axes_file) as z:
        axes = {k: z[k] for k in z.files}
    counts, smart = chunk_counts_of(task, axes)
    stats = row_stats(counts)
    norm = normalize(counts, stats.raw_sum, smart, axes["col_length"])
    check_owner(task.lock_path, task.run_id)
    writers.write_x(
        {task.raw_uri: counts.data.astype(np.float32), task.normalized_uri: norm},
        counts.rows + task.obs_offset,
        counts.cols,
        row_range=(task.obs_offset, task.obs_offset + task.n_cells),
        n_cols=task.n_var,
        timestamp=task.timestamp,
    )
    col_ids, col_counts = column_nnz(counts)
    out = Path(task.result_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npz")
    np.savez(
        tmp,
        nnz=stats.nnz,
        raw_sum=stats.raw_sum,
        raw_mean_nnz=stats.raw_mean_nnz,
        raw_variance_nnz=stats.raw_variance_nnz,
        col_ids=col_ids,
        col_nnz=col_counts,
    )
    check_owner(task.lock_path, task.run_id)
    os.replace(tmp, out)
    return ChunkSummary(task.key, counts.n_rows, counts.nnz, time.perf_counter() - t0)


def load_result(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}

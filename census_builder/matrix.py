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
import scipy.sparse as sp

from census_builder import soma_io
from census_builder.h5ad import H5AD, check_counts
from census_builder.state import check_owner
from census_builder.stats import canonical, column_nnz, normalize, row_stats

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


def chunk_matrix(task: ChunkTask, axes: dict[str, npt.NDArray[Any]]) -> tuple[sp.csr_matrix, npt.NDArray[np.bool_]]:
    """The chunk's kept cells x the organism's var, canonical (duplicates summed, zeros dropped)."""
    kept_rows = axes["kept_rows"]
    lo, hi = np.searchsorted(kept_rows, [task.row_start, task.row_stop])
    local = kept_rows[lo:hi] - task.row_start
    with H5AD(task.h5ad_path, task.dataset_id) as h5:
        block = h5.counts().read_rows(task.row_start, task.row_stop)
        check_counts(block.data, h5, task.counts_matrix)
    if local.size != block.shape[0]:
        block = block[local]
    return canonical(block, axes["col_map"], task.n_var), axes["smart"][lo:hi]


def process_chunk(task: ChunkTask) -> ChunkSummary:
    """Read, filter, compute and write one chunk; then record its result file (atomically, last)."""
    t0 = time.perf_counter()
    with np.load(task.axes_file) as z:
        axes = {k: z[k] for k in z.files}
    m, smart = chunk_matrix(task, axes)
    stats = row_stats(m)
    norm = normalize(m, stats.raw_sum, smart, axes["col_length"])
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) + task.obs_offset
    check_owner(task.lock_path, task.run_id)
    soma_io.write_x(
        {task.raw_uri: m.data.astype(np.float32), task.normalized_uri: norm},
        rows,
        np.asarray(m.indices, dtype=np.int64),
        row_range=(task.obs_offset, task.obs_offset + task.n_cells),
        n_cols=task.n_var,
        timestamp=task.timestamp,
    )
    col_ids, col_counts = column_nnz(m)
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
    return ChunkSummary(task.key, int(m.shape[0]), int(m.nnz), time.perf_counter() - t0)


def load_result(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}

"""Stage 3, write_matrices: X["raw"] and X["normalized"], one dask task per (dataset, row chunk).

Each task reads its source rows, keeps the Census cells and genes, writes X["raw"] and X["normalized"]
fragments at precomputed soma_joinid offsets, and records its statistics in a result file that the
write_tables stage reduces. A chunk counts only once its result file exists. Each chunk writes at its
own timestamp (build/timestamps.py), and a rerun first deletes the fragments of every chunk without a
result, so a chunk half-written by a killed process is rewritten, never stored or counted twice.
(The X arrays do not allow duplicates, so a read would return a coordinate written twice only once, but
both fragments store it until consolidation: deleting the fragments is what keeps X exact.)
finalize_release checks that X holds exactly the chunk results' nnz.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from census_builder.build.outputs import MatricesWritten
from census_builder.build.state import check_owner
from census_builder.build.timestamps import Timestamps
from census_builder.census.stats import Counts, chunk_counts, column_nnz, normalize, row_stats
from census_builder.runtime import faults
from census_builder.runtime.cluster import run_tasks
from census_builder.runtime.progress import Progress
from census_builder.soma import consolidation, writers
from census_builder.soma.platform import X_NORMALIZED_KEEP_BITS, X_TILE
from census_builder.sources.h5ad import H5AD, check_counts

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger(__name__)

RAW, NORMALIZED = "raw", "normalized"  # the X layers a chunk writes (the schema's x_layers)


@dataclass(frozen=True)
class ChunkTask:
    """One row chunk of one dataset: what to read, where to write, and its result file."""

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
    normalized_uri: str  # "" for census_spatial_sequencing (X["raw"] only)
    result_path: str
    lock_path: str  # the build lock, and the run that must still hold it for this task to write
    run_id: str
    timestamp: int  # ms: this chunk's fragments carry it, so a rerun can delete a half-done chunk

    @property
    def key(self) -> str:
        """``dataset_id#chunk``, for fault points and messages."""
        return f"{self.dataset_id}#{self.chunk}"


@dataclass(frozen=True)
class ChunkSummary:
    """What a chunk task reports back to the driver."""

    key: str
    n_cells: int
    nnz: int


def chunk_tasks(run: BuildRun) -> list[ChunkTask]:
    """Every chunk task of the release, in (joinid, chunk) order; the k-th writes at ``Timestamps.chunk(k)``."""
    axes = run.axes()
    plans = {p.dataset_id: p for p in run.plans()}
    members = [plans[d.dataset_id] for d in axes.datasets]
    timestamps = Timestamps(axes.timestamp_base, sum(len(p.chunks) for p in members))
    tasks: list[ChunkTask] = []
    for d, p in zip(axes.datasets, members, strict=True):
        x = run.layout.experiment(d.organism, d.experiment)
        offset = d.obs_offset
        for i, ((a, b), n) in enumerate(zip(p.chunks, p.chunk_cells, strict=True)):
            tasks.append(
                ChunkTask(
                    dataset_id=p.dataset_id,
                    chunk=i,
                    h5ad_path=p.h5ad_path,
                    counts_matrix=p.counts_matrix,
                    row_start=a,
                    row_stop=b,
                    obs_offset=offset,
                    n_cells=n,
                    n_var=axes.shape(d).n_var,
                    axes_file=str(run.paths.state / "axes" / f"{p.dataset_id}.npz"),
                    raw_uri=x.x_layer(RAW),
                    normalized_uri=x.x_layers.get(NORMALIZED, ""),
                    result_path=str(run.paths.chunks / p.dataset_id / f"{i:06d}.npz"),
                    lock_path=str(run.paths.lock),
                    run_id=run.run_id,
                    timestamp=timestamps.chunk(len(tasks)),
                )
            )
            offset += n
    return tasks


def _process_chunk_with_faults(task: ChunkTask) -> ChunkSummary:
    faults.point(f"chunk:{task.key}", task.raw_uri)
    return process_chunk(task)


def write_matrices(run: BuildRun) -> MatricesWritten:
    """Write every chunk without a result file (after deleting what an interrupted run left of it)."""
    tasks = chunk_tasks(run)
    todo = [t for t in tasks if not result_exists(t)]
    # A rerun first drops whatever an interrupted run wrote for chunks that never recorded a result.
    stale = {t.timestamp for t in todo}
    for uri in sorted({u for t in todo for u in (t.raw_uri, t.normalized_uri) if u}):
        n = consolidation.delete_fragments_at(uri, stale)
        if n:
            logger.info("[write_matrices] deleted %d fragment(s) of unfinished chunks in %s", n, uri)
    total_cells = sum(t.n_cells for t in todo)
    logger.info("[write_matrices] %d chunk task(s), %d already done", len(tasks), len(tasks) - len(todo))
    progress = Progress("write_matrices", len(todo), "chunks", total_cells=total_cells)
    nnz = 0

    def on_result(task: ChunkTask, res: ChunkSummary) -> None:
        nonlocal nnz
        nnz += res.nnz
        progress.update(1, res.n_cells, note=f"{nnz / max(time.monotonic() - progress.start, 1e-9):,.0f} nnz/s")
        faults.point(f"matrix:after_chunks:{progress.done}")

    run_tasks(run.client, _process_chunk_with_faults, todo, on_result=on_result)
    return MatricesWritten(chunks=len(tasks), written_this_run=len(todo))


# -- the chunk task (runs on a worker) ---------------------------------------------------------------------


def result_exists(task: ChunkTask) -> bool:
    """Tell whether the chunk is done: its result file exists."""
    return Path(task.result_path).is_file()


def chunk_counts_of(task: ChunkTask, axes: dict[str, npt.NDArray[Any]]) -> tuple[Counts, npt.NDArray[np.bool_]]:
    """Return the chunk's kept cells x the organism's var, and which of its rows are Smart-seq cells.

    Duplicates are summed and zeros dropped; the coordinates are in X's global order.
    """
    kept_rows = axes["kept_rows"]
    lo, hi = np.searchsorted(kept_rows, [task.row_start, task.row_stop])
    local = kept_rows[lo:hi] - task.row_start
    with H5AD(task.h5ad_path, task.dataset_id) as h5:
        block = h5.counts().read_rows(task.row_start, task.row_stop)
        check_counts(block.data, h5, task.counts_matrix)
    if local.size != block.shape[0]:
        block = block[local]
    counts = chunk_counts(block, axes["col_map"], task.n_var, row_offset=task.obs_offset, tile=X_TILE)
    return counts, axes["smart"][lo:hi]


def process_chunk(task: ChunkTask) -> ChunkSummary:
    """Read, filter, compute and write one chunk; then record its result file (atomically, last)."""
    with np.load(task.axes_file) as z:
        axes = {k: z[k] for k in z.files}
    counts, smart = chunk_counts_of(task, axes)
    stats = row_stats(counts)
    layers: dict[str, npt.NDArray[Any]] = {task.raw_uri: counts.data}  # stored with each layer's schema encoding
    if task.normalized_uri:  # census_data; census_spatial_sequencing has X["raw"] only
        layers[task.normalized_uri] = normalize(
            counts, stats.raw_sum, smart, axes["col_length"], keep_bits=X_NORMALIZED_KEEP_BITS
        )
    check_owner(task.lock_path, task.run_id)
    writers.write_x(
        layers,
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
    return ChunkSummary(task.key, counts.n_rows, counts.nnz)


def load_result(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """Load a chunk's result file: per-row nnz and statistics, per-column nnz."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}

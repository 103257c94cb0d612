"""The I/O floor: one plain read of every source counts matrix and one write of the same non-zeros into
two SOMA sparse arrays (as X["raw"] and X["normalized"] would be), no filtering, statistics or
normalization, on the same number of dask workers and with the same array settings as the build."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import tiledbsoma as soma

from benchmarks.cpu import tree_cpu_seconds
from census_builder.runtime.cluster import dask_client, run_tasks
from census_builder.soma import writers
from census_builder.soma.platform import X_PLATFORM_CONFIG, X_TILE
from census_builder.sources.h5ad import H5AD, plan_row_chunks


@dataclass(frozen=True)
class FloorTask:
    """One chunk of the floor: rows ``start:stop`` of the H5AD at ``path``, written at ``offset`` to ``uris``."""

    path: str
    start: int
    stop: int
    offset: int
    uris: tuple[str, str]


def _copy_chunk(t: FloorTask) -> int:
    with H5AD(t.path, "floor") as h5:
        m = h5.counts().read_rows(t.start, t.stop)
    m.sum_duplicates()  # the one step a global-order write needs besides the order: unique coordinates
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) + t.offset
    cols = m.indices.astype(np.int64)
    order = _global_order(rows, cols, m.shape[1])
    values = m.data.astype(np.float32)[order]
    writers.write_x(
        dict.fromkeys(t.uris, values),
        rows[order],
        cols[order],
        row_range=(t.offset, t.offset + m.shape[0]),
        n_cols=m.shape[1],
    )  # the build's write
    return int(m.nnz)


def _global_order(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], n_cols: int) -> npt.NDArray[np.intp]:
    """Return the cheapest permutation from sorted CSR coordinates to TileDB's global order (space tile, then row-major
    inside it): one stable radix sort on the tile number (the build has to sort every coordinate instead,
    because its column renumbering scrambles the order within rows)."""
    tile = X_TILE
    key = (rows // tile - rows[0] // tile) * -(-n_cols // tile) + cols // tile
    return np.argsort(key.astype(np.uint16) if key.size and key[-1] < 2**16 else key, kind="stable")


def measure_floor(h5ads: list[Path], out: Path, *, workers: int, chunk_nnz: int) -> dict[str, float]:
    """Read and write the counts of ``h5ads`` into two arrays under ``out``; return the seconds and non-zeros."""
    tasks: list[FloorTask] = []
    offset, n_var = 0, 0
    for p in h5ads:
        with H5AD(p, p.stem) as h5:
            counts = h5.counts()
            n_var = max(n_var, counts.shape[1])
            for a, b in plan_row_chunks(counts.row_costs(), chunk_nnz, counts.row_align()):
                tasks.append(FloorTask(str(p), a, b, offset + a, (str(out / "a"), str(out / "b"))))
            offset += counts.shape[0]
    out.mkdir(parents=True, exist_ok=True)
    for uri in (out / "a", out / "b"):
        soma.SparseNDArray.create(
            str(uri), type=pa.float32(), shape=(offset, n_var), platform_config=X_PLATFORM_CONFIG
        ).close()
    with dask_client(workers=workers) as client:
        t0, cpu0 = time.perf_counter(), tree_cpu_seconds(os.getpid())
        nnz = sum(run_tasks(client, _copy_chunk, tasks))
        seconds, cpu = time.perf_counter() - t0, tree_cpu_seconds(os.getpid()) - cpu0
    # cpu_seconds: of this process and its workers, a figure a loaded shared machine distorts less than the wall time
    return {"seconds": seconds, "nnz": nnz, "cells": offset, "tasks": len(tasks), "cpu_seconds": round(cpu, 1)}

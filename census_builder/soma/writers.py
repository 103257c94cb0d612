"""Creating and writing the release's TileDB-SOMA objects: structure, platform configs, consolidation."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import tiledbsoma as soma

from census_builder.census.schema import CensusSchema, Column
from census_builder.errors import StorageError

logger = logging.getLogger(__name__)

_ZSTD = {"_type": "ZstdFilter", "level": 3}
X_TILE = 2048  # space tile extent of both X dimensions (rows and genes)
X_PLATFORM_CONFIG: dict[str, Any] = {
    "tiledb": {
        "create": {
            "capacity": 2**17,
            "dims": {
                "soma_dim_0": {"tile": X_TILE, "filters": ["DoubleDeltaFilter", _ZSTD]},
                "soma_dim_1": {"tile": X_TILE, "filters": ["ByteShuffleFilter", _ZSTD]},
            },
            "attrs": {"soma_data": {"filters": ["ByteShuffleFilter", _ZSTD]}},
            "cell_order": "row-major",
            "tile_order": "row-major",
        }
    }
}
DATAFRAME_PLATFORM_CONFIG: dict[str, Any] = {
    "tiledb": {
        "create": {
            "capacity": 2**16,
            "offsets_filters": ["DoubleDeltaFilter", _ZSTD],
            "dims": {"soma_joinid": {"filters": ["DoubleDeltaFilter", _ZSTD]}},
            "attrs": {},
            "cell_order": "row-major",
            "tile_order": "row-major",
        }
    }
}
# TileDB settings for every open: moderate memory per worker, do not oversubscribe the cores, and do not
# malloc_trim after every query (TileDB's default), which returns the freed heap to the kernel so that
# the next chunk page-faults it all in again.
TILEDB_CONFIG: dict[str, str | float] = {
    "sm.mem.malloc_trim": "false",
    "sm.mem.total_budget": str(2 * 1024**3),
    "sm.compute_concurrency_level": "2",
    "sm.io_concurrency_level": "2",
}


def context() -> soma.SOMATileDBContext:
    return soma.SOMATileDBContext(tiledb_config=dict(TILEDB_CONFIG))


@dataclass(frozen=True)
class ExperimentShape:
    n_obs: int
    n_var: int


def create_release(uri: str, schema: CensusSchema, shapes: Mapping[str, ExperimentShape], n_datasets: int) -> None:
    """Create the whole, empty release structure (census_info tables are written later, in full)."""
    ctx = context()
    with soma.Collection.create(uri, context=ctx) as root:  # type: ignore[var-annotated]
        root.add_new_collection("census_info")
        data = root.add_new_collection("census_data")
        for organism, shape in shapes.items():
            exp = data.add_new_collection(organism, soma.Experiment)
            exp.add_new_dataframe(
                "obs",
                schema=CensusSchema.arrow_schema(schema.obs),
                index_column_names=["soma_joinid"],
                domain=[(0, max(shape.n_obs, 1) - 1)],
                platform_config=DATAFRAME_PLATFORM_CONFIG,
            )
            ms = exp.add_new_collection("ms")
            rna = ms.add_new_collection(schema.measurement, soma.Measurement)
            rna.add_new_dataframe(
                "var",
                schema=CensusSchema.arrow_schema(schema.var),
                index_column_names=["soma_joinid"],
                domain=[(0, max(shape.n_var, 1) - 1)],
                platform_config=DATAFRAME_PLATFORM_CONFIG,
            )
            x = rna.add_new_collection("X")
            for layer in schema.x_layers:
                x.add_new_sparse_ndarray(
                    layer, type=pa.float32(), shape=(shape.n_obs, shape.n_var), platform_config=X_PLATFORM_CONFIG
                )
            rna.add_new_sparse_ndarray(schema.presence_matrix, type=pa.bool_(), shape=(n_datasets, shape.n_var))


def arrow_table(columns: tuple[Column, ...], data: Mapping[str, Any]) -> pa.Table:
    """``data`` (column name -> values) as an Arrow table with the schema's encodings."""
    return pa.Table.from_pydict(
        {c.name: _arrow_column(data[c.name], c.arrow_type) for c in columns}, schema=CensusSchema.arrow_schema(columns)
    )


def _arrow_column(values: Any, arrow_type: pa.DataType) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.cast(arrow_type)  # e.g. dictionary-encoded strings from the plan's parquet
    return pa.array(values, type=arrow_type)


def write_dataframe(
    uri: str, columns: tuple[Column, ...], data: Mapping[str, Any], *, timestamp: int | None = None
) -> None:
    """``timestamp`` (ms) names the fragment, so that a rerun can delete what an interrupted run wrote."""
    with soma.DataFrame.open(uri, "w", context=context(), tiledb_timestamp=timestamp) as df:
        df.write(arrow_table(columns, data))


def write_coo(uri: str, table: pa.Table) -> None:
    with soma.SparseNDArray.open(uri, "w", context=context()) as arr:
        arr.write(table)


# Every X write passes the bounds check of ``write_x`` and holds unique coordinates (stats.chunk_counts),
# so TileDB's own duplicate and bounds checks are off (one 4 M-value write: 0.36 s; 0.32 s without the
# bounds check, 0.33 s without the duplicate check); its global-order check stays on.
_X_WRITE_CONFIG = {**TILEDB_CONFIG, "sm.check_coord_dups": "false", "sm.check_coord_oob": "false"}


def write_x(
    layers: Mapping[str, npt.NDArray[np.float32]],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    *,
    row_range: tuple[int, int],
    n_cols: int,
    timestamp: int | None = None,
) -> None:
    """Write one chunk's values into each X array of ``layers`` (uri -> values, aligned with the
    coordinates), one fragment per array.

    The coordinates must be unique and in TileDB's global order for X_TILE tiles (stats.chunk_counts
    gives them so), so TileDB skips its own sort, which is most of the cost of an unordered write. Rows
    must lie in ``row_range`` [start, stop): the chunk's own soma_joinids, so no chunk can write into
    another's rows.
    """
    if rows.size == 0:
        return
    lo, hi = row_range
    if int(rows.min()) < lo or int(rows.max()) >= hi or int(cols.min()) < 0 or int(cols.max()) >= n_cols:
        raise StorageError(
            f"X chunk coordinates out of bounds: rows {rows.min()}..{rows.max()} not in [{lo}, {hi}) "
            f"or columns {cols.min()}..{cols.max()} not in [0, {n_cols})"
        )
    dims = {"soma_dim_0": pa.array(rows), "soma_dim_1": pa.array(cols)}
    ctx = soma.SOMATileDBContext(tiledb_config=_X_WRITE_CONFIG)
    for uri, values in layers.items():
        table = pa.table({**dims, "soma_data": pa.array(values, type=pa.float32())})
        with soma.SparseNDArray.open(uri, "w", context=ctx, tiledb_timestamp=timestamp) as arr:
            arr.write(table, platform_config=soma.TileDBWriteOptions(sort_coords=False))


def delete_fragments_at(uri: str, timestamps: set[int]) -> int:
    """Delete the fragments written at exactly these timestamps (ms); returns how many were deleted.

    Each resumable write unit (an X chunk, an obs chunk) writes at its own timestamp, so a rerun removes
    what an interrupted run left half-done instead of writing the same coordinates twice."""
    import tiledb

    hits = sorted(
        {
            f.timestamp_range[0]
            for f in tiledb.array_fragments(uri)
            if f.timestamp_range[0] == f.timestamp_range[1] and f.timestamp_range[0] in timestamps
        }
    )
    for ts in hits:
        tiledb.Array.delete_fragments(uri, ts, ts)
    return len(hits)


def coo_table(rows: Any, cols: Any, values: Any, value_type: pa.DataType) -> pa.Table:
    return pa.table(
        {
            "soma_dim_0": pa.array(rows, type=pa.int64()),
            "soma_dim_1": pa.array(cols, type=pa.int64()),
            "soma_data": pa.array(values, type=value_type),
        }
    )


def array_uris(root: str | Path) -> Iterator[str]:
    """Every TileDB array under a local release directory."""
    for schema_dir in sorted(Path(root).rglob("__schema")):
        yield str(schema_dir.parent)


CONSOLIDATION_MEMORY = 1024**3


def consolidate_and_vacuum(uri: str) -> None:
    """Merge an array's fragments (and their metadata) into few, then drop the superseded files."""
    _consolidate(uri, ("fragments", "fragment_meta", "commits", "array_meta"))


def consolidate_metadata(uri: str) -> None:
    """Consolidate an X array's fragment metadata, commits and array metadata, keeping its fragments.

    X fragments are disjoint row ranges (one per chunk), so merging them would rewrite every value for
    nothing: with the fragment metadata in one file, readers open the array as fast and read it faster
    than one merged fragment (measured at 250 k cells: full scan 6.5 s vs 11.7 s, 20 genes of every cell
    3.0 s vs 5.2 s, 5,000 random cells 4.5 s vs 5.0 s; benchmarks/RESULTS.md).
    """
    _consolidate(uri, ("fragment_meta", "commits", "array_meta"))


def _consolidate(uri: str, modes: tuple[str, ...]) -> None:
    import tiledb

    cfg = tiledb.Config(
        {
            "sm.consolidation.step_min_frags": "2",
            "sm.consolidation.step_max_frags": "10000",
            # TileDB's default budget (10 GiB) lets one consolidation take ~6 GiB; 1 GiB holds it under 1 GiB of RSS
            # and is no slower (measured on a 110 M-value X array: 14.8 s / 5.8 GiB -> 11.5 s / 0.7 GiB).
            "sm.mem.total_budget": str(CONSOLIDATION_MEMORY),
        }
    )
    ctx = tiledb.Ctx(cfg)
    for mode in modes:
        cfg["sm.consolidation.mode"] = mode
        cfg["sm.vacuum.mode"] = mode
        tiledb.consolidate(uri, ctx=ctx, config=cfg)
        tiledb.vacuum(uri, ctx=ctx, config=cfg)
    logger.debug("consolidated %s (%s)", uri, ", ".join(modes))


def stored_cells(uri: str) -> int:
    """Cells stored in an array's fragments (its nnz once consolidated), from fragment metadata alone."""
    import tiledb

    return int(sum(tiledb.array_fragments(uri).cell_num))

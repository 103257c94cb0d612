"""TileDB settings of the release: array creation configs (tiles, filters, capacities) and the context."""

from __future__ import annotations

from typing import Any

import tiledbsoma as soma

_ZSTD = {"_type": "ZstdFilter", "level": 3}
X_TILE = 2048  # space tile extent of both X dimensions (rows and genes)
X_CAPACITY = 2**17  # cells per data tile of an X array
DATAFRAME_CAPACITY = 2**16  # rows per data tile of a dataframe
X_PLATFORM_CONFIG: dict[str, Any] = {
    "tiledb": {
        "create": {
            "capacity": X_CAPACITY,
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
            "capacity": DATAFRAME_CAPACITY,
            "offsets_filters": ["DoubleDeltaFilter", _ZSTD],
            "dims": {"soma_joinid": {"filters": ["DoubleDeltaFilter", _ZSTD]}},
            "attrs": {},
            "cell_order": "row-major",
            "tile_order": "row-major",
        }
    }
}
WORKER_MEMORY_BUDGET = 2 * 1024**3  # bytes TileDB may use per open, per worker
# TileDB settings for every open: moderate memory per worker, do not oversubscribe the cores, and do not
# malloc_trim after every query (TileDB's default), which returns the freed heap to the kernel so that
# the next chunk page-faults it all in again.
TILEDB_CONFIG: dict[str, str | float] = {
    "sm.mem.malloc_trim": "false",
    "sm.mem.total_budget": str(WORKER_MEMORY_BUDGET),
    "sm.compute_concurrency_level": "2",
    "sm.io_concurrency_level": "2",
}
# Every X write passes the bounds check of ``writers.write_x`` and holds unique coordinates
# (stats.chunk_counts), so TileDB's own duplicate and bounds checks are off (one 4 M-value write: 0.36 s;
# 0.32 s without the bounds check, 0.33 s without the duplicate check); its global-order check stays on.
X_WRITE_CONFIG: dict[str, str | float] = {
    **TILEDB_CONFIG,
    "sm.check_coord_dups": "false",
    "sm.check_coord_oob": "false",
}


def context() -> soma.SOMATileDBContext:
    """Return a SOMA context with :data:`TILEDB_CONFIG`."""
    return soma.SOMATileDBContext(tiledb_config=dict(TILEDB_CONFIG))


def x_write_context() -> soma.SOMATileDBContext:
    """Return the context of X writes (:data:`X_WRITE_CONFIG`)."""
    return soma.SOMATileDBContext(tiledb_config=dict(X_WRITE_CONFIG))

"""TileDB settings of the release: array creation configs (tiles, filters, capacities) and the context."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import tiledbsoma as soma

_ZSTD = {"_type": "ZstdFilter", "level": 3}
X_TILE = 2048  # space tile extent of both X dimensions (rows and genes)
X_CAPACITY = 2**17  # cells per data tile of an X array
DATAFRAME_CAPACITY = 2**16  # rows per data tile of a dataframe
# X storage (issue 17, benchmarks/RESULTS.md "After the storage change" and "Release size and reads, second
# round"):
# - soma_dim_0 (rows): Zstd 9, no DoubleDelta (it saved ~10 % of a file that is 2 % of X, and cost
#   coordinate-unfiltering time on every read); soma_dim_1 (genes): ByteShuffle + Zstd 9. Delta on soma_dim_1
#   saved 22 % of that file but made every read 15 to 25 % slower (TileDB's delta decoding): not used;
# - values: Zstd 15 (X["raw"] after ByteShuffle): value files 10 to 14 % smaller than at Zstd 9, which keeps the
#   release no larger than the reference builder's; it costs ~0.27 us of CPU per value and layer more than Zstd 9,
#   about half of a build's CPU (9 gives it back for a ~5 % larger release). Decompression costs the same.
#   X["normalized"] without ByteShuffle: a cell's normalized values are a few distinct floats, which Zstd matches
#   as whole 4-byte words and shuffling splits (-28 %);
# - ``allows_duplicates``: TileDB reads the arrays with its unordered-with-duplicates reader, which skips merging
#   result slabs into global order; our writer stores unique coordinates (stats.chunk_counts), so there are
#   never duplicates to keep, but reads come back in no particular order.
X_ZSTD_LEVEL = 9  # both dimensions
_X_ZSTD = {"_type": "ZstdFilter", "level": X_ZSTD_LEVEL}
X_VALUES_ZSTD_LEVEL = 15  # soma_data of every layer
UNSHUFFLED_X_LAYERS = frozenset({"normalized"})  # X layers whose values are stored without ByteShuffle
# X["normalized"] values keep 15 of float32's 23 explicit mantissa bits, rounded half to even (what the
# reference builder stores; the schema defines the value, not its precision): relative change <= 2**-16, far
# below what any analysis of normalized expression resolves, and the layer is 5 % smaller (RESULTS.md).
X_NORMALIZED_KEEP_BITS = 15


def x_platform_config(layer: str) -> dict[str, Any]:
    """Return the creation settings of X layer ``layer`` (see the comment above :data:`X_ZSTD_LEVEL`)."""
    values_zstd = {"_type": "ZstdFilter", "level": X_VALUES_ZSTD_LEVEL}
    data_filters: list[Any] = [values_zstd] if layer in UNSHUFFLED_X_LAYERS else ["ByteShuffleFilter", values_zstd]
    return {
        "tiledb": {
            "create": {
                "capacity": X_CAPACITY,
                "allows_duplicates": True,
                "dims": {
                    "soma_dim_0": {"tile": X_TILE, "filters": [_X_ZSTD]},
                    "soma_dim_1": {"tile": X_TILE, "filters": ["ByteShuffleFilter", _X_ZSTD]},
                },
                "attrs": {"soma_data": {"filters": data_filters}},
                "cell_order": "row-major",
                "tile_order": "row-major",
            }
        }
    }


X_PLATFORM_CONFIG: dict[str, Any] = x_platform_config("raw")  # X["raw"]'s (count layers, benchmarks' floor)
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


# obs string columns are stored dictionary-encoded (SOMA enumerations), as the reference's releases store
# them: every one is categorical in nature (a few hundred distinct values per release at most) except the
# per-cell observation_joinid, which stays a plain string. The enumeration of each column holds the values
# of every dataset of the experiment, sorted, and is created with the array (writers.create_release), before
# any obs task writes: concurrent writers then never extend (evolve) the schema.
PLAIN_STRING_OBS_COLUMNS = frozenset({"observation_joinid"})


def enumeration_index_type(n_values: int) -> pa.DataType:
    """Return the smallest signed index type that numbers ``n_values`` enumeration values."""
    for t in (pa.int8(), pa.int16(), pa.int32()):
        if n_values <= 2 ** (t.bit_width - 1) - 1:
            return t
    return pa.int64()


def obs_field_type(name: str, arrow_type: pa.DataType, n_values: int) -> pa.DataType:
    """Return the stored Arrow type of obs column ``name`` (schema type ``arrow_type``): enumerations for strings."""
    if name in PLAIN_STRING_OBS_COLUMNS or not pa.types.is_large_string(arrow_type):
        return arrow_type
    return pa.dictionary(enumeration_index_type(n_values), pa.large_string())

"""Reading the release with tiledbsoma: the URIs of what it holds, its tables, obs rows and X values.

Reads of obs and X keep the freed heap for the next chunk (no ``malloc_trim`` after each query: see
``census_builder.runtime.tiledb_config``); X reads use read buffers below the workers' mmap threshold.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from census_builder.runtime.tiledb_config import NO_MALLOC_TRIM

READ_BUFFER_BYTES = 128 * 2**20  # per column: one read of a 16 M-value chunk; below the workers' mmap threshold
MIN_READ_BUFFER_BYTES = 2**20


def read_buffer_bytes(entries: int | None) -> int:
    """Read buffer bytes per column for an X read of about ``entries`` values (None: READ_BUFFER_BYTES).

    The smallest power of two holding ``entries`` int64 coordinates, between MIN_READ_BUFFER_BYTES and
    READ_BUFFER_BYTES: a 4 M-value chunk's read reserves 3 x 32 MiB instead of 3 x 128 MiB of heap (the arrow
    table keeps the whole buffers until it is freed, and a reused heap keeps what it once reserved); a read
    that does not fit comes back in several batches. Powers of two: few distinct TileDB contexts.
    """
    if entries is None:
        return READ_BUFFER_BYTES
    need = max(1, entries) * 8
    return min(READ_BUFFER_BYTES, max(MIN_READ_BUFFER_BYTES, 1 << (need - 1).bit_length()))


@dataclass
class ExperimentUris:
    """The URIs of one organism's experiment members that exist (None / absent: missing or unusable)."""

    organism: str
    obs: str | None = None
    var: str | None = None
    x: dict[str, str] = field(default_factory=dict)
    presence: str | None = None


@dataclass
class ReleaseLayout:
    """What the structure check found in the release: whether its root opened, and the URIs of its members."""

    uri: str
    opened: bool = False
    tables: dict[str, str] = field(default_factory=dict)  # census_info name -> uri
    experiments: dict[str, ExperimentUris] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseUris:
    """The release arrays a content task reads (None: missing)."""

    obs: str | None
    raw: str | None
    normalized: str | None


def joinid_batches(uri: str) -> Iterator[pa.Array]:
    """Yield a dataframe's soma_joinid column, in joinid order, a batch at a time."""
    import tiledbsoma as soma

    with soma.DataFrame.open(uri) as df:
        for batch in df.read(column_names=["soma_joinid"], result_order="row-major"):
            yield batch.column("soma_joinid")


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """Read a whole dataframe (``columns``: only those of them it has), in soma_joinid order."""
    import tiledbsoma as soma

    with soma.DataFrame.open(uri) as df:
        names = [c for c in columns if c in df.schema.names] if columns is not None else None
        return df.read(column_names=names, result_order="row-major").concat()


def as_numpy(col: pa.ChunkedArray) -> npt.NDArray[Any]:
    """Return a column as a numpy array (dictionary columns decoded)."""
    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def obs_coords(joinids: npt.NDArray[np.int64]) -> Any:
    """Return a read's coordinates for obs soma_joinids given in row order.

    A slice for a consecutive run (the fast path), else the sorted distinct joinids (-1, a cell the release
    lacks, left out).
    """
    if (
        joinids.size
        and int(joinids[0]) >= 0
        and int(joinids[-1]) - int(joinids[0]) == joinids.size - 1
        and bool((np.diff(joinids) == 1).all())
    ):
        return slice(int(joinids[0]), int(joinids[-1]))
    return np.unique(joinids[joinids >= 0])


@functools.cache
def _context(buffer_bytes: int | None = None) -> Any:
    """Return the TileDB context of every chunk read.

    No malloc_trim after each query (see the module docstring). X reads pass ``buffer_bytes``: TileDB-SOMA's
    default read buffers are above the workers' mmap threshold, so every read mapped them afresh and faulted
    in every page it filled; READ_BUFFER_BYTES keeps them on the reused heap (one 3.5 M-value X read:
    17,700 -> 500 page faults, 100 -> 74 ms). obs reads keep the default: dozens of columns of that size
    would push the heap past the trim threshold.
    """
    import tiledbsoma as soma

    config: dict[str, str | float] = dict(NO_MALLOC_TRIM)
    if buffer_bytes:
        config["soma.init_buffer_bytes"] = str(buffer_bytes)
    return soma.SOMATileDBContext(tiledb_config=config)


def read_obs(uri: str, joinids: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
    """Every column of the obs rows at ``joinids`` (see :func:`obs_coords`), as numpy arrays."""
    import tiledbsoma as soma

    rows = obs_coords(joinids)
    if not isinstance(rows, slice) and rows.size == 0:
        return {}
    with soma.DataFrame.open(uri, context=_context()) as df:
        table = df.read(coords=(rows,)).concat()
    return {name: as_numpy(table.column(name)) for name in table.column_names}


def read_x(
    uri: str, rows: Any, entries: int | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Every stored value of ``rows`` (a slice or sorted joinids), in whatever order TileDB returns them.

    ``entries``: about how many values the rows hold (sizes the read buffers: :func:`read_buffer_bytes`).
    """
    import tiledbsoma as soma

    if not isinstance(rows, slice) and rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    with soma.SparseNDArray.open(uri, context=_context(read_buffer_bytes(entries))) as arr:
        table = arr.read(coords=(rows,)).tables().concat()
    rows = np.asarray(table.column("soma_dim_0").to_numpy(), dtype=np.int64)
    cols = np.asarray(table.column("soma_dim_1").to_numpy(), dtype=np.int64)
    return rows, cols, np.asarray(table.column("soma_data").to_numpy())


def table_column(table: pa.Table, name: str) -> list[Any] | None:
    """Return column ``name`` of a table read whole as Python values (dictionaries decoded); None if absent."""
    if name not in table.column_names:
        return None
    col = table.column(name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    values: list[Any] = col.to_pylist()
    return values

"""Assertions on a built release's storage settings (issue 17): X arrays and obs enumerations.

Shared by the 1.3.0 example release's test (tests/census_builder/soma/test_storage_settings.py) and the
Census 2.4.0 build's (tests/census_builder/build/test_build_spatial.py). The expected settings are written
out here, not taken from census_builder.soma.platform, so a change there must change them too.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import tiledb
import tiledbsoma as soma

SHUFFLE = {"name": "BYTESHUFFLE"}
ZSTD9 = {"COMPRESSION_LEVEL": 9, "name": "ZSTD"}
X_DIMS = {
    "soma_dim_0": {"filters": [ZSTD9], "tile": "2048"},  # no DoubleDelta
    "soma_dim_1": {"filters": [SHUFFLE, ZSTD9], "tile": "2048"},  # no Delta: it slows reads
}
ZSTD15 = {"COMPRESSION_LEVEL": 15, "name": "ZSTD"}
X_DATA = {"raw": [SHUFFLE, ZSTD15], "normalized": [ZSTD15]}  # normalized without ByteShuffle


def x_settings(uri: str) -> dict[str, Any]:
    """The creation settings of the X array at ``uri`` that issue 17 chose."""
    with soma.SparseNDArray.open(uri) as arr:
        opts = arr.schema_config_options()
    return {
        "allows_duplicates": bool(opts.allows_duplicates),
        "capacity": int(opts.capacity),
        "dims": json.loads(opts.dims),
        "attrs": json.loads(opts.attrs),
        "order": (opts.cell_order, opts.tile_order),
    }


def assert_x_settings(uri: str, layer: str) -> None:
    """X[layer] at ``uri`` allows duplicates and has the chosen filters, tiles and orders."""
    assert x_settings(uri) == {
        "allows_duplicates": True,
        "capacity": 2**17,
        "dims": X_DIMS,
        "attrs": {"soma_data": {"filters": X_DATA[layer]}},
        "order": ("row-major", "row-major"),
    }


def assert_obs_enumerations(uri: str, string_columns: list[str]) -> None:
    """Every string obs column but observation_joinid is an enumeration of exactly its values, sorted, with
    the smallest index type, named like the column (so that tiledbsoma 1.15 clients can filter it:
    census_builder/soma/enumerations.py); observation_joinid is a plain string. Reads decode to the same
    strings."""
    tiledb_schema = tiledb.ArraySchema.load(uri)
    labels = {tiledb_schema.attr(i).name: tiledb_schema.attr(i).enum_label for i in range(tiledb_schema.nattr)}
    with soma.DataFrame.open(uri) as df:
        schema = df.schema
        encoded = [c for c in string_columns if c != "observation_joinid"]
        enums = df.get_enumeration_values(encoded)
        table = df.read().concat()
    assert schema.field("observation_joinid").type == pa.large_string()
    for name in encoded:
        t = schema.field(name).type
        values = sorted(set(table.column(name).combine_chunks().dictionary_decode().to_pylist()))
        assert enums[name].to_pylist() == values, name
        assert t == pa.dictionary(pa.int8(), pa.large_string()), (name, t)  # a few values each here
    assert labels == {c: c if c in encoded else None for c in labels}, labels
    assert set(encoded) <= set(labels)
    assert table.num_rows > 0

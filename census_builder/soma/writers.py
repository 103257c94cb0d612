"""Creating and writing the release's TileDB-SOMA objects: the empty structure, dataframes, X and COO arrays.

Where each object lives is :mod:`census_builder.soma.layout`'s; value encodings come from the
:class:`~census_builder.census.schema.CensusSchema`; TileDB settings from :mod:`census_builder.soma.platform`;
consolidation and fragment maintenance from :mod:`census_builder.soma.consolidation`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import tiledbsoma as soma

from census_builder.census.schema import CensusSchema, Column
from census_builder.errors import StorageError
from census_builder.soma import layout as names
from census_builder.soma.enumerations import name_enumerations_like_columns
from census_builder.soma.layout import ReleaseLayout
from census_builder.soma.platform import (
    DATAFRAME_PLATFORM_CONFIG,
    context,
    obs_field_type,
    x_platform_config,
    x_write_context,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentShape:
    """The obs and var lengths of one organism's experiment."""

    n_obs: int
    n_var: int


def create_release(
    release: ReleaseLayout,
    shapes: Mapping[str, ExperimentShape],
    n_datasets: int,
    spatial: Mapping[str, ExperimentShape] | None = None,
    obs_values: Mapping[tuple[str, str], Mapping[str, Sequence[str]]] | None = None,
) -> None:
    """Create the whole, empty release structure (census_info tables are written later, in full).

    X layers and the presence matrix get the value types the schema gives them. ``spatial``: the organisms of
    census_spatial_sequencing (Census 2.4.0), whose experiments get X["raw"] only and the spatial obs columns;
    their scenes and obs_spatial_presence are written by build/spatial.py. ``obs_values``: per (experiment,
    organism), every value of each dictionary-encoded obs column (platform.obs_field_type), which becomes
    the column's enumeration; a column not listed gets an empty enumeration with int32 indices, which only
    a single writer may extend.
    """
    schema = release.schema
    with soma.Collection.create(release.root, context=context()) as root:  # type: ignore[var-annotated]
        root.add_new_collection(names.CENSUS_INFO)
        data = root.add_new_collection(names.CENSUS_DATA)
        for organism, shape in shapes.items():
            values = (obs_values or {}).get((names.CENSUS_DATA, organism), {})
            _add_experiment(schema, release.experiment(organism), data, shape, schema.obs, n_datasets, values)
        if spatial:
            from census_builder.census.spatial import spatial_obs

            collection = root.add_new_collection(names.CENSUS_SPATIAL)
            for organism, shape in spatial.items():
                layout = release.experiment(organism, names.CENSUS_SPATIAL)
                values = (obs_values or {}).get((names.CENSUS_SPATIAL, organism), {})
                exp = _add_experiment(schema, layout, collection, shape, spatial_obs(schema), n_datasets, values)
                exp.add_new_collection(names.SPATIAL)  # the scenes, one per dataset


def _add_experiment(
    release_schema: CensusSchema,
    layout: names.ExperimentLayout,
    parent: Any,
    shape: ExperimentShape,
    obs: tuple[Column, ...],
    n_datasets: int,
    obs_values: Mapping[str, Sequence[str]],
) -> Any:
    """Create one organism's empty experiment in ``parent``: obs, ms[measurement] with var, X layers, presence."""
    schema = CensusSchema.arrow_schema
    exp = parent.add_new_collection(layout.organism, soma.Experiment)
    obs_schema = obs_arrow_schema(obs, obs_values)
    obs_df = exp.add_new_dataframe(
        names.OBS,
        schema=obs_schema,
        index_column_names=["soma_joinid"],
        domain=[(0, max(shape.n_obs, 1) - 1)],
        platform_config=DATAFRAME_PLATFORM_CONFIG,
    )
    obs_df.close()  # its schema changes here: later handles must load the new one
    name_enumerations_like_columns(obs_df.uri)  # for clients with tiledbsoma 1.15 (soma/enumerations.py)
    enumerations = {
        f.name: pa.array(sorted(set(obs_values[f.name])), type=pa.large_string())
        for f in obs_schema
        if pa.types.is_dictionary(f.type) and obs_values.get(f.name)
    }
    if enumerations:
        with soma.DataFrame.open(obs_df.uri, "w", context=context()) as reopened:
            reopened.extend_enumeration_values(enumerations)
    ms = exp.add_new_collection(names.MS)
    rna = ms.add_new_collection(release_schema.measurement, soma.Measurement)
    rna.add_new_dataframe(
        names.VAR,
        schema=schema(release_schema.var),
        index_column_names=["soma_joinid"],
        domain=[(0, max(shape.n_var, 1) - 1)],
        platform_config=DATAFRAME_PLATFORM_CONFIG,
    )
    x = rna.add_new_collection(names.X)
    for layer in layout.x_layers:
        x.add_new_sparse_ndarray(
            layer,
            type=release_schema.x_layer_arrow_type(layer),
            shape=(shape.n_obs, shape.n_var),
            platform_config=x_platform_config(layer),
        )
    rna.add_new_sparse_ndarray(
        release_schema.presence_matrix, type=release_schema.presence_arrow_type, shape=(n_datasets, shape.n_var)
    )
    return exp


def obs_arrow_schema(columns: tuple[Column, ...], values: Mapping[str, Sequence[str]]) -> pa.Schema:
    """Return the stored Arrow schema of an obs dataframe: string columns dictionary-encoded (platform.obs_field_type),
    their index type sized for ``values`` (column -> every value; int32 when not given)."""
    fields = []
    for c in columns:
        n_values = len(set(values[c.name])) if values.get(c.name) else 2**31 - 1
        fields.append(pa.field(c.name, obs_field_type(c.name, c.arrow_type, n_values), nullable=False))
    return pa.schema(fields)


def as_stored(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with its string columns dictionary-encoded where ``schema`` (an array's) stores them so."""
    columns = []
    for name in table.column_names:
        col = table.column(name)
        t = schema.field(name).type
        if pa.types.is_dictionary(t) and not col.type.equals(t):
            col = col.cast(t.value_type).combine_chunks().dictionary_encode().cast(t)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=pa.schema([schema.field(n) for n in table.column_names]))


def arrow_table(columns: tuple[Column, ...], data: Mapping[str, Any]) -> pa.Table:
    """Return ``data`` (column name -> values) as an Arrow table with the schema's encodings."""
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
    """Write rows into the dataframe at ``uri``.

    ``timestamp`` (ms) names the fragment, so that a rerun can delete what an interrupted run wrote.
    """
    with soma.DataFrame.open(uri, "w", context=context(), tiledb_timestamp=timestamp) as df:
        df.write(as_stored(arrow_table(columns, data), df.schema))


def write_coo(uri: str, table: pa.Table) -> None:
    """Write a COO table (see :func:`coo_table`) into the sparse array at ``uri``."""
    with soma.SparseNDArray.open(uri, "w", context=context()) as arr:
        arr.write(table)


def write_x(
    layers: Mapping[str, npt.NDArray[np.floating[Any]]],
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    *,
    row_range: tuple[int, int],
    n_cols: int,
    timestamp: int | None = None,
) -> None:
    """Write one chunk's values into each X array of ``layers``, one fragment per array.

    ``layers`` maps an array's URI to its values, aligned with the coordinates; the values are stored
    with the value type the array was created with (the schema's encoding of that layer).

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
    ctx = x_write_context()
    for uri, values in layers.items():
        with soma.SparseNDArray.open(uri, "w", context=ctx, tiledb_timestamp=timestamp) as arr:
            value_type = arr.schema.field("soma_data").type
            data = pa.array(np.asarray(values, dtype=value_type.to_pandas_dtype()), type=value_type)
            arr.write(pa.table({**dims, "soma_data": data}), platform_config=soma.TileDBWriteOptions(sort_coords=False))


def coo_table(rows: Any, cols: Any, values: Any, value_type: pa.DataType) -> pa.Table:
    """Return a COO table (soma_dim_0, soma_dim_1, soma_data) with ``value_type`` values."""
    return pa.table(
        {
            "soma_dim_0": pa.array(rows, type=pa.int64()),
            "soma_dim_1": pa.array(cols, type=pa.int64()),
            "soma_data": pa.array(values, type=value_type),
        }
    )

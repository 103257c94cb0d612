"""The writers take X and presence value types from the schema, not from code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import tiledbsoma as soma

from census_builder.census.schema import load_schema
from census_builder.soma import writers
from census_builder.soma.layout import ReleaseLayout


def test_x_and_presence_types_follow_the_schema(tmp_path: Path) -> None:
    schema = dataclasses.replace(
        load_schema("1.3.0"), x_layer_encodings={"raw": "int64", "normalized": "float32"}, presence_encoding="int64"
    )
    layout = ReleaseLayout(str(tmp_path / "soma"), schema)
    writers.create_release(layout, {"homo_sapiens": writers.ExperimentShape(4, 3)}, n_datasets=1)
    exp = layout.experiment("homo_sapiens")
    rows, cols = np.array([0, 1], dtype=np.int64), np.array([2, 0], dtype=np.int64)
    writers.write_x(
        {exp.x_layer("raw"): np.array([3.0, 5.0]), exp.x_layer("normalized"): np.array([0.25, 0.75])},
        rows,
        cols,
        row_range=(0, 4),
        n_cols=3,
    )
    with soma.SparseNDArray.open(exp.x_layer("raw")) as raw:
        assert raw.schema.field("soma_data").type == pa.int64()
        assert raw.read().tables().concat()["soma_data"].to_pylist() == [3, 5]
    with soma.SparseNDArray.open(exp.x_layer("normalized")) as norm:
        assert norm.schema.field("soma_data").type == pa.float32()
    with soma.SparseNDArray.open(exp.presence) as presence:
        assert presence.schema.field("soma_data").type == pa.int64()

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


def test_enumeration_index_type_is_the_smallest_that_fits() -> None:
    from census_builder.soma.platform import enumeration_index_type

    assert [enumeration_index_type(n) for n in (1, 127, 128, 32_767, 32_768)] == [
        pa.int8(),
        pa.int8(),
        pa.int16(),
        pa.int16(),
        pa.int32(),
    ]


def test_obs_enumerations_are_created_with_the_release_and_writes_do_not_evolve_the_schema(tmp_path: Path) -> None:
    """obs string columns are enumerations holding every value given at creation (sorted), observation_joinid a
    plain string; writing rows of those values (plain or dictionary strings, as obs tasks do concurrently)
    adds no schema version."""
    schema = load_schema("1.3.0")
    layout = ReleaseLayout(str(tmp_path / "soma"), schema)
    values = {c.name: ["x", "lung"] for c in schema.obs if c.encoding == "string"}
    values.update(dataset_id=["ds-b", "ds-a"], cell_type=["T cell", "B cell"] + [f"type {i}" for i in range(200)])
    writers.create_release(
        layout,
        {"homo_sapiens": writers.ExperimentShape(2, 3)},
        n_datasets=1,
        obs_values={("census_data", "homo_sapiens"): values},
    )
    uri = layout.experiment("homo_sapiens").obs
    with soma.DataFrame.open(uri) as df:
        types = {f.name: f.type for f in df.schema}
        assert df.get_enumeration_values(["dataset_id"])["dataset_id"].to_pylist() == ["ds-a", "ds-b"]
    assert types["dataset_id"] == pa.dictionary(pa.int8(), pa.large_string())
    assert types["cell_type"] == pa.dictionary(pa.int16(), pa.large_string())  # 202 values
    assert types["tissue"] == pa.dictionary(pa.int8(), pa.large_string())
    no_values = writers.obs_arrow_schema(schema.obs, {})  # a column without values: room for any number
    assert no_values.field("tissue").type == pa.dictionary(pa.int32(), pa.large_string())
    assert types["observation_joinid"] == pa.large_string()
    versions = sorted(p.name for p in (Path(uri) / "__schema").iterdir() if p.name.startswith("__"))
    fill = {"string": ["x", "x"], "bool": [False, True], "int64": [0, 1], "float32": [0.5, 1.5]}
    data: dict[str, object] = {c.name: fill[c.encoding] for c in schema.obs}
    data["dataset_id"] = pa.array(["ds-b", "ds-a"], pa.large_string()).dictionary_encode()
    data["cell_type"] = ["type 7", "B cell"]
    data["tissue"] = ["lung", "lung"]
    writers.write_dataframe(uri, schema.obs, data)
    assert sorted(p.name for p in (Path(uri) / "__schema").iterdir() if p.name.startswith("__")) == versions
    with soma.DataFrame.open(uri) as df:
        got = df.read(column_names=["dataset_id", "cell_type", "tissue", "observation_joinid"]).concat().to_pydict()
    assert got == {
        "dataset_id": ["ds-b", "ds-a"],
        "cell_type": ["type 7", "B cell"],
        "tissue": ["lung", "lung"],
        "observation_joinid": ["x", "x"],
    }

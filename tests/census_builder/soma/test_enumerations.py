"""Obs enumerations renamed like their columns (census_builder/soma/enumerations.py): the attributes keep their
order, types, fill values and filters; tiledbsoma 2.3 then extends, writes, filters and decodes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tiledb
import tiledbsoma as soma

from census_builder.errors import StorageError
from census_builder.soma.enumerations import name_enumerations_like_columns

ENUM8 = pa.dictionary(pa.int8(), pa.large_string())
SCHEMA = pa.schema(
    [
        pa.field("soma_joinid", pa.int64(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),  # before the first enumeration: left alone
        pa.field("tissue", ENUM8, nullable=False),
        pa.field("observation_joinid", pa.large_string(), nullable=False),
        pa.field("is_primary_data", pa.bool_(), nullable=False),
        pa.field("donor_id", pa.dictionary(pa.int32(), pa.large_string()), nullable=False),
        pa.field("nnz", pa.int64(), nullable=False),
    ]
)
ROWS = pa.table(
    {
        "soma_joinid": pa.array([0, 1, 2], pa.int64()),
        "score": pa.array([0.5, 1.5, 2.5], pa.float32()),
        "tissue": pa.array(["blood", "brain", "blood"]).dictionary_encode(),
        "observation_joinid": pa.array(["j0", "j1", "j2"], pa.large_string()),
        "is_primary_data": [True, False, True],
        "donor_id": pa.array(["d2", "d1", "d2"]).dictionary_encode(),
        "nnz": pa.array([3, 4, 5], pa.int64()),
    }
)


def _attributes(uri: str) -> list[tuple[object, ...]]:
    s = tiledb.ArraySchema.load(uri)
    attrs = [s.attr(i) for i in range(s.nattr)]
    return [(a.name, a.dtype, a.isvar, a.isnullable, str(a.fill), a.filters, a.enum_label) for a in attrs]


@pytest.fixture
def obs(tmp_path: Path) -> str:
    uri = str(tmp_path / "obs")
    soma.DataFrame.create(uri, schema=SCHEMA, index_column_names=["soma_joinid"], domain=[(0, 9)]).close()
    return uri


def test_enumerations_are_renamed_like_their_columns_and_nothing_else_changes(obs: str) -> None:
    before = _attributes(obs)
    assert [a[-1] for a in before] == [None, "tissue_U", None, None, "donor_id_U", None]  # tiledbsoma 2.3's names

    assert name_enumerations_like_columns(obs) == ["tissue", "donor_id"]

    after = _attributes(obs)
    assert [a[-1] for a in after] == [None, "tissue", None, None, "donor_id", None]
    assert [a[:-1] for a in after] == [a[:-1] for a in before]
    assert name_enumerations_like_columns(obs) == []  # already named: nothing to do
    with soma.DataFrame.open(obs) as df:
        assert df.schema == SCHEMA
        assert dict(df.metadata.items())["soma_object_type"] == "SOMADataFrame"
        assert df.domain == ((0, 9),)


def test_tiledbsoma_extends_writes_filters_and_decodes_renamed_enumerations(obs: str) -> None:
    name_enumerations_like_columns(obs)
    with soma.DataFrame.open(obs, "w") as df:
        df.extend_enumeration_values({"tissue": pa.array(["blood", "brain"], pa.large_string())})
    with soma.DataFrame.open(obs, "w") as df:
        df.write(ROWS)  # donor_id's enumeration is extended by the write

    with soma.DataFrame.open(obs) as df:
        enums = df.get_enumeration_values(["tissue", "donor_id"])
        filtered = df.read(value_filter='tissue == "blood" and donor_id == "d2"').concat().to_pandas()
        everything = df.read().concat().to_pandas()
    assert enums["tissue"].to_pylist() == ["blood", "brain"]
    assert enums["donor_id"].to_pylist() == ["d2", "d1"]
    assert filtered["soma_joinid"].tolist() == [0, 2]
    assert str(everything["tissue"].dtype) == "category"
    assert everything["tissue"].tolist() == ["blood", "brain", "blood"]
    assert everything["observation_joinid"].tolist() == ["j0", "j1", "j2"]


def test_enumeration_values_are_kept(obs: str) -> None:
    with soma.DataFrame.open(obs, "w") as df:
        df.extend_enumeration_values({"tissue": pa.array(["blood", "brain", "héart"], pa.large_string())})

    name_enumerations_like_columns(obs)

    with soma.DataFrame.open(obs) as df:
        assert df.get_enumeration_values(["tissue"])["tissue"].to_pylist() == ["blood", "brain", "héart"]


def test_a_dataframe_with_rows_is_refused(obs: str) -> None:
    with soma.DataFrame.open(obs, "w") as df:
        df.write(ROWS)

    with pytest.raises(StorageError) as err:
        name_enumerations_like_columns(obs)

    assert str(err.value) == (
        f"{obs}: cannot rename the obs enumerations of a dataframe that already holds rows; "
        "build it from scratch (census_builder build --restart)"
    )
    assert _attributes(obs)[1][-1] == "tissue_U"


def test_an_enumeration_already_named_like_its_column_is_kept(tmp_path: Path) -> None:
    uri = str(tmp_path / "mixed")
    enums = [
        tiledb.Enumeration("sex", False, values=np.array(["female", "male"], dtype=np.str_), dtype=np.str_),
        tiledb.Enumeration("assay_U", False, values=np.array(["10x"], dtype=np.str_), dtype=np.str_),
    ]
    dim = tiledb.Dim(name="soma_joinid", domain=(0, 9), tile=10, dtype=np.int64)
    attrs = [
        tiledb.Attr(name="sex", dtype=np.int8, enum_label="sex"),
        tiledb.Attr(name="assay", dtype=np.int8, enum_label="assay_U"),
    ]
    schema = tiledb.ArraySchema(domain=tiledb.Domain(dim), attrs=attrs, sparse=True, enums=enums)
    tiledb.Array.create(uri, schema)

    assert name_enumerations_like_columns(uri) == ["assay"]

    assert [a[-1] for a in _attributes(uri)] == ["sex", "assay"]
    with tiledb.open(uri) as array:
        assert array.enum("sex").values().tolist() == ["female", "male"]
        assert array.enum("assay").values().tolist() == ["10x"]

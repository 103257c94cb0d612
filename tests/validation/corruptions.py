"""One-thing-wrong edits of a copied release, written with tiledbsoma the way a buggy writer would.

Each function changes exactly one thing and returns what it changed (dataset, cell, gene, values), so a
test can assert that the validator names it. The release's X arrays allow duplicate coordinates (writing a
coordinate again would keep both entries), so a changed X value deletes the stored entry first, as a
writer that stored the wrong value once would have left it; the other arrays overwrite.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import tiledbsoma as soma

from validation.inputs.source import SourceFile

HUMAN = "census_data/homo_sapiens"
MOUSE = "census_data/mus_musculus"


@dataclass(frozen=True)
class Changed:
    dataset_id: str | None = None
    observation_joinid: str | None = None
    soma_joinid: int | None = None
    feature_id: str | None = None
    expected: Any = None
    found: Any = None


def _cell(root: Path, exp: str, joinid: int) -> dict[str, Any]:
    with soma.DataFrame.open(str(root / exp / "obs")) as df:
        row: dict[str, Any] = df.read(coords=(slice(joinid, joinid),)).concat().to_pylist()[0]
    return row


def _feature_id(root: Path, exp: str, var_joinid: int) -> str:
    with soma.DataFrame.open(str(root / exp / "ms/RNA/var")) as df:
        return str(
            df.read(coords=(slice(var_joinid, var_joinid),), column_names=["feature_id"])
            .concat()
            .column("feature_id")[0]
            .as_py()
        )


def _row_entries(uri: Path, row: int) -> pa.Table:
    with soma.SparseNDArray.open(str(uri)) as arr:
        return arr.read(coords=(slice(row, row),)).tables().concat()


def _write_one(uri: Path, row: int, col: int, value: Any, value_type: pa.DataType) -> None:
    import tiledb

    with soma.SparseNDArray.open(str(uri)) as arr:
        duplicates = bool(arr.schema_config_options().allows_duplicates)
    if duplicates:
        with tiledb.open(str(uri), "d") as a:
            a.query(cond=f"soma_dim_0 == {row} and soma_dim_1 == {col}").submit()
        time.sleep(0.002)  # the write's timestamp (ms) after the delete's
    with soma.SparseNDArray.open(str(uri), "w") as arr:
        arr.write(
            pa.table(
                {
                    "soma_dim_0": pa.array([row], pa.int64()),
                    "soma_dim_1": pa.array([col], pa.int64()),
                    "soma_data": pa.array([value], value_type),
                }
            )
        )


def drop_cell(root: Path) -> Changed:
    cell = _cell(root, HUMAN, 5)
    with soma.DataFrame.open(str(root / HUMAN / "obs"), "d") as df:
        df.delete_cells(coords=(slice(5, 5),))
    return Changed(cell["dataset_id"], cell["observation_joinid"], 5)


def add_cell(root: Path) -> Changed:
    uri = str(root / HUMAN / "obs")
    with soma.DataFrame.open(uri) as df:
        row = df.read(coords=(slice(3, 3),)).concat()
        n = int(df.count)
    with soma.DataFrame.open(uri, "w") as df:
        df.change_domain(((0, n),))
    row = row.set_column(row.column_names.index("soma_joinid"), "soma_joinid", pa.array([n], pa.int64()))
    row = row.set_column(
        row.column_names.index("observation_joinid"),
        "observation_joinid",
        pa.array(["not-a-source-cell"], pa.large_string()),
    )
    with soma.DataFrame.open(uri, "w") as df:
        df.write(row)
    return Changed(row.column("dataset_id")[0].as_py(), "not-a-source-cell", n)


def perturb_raw(root: Path, exp: str = HUMAN, row: int = 10, delta: float = 1.0) -> Changed:
    uri = root / exp / "ms/RNA/X/raw"
    t = _row_entries(uri, row)
    col, value = int(t.column("soma_dim_1")[0].as_py()), float(t.column("soma_data")[0].as_py())
    _write_one(uri, row, col, value + delta, pa.float32())
    cell = _cell(root, exp, row)
    return Changed(
        cell["dataset_id"], cell["observation_joinid"], row, _feature_id(root, exp, col), value, value + delta
    )


def stray_value(root: Path) -> Changed:
    """A count in X['raw'] at a gene the cell's dataset does not measure at all."""
    uri = root / HUMAN / "ms/RNA/X/raw"
    cell = _cell(root, HUMAN, 10)
    with SourceFile(root.parent / "h5ads" / f"{cell['dataset_id']}.h5ad") as src:
        measured = set(src.index(src.counts().var))
    with soma.DataFrame.open(str(root / HUMAN / "ms/RNA/var")) as var:
        ids = var.read(column_names=["soma_joinid", "feature_id"]).concat().to_pydict()
    col = next(j for j, f in zip(ids["soma_joinid"], ids["feature_id"], strict=True) if f not in measured)
    _write_one(uri, 10, col, 5.0, pa.float32())
    return Changed(cell["dataset_id"], cell["observation_joinid"], 10, _feature_id(root, HUMAN, col), "absent", 5.0)


def duplicate_raw(root: Path) -> Changed:
    """A count stored twice at one coordinate, the same value: X allows duplicate coordinates, TileDB keeps both
    and a reader gets both back (the second is an entry the source does not have)."""
    uri = root / HUMAN / "ms/RNA/X/raw"
    t = _row_entries(uri, 10).slice(0, 1)
    with soma.SparseNDArray.open(str(uri), "w") as arr:
        arr.write(t)
    col, value = int(t.column("soma_dim_1")[0].as_py()), float(t.column("soma_data")[0].as_py())
    cell = _cell(root, HUMAN, 10)
    return Changed(cell["dataset_id"], cell["observation_joinid"], 10, _feature_id(root, HUMAN, col), None, value)


def perturb_mouse_raw(root: Path) -> Changed:
    return perturb_raw(root, MOUSE, row=300, delta=2.0)  # mouse-blood-raw: counts from raw.X, duplicates summed


def explicit_zero(root: Path) -> Changed:
    uri = root / HUMAN / "ms/RNA/X/raw"
    stored = set(_row_entries(uri, 10).column("soma_dim_1").to_pylist())
    col = next(j for j in range(10_000) if j not in stored)
    _write_one(uri, 10, col, 0.0, pa.float32())
    cell = _cell(root, HUMAN, 10)
    return Changed(cell["dataset_id"], cell["observation_joinid"], 10, _feature_id(root, HUMAN, col), None, 0.0)


def swap_var_genes(root: Path) -> Changed:
    uri = str(root / HUMAN / "ms/RNA/var")
    with soma.DataFrame.open(uri) as df:
        rows = df.read(coords=([3, 4],)).concat()
    swapped = rows
    for c in ("feature_id", "feature_name", "feature_length"):
        i = swapped.column_names.index(c)
        swapped = swapped.set_column(i, c, rows.column(c).take([1, 0]))
    with soma.DataFrame.open(uri, "w") as df:
        df.write(swapped)
    ids = rows.column("feature_id").to_pylist()
    return Changed(feature_id=ids[0], expected=ids[0], found=ids[1])


def raw_as_float64(root: Path) -> Changed:
    """Re-create X['raw'] with float64 values (same coordinates and values)."""
    uri = root / HUMAN / "ms/RNA/X/raw"
    with soma.SparseNDArray.open(str(uri)) as arr:
        table = arr.read().tables().concat()
        shape = tuple(int(s) for s in arr.shape)
    shutil.rmtree(uri)
    with soma.SparseNDArray.create(str(uri), type=pa.float64(), shape=shape) as arr:
        arr.write(table.set_column(2, "soma_data", table.column("soma_data").cast(pa.float64())))
    return Changed(expected="float32", found="double")


def drop_summary_row(root: Path) -> Changed:
    with soma.DataFrame.open(str(root / "census_info/summary"), "d") as df:
        df.delete_cells(value_filter="label == 'unique_cell_count'")
    return Changed(found="absent")


def flip_presence_bit(root: Path) -> Changed:
    uri = root / HUMAN / "ms/RNA/feature_dataset_presence_matrix"
    col = int(_row_entries(uri, 0).column("soma_dim_1")[0].as_py())
    _write_one(uri, 0, col, False, pa.bool_())
    with soma.DataFrame.open(str(root / "census_info/datasets")) as df:
        ds = df.read(coords=(slice(0, 0),), column_names=["dataset_id"]).concat().column("dataset_id")[0].as_py()
    return Changed(ds, feature_id=_feature_id(root, HUMAN, col), expected=True, found=False)


def normalized_off(root: Path, *, factor: float = 1.0, add: float = 1.0) -> Changed:
    uri = root / HUMAN / "ms/RNA/X/normalized"
    t = _row_entries(uri, 20)
    col, value = int(t.column("soma_dim_1")[0].as_py()), float(t.column("soma_data")[0].as_py())
    _write_one(uri, 20, col, value * factor + add, pa.float32())
    cell = _cell(root, HUMAN, 20)
    return Changed(cell["dataset_id"], cell["observation_joinid"], 20, _feature_id(root, HUMAN, col), value)


def normalized_slightly_off(root: Path) -> Changed:
    return normalized_off(root, factor=1 + 1e-4, add=0.0)  # over three times the tolerance (2**-15)


def change_cell_type(root: Path) -> Changed:
    uri = str(root / MOUSE / "obs")
    with soma.DataFrame.open(uri) as df:
        row = df.read(coords=(slice(7, 7),)).concat()
    before = row.column("cell_type")[0].as_py()
    after = "neuron" if before != "neuron" else "B cell"
    stored = row.schema.field("cell_type").type  # dictionary-encoded in our releases: an enumeration value
    value = pa.array([after], pa.large_string())
    value = value.dictionary_encode().cast(stored) if pa.types.is_dictionary(stored) else value
    row = row.set_column(row.column_names.index("cell_type"), "cell_type", value)
    with soma.DataFrame.open(uri, "w") as df:
        df.write(row)
    return Changed(
        row.column("dataset_id")[0].as_py(),
        row.column("observation_joinid")[0].as_py(),
        7,
        expected=before,
        found=after,
    )


def plain_string_obs(root: Path) -> None:
    """Rewrite both experiments' obs with plain string columns (the same values), as a tool that does not
    dictionary-encode would store them. Not a corruption: the values are the same."""
    for exp in (HUMAN, MOUSE):
        uri = root / exp / "obs"
        with soma.DataFrame.open(str(uri)) as df:
            table = df.read().concat()
            domain = df.domain
        fields = [
            pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type, nullable=f.nullable)
            for f in table.schema
        ]
        plain = pa.Table.from_arrays(
            [c.cast(f.type) for c, f in zip(table.columns, fields, strict=True)], schema=pa.schema(fields)
        )
        assert any(pa.types.is_dictionary(t) for t in table.schema.types)  # it was dictionary-encoded
        tmp = uri.with_name("obs-plain")
        with soma.DataFrame.create(
            str(tmp), schema=plain.schema, index_column_names=["soma_joinid"], domain=domain
        ) as df:
            df.write(plain)
        shutil.rmtree(uri)
        tmp.rename(uri)


def change_raw_sum(root: Path) -> Changed:
    uri = str(root / HUMAN / "obs")
    with soma.DataFrame.open(uri) as df:
        row = df.read(coords=(slice(30, 30),)).concat()
    before = float(row.column("raw_sum")[0].as_py())
    row = row.set_column(row.column_names.index("raw_sum"), "raw_sum", pa.array([before + 1], pa.float32()))
    with soma.DataFrame.open(uri, "w") as df:
        df.write(row)
    return Changed(
        row.column("dataset_id")[0].as_py(),
        row.column("observation_joinid")[0].as_py(),
        30,
        expected=before,
        found=before + 1,
    )


def change_cell_count(root: Path) -> Changed:
    uri = str(root / "census_info/summary_cell_counts")
    with soma.DataFrame.open(uri) as df:
        t = df.read(value_filter="category == 'cell_type' and organism == 'Mus musculus'").concat()
    row = t.slice(0, 1)
    before = int(row.column("total_cell_count")[0].as_py())
    row = row.set_column(
        row.column_names.index("total_cell_count"), "total_cell_count", pa.array([before + 1], pa.int64())
    )
    with soma.DataFrame.open(uri, "w") as df:
        df.write(row)
    return Changed(expected=before, found=before + 1)


def remove_h5ad_copy(root: Path) -> Changed:
    with soma.DataFrame.open(str(root / "census_info/datasets")) as df:
        row = df.read(coords=(slice(1, 1),)).concat().to_pylist()[0]
    (root.parent / row["dataset_h5ad_path"]).unlink()
    return Changed(row["dataset_id"], found=row["dataset_h5ad_path"])


def drop_mouse_experiment(root: Path) -> Changed:
    data: Any
    with soma.Collection.open(str(root / "census_data"), "w") as data:
        del data["mus_musculus"]
    return Changed(expected="SOMAExperiment", found="absent")

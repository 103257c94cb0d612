"""Where the cube is kept: a SOMA collection and Parquet files under ``DIR/VERSION/gene_expression/``.

gene_expression/
  soma/                         SOMA Collection (metadata: census_version, census_schema_version,
                                method_version, method (JSON), cell_ontology_version)
    <organism>/                 Collection, one per organism with eligible cells
      groups                    DataFrame: soma_joinid, tissue_general_ontology_term_id,
                                cell_type_ontology_term_id, n_cells (rolled up)
      var                       DataFrame: soma_joinid (= the release's var soma_joinid), feature_id
      X/n_expressing            SparseNDArray int64   over (groups soma_joinid, var soma_joinid)
      X/sum, X/sumsq            SparseNDArray float64 (sum and sum of squares of ln(CPTT+1), expressing cells)
      by_<category>/            the same per tissue x cell type x category value: groups (plus
                                <category>_ontology_term_id) and X/{n_expressing,sum,sumsq}; var is shared
  <organism>.parquet            one row per group x gene with n_expressing > 0 (PARQUET_COLUMNS)
  <organism>_by_<category>.parquet   the same plus <category>_ontology_term_id
  gene_expression.json          what was written (see README "Gene Expression")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from census_builder.gene_expression.method import Rolled

TISSUE = "tissue_general_ontology_term_id"
CELL_TYPE = "cell_type_ontology_term_id"
FEATURE = "feature_id"
PARQUET_COLUMNS = (TISSUE, CELL_TYPE, FEATURE, "n_cells", "n_expressing", "mean_expression")
STATS_COLUMNS = (TISSUE, CELL_TYPE, FEATURE, "n_cells", "n_expressing", "sum", "sumsq")
SOMA_DIR = "soma"
SUMMARY_FILE = "gene_expression.json"
MEASURES = (("n_expressing", pa.int64()), ("sum", pa.float64()), ("sumsq", pa.float64()))


def category_column(category: str) -> str:
    """Return the obs column of a group-by category (``sex`` -> ``sex_ontology_term_id``)."""
    return f"{category}_ontology_term_id"


def parquet_name(organism: str, category: str | None = None) -> str:
    """Return the Parquet file name of an organism's cube (``category``: a group-by table)."""
    return f"{organism}.parquet" if category is None else f"{organism}_by_{category}.parquet"


@dataclass(frozen=True)
class GroupTable:
    """One table of an organism's cube, rolled up: its groups' labels and the (group, gene) rows."""

    labels: pd.DataFrame  # one row per group code: TISSUE, CELL_TYPE[, <category>_ontology_term_id]
    rolled: Rolled

    def present(self) -> npt.NDArray[np.int64]:
        """Group codes with cells (after filters and roll-up)."""
        return np.flatnonzero(self.rolled.n_cells > 0).astype(np.int64)


def stats_frame(table: GroupTable, feature_ids: npt.NDArray[Any]) -> pd.DataFrame:
    """Return the table's rows (n_expressing > 0) as a frame: labels, feature_id, n_cells, n_expressing, sum, sumsq."""
    r = table.rolled
    labels = table.labels.iloc[r.group].reset_index(drop=True)
    out = labels.astype(str)
    out[FEATURE] = np.asarray(feature_ids, dtype=object)[r.gene].astype(str)
    out["n_cells"] = r.n_cells[r.group].astype(np.int64)
    out["n_expressing"] = r.n_expressing.astype(np.int64)
    out["sum"] = r.sum.astype(np.float64)
    out["sumsq"] = r.sumsq.astype(np.float64)
    return out


def _strings(codes: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> pa.Array:
    """``values[codes]`` as an Arrow string array, made from a dictionary (no Python string per row)."""
    dictionary = pa.array([str(v) for v in values], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary).dictionary_decode()


def write_parquet(table: GroupTable, feature_ids: npt.NDArray[Any], path: Path) -> None:
    """Write a table's rows (n_expressing > 0) as the published Parquet columns (PARQUET_COLUMNS, then the
    category column of a group-by table); mean_expression = sum / n_expressing."""
    r = table.rolled
    columns: dict[str, pa.Array] = {}
    for c in (TISSUE, CELL_TYPE):
        uniq, inv = np.unique(table.labels[c].astype(str).to_numpy(), return_inverse=True)
        columns[c] = _strings(inv[r.group], uniq)
    columns[FEATURE] = _strings(r.gene, np.asarray(feature_ids))
    columns["n_cells"] = pa.array(r.n_cells[r.group].astype(np.int64))
    columns["n_expressing"] = pa.array(r.n_expressing.astype(np.int64))
    columns["mean_expression"] = pa.array(r.sum / r.n_expressing)
    for c in table.labels.columns:
        if c not in (TISSUE, CELL_TYPE):
            uniq, inv = np.unique(table.labels[c].astype(str).to_numpy(), return_inverse=True)
            columns[c] = _strings(inv[r.group], uniq)
    pq.write_table(pa.table(columns), path)


def write_soma_organism(
    root: Any, organism: str, feature_ids: npt.NDArray[Any], tables: Mapping[str, GroupTable], context: Any = None
) -> None:
    """Add ``organism``'s collection to the open (writable) root collection ``root``.

    ``tables``: "" for the tissue x cell type table, the category name for each group-by table.
    """
    org = root.add_new_collection(organism)
    n_var = len(feature_ids)
    var = pa.table(
        {"soma_joinid": pa.array(np.arange(n_var, dtype=np.int64)), FEATURE: pa.array(list(map(str, feature_ids)))}
    )
    with org.add_new_dataframe(
        "var", schema=var.schema, index_column_names=("soma_joinid",), domain=((0, max(n_var - 1, 0)),)
    ) as df:
        df.write(var)
    for name, table in tables.items():
        coll = org if name == "" else org.add_new_collection(f"by_{name}")
        _write_table(coll, table, n_var)


def _write_table(coll: Any, table: GroupTable, n_var: int) -> None:
    present = table.present()
    new_id = np.full(len(table.labels), -1, np.int64)
    new_id[present] = np.arange(present.size, dtype=np.int64)
    labels = table.labels.iloc[present].reset_index(drop=True)
    cols: dict[str, Any] = {"soma_joinid": pa.array(np.arange(present.size, dtype=np.int64))}
    for c in labels.columns:
        cols[c] = pa.array(labels[c].astype(str).tolist(), pa.string())
    cols["n_cells"] = pa.array(table.rolled.n_cells[present].astype(np.int64))
    groups = pa.table(cols)
    n_groups = max(present.size, 1)
    with coll.add_new_dataframe(
        "groups", schema=groups.schema, index_column_names=("soma_joinid",), domain=((0, n_groups - 1),)
    ) as df:
        df.write(groups)
    x = coll.add_new_collection("X")
    r = table.rolled
    dim0 = pa.array(new_id[r.group])
    dim1 = pa.array(r.gene.astype(np.int64))
    for name, typ in MEASURES:
        with x.add_new_sparse_ndarray(name, type=typ, shape=(n_groups, max(n_var, 1))) as arr:
            values = np.asarray(getattr(r, name))
            arr.write(pa.table({"soma_dim_0": dim0, "soma_dim_1": dim1, "soma_data": pa.array(values)}))


def read_organism_stats(soma_uri: str, organism: str, category: str | None = None) -> pd.DataFrame:
    """Read one organism's table back from the SOMA collection as a stats frame (STATS_COLUMNS, plus the category)."""
    import tiledbsoma as soma

    root: Any
    with soma.Collection.open(soma_uri) as root:
        org = root[organism]
        coll = org if category is None else org[f"by_{category}"]
        groups = coll["groups"].read().concat().to_pandas().set_index("soma_joinid")
        features = org["var"].read().concat().to_pandas().set_index("soma_joinid")[FEATURE]
        parts = {}
        for name, _ in MEASURES:
            t = coll["X"][name].read().tables().concat()
            parts[name] = t.to_pandas().sort_values(["soma_dim_0", "soma_dim_1"]).reset_index(drop=True)
    base = parts["n_expressing"]
    label_cols = [c for c in groups.columns if c != "n_cells"]
    out: pd.DataFrame = groups.loc[base["soma_dim_0"].to_numpy(), label_cols].reset_index(drop=True)
    out[FEATURE] = features.loc[base["soma_dim_1"].to_numpy()].to_numpy()
    out["n_cells"] = groups.loc[base["soma_dim_0"].to_numpy(), "n_cells"].to_numpy()
    for name, _ in MEASURES:
        out[name] = parts[name]["soma_data"].to_numpy()
    return out


MARKER_COLUMNS = (TISSUE, CELL_TYPE, FEATURE, "effect_size", "rank")


def markers_name(organism: str) -> str:
    """Return the Parquet file name of an organism's marker genes."""
    return f"{organism}_markers.parquet"


def write_markers(markers: pd.DataFrame, path: Path) -> None:
    """Write marker genes (MARKER_COLUMNS: ids as strings, effect_size float64, rank int64)."""
    fields = [pa.field(c, pa.string()) for c in (TISSUE, CELL_TYPE, FEATURE)]
    fields += [pa.field("effect_size", pa.float64()), pa.field("rank", pa.int64())]
    frame = markers[list(MARKER_COLUMNS)].reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False), path)


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    """Write gene_expression.json."""
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def file_list(organism: str, categories: Sequence[str], *, markers: bool = False) -> list[str]:
    """Return the Parquet files written for an organism with eligible cells."""
    out = [parquet_name(organism), *(parquet_name(organism, c) for c in categories)]
    if markers:
        out.append(markers_name(organism))
    return out

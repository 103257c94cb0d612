"""An independent writer of a different numbering: copy a release and rewrite every numbered array under
permutations, with tiledbsoma directly (nothing from census_builder or validation).

The Census schema fixes what a release holds, not how it numbers it: cells, genes and datasets may take any
soma_joinids 0..n-1. ``renumber`` reads each dataframe and array of a release whole (test releases are tiny),
maps its soma_joinids / coordinates through a permutation (new joinid = ``perm[old joinid]``) and writes it
again into fresh TileDB objects at the same place in the copy. A ``defect`` hook may then change the tables
in memory (in the new numbering) before they are written: one planted error per test.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import tiledbsoma as soma

ORGANISMS = ("homo_sapiens", "mus_musculus")
X_LAYERS = ("raw", "normalized")
PRESENCE = "feature_dataset_presence_matrix"


@dataclass(frozen=True)
class Numbering:
    cells: str = "same"  # "same" | "shuffled" (random, across datasets) | "runs" (datasets' runs in reverse order)
    genes: str = "same"  # "same" | "reversed" | "shuffled"
    datasets: str = "same"  # "same" | "reversed" | "mouse-first"
    presence_height: str = "all"  # "all": one row per datasets row; "organism": rows of its datasets when they fit
    list_empty_datasets: bool = False  # datasets without cells listed in census_info['datasets'] with 0 cells
    summary_rows_reversed: bool = False
    seed: int = 0


@dataclass
class Experiment:
    obs: pa.Table
    var: pa.Table
    x: dict[str, pa.Table]  # layer -> soma_dim_0, soma_dim_1, soma_data
    presence: pa.Table
    presence_height: int = 0


@dataclass
class Release:
    """Every numbered table of a release, in memory, after renumbering (what a defect hook edits)."""

    datasets: pa.Table
    summary_cell_counts: pa.Table
    experiments: dict[str, Experiment] = field(default_factory=dict)


def _read_df(uri: Path) -> pa.Table:
    with soma.DataFrame.open(str(uri)) as df:
        return df.read().concat()


def _read_nd(uri: Path) -> tuple[pa.Table, tuple[int, ...], pa.DataType]:
    with soma.SparseNDArray.open(str(uri)) as arr:
        return arr.read().tables().concat(), tuple(int(s) for s in arr.shape), arr.schema.field("soma_data").type


def _set(table: pa.Table, name: str, values: Any) -> pa.Table:
    i = table.column_names.index(name)
    return table.set_column(i, name, pa.array(values, table.schema.field(name).type))


def _renumber_df(table: pa.Table, perm: npt.NDArray[np.int64]) -> pa.Table:
    new = perm[np.asarray(table.column("soma_joinid").to_numpy(), dtype=np.int64)]
    table = _set(table, "soma_joinid", new)
    return table.take(pa.array(np.argsort(new, kind="stable")))


def renumber_nd(table: pa.Table, rows: npt.NDArray[np.int64] | None, cols: npt.NDArray[np.int64] | None) -> pa.Table:
    r = np.asarray(table.column("soma_dim_0").to_numpy(), dtype=np.int64)
    c = np.asarray(table.column("soma_dim_1").to_numpy(), dtype=np.int64)
    r = rows[r] if rows is not None else r
    c = cols[c] if cols is not None else c
    table = _set(_set(table, "soma_dim_0", r), "soma_dim_1", c)
    return table.take(pa.array(np.lexsort((c, r))))


def _write_df(uri: Path, table: pa.Table) -> None:
    shutil.rmtree(uri)
    n = max(table.num_rows, 1)
    with soma.DataFrame.create(
        str(uri), schema=table.schema, index_column_names=["soma_joinid"], domain=[(0, n - 1)]
    ) as df:
        if table.num_rows:
            df.write(table)


def _write_nd(uri: Path, table: pa.Table, shape: tuple[int, int], value_type: pa.DataType) -> None:
    shutil.rmtree(uri)
    with soma.SparseNDArray.create(str(uri), type=value_type, shape=shape) as arr:
        if table.num_rows:
            arr.write(table)


def _cell_perm(obs: pa.Table, how: str, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    n = obs.num_rows
    if how == "same":
        return np.arange(n, dtype=np.int64)
    if how == "shuffled":
        return rng.permutation(n).astype(np.int64)
    if how == "runs":  # each dataset's cells stay one run in source order; the runs in reverse dataset order
        ds = np.asarray(obs.column("dataset_id").to_pylist(), dtype=object)
        order: list[int] = []
        for d in reversed(list(dict.fromkeys(ds))):
            order.extend(np.flatnonzero(ds == d).tolist())
        perm = np.empty(n, dtype=np.int64)
        perm[np.asarray(order, dtype=np.int64)] = np.arange(n)
        return perm
    raise ValueError(how)


def _gene_perm(n: int, how: str, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    if how == "same":
        return np.arange(n, dtype=np.int64)
    if how == "reversed":
        return np.arange(n, dtype=np.int64)[::-1].copy()
    if how == "shuffled":
        return rng.permutation(n).astype(np.int64)
    raise ValueError(how)


def _dataset_perm(table: pa.Table, how: str, organism_of: dict[str, str]) -> npt.NDArray[np.int64]:
    ids = table.column("dataset_id").to_pylist()
    n = len(ids)
    if how == "same":
        return np.arange(n, dtype=np.int64)
    if how == "reversed":
        return np.arange(n, dtype=np.int64)[::-1].copy()
    if how == "mouse-first":  # mouse datasets take the lowest joinids, in reverse order
        order = [k for k in reversed(range(n)) if organism_of.get(ids[k]) == "mus_musculus"]
        order += [k for k in range(n) if organism_of.get(ids[k]) != "mus_musculus"]
        perm = np.empty(n, dtype=np.int64)
        perm[np.asarray(order, dtype=np.int64)] = np.arange(n)
        return perm
    raise ValueError(how)


def _empty_rows(release_dir: Path, manifest: Path, datasets: pa.Table) -> pa.Table:
    """Rows (0 cells) for the manifest's datasets the datasets table does not list; their h5ads copied."""
    listed = set(datasets.column("dataset_id").to_pylist())
    rows: list[dict[str, Any]] = []
    with manifest.open(newline="", encoding="utf-8") as f:
        for entry in csv.DictReader(f):
            ds = entry["dataset_id"]
            if ds in listed:
                continue
            shutil.copyfile(manifest.parent / entry["h5ad_uri"], release_dir / "h5ads" / f"{ds}.h5ad")
            row: dict[str, Any] = {name: "" for name in datasets.column_names}
            row.update({k: v for k, v in entry.items() if k in row and k != "h5ad_uri"})
            row.update(
                dataset_id=ds,
                dataset_total_cell_count=0,
                dataset_h5ad_path=f"h5ads/{ds}.h5ad",
                soma_joinid=datasets.num_rows + len(rows),
            )
            rows.append(row)
    if not rows:
        return datasets
    extra = pa.Table.from_pylist(rows, schema=datasets.schema)
    return pa.concat_tables([datasets, extra])


def renumber(
    release_dir: Path, dest: Path, numbering: Numbering, manifest: Path, defect: Callable[[Release], Any] | None = None
) -> tuple[Path, Any]:
    """Copy the release at ``release_dir`` (DIR/VERSION: soma/ and h5ads/) to ``dest`` renumbered; returns the
    copy's soma/ and what ``defect`` returned."""
    shutil.copytree(release_dir, dest, ignore=shutil.ignore_patterns(".build", "*.json", "*.log"))
    root = dest / "soma"
    rng = np.random.default_rng(numbering.seed)
    info = root / "census_info"
    datasets = _read_df(info / "datasets")
    organism_of: dict[str, str] = {}
    exps: dict[str, Experiment] = {}
    shapes: dict[str, dict[str, tuple[tuple[int, ...], pa.DataType]]] = {}
    for org in ORGANISMS:
        base = root / "census_data" / org
        if not base.exists():
            continue
        obs, var = _read_df(base / "obs"), _read_df(base / "ms/RNA/var")
        for ds in set(obs.column("dataset_id").to_pylist()):
            organism_of[str(ds)] = org
        x: dict[str, pa.Table] = {}
        shapes[org] = {}
        for layer in X_LAYERS:
            x[layer], shape, t = _read_nd(base / "ms/RNA/X" / layer)
            shapes[org][layer] = (shape, t)
        presence, shape, t = _read_nd(base / "ms/RNA" / PRESENCE)
        shapes[org][PRESENCE] = (shape, t)
        exps[org] = Experiment(obs, var, x, presence)

    d_perm = _dataset_perm(datasets, numbering.datasets, organism_of)
    datasets = _renumber_df(datasets, d_perm)
    if numbering.list_empty_datasets:
        datasets = _empty_rows(dest, manifest, datasets)
    counts = _read_df(info / "summary_cell_counts")
    if numbering.summary_rows_reversed:
        counts = _renumber_df(counts, np.arange(counts.num_rows, dtype=np.int64)[::-1].copy())
    release = Release(datasets, counts)
    joinid_of = dict(
        zip(datasets.column("dataset_id").to_pylist(), datasets.column("soma_joinid").to_pylist(), strict=True)
    )
    for org, e in exps.items():
        c_perm = _cell_perm(e.obs, numbering.cells, rng)
        g_perm = _gene_perm(e.var.num_rows, numbering.genes, rng)
        mine = [joinid_of[d] for d in set(e.obs.column("dataset_id").to_pylist())]
        height = datasets.num_rows
        if numbering.presence_height == "organism" and max(mine) < len(mine):
            height = len(mine)
        presence = renumber_nd(e.presence, d_perm, g_perm)
        inside = np.asarray(presence.column("soma_dim_0").to_numpy()) < height  # (rows of other datasets: False)
        release.experiments[org] = Experiment(
            _renumber_df(e.obs, c_perm),
            _renumber_df(e.var, g_perm),
            {layer: renumber_nd(t, c_perm, g_perm) for layer, t in e.x.items()},
            presence.filter(pa.array(inside)),
            height,
        )
    changed = defect(release) if defect is not None else None

    _write_df(info / "datasets", release.datasets)
    _write_df(info / "summary_cell_counts", release.summary_cell_counts)
    for org, e in release.experiments.items():
        base = root / "census_data" / org
        _write_df(base / "obs", e.obs)
        _write_df(base / "ms/RNA/var", e.var)
        for layer, t in e.x.items():
            _write_nd(base / "ms/RNA/X" / layer, t, (e.obs.num_rows, e.var.num_rows), shapes[org][layer][1])
        _write_nd(base / "ms/RNA" / PRESENCE, e.presence, (e.presence_height, e.var.num_rows), shapes[org][PRESENCE][1])
    return root, changed

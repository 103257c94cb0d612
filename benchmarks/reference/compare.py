"""Print every difference between two Census releases, whatever their soma_joinid numbering.

    python -m benchmarks.reference.compare OURS_SOMA REF_SOMA [--limit 20] [--batch-cells 4096]

Both arguments are the ``soma`` collection of a release (a local path or any URI tiledbsoma opens). Exit
status 0 when the releases hold the same content, 1 with a listing of the differences otherwise (at most
``--limit`` examples per place, and the count of all), 2 when a release cannot be read.

What is matched and how (numbering never matters):

- ``census_info`` tables: ``summary`` rows by ``label``, ``datasets`` by ``dataset_id``, ``summary_cell_counts``
  by (``organism``, ``category``, ``ontology_term_id``, ``label``: every suspension_type row has the term
  "na"), ``organisms`` (Census 2.4.0) by ``organism_ontology_term_id``, any other table by all of its columns;
  every column but ``soma_joinid`` (so ``datasets.collection_doi_label`` too). A ``summary`` row on one side
  only (e.g. 1.3.0's ``number_donors_*`` rows, gone in 2.4.0) is a row only in that side.
- Experiments of ``census_data`` by name. One present on one side only is listed with its number of cells (the
  reference writes an experiment for every organism of the schema, with or without cells); one empty on one
  side only is listed as such, and so are its parts (obs, ms/RNA, var) missing on one side. In each experiment
  both sides can read: genes by ``feature_id`` with every ``var`` column; cells by (``dataset_id``,
  ``observation_joinid``) with every ``obs`` column; every X layer entry by (cell, gene): ``raw`` exactly,
  ``normalized`` within ``NORMALIZED_RTOL`` (see below); the presence matrix by (``dataset_id``,
  ``feature_id``), rows found through each release's own ``census_info/datasets``.
- Floating-point ``obs`` / ``var`` columns (per-cell and per-gene statistics) within ``STATS_RTOL``: the same
  sums in another order differ in the last bits. Everything else is compared exactly (nulls equal nulls, NaN
  equals NaN). Column types are compared after decoding dictionaries (a categorical and a plain column of the
  same values are equal); a different value type is listed once per table.

- ``census_spatial_sequencing`` (Census 2.4.0): each experiment as a census_data one (obs with ``in_tissue``,
  ``array_row``, ``array_col``, X ``raw``, var, presence), then ``obs_spatial_presence``, every scene's points,
  radius metadata, images and scale: see ``compare_spatial.py``.

Not compared: collection metadata (but the points' radius metadata) and the storage layout (fragments, tiles,
shapes, schema capacities).

Memory is bounded: ``census_info`` and ``var`` are read whole (small); the ``obs`` column ``dataset_id`` is
streamed to find the datasets; ``obs``, X and the presence matrix are then read one dataset at a time, and a
dataset's cells in batches of ``--batch-cells``. The listing ends with what was compared (cells, genes and
X entries found on both sides), so an empty comparison cannot pass for an equal one, and with the largest
relative difference of the X normalized values it found equal (how close the two roundings are).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import tiledbsoma as soma

from benchmarks.reference.compare_spatial import compare_spatial
from benchmarks.reference.diff import (
    JOINID,
    Report,
    compare_columns,
    compare_schemas,
    compare_tables,
    fmt,
    member_sets,
    plain,
)

logger = logging.getLogger("benchmarks.reference.compare")

# The reference rounds every X normalized value to 15 explicit mantissa bits (round half to even) before it
# writes it: ``_roundHalfToEven(xNormD, keepbits=15)`` in build_soma/experiment_builder.py of
# cellxgene_census_builder, and then stores ``np.finfo(np.float32).smallest_subnormal`` where the rounded value
# is 0. One rounding moves a value by at most half a quantum, 2**-16 relative; two releases that round on
# either side of a tie differ by one quantum, 2**-15 relative. So: |a - b| <= 2**-15 * max(|a|, |b|) + tiny.
NORMALIZED_RTOL = 2.0**-15
NORMALIZED_ATOL = float(np.finfo(np.float32).tiny)  # the subnormal stand-in for 0 equals a true 0 (or none)
STATS_RTOL = 1e-6  # floating obs/var statistics (float32 columns keep about 7 significant digits)
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "summary": ("label",),
    "datasets": ("dataset_id",),
    # suspension_type rows have no term (ontology_term_id "na"): their label tells them apart
    "summary_cell_counts": ("organism", "category", "ontology_term_id", "label"),
    "organisms": ("organism_ontology_term_id",),
}
PRESENCE = "feature_dataset_presence_matrix"
SPATIAL = "census_spatial_sequencing"


def _read_df(df: soma.DataFrame, **kwargs: Any) -> pa.Table:
    return df.read(**kwargs).concat()


def _members(coll: Any) -> set[str]:
    return set(coll.keys())


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class _Side:
    """One experiment of one release, opened, with its genes and datasets resolved."""

    exp: soma.Experiment
    gene_col: npt.NDArray[np.int64]  # var soma_joinid -> column in the union of feature_ids (-1: none)
    dataset_joinid: dict[str, int]  # dataset_id -> soma_joinid in this release's census_info/datasets
    n_genes: int = 0  # size of the union of feature_ids

    @property
    def has_gene(self) -> npt.NDArray[np.bool_]:
        """Whether each column of the union of feature_ids is a gene of this side."""
        out = np.zeros(self.n_genes, dtype=bool)
        out[self.gene_col[self.gene_col >= 0]] = True
        return out

    @property
    def rna(self) -> Any:
        return self.exp.ms["RNA"]


def _layers(exp: soma.Experiment) -> set[str]:
    """Return the X layers of an experiment's RNA measurement (none without an X collection)."""
    rna: Any = exp.ms["RNA"]
    return _members(rna.X) if "X" in rna else set()


def _gene_columns(var: pa.Table, union: dict[str, int]) -> npt.NDArray[np.int64]:
    joinids = np.asarray(var.column(JOINID).to_numpy(), dtype=np.int64)
    size = int(joinids.max()) + 1 if len(joinids) else 0
    out = np.full(size, -1, dtype=np.int64)
    ids = plain(var.column("feature_id")).to_pylist()
    out[joinids] = [union[f] for f in ids]
    return out


def _obs_datasets(exp: soma.Experiment) -> dict[str, int]:
    """Count the cells of each dataset_id in ``obs``, reading that one column in batches."""
    counts: dict[str, int] = defaultdict(int)
    for t in exp.obs.read(column_names=["dataset_id"]):
        vc = pc.value_counts(plain(t.column("dataset_id")))
        for d, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
            counts[str(d)] += int(n)
    return dict(counts)


def _cells(exp: soma.Experiment, dataset_id: str) -> tuple[npt.NDArray[np.int64], list[str]]:
    t = _read_df(
        exp.obs, column_names=[JOINID, "observation_joinid"], value_filter=f"dataset_id == {_quote(dataset_id)}"
    )
    return np.asarray(t.column(JOINID).to_numpy(), dtype=np.int64), plain(t.column("observation_joinid")).to_pylist()


def _x_entries(
    layer: soma.SparseNDArray, joinids: npt.NDArray[np.int64], gene_col: npt.NDArray[np.int64], n_genes: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Return rows ``joinids`` as (sorted key = position * n_genes + gene column, value, unknown genes)."""
    order = np.argsort(joinids, kind="stable")
    sorted_ids = joinids[order]
    t = layer.read(coords=(sorted_ids, slice(None))).tables().concat()
    rows = np.asarray(t.column("soma_dim_0").to_numpy(), dtype=np.int64)
    cols = np.asarray(t.column("soma_dim_1").to_numpy(), dtype=np.int64)
    vals = np.asarray(t.column("soma_data").to_numpy(), dtype=np.float64)
    pos = order[np.searchsorted(sorted_ids, rows)]
    inside = cols < len(gene_col)
    gcol = np.full(len(cols), -1, dtype=np.int64)
    gcol[inside] = gene_col[cols[inside]]
    unknown = cols[gcol < 0]
    keep = gcol >= 0
    key = pos[keep] * n_genes + gcol[keep]
    by_key = np.argsort(key, kind="stable")
    return key[by_key], vals[keep][by_key], unknown


class _Comparer:
    def __init__(self, report: Report, batch_cells: int) -> None:
        self.report = report
        self.batch_cells = batch_cells
        # (place, side, gene column) -> entries at a gene the other side does not have: one line per gene
        self.gene_only: dict[tuple[str, str, int], int] = defaultdict(int)
        self.other_has: dict[str, npt.NDArray[np.bool_]] = {}

    def census_info(self, a: Any, b: Any) -> tuple[dict[str, int], dict[str, int]]:
        """Compare every census_info table; return each side's dataset_id -> soma_joinid."""
        joinids: list[dict[str, int]] = [{}, {}]
        for name in member_sets(self.report, "census_info", _members(a), _members(b), "table"):
            ta, tb = _read_df(a[name]), _read_df(b[name])
            compare_tables(self.report, f"census_info/{name}", ta, tb, TABLE_KEYS.get(name, ()))
        for i, coll in enumerate((a, b)):
            if "datasets" in coll:
                t = _read_df(coll["datasets"], column_names=["dataset_id", JOINID])
                ids = plain(t.column("dataset_id")).to_pylist()
                joinids[i] = dict(zip(ids, t.column(JOINID).to_pylist(), strict=True))
        return joinids[0], joinids[1]

    def experiment(
        self,
        name: str,
        a: soma.Experiment,
        b: soma.Experiment,
        ds_a: dict[str, int],
        ds_b: dict[str, int],
        root: str = "census_data",
    ) -> None:
        where = f"{root}/{name}"
        var_a, var_b = _read_df(a.ms["RNA"].var), _read_df(b.ms["RNA"].var)
        compare_tables(self.report, f"{where}/ms/RNA/var", var_a, var_b, ("feature_id",), STATS_RTOL)
        fa = set(plain(var_a.column("feature_id")).to_pylist())
        fb = set(plain(var_b.column("feature_id")).to_pylist())
        self.report.compared["genes"] += len(fa & fb)
        fids = sorted(fa | fb)
        union = {f: i for i, f in enumerate(fids)}
        sa = _Side(a, _gene_columns(var_a, union), ds_a, len(fids))
        sb = _Side(b, _gene_columns(var_b, union), ds_b, len(fids))
        self.other_has = {"ours": sb.has_gene, "the reference": sa.has_gene}
        self.gene_only.clear()
        obs_schema_a, obs_schema_b = a.obs.schema, b.obs.schema
        compare_schemas(self.report, f"{where}/obs", obs_schema_a, obs_schema_b)
        layers = member_sets(self.report, f"{where}/ms/RNA/X", _layers(a), _layers(b), "layer")
        has_presence = member_sets(
            self.report,
            f"{where}/ms/RNA",
            {PRESENCE} & _members(a.ms["RNA"]),
            {PRESENCE} & _members(b.ms["RNA"]),
            "array",
        )
        in_obs_a, in_obs_b = _obs_datasets(a), _obs_datasets(b)
        for side, in_obs, listed in (("ours", in_obs_a, ds_a), ("the reference", in_obs_b, ds_b)):
            for dataset_id in sorted(set(in_obs) - set(listed)):
                self.report.add(
                    f"{where}/obs",
                    f"dataset_id={dataset_id!r}",
                    f"{in_obs[dataset_id]} cells in {side}, a dataset_id not in its census_info/datasets",
                )
        for dataset_id in sorted(set(in_obs_a) | set(in_obs_b)):
            self.dataset(where, dataset_id, sa, sb, layers, fids)
        if has_presence:
            for dataset_id in sorted(set(ds_a) | set(ds_b)):
                self.presence(where, dataset_id, sa, sb, fids)
        for (place, side, col), count in sorted(self.gene_only.items()):
            what = f"{count} entries" if "/X/" in place else f"present in {count} dataset(s)"
            self.report.add(place, f"feature_id={fids[col]!r}", f"{what} in {side}, a gene only in {side}")

    def dataset(
        self, where: str, dataset_id: str, a: _Side, b: _Side, layers: Sequence[str], fids: Sequence[str]
    ) -> None:
        """Compare one dataset's cells: their obs rows and every X layer."""
        ja, oa = _cells(a.exp, dataset_id)
        jb, ob = _cells(b.exp, dataset_id)
        ma: dict[str, int] = {}
        mb: dict[str, int] = {}
        for side, ids, m in (("ours", oa, ma), ("the reference", ob, mb)):
            for i, oid in enumerate(ids):
                if m.setdefault(oid, i) != i:
                    key = f"dataset_id={dataset_id!r} observation_joinid={oid!r}"
                    self.report.add(f"{where}/obs", key, f"observation_joinid repeated in {side}")
        for side, mine, other in (("ours", ma, mb), ("the reference", mb, ma)):
            for oid in mine:
                if oid not in other:
                    key = f"dataset_id={dataset_id!r} observation_joinid={oid!r}"
                    self.report.add(f"{where}/obs", key, f"cell only in {side}")
        common = sorted(k for k in ma if k in mb)
        self.report.compared["cells"] += len(common)
        for start in range(0, len(common), self.batch_cells):
            batch = common[start : start + self.batch_cells]
            rows_a = ja[np.asarray([ma[k] for k in batch], dtype=np.int64)]
            rows_b = jb[np.asarray([mb[k] for k in batch], dtype=np.int64)]
            self.obs_batch(where, dataset_id, batch, a, b, rows_a, rows_b)
            for layer in layers:
                self.x_batch(where, dataset_id, batch, layer, a, b, rows_a, rows_b, fids)

    def obs_batch(
        self,
        where: str,
        dataset_id: str,
        batch: Sequence[str],
        a: _Side,
        b: _Side,
        rows_a: npt.NDArray[np.int64],
        rows_b: npt.NDArray[np.int64],
    ) -> None:
        ta = _aligned(_read_df(a.exp.obs, coords=(np.sort(rows_a),)), rows_a)
        tb = _aligned(_read_df(b.exp.obs, coords=(np.sort(rows_b),)), rows_b)
        compare_columns(
            self.report,
            f"{where}/obs",
            ta,
            tb,
            lambda i: f"dataset_id={dataset_id!r} observation_joinid={batch[i]!r}",
            [JOINID, "dataset_id", "observation_joinid"],
            STATS_RTOL,
        )

    def x_batch(
        self,
        where: str,
        dataset_id: str,
        batch: Sequence[str],
        layer: str,
        a: _Side,
        b: _Side,
        rows_a: npt.NDArray[np.int64],
        rows_b: npt.NDArray[np.int64],
        fids: Sequence[str],
    ) -> None:
        place = f"{where}/ms/RNA/X/{layer}"
        n = max(len(fids), 1)
        ka, va, ua = _x_entries(a.rna.X[layer], rows_a, a.gene_col, n)
        kb, vb, ub = _x_entries(b.rna.X[layer], rows_b, b.gene_col, n)
        for side, unknown in (("ours", ua), ("the reference", ub)):
            if len(unknown):
                genes = ", ".join(str(int(g)) for g in np.unique(unknown)[:5])
                self.report.add(
                    place,
                    f"dataset_id={dataset_id!r}",
                    f"{len(unknown)} entries in {side} at var soma_joinids not in var ({genes})",
                )

        def key_text(k: int) -> str:
            return f"dataset_id={dataset_id!r} observation_joinid={batch[k // n]!r} feature_id={fids[k % n]!r}"

        for side, mine, vals, other in (("ours", ka, va, kb), ("the reference", kb, vb, ka)):
            only = ~np.isin(mine, other, assume_unique=False)
            gene_only = only & ~self.other_has[side][mine % n]
            for col, count in zip(*np.unique(mine[gene_only] % n, return_counts=True), strict=True):
                self.gene_only[(place, side, int(col))] += int(count)
            for i in np.flatnonzero(only & ~gene_only):
                self.report.add(place, key_text(int(mine[i])), f"entry {fmt(vals[i])} only in {side}")
        common, ia, ib = np.intersect1d(ka, kb, assume_unique=False, return_indices=True)
        self.report.compared[f"X {layer} entries"] += len(common)
        x, y = va[ia], vb[ib]
        if layer == "normalized":
            scale = np.maximum(np.abs(x), np.abs(y))
            bad = ~(np.abs(x - y) <= NORMALIZED_RTOL * scale + NORMALIZED_ATOL)
            if len(x) and (~bad).any():
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = np.where(scale > 0, np.abs(x - y) / scale, 0.0)
                what = "relative difference of X normalized values within tolerance"
                self.report.largest[what] = max(self.report.largest.get(what, 0.0), float(rel[~bad].max()))
        else:
            bad = ~((x == y) | (np.isnan(x) & np.isnan(y)))
        for i in np.flatnonzero(bad):
            self.report.add(place, key_text(int(common[i])), f"{fmt(x[i])} (ours) != {fmt(y[i])} (reference)")

    def presence(self, where: str, dataset_id: str, a: _Side, b: _Side, fids: Sequence[str]) -> None:
        got: list[set[str]] = []
        for side in (a, b):
            joinid = side.dataset_joinid.get(dataset_id)
            if joinid is None:
                got.append(set())
                continue
            arr = side.rna[PRESENCE]
            if joinid >= int(arr.shape[0]):
                got.append(set())
                continue
            t = arr.read(coords=(np.asarray([joinid], dtype=np.int64), slice(None))).tables().concat()
            cols = np.asarray(t.column("soma_dim_1").to_numpy(), dtype=np.int64)
            vals = np.asarray(t.column("soma_data").to_numpy(zero_copy_only=False), dtype=bool)
            cols = cols[vals & (cols < len(side.gene_col))]
            g = side.gene_col[cols]
            got.append({fids[int(i)] for i in g[g >= 0]})
        place = f"{where}/ms/RNA/{PRESENCE}"
        for name, mine, other in (("ours", got[0], got[1]), ("the reference", got[1], got[0])):
            for fid in sorted(mine - other):
                col = fids.index(fid)
                if not self.other_has[name][col]:
                    self.gene_only[(place, name, col)] += 1
                    continue
                self.report.add(place, f"dataset_id={dataset_id!r} feature_id={fid!r}", f"present only in {name}")


def _cell_count(exp: Any) -> int:
    """Return the number of cells of an experiment (0 without obs)."""
    return int(exp.obs.count) if "obs" in exp else 0


def _experiment_shape(report: Report, where: str, a: Any, b: Any) -> bool:
    """Report an experiment empty on one side only, and its parts (obs, ms/RNA, var) missing on one side.

    Return whether both sides have every part, so that their contents can be compared.
    """
    na, nb = _cell_count(a), _cell_count(b)
    if (na == 0) != (nb == 0):
        report.add(where, "", f"experiment empty on one side: {na} cells in ours, {nb} in the reference")
    complete = True
    for part in ("obs", "ms/RNA", "ms/RNA/var"):
        has = []
        for exp in (a, b):
            node, found = exp, True
            for step in part.split("/"):
                if found and step in node:
                    node = node[step]
                else:
                    found = False
            has.append(found)
        if has[0] != has[1]:
            report.add(where, "", f"{part} only in {'ours' if has[0] else 'the reference'}")
        complete = complete and all(has)
    return complete


def _aligned(table: pa.Table, rows: npt.NDArray[np.int64]) -> pa.Table:
    """Reorder ``table`` (read by soma_joinid) to the order of ``rows``."""
    joinids = np.asarray(table.column(JOINID).to_numpy(), dtype=np.int64)
    order = np.argsort(joinids, kind="stable")
    pos = order[np.searchsorted(joinids[order], rows)]
    return table.take(pa.array(pos, type=pa.int64()))


def compare_releases(ours: str, reference: str, *, limit: int = 20, batch_cells: int = 4096) -> Report:
    """Compare the release ``ours`` with ``reference`` (each the URI of its ``soma`` collection)."""
    report = Report(limit=limit)
    cmp = _Comparer(report, batch_cells)
    with ExitStack() as stack:
        a: Any = stack.enter_context(soma.Collection.open(ours))
        b: Any = stack.enter_context(soma.Collection.open(reference))
        member_sets(report, "/", _members(a), _members(b), "collection")
        ds_a: dict[str, int] = {}
        ds_b: dict[str, int] = {}
        if "census_info" in a and "census_info" in b:
            ds_a, ds_b = cmp.census_info(a["census_info"], b["census_info"])
        for root in ("census_data", SPATIAL):
            if root not in a or root not in b:
                continue
            da, db = a[root], b[root]
            for side, mine, other in (("ours", da, db), ("the reference", db, da)):
                for name in sorted(_members(mine) - _members(other)):
                    n = _cell_count(mine[name])
                    report.add(root, "", f"experiment {name!r} ({n} cells) only in {side}")
            for name in sorted(_members(da) & _members(db)):
                if _experiment_shape(report, f"{root}/{name}", da[name], db[name]):
                    cmp.experiment(name, da[name], db[name], ds_a, ds_b, root)
                    if root == SPATIAL and _cell_count(da[name]) + _cell_count(db[name]) > 0:
                        compare_spatial(report, f"{root}/{name}", da[name], db[name])
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the differences; exit 0 when none, 1 when some, 2 when a release cannot be read."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference.compare", description=__doc__.split("\n")[0])
    p.add_argument("ours", help="our release's soma collection (DIR/VERSION/soma)")
    p.add_argument("reference", help="the reference builder's release's soma collection (WD/TAG/soma)")
    p.add_argument("--limit", type=int, default=20, help="examples listed per place (all are counted)")
    p.add_argument("--batch-cells", type=int, default=4096, help="cells read at once per dataset")
    args = p.parse_args(argv)
    try:
        report = compare_releases(args.ours, args.reference, limit=args.limit, batch_cells=args.batch_cells)
    except (soma.DoesNotExistError, soma.SOMAError) as e:
        print(f"cannot read a release: {e}", file=sys.stderr)
        return 2
    print(f"ours:      {args.ours}\nreference: {args.reference}")
    for line in report.lines():
        print(line)
    return 0 if report.total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

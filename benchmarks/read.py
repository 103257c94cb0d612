"""What consumers pay: the queries users run on a release, timed side by side on two releases (issue 17, part 3).

    python -m benchmarks.read RELEASE [--compare OTHER_RELEASE ...] [--compare-consolidated] [--repeats 3]
        [--queries dataset,genes,...] [--organism homo_sapiens] [--names ours,reference] [--json OUT]

``RELEASE`` and ``OTHER_RELEASE`` are SOMA roots (``.../soma``) of either Census schema (1.3.0 or 2.4.0), written
by our builder or by the reference builder (whose obs/var string columns are dictionary-encoded). Nothing here
depends on the release's numbering: the queries are chosen from the first release's CONTENT (see
:func:`choose_plan`) and the very same plan runs on every release compared:

- ``dataset``: all cells of one dataset (obs, then X raw), via an axis query ``dataset_id == D``;
- ``tissue``: all cells of one ``tissue_general`` label (obs, then X raw);
- ``genes``: 50 genes across all cells (var filter on ``feature_id``, then the X raw columns);
- ``anndata``: tiledbsoma's ``ExperimentAxisQuery.to_anndata`` with an obs filter (one cell type, primary data);
- ``census_anndata``: the same through ``cellxgene_census.get_anndata`` (the pinned client);
- ``scan_raw`` / ``scan_normalized``: every X value in row order, blockwise by soma_joinid (a training loader).

Each query runs in a fresh process (no TileDB caches carried over; the page cache is warm after the first
repeat), ``--repeats`` times; the median and the minimum are reported, with what the query returned (cells,
values, sum of values: numbering-independent, so two releases of the same content must show the same counts).

Per release it also reports the storage (:func:`storage`): bytes on disk per object (obs, var, X raw, X
normalized, presence matrix, census_info), the fragment count per array, and each array's TileDB schema (cell
order, capacity, tile extents, filters per dimension and attribute, dictionary-encoded attributes), so the
table can explain a difference. ``--compare-consolidated`` adds a copy of RELEASE whose X arrays are merged
into one fragment each (next to RELEASE, removed afterwards unless ``--keep-consolidated``, which also reuses
it). The releases take turns within each repeat, so a change of the machine's load hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

logger = logging.getLogger("benchmarks.read")

MEASUREMENT = "RNA"
#: Query name -> what it does (the table's row label).
QUERIES: dict[str, str] = {
    "dataset": "all cells of one dataset (obs + X raw)",
    "tissue": "all cells of one tissue_general (obs + X raw)",
    "genes": "50 genes, every cell (var filter -> X raw)",
    "anndata": "to_anndata, obs filter (X raw)",
    "census_anndata": "cellxgene_census.get_anndata, obs filter",
    "scan_raw": "full X raw scan, row order",
    "scan_normalized": "full X normalized scan, row order",
}
SCAN_BLOCK_CELLS = 32_768  # rows per read of a full scan (a loader's shuffle buffer is of this order)
N_GENES = 50


# -- the plan: queries chosen from content ----------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The content every query selects: the same on any release of the same corpus, whatever its numbering."""

    organism: str  # experiment name under census_data, e.g. "homo_sapiens"
    dataset_id: str
    tissue_general: str
    feature_ids: tuple[str, ...]
    cell_type: str  # the anndata queries' filter: this cell type, primary data only
    organism_label: str = ""  # for cellxgene_census.get_anndata, e.g. "Homo sapiens"

    @property
    def obs_filter(self) -> str:
        """The obs value filter of the anndata queries."""
        return f"cell_type == {_quote(self.cell_type)} and is_primary_data == True"

    def to_json(self) -> str:
        """Serialize (for the child processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        d["feature_ids"] = tuple(d["feature_ids"])
        return cls(**d)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _open_experiment(release: str, organism: str) -> Any:
    import tiledbsoma as soma

    return soma.Experiment.open(os.path.join(release, "census_data", organism))


def _counts(values: Iterable[Any]) -> list[tuple[str, int]]:
    """Count each value; return (value, count) pairs by count, then value, both ascending."""
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return sorted(out.items(), key=lambda kv: (kv[1], kv[0]))


def choose_plan(release: str, organism: str = "homo_sapiens", n_genes: int = N_GENES) -> Plan:
    """Choose the queries from ``release``'s content, deterministically.

    The dataset with the median cell count (ties by dataset_id), the tissue_general label with the most cells,
    ``n_genes`` feature_ids evenly spaced in feature_id order, the cell type with the most primary cells.
    """
    with _open_experiment(release, organism) as exp:
        obs = exp.obs.read(column_names=["dataset_id", "tissue_general", "cell_type", "is_primary_data"]).concat()
        var_ids = sorted(
            str(v) for v in exp.ms[MEASUREMENT].var.read(column_names=["feature_id"]).concat()[0].to_pylist()
        )
    datasets = _counts(obs.column("dataset_id").to_pylist())
    tissues = _counts(obs.column("tissue_general").to_pylist())
    primary = np.asarray(obs.column("is_primary_data").to_numpy(zero_copy_only=False), dtype=bool)
    cell_types = _counts(v for v, p in zip(obs.column("cell_type").to_pylist(), primary, strict=True) if p)
    k = min(n_genes, len(var_ids))
    picks = sorted({round(i * (len(var_ids) - 1) / max(k - 1, 1)) for i in range(k)})
    return Plan(
        organism=organism,
        dataset_id=datasets[len(datasets) // 2][0],
        tissue_general=max(tissues, key=lambda kv: (kv[1], kv[0]))[0],
        feature_ids=tuple(var_ids[i] for i in picks),
        cell_type=max(cell_types, key=lambda kv: (kv[1], kv[0]))[0],
        organism_label=organism.replace("_", " ").capitalize(),
    )


# -- the queries -------------------------------------------------------------------------------------------


@dataclass
class Sink:
    """What a query returned: counts (always) and, with ``keep``, the tables themselves (for tests)."""

    keep: bool = False
    cells: int = 0
    values: int = 0
    total: float = 0.0
    obs: list[pa.Table] = field(default_factory=list)
    x: list[pa.Table] = field(default_factory=list)
    anndata: list[Any] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)  # seconds of the obs read and of the X read, if split

    def take_obs(self, table: pa.Table) -> None:
        """Record an obs table (one row per cell)."""
        self.cells += table.num_rows
        if self.keep:
            self.obs.append(table)

    def take_x(self, table: pa.Table) -> None:
        """Record X coordinates and values (soma_dim_0, soma_dim_1, soma_data)."""
        self.values += table.num_rows
        self.total += float(np.sum(table.column("soma_data").to_numpy(), dtype=np.float64))
        if self.keep:
            self.x.append(table)

    def take_anndata(self, adata: Any) -> None:
        """Record an AnnData (its cells and stored X values)."""
        self.cells += int(adata.n_obs)
        x = adata.X
        data = x.data if hasattr(x, "data") else np.asarray(x)
        self.values += int(np.count_nonzero(data))
        self.total += float(np.sum(data, dtype=np.float64))
        if self.keep:
            self.anndata.append(adata)

    def summary(self) -> dict[str, float]:
        """Cells, values and their sum (numbering-independent)."""
        return {"cells": self.cells, "values": self.values, "sum": self.total}


def _axis_read(exp: Any, sink: Sink, obs_filter: str | None, var_filter: str | None, layer: str = "raw") -> None:
    import tiledbsoma as soma

    obs_query = soma.AxisQuery(value_filter=obs_filter) if obs_filter else soma.AxisQuery()
    var_query = soma.AxisQuery(value_filter=var_filter) if var_filter else soma.AxisQuery()
    with exp.axis_query(MEASUREMENT, obs_query=obs_query, var_query=var_query) as q:
        t0 = time.perf_counter()
        if obs_filter:
            for t in q.obs():
                sink.take_obs(t)
        t1 = time.perf_counter()
        for t in q.X(layer).tables():
            sink.take_x(t)
        sink.parts.update(obs=t1 - t0, x=time.perf_counter() - t1)


def _scan(exp: Any, sink: Sink, layer: str) -> None:
    x = exp.ms[MEASUREMENT].X[layer]
    n_obs = int(exp.obs.count)
    for lo in range(0, n_obs, SCAN_BLOCK_CELLS):
        hi = min(n_obs, lo + SCAN_BLOCK_CELLS) - 1
        for t in x.read(coords=(slice(lo, hi),)).tables():
            sink.take_x(t)


def run_query(release: str, plan: Plan, name: str, sink: Sink) -> None:
    """Run query ``name`` (a key of QUERIES) of ``plan`` on ``release``, feeding what it reads to ``sink``."""
    import tiledbsoma as soma

    if name == "census_anndata":
        import cellxgene_census

        with cellxgene_census.open_soma(uri=release) as census:
            sink.take_anndata(
                cellxgene_census.get_anndata(
                    census, plan.organism_label, X_name="raw", obs_value_filter=plan.obs_filter
                )
            )
        return
    with _open_experiment(release, plan.organism) as exp:
        if name == "dataset":
            _axis_read(exp, sink, f"dataset_id == {_quote(plan.dataset_id)}", None)
        elif name == "tissue":
            _axis_read(exp, sink, f"tissue_general == {_quote(plan.tissue_general)}", None)
        elif name == "genes":
            _axis_read(exp, sink, None, f"feature_id in [{', '.join(_quote(f) for f in plan.feature_ids)}]")
        elif name == "anndata":
            with exp.axis_query(MEASUREMENT, obs_query=soma.AxisQuery(value_filter=plan.obs_filter)) as q:
                sink.take_anndata(q.to_anndata("raw"))
        elif name in ("scan_raw", "scan_normalized"):
            _scan(exp, sink, name.removeprefix("scan_"))
        else:
            raise ValueError(f"unknown query {name!r}; one of {', '.join(QUERIES)}")


def _child(release: str, plan: Plan, name: str) -> dict[str, float]:
    import tiledbsoma  # noqa: F401  (imports are not the query's cost)

    if name == "census_anndata":
        import cellxgene_census  # noqa: F401
    sink = Sink()
    t = time.perf_counter()
    run_query(release, plan, name, sink)
    return {"seconds": time.perf_counter() - t, **sink.summary(), **{f"{k}_seconds": v for k, v in sink.parts.items()}}


def run_once(release: str, plan: Plan, name: str) -> dict[str, float]:
    """Run query ``name`` once on ``release`` in a fresh process; return its seconds and what it read."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.read", release, "--child", name, "--plan", plan.to_json()],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Median and minimum seconds of ``runs`` (of one query on one release), the obs/X split, what it read."""
    secs = [r["seconds"] for r in runs]
    parts = {f"{k}_median": statistics.median(r[k] for r in runs) for k in ("obs_seconds", "x_seconds") if k in runs[0]}
    return {
        "median": statistics.median(secs),
        "min": min(secs),
        "runs": secs,
        **parts,
        **{k: runs[0][k] for k in ("cells", "values", "sum")},
    }


def measure(releases: dict[str, str], plan: Plan, queries: Sequence[str], repeats: int) -> dict[str, dict[str, Any]]:
    """Time every query on every release ``repeats`` times; return summaries by release, then query.

    The releases take turns within each repeat of a query, so a change of the machine's load during the
    measurement hits every release alike.
    """
    runs: dict[str, dict[str, list[dict[str, float]]]] = {n: {q: [] for q in queries} for n in releases}
    for q in queries:
        for _ in range(repeats):
            for label, uri in releases.items():
                runs[label][q].append(run_once(uri, plan, q))
        for label in releases:
            logger.info("%s %s: %.2f s median", label, q, statistics.median(r["seconds"] for r in runs[label][q]))
    return {n: {q: summarize(runs[n][q]) for q in queries} for n in releases}


# -- storage -------------------------------------------------------------------------------------------------


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _filters(fl: Any) -> str:
    parts = []
    for f in fl or ():
        opts = [f"{a}={getattr(f, a)}" for a in ("level", "window", "bit_width", "compression_level") if hasattr(f, a)]
        parts.append(type(f).__name__.removesuffix("Filter") + (f"({', '.join(opts)})" if opts else ""))
    return "+".join(parts) or "none"


def array_info(uri: str) -> dict[str, Any]:
    """Return the fragment count and TileDB schema settings of the array at ``uri``."""
    import tiledb

    schema = tiledb.ArraySchema.load(uri)
    dims = [
        {
            "name": d.name,
            "type": str(d.dtype),
            "tile": None if d.tile is None else str(d.tile),
            "filters": _filters(d.filters),
        }
        for d in schema.domain
    ]
    attrs = [
        {
            "name": a.name,
            "type": str(a.dtype),
            "filters": _filters(a.filters),
            "enumeration": bool(getattr(a, "enum_label", None)),
        }
        for a in schema
    ]
    return {
        "fragments": len(tiledb.array_fragments(uri)),
        "sparse": bool(schema.sparse),
        "cell_order": str(schema.cell_order),
        "tile_order": str(schema.tile_order),
        "capacity": int(schema.capacity),
        "allows_duplicates": bool(schema.allows_duplicates),
        "dims": dims,
        "attrs": attrs,
        "coords_filters": _filters(schema.coords_filters),
        "offsets_filters": _filters(schema.offsets_filters),
    }


def _object_name(rel: str) -> str:
    """Return the object a TileDB array belongs to: census_info, <organism>/obs|var|X raw|X normalized|presence."""
    parts = rel.split("/")
    if parts[0] == "census_info":
        return "census_info"
    if parts[0] == "census_data" and len(parts) >= 3:
        org, rest = parts[1], parts[2:]
        if rest[0] == "obs":
            return f"{org}/obs"
        if len(rest) >= 3 and rest[0] == "ms" and rest[2] == "var":
            return f"{org}/var"
        if len(rest) >= 4 and rest[0] == "ms" and rest[2] == "X":
            return f"{org}/X {rest[3]}"
        if len(rest) >= 3 and rest[0] == "ms" and "presence" in rest[2]:
            return f"{org}/presence"
    return parts[0]


def storage(release: str) -> dict[str, Any]:
    """Bytes on disk per object and every array's fragment count and schema settings."""
    root = Path(release)
    arrays: dict[str, Any] = {}
    objects: dict[str, int] = {}
    for schema_dir in sorted(root.rglob("__schema")):
        uri = schema_dir.parent
        rel = uri.relative_to(root).as_posix()
        info = array_info(str(uri))
        info["bytes"] = _tree_bytes(uri)
        arrays[rel] = info
        obj = _object_name(rel)
        objects[obj] = objects.get(obj, 0) + info["bytes"]
    return {"total_bytes": _tree_bytes(root), "objects": objects, "arrays": arrays}


# -- consolidated copy -------------------------------------------------------------------------------------


def consolidated_copy(release: Path, dest: Path) -> None:
    """Copy ``release`` to ``dest`` and merge each X array of the copy into one fragment."""
    import tiledb

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(release, dest)
    cfg = tiledb.Config(
        {"sm.consolidation.mode": "fragments", "sm.vacuum.mode": "fragments", "sm.mem.total_budget": str(2**30)}
    )
    for layer in sorted(p.parent for p in dest.glob("census_data/*/ms/*/X/*/__schema")):
        tiledb.consolidate(str(layer), config=cfg)
        tiledb.vacuum(str(layer), config=cfg)
        tiledb.consolidate(str(layer), config=tiledb.Config({"sm.consolidation.mode": "fragment_meta"}))


# -- report ------------------------------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def _settings(a: dict[str, Any]) -> str:
    """One array's settings in a line: attributes with the same filters are grouped (``(dict)``: dictionary-encoded)."""
    tiles = ",".join(f"{d['name']}:{d['tile']}" for d in a["dims"])
    groups: dict[str, list[str]] = {}
    for x in a["attrs"]:
        groups.setdefault(x["filters"] + (" (dict)" if x["enumeration"] else ""), []).append(x["name"])
    attrs = [f"{v[0]}={k}" if len(v) == 1 else f"{len(v)} attrs {k}" for k, v in groups.items()]
    dims = [f"{d['name']}={d['filters']}" for d in a["dims"]]
    order = f"{a['cell_order']}/{a['tile_order']}" + (", duplicates allowed" if a.get("allows_duplicates") else "")
    return f"{a['fragments']}; {order}; {a['capacity']}; {tiles}; " + "; ".join(dims + attrs)


def report(results: dict[str, Any], queries: Sequence[str]) -> list[str]:
    """Return the markdown tables of ``results`` (as ``--json`` writes it): queries, sizes, storage settings."""
    names = list(results["releases"])
    first = names[0]
    lines = ["| query | " + " | ".join(f"{n} median (min) s" for n in names)]
    lines[0] += "".join(f" | {n} / {first}" for n in names[1:]) + " | cells | values |"
    lines.append("|---" * (1 + len(names) + len(names) - 1 + 2) + "|")
    for q in queries:
        rs = [results["releases"][n]["queries"][q] for n in names]
        row = [QUERIES[q]] + [f"{r['median']:.2f} ({r['min']:.2f})" for r in rs]
        row += [f"{r['median'] / rs[0]['median']:.2f}" for r in rs[1:]]
        same = all((r["cells"], r["values"]) == (rs[0]["cells"], rs[0]["values"]) for r in rs)
        row += [
            f"{rs[0]['cells']:,}" if rs[0]["cells"] else "-",
            f"{rs[0]['values']:,}" + ("" if same else " (DIFFER)"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    split = [q for q in queries if "x_seconds_median" in results["releases"][first]["queries"][q]]
    if split:
        lines += [
            "",
            "| query: obs read / X read, median s | " + " | ".join(names) + " |",
            "|---" * (1 + len(names)) + "|",
        ]
        for q in split:
            rs = [results["releases"][n]["queries"][q] for n in names]
            parts = [f"{r.get('obs_seconds_median', 0):.2f} / {r.get('x_seconds_median', 0):.2f}" for r in rs]
            lines.append(f"| {QUERIES[q]} | " + " | ".join(parts) + " |")
    lines += [
        "",
        "| object (MiB on disk) | " + " | ".join(names) + "".join(f" | {n} / {first}" for n in names[1:]) + " |",
    ]
    lines.append("|---" * (2 * len(names)) + "|")
    objs = sorted({o for n in names for o in results["releases"][n]["storage"]["objects"]})
    for o in [*objs, "total"]:
        sizes = [
            results["releases"][n]["storage"]["total_bytes"]
            if o == "total"
            else results["releases"][n]["storage"]["objects"].get(o, 0)
            for n in names
        ]
        ratios = [f"{s / sizes[0]:.2f}" if sizes[0] else "-" for s in sizes[1:]]
        lines.append("| " + " | ".join([o, *(_mb(s) for s in sizes), *ratios]) + " |")
    organism = results["plan"]["organism"]
    lines += [
        "",
        f"| {organism} array | "
        + " | ".join(f"{n}: fragments; cell/tile order; capacity; tile extents; filters" for n in names)
        + " |",
    ]
    lines.append("|---" * (1 + len(names)) + "|")
    rels = sorted(
        {
            r
            for n in names
            for r in results["releases"][n]["storage"]["arrays"]
            if r.startswith(f"census_data/{organism}/")
        }
    )
    for rel in rels:
        arrays = [results["releases"][n]["storage"]["arrays"].get(rel) for n in names]
        cells = ["(absent)" if a is None else _settings(a) for a in arrays]
        lines.append(f"| {rel.removeprefix(f'census_data/{organism}/')} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("release", help="a release's SOMA root (.../soma)")
    ap.add_argument(
        "--compare",
        metavar="OTHER_RELEASE",
        action="append",
        default=[],
        help="time the same queries here too (repeatable)",
    )
    ap.add_argument("--compare-consolidated", action="store_true", help="and on a copy of RELEASE, X consolidated")
    ap.add_argument("--keep-consolidated", action="store_true", help="keep (and reuse) the consolidated copy")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queries", default=",".join(QUERIES), help="comma-separated subset of: " + ", ".join(QUERIES))
    ap.add_argument("--organism", default="homo_sapiens")
    ap.add_argument("--names", default="", help="the releases' column names, comma-separated, e.g. ours,reference")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write every run, plan and storage setting here")
    ap.add_argument("--child", metavar="QUERY", help=argparse.SUPPRESS)
    ap.add_argument("--plan", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.release, Plan.from_json(args.plan), args.child)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    unknown = [q for q in queries if q not in QUERIES]
    if unknown:
        ap.error(f"unknown queries {unknown}; choose from {', '.join(QUERIES)}")
    plan = choose_plan(args.release, args.organism)
    logger.info("plan: %s", plan.to_json())
    uris = [args.release, *args.compare]
    given = [n.strip() for n in args.names.split(",") if n.strip()]
    labels = given + [f"other {i}" if i else "release" for i in range(len(given), len(uris))]
    if len(set(labels)) < len(labels):
        ap.error(f"--names gives the same name twice: {args.names}")
    first = labels[0]
    releases = dict(zip(labels, uris, strict=False))
    copy = Path(args.release).parent / f"{Path(args.release).name}.consolidated"
    if args.compare_consolidated and not (args.keep_consolidated and copy.is_dir()):
        consolidated_copy(Path(args.release), copy)
        releases[f"{first} consolidated"] = str(copy)
    results: dict[str, Any] = {"plan": asdict(plan), "repeats": args.repeats, "releases": {}}
    try:
        timed = measure(releases, plan, queries, args.repeats)
        for label, uri in releases.items():
            results["releases"][label] = {"uri": uri, "storage": storage(uri), "queries": timed[label]}
    finally:
        if args.compare_consolidated and not args.keep_consolidated:
            shutil.rmtree(copy, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    for line in report(results, queries):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Census scale on paper, proven by simulation (issue 17, part 2): the build's DRIVER-side work at ~60 M cells.

    python -m benchmarks.driver_scale --cells 60000000 --datasets 1000 --genes 60000 --json OUT
    python -m benchmarks.driver_scale --table OUT1 OUT2 ...        # a Markdown table of several runs
    python -m benchmarks.driver_scale --model OUT                  # the wall-time model on N = 2, 16, 64 workers

No X is read or written and no dask cluster starts: the per-dataset inspection records (``DatasetPlan`` plan
files, the kept genes' Parquet, the kept rows' arrays) are FABRICATED in a temporary build directory, with
dataset sizes from a heavy-tailed (log-normal) distribution summing to ``--cells``, 15-40 k genes per dataset
from a ``--genes`` pool per organism (4 in 5 datasets human, 1 in 5 mouse) and row chunks of
``--chunk-nnz / --nnz-per-cell`` cells; the chunk results the matrix workers would return (per-gene nnz of
every gene of the dataset, a worst case) and the count columns of each dataset's plan obs are generated in
memory, one chunk / one dataset at a time, and handed to the builder's own functions. Then every driver step
runs with the builder's code (build/plan_axes.py, build/write_matrices.py, build/write_tables.py,
build/census_info.py) and is measured: seconds in builder code (fabrication excluded), the process's RSS
(start and sampled peak) and, in a second pass under tracemalloc, the peak of traced allocations.

What is not run: TileDB writes (var, presence, census_info dataframes: a few MiB), the obs and matrix tasks
(workers). Loading the chunk result files (``load_result``, one per chunk) is timed on a sample of full-size
result files and multiplied by the chunk count: reported separately, as modelled.

The run aborts (exit 3) when its RSS exceeds ``--max-rss-gib`` (default 6): that is a finding in itself.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import psutil

from census_builder.build.census_info import CellCounts, datasets_table, summary_table
from census_builder.build.inspect import DatasetPlan, PlanFiles
from census_builder.build.outputs import AxesPlan, OrganismAxes
from census_builder.build.plan_axes import _union_var, _write_dataset_axes, number_datasets
from census_builder.build.state import BuildPaths
from census_builder.build.timestamps import Timestamps
from census_builder.build.write_matrices import ChunkSummary, ChunkTask, chunk_tasks, load_result, result_exists
from census_builder.build.write_tables import PresenceReducer, dataset_obs_tasks, presence_entries
from census_builder.census.schema import CensusSchema, load_schema
from census_builder.config import DEFAULT_CHUNK_NNZ, DEFAULT_SCHEMA_VERSION
from census_builder.soma.layout import CENSUS_DATA, ReleaseLayout
from census_builder.sources.manifest import ManifestEntry

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger("benchmarks.driver_scale")

MIB = 1 << 20
HUMAN, MOUSE = "homo_sapiens", "mus_musculus"
GENES_PER_DATASET = (15_000, 40_000)
SIZE_SIGMA = 1.6  # log-normal sigma of dataset sizes: the largest of 1,000 holds ~3 % of the cells
TIMESTAMP_BASE = 1_700_000_000_000
Result = Mapping[str, npt.NDArray[Any]]
Seconds = npt.NDArray[np.float64]  # (wall, CPU of this process)


def _now() -> Seconds:
    return np.array([time.perf_counter(), time.process_time()])


# -- the driver's steps, on a build directory (fabricated, or a real build's) ---------------------------------


@dataclass
class DriverRun:
    """What the driver steps read of a ``BuildRun``: paths, schema, layout, plans and (once planned) the axes."""

    paths: BuildPaths
    schema: CensusSchema
    dataset_ids: list[str]
    run_id: str = "driver-scale"
    planned: AxesPlan | None = None

    @property
    def layout(self) -> ReleaseLayout:
        """The release's URIs (nothing is created there)."""
        return ReleaseLayout(str(self.paths.partial), self.schema)

    def plans(self) -> list[DatasetPlan]:
        """Every dataset's plan, read from its plan file (as ``BuildRun.plans``)."""
        return [PlanFiles(self.paths.plans, ds).load() for ds in self.dataset_ids]

    def axes(self) -> AxesPlan:
        """plan_axes' output (after :meth:`Driver.plan`)."""
        if self.planned is None:
            raise RuntimeError("axes are not planned yet")
        return self.planned


@dataclass
class Driver:
    """The driver-side steps of a build, each a method; ``results`` and ``obs`` stand for the files it reads.

    ``results(task)``: a chunk's result (as :func:`load_result` returns it); ``obs(dataset_id)``: the count
    columns of a dataset's plan obs. Each method returns the seconds (wall, CPU) spent in builder code.
    """

    run: DriverRun
    results: Callable[[ChunkTask], Result]
    obs: Callable[[str], pd.DataFrame]
    plans: list[DatasetPlan] = field(default_factory=list)
    var: dict[str, pd.DataFrame] = field(default_factory=dict)
    tasks: list[ChunkTask] = field(default_factory=list)
    reducers: dict[tuple[str, str], PresenceReducer] = field(default_factory=dict)
    n_measured_obs: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    entries: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = field(default_factory=dict)
    n_obs_tasks: int = 0
    counts: CellCounts | None = None
    tables: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def _run(self) -> BuildRun:
        return cast("BuildRun", self.run)

    def load_plans(self) -> Seconds:
        """run.plans(): every plan file (plan_axes, chunk_tasks and write_tables each read them)."""
        t0 = _now()
        self.plans = self.run.plans()
        return _now() - t0

    def plan(self) -> Seconds:
        """plan_axes' numbering: dataset joinids, cell offsets, each organism's obs length."""
        t0 = _now()
        contributing = [p for p in self.plans if p.organism is not None]
        datasets, offsets = number_datasets(contributing)
        seconds = _now() - t0
        self.run.planned = AxesPlan(
            timestamp_base=TIMESTAMP_BASE,
            datasets=tuple(datasets),
            organisms={org: OrganismAxes(n_obs=offsets[(CENSUS_DATA, org)], n_var=0) for _, org in offsets},
            excluded=(),
        )
        return seconds

    def union_var(self) -> Seconds:
        """plan_axes' var union: each organism's genes from its datasets' genes Parquet."""
        t0 = _now()
        for org in self._organisms():
            self.var[org] = _union_var(self._run, self._members(org))
        seconds = _now() - t0
        axes = self.run.axes()
        organisms = {k: OrganismAxes(v.n_obs, len(self.var[k])) for k, v in axes.organisms.items()}
        self.run.planned = AxesPlan(axes.timestamp_base, axes.datasets, organisms, axes.excluded)
        return seconds

    def dataset_axes(self) -> Seconds:
        """plan_axes' per-dataset arrays for the matrix tasks (kept rows, col_map, ...: read, mapped, written)."""
        t0 = _now()
        (self.run.paths.state / "axes").mkdir(parents=True, exist_ok=True)
        for org in self._organisms():
            _write_dataset_axes(self._run, self._members(org), self.var[org])
        return _now() - t0

    def chunk_tasks(self) -> Seconds:
        """write_matrices' driver side: every chunk task, the scan for finished ones, the nnz of their summaries."""
        t0 = _now()
        self.tasks = chunk_tasks(self._run)
        todo = [t for t in self.tasks if not result_exists(t)]
        nnz = 0
        for t in todo:  # what on_result adds up, from the summaries the tasks return
            nnz += ChunkSummary(t.key, t.n_cells, 0).nnz
        return _now() - t0

    def reduce_results(self) -> Seconds:
        """write_tables' reduction of every chunk result: per-gene nnz, per-dataset presence, n_measured_obs."""
        axes = self.run.axes()
        seconds = _now() * 0
        t0 = _now()
        self.reducers = {(CENSUS_DATA, org): PresenceReducer(v.n_var) for org, v in axes.organisms.items()}
        seconds += _now() - t0
        by_ds = self._tasks_by_dataset()
        for d in axes.datasets:
            reducer = self.reducers[(d.experiment, d.organism)]
            for _, t in by_ds.get(d.dataset_id, []):
                r = self.results(t)  # fabricated, or read from disk: not timed (see load_result_sample)
                t0 = _now()
                reducer.add_result(d.dataset_id, r)
                seconds += _now() - t0
        t0 = _now()
        for org in axes.organisms:
            cells = {d.dataset_id: d.n_cells for d in axes.members(org)}
            self.n_measured_obs[org] = self.reducers[(CENSUS_DATA, org)].n_measured_obs(cells)
        return seconds + _now() - t0

    def obs_tasks(self) -> Seconds:
        """write_tables' obs tasks (one per dataset; the workers write obs): what the driver assembles of obs."""
        axes = self.run.axes()
        t0 = _now()
        timestamps = Timestamps(axes.timestamp_base, len(self.tasks))
        tasks = dataset_obs_tasks(self._run, axes, self._tasks_by_dataset(), self.reducers, timestamps)
        self.n_obs_tasks = len(tasks)
        return _now() - t0

    def presence(self) -> Seconds:
        """write_tables' presence matrix entries, per organism (the TileDB write itself is not run)."""
        axes = self.run.axes()
        joinids = {d.dataset_id: d.joinid for d in axes.datasets}
        t0 = _now()
        for org in axes.organisms:
            self.entries[org] = presence_entries(joinids, self.reducers[(CENSUS_DATA, org)].present)
        return _now() - t0

    def census_info(self, entries: Mapping[str, ManifestEntry]) -> Seconds:
        """write_tables' census_info: cell counts dataset by dataset, the datasets and summary tables."""
        axes, schema = self.run.axes(), self.run.schema
        labels = {o.name: o.label for o in schema.organisms}
        plans = {p.dataset_id: p for p in self.plans}
        seconds = _now() * 0
        counts = CellCounts(schema)
        for d in axes.datasets:
            obs = self.obs(d.dataset_id)  # stands for the plan obs Parquet read: not timed
            t0 = _now()
            counts.add(labels[d.organism], d.organism, d.dataset_id, obs)
            seconds += _now() - t0
            del obs
        t0 = _now()
        self.tables["datasets"] = datasets_table(schema, self.run.paths, axes.datasets, entries, plans)
        self.tables["summary_cell_counts"] = counts.table()
        total = sum(d.n_cells for d in axes.datasets)
        unique = sum(plans[d.dataset_id].n_primary for d in axes.datasets)
        donors = {k: len(v) for k, v in counts.donors.items()}
        self.tables["summary"] = summary_table(schema, "2026-11-26", total, unique, donors)
        self.counts = counts
        return seconds + _now() - t0

    def _organisms(self) -> list[str]:
        return list(self.run.axes().organisms)

    def _members(self, organism: str) -> list[DatasetPlan]:
        ids = {d.dataset_id for d in self.run.axes().members(organism)}
        return [p for p in self.plans if p.dataset_id in ids]

    def _tasks_by_dataset(self) -> dict[str, list[tuple[int, ChunkTask]]]:
        by_ds: dict[str, list[tuple[int, ChunkTask]]] = {}
        for k, t in enumerate(self.tasks):
            by_ds.setdefault(t.dataset_id, []).append((k, t))
        return by_ds


STEPS = ("load_plans", "plan", "union_var", "dataset_axes", "chunk_tasks", "reduce_results", "obs_tasks", "presence")


# -- the synthetic corpus -----------------------------------------------------------------------------------


@dataclass
class Corpus:
    """A fabricated corpus: plan files on disk; gene sets, results and obs generated on demand."""

    root: Path
    schema: CensusSchema
    cells: npt.NDArray[np.int64]  # per dataset
    organisms: list[str]
    genes: list[npt.NDArray[np.int64]]  # per dataset: pool indices of its kept genes (source var order)
    pool_size: int
    nnz_per_cell: int
    chunk_cells: int
    seed: int
    _joinids: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)  # per dataset, sorted var joinids
    _nnz_pool: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    _positions: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)  # per organism: pool -> var joinid

    @property
    def paths(self) -> BuildPaths:
        """The fabricated build directory."""
        return BuildPaths(self.root)

    @property
    def ids(self) -> list[str]:
        """Dataset ids, manifest order."""
        return [dataset_id(i) for i in range(len(self.cells))]

    def entries(self) -> dict[str, ManifestEntry]:
        """Return a manifest entry per dataset."""
        return {
            ds: ManifestEntry(ds, f"{ds}.h5ad", f"{ds}-v1", f"collection-{i % 50}", f"Collection {i % 50}", "", ds)
            for i, ds in enumerate(self.ids)
        }

    def result(self, task: ChunkTask) -> Result:
        """Return a chunk result as the worker would write it: every gene of the dataset stored (the worst case)."""
        ds = task.dataset_id
        if ds not in self._joinids:
            self._joinids.clear()  # one dataset at a time, as the reduction goes
            self._joinids[ds] = self._var_joinids(ds)
        cols = self._joinids[ds]
        if self._nnz_pool.size < cols.size:
            self._nnz_pool = np.random.default_rng(self.seed).integers(1, 200, max(cols.size, 40_000), dtype=np.int64)
        n = task.n_cells
        return {"nnz": np.zeros(n, np.int64), "col_ids": cols, "col_nnz": self._nnz_pool[: cols.size]}

    def obs(self, ds: str) -> pd.DataFrame:
        """Return the count columns of a dataset's plan obs: categoricals of a few terms each (as inspected)."""
        i = int(ds.rsplit("-", 1)[1])
        n = int(self.cells[i])
        rng = np.random.default_rng((self.seed, i))
        data: dict[str, Any] = {"is_primary_data": rng.random(n) < 0.8}
        donors = int(rng.integers(1, 50))
        data["donor_id"] = _categorical(rng, n, [f"{ds}-donor-{k}" for k in range(donors)])
        for cat in self.schema.summary_categories:
            k = int(rng.integers(1, 40 if cat.name == "cell_type" else 4))
            base = int(rng.integers(0, 1000))
            terms = [f"{cat.name.upper()}:{base + j:07d}" for j in range(k)]
            codes = rng.integers(0, k, n).astype(np.int16)
            for column, names in ((cat.ontology_column, terms), (cat.label_column, [f"{t} label" for t in terms])):
                if column:
                    data[column] = pd.Categorical.from_codes(codes, categories=pd.Index(names))
        return pd.DataFrame(data)

    def _var_joinids(self, ds: str) -> npt.NDArray[np.int64]:
        i = int(ds.rsplit("-", 1)[1])
        org = self.organisms[i]
        if org not in self._positions:
            in_var = np.zeros(self.pool_size, dtype=bool)
            for g, o in zip(self.genes, self.organisms, strict=True):
                if o == org:
                    in_var[g] = True
            self._positions[org] = np.cumsum(in_var) - 1  # pool order is feature_id order: zero-padded ids
        joinids: npt.NDArray[np.int64] = np.sort(self._positions[org][self.genes[i]])
        return joinids


def dataset_id(i: int) -> str:
    """Return the fabricated dataset id of position ``i`` (sortable: manifest order)."""
    return f"ds-{i:05d}"


def _categorical(rng: np.random.Generator, n: int, names: list[str]) -> pd.Categorical[str]:
    return pd.Categorical.from_codes(rng.integers(0, len(names), n).astype(np.int16), categories=pd.Index(names))


def dataset_sizes(cells: int, datasets: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Return heavy-tailed dataset sizes (log-normal), at least 1 cell each, summing to ``cells``."""
    w = rng.lognormal(0.0, SIZE_SIGMA, datasets)
    n: npt.NDArray[np.int64] = np.maximum(np.floor(w / w.sum() * (cells - datasets)).astype(np.int64), 0) + 1
    n[int(np.argmax(n))] += cells - int(n.sum())
    return n


def pool(organism: str, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """Return an organism's gene pool, in feature_id order."""
    prefix, name = ("ENSG", "GENE") if organism == HUMAN else ("ENSMUSG", "Gm")
    idx = np.arange(size)
    return pd.DataFrame(
        {
            "feature_id": [f"{prefix}{k:011d}" for k in idx],
            "feature_name": [f"{name}{k}" for k in idx],
            "feature_length": rng.integers(200, 20_000, size, dtype=np.int64),
        }
    )


def fabricate(
    root: Path,
    cells: int,
    datasets: int,
    genes: int,
    *,
    nnz_per_cell: int,
    chunk_nnz: int = DEFAULT_CHUNK_NNZ,
    seed: int = 0,
    schema_version: str = DEFAULT_SCHEMA_VERSION,
) -> Corpus:
    """Write the plan files of a synthetic corpus under ``root`` (a build directory) and return it."""
    rng = np.random.default_rng(seed)
    schema = load_schema(schema_version)
    sizes = dataset_sizes(cells, datasets, rng)
    organisms = [MOUSE if i % 5 == 4 else HUMAN for i in range(datasets)]
    pools = {org: pool(org, genes, rng) for org in (HUMAN, MOUSE)}
    lo, hi = (min(k, genes) for k in GENES_PER_DATASET)
    chunk = max(1, chunk_nnz // nnz_per_cell)
    corpus = Corpus(root, schema, sizes, organisms, [], genes, nnz_per_cell, chunk, seed)
    plans = corpus.paths.plans
    plans.mkdir(parents=True, exist_ok=True)
    for i, (n, org) in enumerate(zip(sizes.tolist(), organisms, strict=True)):
        ds = dataset_id(i)
        k = int(rng.integers(lo, hi + 1))
        g = rng.choice(genes, k, replace=False).astype(np.int64)
        corpus.genes.append(g)
        files = PlanFiles(plans, ds)
        pools[org].iloc[g].to_parquet(files.genes, index=False)
        kept = np.arange(n, dtype=np.int64)
        np.savez(files.arrays, kept_rows=kept, gene_cols=np.arange(k, dtype=np.int64), smart=np.zeros(n, bool))
        bounds = [*range(0, n, chunk), n]
        plan = DatasetPlan(
            dataset_id=ds,
            h5ad_path=str(root / "h5ads" / f"{ds}.h5ad"),
            organism=org,
            excluded_reason="",
            n_source_obs=n,
            n_source_var=k,
            counts_matrix="X",
            matrix_format="csr",
            n_cells=n,
            n_primary=int(0.8 * n),
            n_genes=k,
            title=f"Dataset {i}",
            citation="",
            chunks=tuple(itertools.pairwise(bounds)),
            chunk_cells=tuple(b - a for a, b in itertools.pairwise(bounds)),
        )
        files.meta.write_text(json.dumps(plan.to_json()), encoding="utf-8")
    return corpus


# -- measuring ------------------------------------------------------------------------------------------------


class RssSampler:
    """Samples this process's RSS every 20 ms; aborts the run above ``cap`` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.peak = 0
        self.step = ""
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def reset(self, step: str) -> int:
        """Start a step's peak; return the RSS now."""
        self.step = step
        self.peak = rss = self._proc.memory_info().rss
        return int(rss)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            rss = self._proc.memory_info().rss
            self.peak = max(self.peak, rss)
            if rss > self.cap:
                sys.stderr.write(f"driver_scale: RSS {rss / MIB:,.0f} MiB in step {self.step} exceeds the cap\n")
                sys.stderr.flush()
                os._exit(3)


def measure(sampler: RssSampler, name: str, step: Callable[[], Seconds], *, trace: bool) -> dict[str, float]:
    """Run a step (and again under tracemalloc when ``trace``); return its seconds and memory."""
    gc.collect()
    start = sampler.reset(name)
    t0 = time.perf_counter()
    seconds = step()
    wall = time.perf_counter() - t0
    out = {
        "seconds": round(float(seconds[0]), 3),
        "cpu_seconds": round(float(seconds[1]), 3),
        "wall_seconds": round(wall, 3),
        "rss_start_mib": round(start / MIB, 1),
        "rss_peak_mib": round(sampler.peak / MIB, 1),
        "rss_added_mib": round((sampler.peak - start) / MIB, 1),
    }
    if trace:
        gc.collect()
        tracemalloc.start()
        step()
        out["traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / MIB, 1)
        tracemalloc.stop()
    logger.info("%-15s %s", name, out)
    return out


def load_result_sample(root: Path, chunk_cells: int, n_genes: int, samples: int = 8) -> dict[str, float]:
    """Time ``load_result`` on full-size result files (per-row statistics, per-gene nnz); ms per file."""
    rng = np.random.default_rng(1)
    d = root / "result-sample"
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(samples):
        p = d / f"{k:06d}.npz"
        np.savez(
            p,
            nnz=rng.integers(1, 3000, chunk_cells),
            raw_sum=rng.random(chunk_cells),
            raw_mean_nnz=rng.random(chunk_cells),
            raw_variance_nnz=rng.random(chunk_cells),
            col_ids=np.sort(rng.choice(60_000, n_genes, replace=False)).astype(np.int64),
            col_nnz=rng.integers(1, 3000, n_genes),
        )
        paths.append(p)
    times = []
    for p in paths:
        t0 = time.perf_counter()
        load_result(p)
        times.append(time.perf_counter() - t0)
    size = sum(p.stat().st_size for p in paths) / samples
    shutil.rmtree(d)
    return {"ms_per_file": round(1000 * float(np.median(times)), 3), "bytes_per_file": round(size)}


def simulate(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Fabricate the corpus under ``root``, run and measure every driver step; return the figures."""
    sampler = RssSampler(int(args.max_rss_gib * (1 << 30)))
    sampler.start()
    try:
        t0 = time.perf_counter()
        corpus = fabricate(
            root, args.cells, args.datasets, args.genes, nnz_per_cell=args.nnz_per_cell, chunk_nnz=args.chunk_nnz
        )
        fabricated = time.perf_counter() - t0
        run = DriverRun(corpus.paths, corpus.schema, corpus.ids)
        driver = Driver(run, corpus.result, corpus.obs)
        trace = not args.no_trace
        steps = {name: measure(sampler, name, getattr(driver, name), trace=trace) for name in STEPS}
        entries = corpus.entries()
        steps["census_info"] = measure(sampler, "census_info", lambda: driver.census_info(entries), trace=trace)
    finally:
        sampler.stop()
    axes = run.axes()
    n_genes = int(np.median([g.size for g in corpus.genes]))
    sample = load_result_sample(root, corpus.chunk_cells, n_genes)
    driver_seconds = sum(s["seconds"] for s in steps.values())
    driver_cpu = sum(s["cpu_seconds"] for s in steps.values())
    return {
        "args": {k: v for k, v in vars(args).items() if k not in ("json", "table")},
        "corpus": {
            "cells": int(corpus.cells.sum()),
            "datasets": len(corpus.cells),
            "largest_dataset_cells": int(corpus.cells.max()),
            "median_dataset_cells": int(np.median(corpus.cells)),
            "chunks": len(driver.tasks),
            "cells_per_chunk": corpus.chunk_cells,
            "var": {org: v.n_var for org, v in axes.organisms.items()},
            "presence_entries": {org: int(r.size) for org, (r, _) in driver.entries.items()},
            "obs_tasks": driver.n_obs_tasks,
            "summary_cell_counts_rows": len(driver.tables["summary_cell_counts"]["soma_joinid"]),
            "fabrication_seconds": round(fabricated, 1),
        },
        "steps": steps,
        "driver_seconds": round(driver_seconds, 2),
        "driver_cpu_seconds": round(driver_cpu, 2),
        "load_result": {
            **sample,
            "modelled_seconds_all_chunks": round(sample["ms_per_file"] * len(driver.tasks) / 1e3, 1),
        },
        "peak_rss_mib": round(max(s["rss_peak_mib"] for s in steps.values()), 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "commit": _commit(),
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
        return out.stdout.strip()
    except OSError:
        return ""


def table(paths: list[Path]) -> str:
    """Return a Markdown table of several runs' JSON: per step, CPU seconds (traced peak MiB)."""
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    names = [*STEPS, "census_info"]
    head = ["cells", "datasets", "chunks", *names, "driver CPU s", "wall s", "peak RSS MiB", "load_result s", "load"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        c, s = r["corpus"], r["steps"]
        cells = [
            f"{c['cells'] / 1e6:g} M",
            f"{c['datasets']:,}",
            f"{c['chunks']:,}",
            *(_cell(s[n]) for n in names),
            f"{r.get('driver_cpu_seconds', float('nan')):.1f}",
            f"{r['driver_seconds']:.1f}",
            f"{r['peak_rss_mib']:,.0f}",
            f"{r['load_result']['modelled_seconds_all_chunks']:.1f}",
            f"{r['loadavg'][0]:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(step: Mapping[str, float]) -> str:
    traced = step.get("traced_peak_mib")
    cpu = step.get("cpu_seconds", step["seconds"])
    return f"{cpu:.2f}" + (f" ({traced:,.0f})" if traced is not None else "")


# -- the model: a Census-scale build's wall time on N workers ---------------------------------------------

# Measured elsewhere (benchmarks/RESULTS.md, "Results (2026-11-22)" and "Re-measured after issues 11 to 13"):
# 2 workers on the 2-core machine, the synthetic corpus (uncompressed H5ADs, ~883 non-zeros per cell).
MEASURED = {
    "matrix_nnz_per_s_per_worker": 2.60e6,  # 1 M cells, 2026-11-26: 882.7 M nnz / 170 s / 2 (3.00-3.10 M on 11-22)
    "inspect_nnz_per_s_per_worker": 73.6e6,  # 1 M cells: 882.7 M nnz / 6 s / 2 (preflight reads every value once)
    "tables_worker_s_per_cell": 18e-6,  # 1 M cells: write_tables 9 s x 2 workers (obs tasks dominate)
    "finalize_s_per_cell": 3e-6,  # 1 M cells: 3 s; 2 M: 6 s (consolidating obs/var/presence, X metadata)
    "release_bytes_per_nnz": 5.83,  # 4.79 GiB / 882.7 M nnz (1 M); 9.57 GiB / 1,765 M (2 M): 5.82
    "source_bytes_per_nnz": 10.4,  # the 2 M corpus: 26.6 GiB with its release, minus the release's 9.57 GiB
    "plan_obs_read_cpu_s_per_cell": 0.19e-6,  # count columns of a 1 M-cell plan obs Parquet (driver_scale, aside)
}
# Assumptions (not measured here).
ASSUMED_BANDWIDTH = {"S3 1 GB/s": 1e9, "S3 5 GB/s": 5e9, "local NVMe 2 GB/s": 2e9}


def model(run: Mapping[str, Any], workers: tuple[int, ...] = (2, 16, 64)) -> str:
    """Return the model's Markdown table for the corpus of ``run`` (a driver_scale JSON), per N and bandwidth."""
    c, m = run["corpus"], MEASURED
    cells, nnz = c["cells"], c["cells"] * run["args"]["nnz_per_cell"]
    driver = run.get("driver_cpu_seconds", run["driver_seconds"]) + run["load_result"]["modelled_seconds_all_chunks"]
    steps = run["steps"]
    driver += steps["chunk_tasks"].get("cpu_seconds", steps["chunk_tasks"]["seconds"])  # write_tables lists them again
    driver += cells * m["plan_obs_read_cpu_s_per_cell"]
    read, written = 2 * nnz * m["source_bytes_per_nnz"], nnz * m["release_bytes_per_nnz"]  # inspect + matrices read
    finalize = cells * m["finalize_s_per_cell"]
    largest_obs = c["largest_dataset_cells"] * m["tables_worker_s_per_cell"]
    head = "| N | storage | inspect s | matrices s | tables s | driver s | finalize s | total s (h) | serial | limit |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for n in workers:
        for name, bw in ASSUMED_BANDWIDTH.items():
            inspect_cpu, inspect_io = nnz / m["inspect_nnz_per_s_per_worker"] / n, nnz * m["source_bytes_per_nnz"] / bw
            matrix_cpu, matrix_io = (
                nnz / m["matrix_nnz_per_s_per_worker"] / n,
                (nnz * m["source_bytes_per_nnz"] + written) / bw,
            )
            tables = max(cells * m["tables_worker_s_per_cell"] / n, largest_obs)
            parts = {
                "inspect": max(inspect_cpu, inspect_io),
                "matrices": max(matrix_cpu, matrix_io),
                "tables": tables,
                "driver": driver,
                "finalize": finalize,
            }
            total = sum(parts.values())
            limit = "storage" if matrix_io > matrix_cpu else "workers (matrix CPU)"
            if driver + finalize > 0.5 * total:
                limit = "driver + single-writer steps"
            cells_ = " | ".join(f"{parts[k]:,.0f}" for k in ("inspect", "matrices", "tables", "driver", "finalize"))
            serial = f"{(driver + finalize) / total:.0%}"
            lines.append(f"| {n} | {name} | {cells_} | {total:,.0f} ({total / 3600:.1f}) | {serial} | {limit} |")
    lines.append("")
    lines.append(
        f"Corpus: {cells:,} cells, {nnz / 1e9:,.0f} G non-zeros (--nnz-per-cell {run['args']['nnz_per_cell']}), "
        f"{c['datasets']:,} datasets, {c['chunks']:,} chunks; bytes read {read / 1e12:.2f} TB (sources twice), "
        f"written {written / 1e12:.2f} TB."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: simulate one size (``--json``), or tabulate earlier runs (``--table``)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.driver_scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--genes", type=int, default=60_000, help="gene pool per organism")
    ap.add_argument("--nnz-per-cell", type=int, default=2_000)
    ap.add_argument("--chunk-nnz", type=int, default=DEFAULT_CHUNK_NNZ)
    ap.add_argument("--max-rss-gib", type=float, default=6.0)
    ap.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass")
    ap.add_argument("--workdir", type=Path, default=None, help="where to fabricate (default: a temporary dir)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table", type=Path, nargs="+", default=None)
    ap.add_argument("--model", type=Path, default=None, help="print the model for the corpus of this run's JSON")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    if args.model:
        print(model(json.loads(args.model.read_text(encoding="utf-8"))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with _workdir(args.workdir) as root:
        out = simulate(args, root / "build")
    text = json.dumps(out, indent=1, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


class _workdir:  # noqa: N801 - a context manager used like a function
    def __init__(self, where: Path | None) -> None:
        self.where = where

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="driver-scale-", dir=self.where))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""validate_release: prove a Census release against the schema and the source H5ADs named in a manifest.

    plan_datasets      phase 1, a dask task per dataset: what the release must hold for it (from obs / var)
    check_structure    object tree, types, column encodings, shapes, soma_joinids
    check_contents     phase 2, dask tasks per (dataset, row chunk) and per dataset: obs, X, statistics
    check_tables       var, presence matrix, census_info tables, dataset_h5ad_path files
    check_consistency  the release's own sums agree with each other

Findings are collected throughout and judged once at the end; the JSON report is always written.
Every task's result is recorded in a checkpoint beside the report (validation.checkpoint), so an
interrupted validation resumes where it stopped; a completed one removes its checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.cells import CellSetResult, CellSetTask, check_cell_set, foreign_cells
from validation.checkpoint import MISSING, Checkpoint, checkpoint_dir, fingerprint, local_path, task_key
from validation.checksums import ChecksumTask, source_checksum
from validation.chunks import ChunkResult, ChunkTask, DatasetContext, ReleaseUris, check_chunk
from validation.errors import ReleaseNotFoundError
from validation.expected import DatasetPlan, PlanTask, plan_dataset
from validation.general import GeneralPath
from validation.manifest import Manifest, fetch_sources, read_manifest
from validation.model import Model, OrganismModel, build_model
from validation.numbering import VarNumbering, match_var, read_var_numbering
from validation.progress import Progress
from validation.release import ReleaseLayout, check_joinids, open_layout, read_table
from validation.report import Finding, Findings, ValidationReport
from validation.scan import ScanResult, ScanTask, check_scan
from validation.spec import Spec, load_spec
from validation.tables import (
    check_datasets_table,
    check_h5ad_paths,
    check_presence,
    check_presence_shape,
    check_summary,
    check_summary_cell_counts,
    check_var,
    read_presence,
)

logger = logging.getLogger(__name__)

REPORT_NAME = "validation_report.json"
DEFAULT_CHUNK_ENTRIES = 4_000_000  # source entries per row chunk: bounds a worker's memory
# Source rows per phase-2 task (consecutive chunks of a dataset): obs is read once per task, and TileDB
# decompresses whole tiles of obs rows (the builder's obs capacity is 65,536), so one read per 4 M-entry
# chunk (~4,000 cells) decompressed the same tiles again and again.
DEFAULT_TASK_ROWS = 16_384


def task_groups(chunks: Sequence[tuple[int, int, int, int]], max_rows: int) -> list[list[tuple[int, int, int, int]]]:
    """Consecutive row chunks (start, stop, kept before, kept in) grouped into tasks of at most ``max_rows``
    source rows (a chunk longer than that is a task of its own)."""
    groups: list[list[tuple[int, int, int, int]]] = []
    for chunk in chunks:
        if groups and chunk[1] - groups[-1][0][0] <= max_rows:
            groups[-1].append(chunk)
        else:
            groups.append([chunk])
    return groups


def default_report_path(release_uri: str) -> Path:
    """``DIR/VERSION/validation_report.json`` for a release at ``DIR/VERSION/soma``."""
    return Path(release_uri.removeprefix("file://")).resolve().parent / REPORT_NAME


def validate_release(
    release_uri: str,
    manifest_path: str | Path,
    *,
    workers: int | None = None,
    report_path: Path | None = None,
    client: Any = None,
    chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
    task_rows: int = DEFAULT_TASK_ROWS,
    schema_version: str | None = None,
) -> ValidationReport:
    """Validate the release at ``release_uri`` against the sources in ``manifest_path``.

    Runs on ``client`` (a ``distributed.Client``) if given, else on a local cluster of ``workers`` processes
    (default: one per core). Writes the JSON report to ``report_path`` (default: beside the release) and
    returns it. Each finished task is recorded in a checkpoint beside the report; the same call after an
    interruption resumes from it. Raises an InputError (ManifestError, ReleaseNotFoundError,
    CheckpointBusyError) before touching anything if an input is unusable.
    """
    t0 = time.perf_counter()
    path = report_path or default_report_path(release_uri)
    spec = load_spec(schema_version) if schema_version else load_spec()
    manifest = read_manifest(manifest_path)
    release = local_path(release_uri)
    if release is not None and not release.is_dir():
        raise ReleaseNotFoundError(f"no release at {release_uri}: {release} is not a directory (expected the "
                                   "release's root SOMACollection, e.g. DIR/VERSION/soma)")
    options = {"chunk_entries": chunk_entries, "task_rows": task_rows, "schema": spec.version}
    checkpoint = Checkpoint.open(checkpoint_dir(path), fingerprint(release_uri, manifest, options))
    try:
        path.unlink(missing_ok=True)  # a crashed run must not leave an earlier verdict behind
        findings = Findings()
        for problem in manifest.problems:
            findings.add("sources", Finding(problem))
        with _dask(client, workers, checkpoint.scratch) as cl:
            run = Run(spec, manifest, release_uri, cl, chunk_entries, findings, task_rows=task_rows,
                      checkpoint=checkpoint)
            run.sources = fetch_sources(manifest, checkpoint.sources)
            for step in (run.plan_datasets, run.check_structure, run.check_contents, run.check_tables,
                         run.check_consistency):
                t = time.perf_counter()
                step()
                logger.info("[%s] done in %.1fs", step.__name__, time.perf_counter() - t)
        report = ValidationReport(release_uri, str(manifest.path), list(findings.checks.values()),
                                  time.perf_counter() - t0, source_checksums=run.checksums,
                                  readings=dict(findings.readings))
        report.write(path)
    finally:
        checkpoint.close()
    checkpoint.remove()  # complete: the next validation starts afresh
    logger.info("validation %s; report: %s", "passed" if report.passed else "FAILED", path)
    return report


@contextmanager
def _dask(client: Any, workers: int | None, scratch: Path | None = None) -> Iterator[Any]:
    """``client``, or a local cluster whose scratch space is ``scratch`` (not the system temp directory)."""
    if client is not None:
        yield client
        return
    import dask
    from distributed import Client, LocalCluster

    n = workers or os.cpu_count() or 1
    logger.info("starting a local dask cluster: %d worker process(es)", n)
    # Spawned, not forked: TileDB's threads do not survive a fork. Workers keep freed memory for the next
    # chunk instead of page-faulting every array in afresh (glibc maps blocks over 32 MiB anew each time,
    # and a task thread gets its own arena unless there is one): page faults cost ~25 us on this machine.
    # The trim threshold is above a chunk's working set; keeping freed memory never raises the peak.
    # TileDB's thread pools share the cores among the workers instead of each sizing itself to all of them
    # (2 workers on 2 cores: 24.3 -> 23.0 s, 5% less CPU, at 250 k cells).
    threads = str(max(1, (os.cpu_count() or 1) // n))
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), "MALLOC_ARENA_MAX": "1",
               "DASK_LOGGING": "{'distributed.worker.state_machine': 'error'}",  # no cancel chatter on stop
               "MALLOC_MMAP_THRESHOLD_": str(256 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2 * 2**30),
               "TILEDB_SM_COMPUTE_CONCURRENCY_LEVEL": threads, "TILEDB_SM_IO_CONCURRENCY_LEVEL": threads}
    config = {"distributed.worker.multiprocessing-method": "spawn", "distributed.worker.daemon": False,
              "distributed.nanny.pre-spawn-environ": environ}
    if scratch is not None:
        config["temporary-directory"] = str(scratch)
    with dask.config.set(config):
        with _sigint_ignored():
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                                   dashboard_address=":0", silence_logs=logging.WARNING)
        with cluster, Client(cluster) as c:  # type: ignore[no-untyped-call]
            yield c


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Worker processes started in here ignore SIGINT (they inherit it): a Ctrl-C interrupts this process only,
    which then stops the cluster, instead of every worker printing its own traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# Checks that need the release open; each records "not checked" rather than passing when it is not.
CONTENT_CHECKS = ("encodings", "shapes", "soma_joinids", "obs_cells", "obs_metadata", "obs_statistics", "var_features",
                  "var_statistics", "x_raw", "x_raw_explicit_zeros", "x_normalized", "presence_matrix",
                  "census_info_summary", "census_info_datasets", "census_info_summary_cell_counts",
                  "dataset_h5ad_paths", "consistency")


@dataclass(frozen=True)
class Job:
    """One task for the cluster and what to do with its outcome in the driver."""

    fn: Callable[..., Any]
    item: Any
    on_result: Callable[[Any, Any], None]
    on_error: Callable[[Any, BaseException], None]
    priority: int = 0  # higher runs first: big pieces early, so no worker idles at the end
    extra: tuple[Any, ...] = ()  # further arguments (e.g. a scattered per-dataset context)
    cells: int = 0  # source cells the task checks (progress: cells/s)


def run_jobs(client: Any, jobs: Sequence[Job], what: str, checkpoint: Checkpoint | None = None) -> None:
    """Run ``jobs`` on the cluster, handling each outcome as it completes (results stream, none pile up).

    A job whose result ``checkpoint`` holds is not run again: its recorded result is handled instead. Each
    new result is recorded before it is handled; a job that raised is not recorded (it runs again next time).
    """
    from distributed import as_completed

    if not jobs:
        return
    keys = [task_key(j.fn, j.item) if checkpoint else "" for j in jobs]
    pending: list[int] = []
    resumed_cells = 0
    for i, job in enumerate(jobs):
        res = checkpoint.load(keys[i]) if checkpoint else MISSING
        if res is MISSING:
            pending.append(i)
        else:
            job.on_result(job.item, res)
            resumed_cells += job.cells
    resumed = len(jobs) - len(pending)
    if resumed:
        logger.info("%s: resuming: %d of %d tasks already checked", what, resumed, len(jobs))
    progress = Progress(what, len(jobs), total_cells=sum(j.cells for j in jobs), resumed=resumed,
                        resumed_cells=resumed_cells)
    futures = [client.submit(jobs[i].fn, jobs[i].item, *jobs[i].extra, pure=False, priority=jobs[i].priority)
               for i in pending]
    index = {f.key: i for f, i in zip(futures, pending, strict=True)}
    for fut in as_completed(futures):  # type: ignore[no-untyped-call]
        i = index[fut.key]
        job = jobs[i]
        try:
            res = fut.result()
        except Exception as e:
            job.on_error(job.item, e)
        else:
            if checkpoint:
                checkpoint.save(keys[i], res)
            job.on_result(job.item, res)
        fut.release()
        progress.update(job.cells)


@dataclass
class Found:
    """What phase 2 found in the release, per organism, for the consistency check."""

    obs_nnz: int = 0
    raw_nnz: int = 0
    normalized_nnz: int = 0
    cells: dict[str, int] = field(default_factory=dict)  # dataset -> obs rows with its dataset_id
    primary: dict[str, int] = field(default_factory=dict)
    n_measured_vars: dict[str, dict[int, tuple[int, int, str]]] = field(default_factory=dict)
    var_nnz: int | None = None
    var_n_measured_obs: npt.NDArray[np.int64] | None = None
    presence: dict[int, npt.NDArray[np.int64]] | None = None
    obs_count: int = 0
    var_numbering: VarNumbering | None = None  # the release's var matched to the expected genes
    presence_shape: tuple[int, int] | None = None
    scanned: int = 0  # obs rows [0, scanned) read (and counted) by the general path's release scan


@dataclass
class Run:
    spec: Spec
    manifest: Manifest
    release_uri: str
    client: Any
    chunk_entries: int
    findings: Findings
    task_rows: int = DEFAULT_TASK_ROWS
    checkpoint: Checkpoint | None = None
    sources: dict[str, tuple[Path | None, str]] = field(default_factory=dict)
    checksums: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset_id -> {path, size, sha256}
    model: Model | None = None
    layout: ReleaseLayout | None = None
    found: dict[str, Found] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)

    def _model(self) -> Model:
        if self.model is None:
            raise RuntimeError("plan_datasets has not run")
        return self.model

    # -- phase 1 ---------------------------------------------------------------------------------------
    def plan_datasets(self) -> None:
        plans: dict[str, DatasetPlan] = {}
        tasks: list[PlanTask] = []
        for s in self.manifest.sources:
            path, problem = self.sources[s.dataset_id]
            if path is None:
                plans[s.dataset_id] = DatasetPlan(s.dataset_id, "", problems=[problem])
            else:
                tasks.append(PlanTask(s.dataset_id, str(path), self.spec.version, self.chunk_entries))

        def on_result(task: PlanTask, plan: DatasetPlan) -> None:
            plans[task.dataset_id] = plan

        def on_error(task: PlanTask, e: BaseException) -> None:
            plans[task.dataset_id] = DatasetPlan(task.dataset_id, task.path,
                                                 problems=[f"cannot be planned: {type(e).__name__}: {e}"])

        jobs = [Job(plan_dataset, t, on_result, on_error) for t in tasks]
        run_jobs(self.client, jobs + self._checksum_jobs(), "plan_datasets", self.checkpoint)
        ordered = [plans[s.dataset_id] for s in self.manifest.sources]
        for p in ordered:
            for problem in p.problems:
                self.findings.add("sources", Finding(f"source cannot be validated against: {problem}",
                                                     dataset_id=p.dataset_id))
            for w in p.warnings:
                logger.warning("dataset %s: %s", p.dataset_id, w)
            if p.readable and not p.contributes:
                logger.info("dataset %s contributes no cells: %s", p.dataset_id, p.exclusion)
        self.model = build_model(self.spec, {s.dataset_id: s for s in self.manifest.sources}, ordered)

    def _checksum_jobs(self) -> list[Job]:
        """A SHA-256 task per readable source (for ``source_checksums`` in the report)."""
        tasks = [ChecksumTask(s.dataset_id, str(path), s.uri if s.is_s3 else str(path))
                 for s in self.manifest.sources for path in [self.sources[s.dataset_id][0]] if path is not None]

        def on_result(task: ChecksumTask, checksum: dict[str, Any]) -> None:
            self.checksums[task.dataset_id] = checksum

        def on_error(task: ChecksumTask, e: BaseException) -> None:
            self.findings.add("sources", Finding(f"cannot be read to its end: {type(e).__name__}: {e}",
                                                 dataset_id=task.dataset_id))

        return [Job(source_checksum, t, on_result, on_error) for t in tasks]

    # -- structure -------------------------------------------------------------------------------------
    def check_structure(self) -> None:
        import tiledbsoma as soma

        model = self._model()
        self.layout = layout = open_layout(self.release_uri, self.spec, list(model.organisms), self.findings)
        for name, uri in layout.tables.items():
            check_joinids(self.findings, uri, f"census_info['{name}']")
        if "datasets" in layout.tables:  # the presence matrix's rows are the datasets table's soma_joinids
            try:
                t = read_table(layout.tables["datasets"], ["soma_joinid", "dataset_id"])
                model.number_datasets(t.column("dataset_id").to_pylist(), t.column("soma_joinid").to_pylist())
            except Exception as e:
                logger.warning("datasets table numbering not readable (%s): manifest order assumed", e)
        for name, exp in layout.experiments.items():
            org = model.organisms.get(name)
            found = self.found.setdefault(name, Found())
            n_obs, n_var = (org.n_obs, len(org.var)) if org else (0, 0)
            if exp.obs:
                found.obs_count = check_joinids(self.findings, exp.obs, f"census_data['{name}'].obs", name)
                if found.obs_count != n_obs:
                    self.findings.add("shapes", Finding("obs has the wrong number of cells", organism=name,
                                                        expected=n_obs, found=found.obs_count))
            if exp.var:
                got = check_joinids(self.findings, exp.var, f"census_data['{name}'].var", name)
                if got != n_var:
                    self.findings.add("shapes", Finding("var has the wrong number of genes", organism=name,
                                                        expected=n_var, found=got))
                if org is not None:
                    try:
                        found.var_numbering = read_var_numbering(exp.var, org.var.feature_ids)
                    except Exception as e:
                        logger.warning("%s var not readable (%s): feature_id order assumed", name, e)
            arrays = {f"X['{k}']": (uri, (n_obs, n_var)) for k, uri in exp.x.items()}
            if exp.presence:  # its height is checked with the datasets table (check_tables)
                arrays[self.spec.presence_matrix] = (exp.presence, (-1, n_var))
            for what, (uri, wanted) in arrays.items():
                try:
                    with soma.SparseNDArray.open(uri) as arr:
                        shape = tuple(int(s) for s in arr.shape)
                except Exception as e:
                    self.findings.add("shapes", Finding(f"{what} cannot be opened: {type(e).__name__}: {e}",
                                                        organism=name))
                    continue
                want = wanted
                if want[0] < 0:
                    found.presence_shape = (shape[0], shape[1]) if len(shape) == 2 else None
                    want = (shape[0], n_var) if len(shape) == 2 else want
                if shape != want:
                    self.findings.add("shapes", Finding(f"{what} has the wrong shape", organism=name,
                                                        expected=list(want), found=list(shape)))

    # -- phase 2 ---------------------------------------------------------------------------------------
    def check_contents(self) -> None:
        model, layout = self._model(), self.layout
        if layout is None or not layout.opened:
            for check in CONTENT_CHECKS:
                self.findings.add(check, Finding("not checked: the release root could not be opened"))
            return
        # First the cells of each dataset, matched by observation_joinid: where the release put them.
        cell_tasks: list[CellSetTask] = []
        for name, org in model.organisms.items():
            exp = layout.experiments.get(name)
            if exp is None:
                for p in org.datasets:
                    self.findings.add("obs_cells", Finding(
                        f"the dataset's {p.n_cells} cells are not in the release: its experiment is missing",
                        dataset_id=p.dataset_id, organism=name, expected=p.n_cells, found=0))
                continue
            if exp.obs:
                cell_tasks.extend(CellSetTask(p.dataset_id, name, p.organism_term, p.path, self.spec.version, exp.obs)
                                  for p in org.datasets)
        placed: dict[str, CellSetResult] = {}

        def cells_done(task: CellSetTask, res: CellSetResult) -> None:
            self.findings.merge("obs_cells", res.findings, res.total)
            self.found[task.organism].cells[task.dataset_id] = res.n_found
            self.found[task.organism].primary[task.dataset_id] = res.n_primary_found
            placed[task.dataset_id] = res

        def cells_failed(task: CellSetTask, e: BaseException) -> None:
            self.findings.add("obs_cells", Finding(f"cells could not be checked: {type(e).__name__}: {e}",
                                                   dataset_id=task.dataset_id, organism=task.organism))

        run_jobs(self.client, [Job(check_cell_set, t, cells_done, cells_failed) for t in cell_tasks],
                 "check_contents (cells)", self.checkpoint)

        # Then X and obs, chunk by chunk, through the cell and gene numbering the release uses.
        chunk_tasks: list[tuple[ChunkTask, Any]] = []  # (task, future of its dataset's context)
        general: dict[str, GeneralPath] = {}  # organisms not numbered in consecutive runs: validation.general
        for name, org in model.organisms.items():
            exp = layout.experiments.get(name)
            if exp is None:
                continue
            if any(placed[p.dataset_id].start is None for p in org.datasets if p.dataset_id in placed):
                general[name] = GeneralPath(name, max(self.found[name].obs_count, org.n_obs),
                                            scratch=self.checkpoint.scratch if self.checkpoint else None)
                self.found[name].scanned = general[name].n_rows
            numbering = self._var_numbering(org)
            self.findings.readings[f"{name} genes"] = (
                "sorted by feature_id (as our builder numbers them)" if numbering.in_order
                else "another order than sorted by feature_id (matched by feature_id)")
            self._cell_reading(org, placed)
            uris = ReleaseUris(exp.obs, exp.x.get("raw"), exp.x.get("normalized"))
            n_var = numbering.n_release + len(org.var)
            for p in org.datasets:
                col_map, col_length = org.col_map(p)
                kept = col_map >= 0
                col_map[kept] = numbering.joinids(col_map[kept])
                [context] = self.client.scatter([DatasetContext(col_map, col_length, p.tissue_general)], hash=False)
                cells = placed.get(p.dataset_id)
                start = org.offsets[p.dataset_id] if cells is None or cells.start is None else cells.start
                for group in task_groups(p.chunks, self.task_rows):
                    (a, _, before, _), (_, b, _, _) = group[0], group[-1]
                    n_cells = sum(c[3] for c in group)
                    joinids = (None if cells is None or cells.joinids is None
                               else cells.joinids[before : before + n_cells].copy())
                    task = ChunkTask(
                        dataset_id=p.dataset_id, organism=name, path=p.path, matrix_key=p.matrix_key,
                        schema_version=self.spec.version, organism_term=p.organism_term, row_start=a, row_stop=b,
                        joinid_start=start + before, n_cells=n_cells, n_var=n_var, uris=uris,
                        parts=tuple((c[0], c[1]) for c in group), joinids=joinids)
                    chunk_tasks.append((general[name].add(task, context) if name in general else task, context))
        placed.clear()

        def chunk_done(task: ChunkTask, res: ChunkResult) -> None:
            org = model.organisms[task.organism]
            numbering = self._var_numbering(org)
            for check, kept in res.findings.items():
                self.findings.merge(check, [self._named(numbering, f) for f in kept], res.totals[check])
            genes = numbering.expected(res.var_ids)
            known = genes >= 0
            org.var_nnz[genes[known]] += res.var_nnz[known]
            org.presence[task.dataset_id][genes[known]] = True
            if res.cells is not None:
                general[task.organism].place(task, res.cells)
            self._found_counts(task.organism, res, {task.dataset_id: res.n_measured_vars})

        def chunk_failed(task: ChunkTask, e: BaseException) -> None:
            for check in ("obs_metadata", "x_raw", "x_normalized"):
                self.findings.add(check, Finding(f"rows {task.row_start}..{task.row_stop - 1} could not be checked: "
                                                 f"{type(e).__name__}: {e}", dataset_id=task.dataset_id,
                                                 organism=task.organism))

        logger.info("checking %d task(s) of %d dataset(s)", len(chunk_tasks), len(cell_tasks))
        jobs = [Job(check_chunk, t, chunk_done, chunk_failed, priority=t.n_cells, extra=(ctx,), cells=t.n_cells)
                for t, ctx in chunk_tasks]
        run_jobs(self.client, jobs, "check_contents", self.checkpoint)
        for name, path in general.items():
            try:
                self._check_general(model.organisms[name], path)
            finally:
                path.close()
        for name, org in model.organisms.items():
            if name in layout.experiments:
                self._n_measured_vars(org)
                self._beyond_expected_rows(org)
                self._foreign_cells(org)

    def _found_counts(self, organism: str, res: ChunkResult,
                      per_dataset: dict[str, dict[int, tuple[int, int, str]]]) -> None:
        """Add what a chunk or scan task found (value counts; n_measured_vars values per dataset) to the totals."""
        f = self.found[organism]
        f.obs_nnz += res.obs_nnz
        f.raw_nnz += res.raw_nnz
        f.normalized_nnz += res.normalized_nnz
        for ds, values in per_dataset.items():
            acc = f.n_measured_vars.setdefault(ds, {})
            for value, (n, sj, oj) in values.items():
                prev = acc.get(value)
                acc[value] = (n + prev[0], min(sj, prev[1]), oj if sj < prev[1] else prev[2]) if prev else (n, sj, oj)

    def _check_general(self, org: OrganismModel, path: GeneralPath) -> None:
        """Scan the release in its own order, then compare the cells whose fingerprints differ value by value."""
        name = org.organism.name
        exp = self._layout().experiments[name]
        numbering = self._var_numbering(org)
        lengths = np.zeros(max(numbering.n_release, 1), dtype=np.float64)
        found_genes = numbering.release_of_expected >= 0
        lengths[numbering.release_of_expected[found_genes]] = org.var.lengths[found_genes]
        [lengths_future] = self.client.scatter([lengths], hash=False)
        per_cell = max(1, int(org.var_nnz.sum()) // max(org.n_obs, 1))
        rows = max(1, min(self.task_rows, self.chunk_entries // per_cell))  # X entries per scan task: one chunk's
        uris = ReleaseUris(exp.obs, exp.x.get("raw"), exp.x.get("normalized"))

        def scan_done(task: ScanTask, result: ScanResult) -> None:
            for check, kept in result.res.findings.items():
                self.findings.merge(check, [self._named(numbering, f) for f in kept], result.res.totals[check])
            self._found_counts(name, result.res, result.n_measured_vars)
            path.scanned(result)

        def scan_failed(task: ScanTask, e: BaseException) -> None:
            for check in ("obs_statistics", "x_raw", "x_normalized"):
                self.findings.add(check, Finding(f"release rows {task.lo}..{task.hi - 1} could not be checked: "
                                                 f"{type(e).__name__}: {e}", organism=name))

        scans = path.scan_jobs(uris, self.spec.version, rows)
        run_jobs(self.client, [Job(check_scan, t, scan_done, scan_failed, extra=(lengths_future, want))
                               for t, want in scans], f"check_contents ({name}, release scan)")
        details, left = path.detail_tasks()

        def detail_done(task: ChunkTask, res: ChunkResult) -> None:
            for check, kept in res.findings.items():
                if check in ("x_raw", "x_raw_explicit_zeros", "x_normalized", "obs_metadata", "obs_cells"):
                    self.findings.merge(check, [self._named(numbering, f) for f in kept], res.totals[check])

        def detail_failed(task: ChunkTask, e: BaseException) -> None:
            self.findings.add("x_raw", Finding(f"differing cells could not be compared: {type(e).__name__}: {e}",
                                               dataset_id=task.dataset_id, organism=name))

        run_jobs(self.client, [Job(check_chunk, t, detail_done, detail_failed, extra=(ctx,)) for t, ctx in details],
                 f"check_contents ({name}, differing cells)")
        for kind, check in (("raw", "x_raw"), ("metadata", "obs_metadata")):
            if left[kind]:
                self.findings.merge(check, [Finding(
                    f"{left[kind]} more cell(s) whose {'X row' if kind == 'raw' else 'obs metadata'} differs from the "
                    "source (fingerprints differ; not compared value by value)", organism=name,
                    found=left[kind])], left[kind])

    @staticmethod
    def _named(numbering: VarNumbering, f: Finding) -> Finding:
        """The release's var soma_joinid and feature_id of the gene a chunk finding names by joinid (a gene the
        release lacks has no var soma_joinid: only its feature_id)."""
        if f.feature_id is None and f.var_joinid is not None:
            joinid, feature_id = numbering.name(f.var_joinid)
            return replace(f, var_joinid=joinid, feature_id=feature_id)
        return f

    def _var_numbering(self, org: OrganismModel) -> VarNumbering:
        found = self.found.setdefault(org.organism.name, Found())
        if found.var_numbering is None:  # var unreadable: compare in feature_id order (var_features reports it)
            ids = org.var.feature_ids
            found.var_numbering = match_var(ids, np.arange(len(ids), dtype=np.int64), list(ids))
        return found.var_numbering

    def _cell_reading(self, org: OrganismModel, placed: dict[str, CellSetResult]) -> None:
        """Say in the report how the release numbers the organism's cells."""
        results = [placed[p.dataset_id] for p in org.datasets if p.dataset_id in placed]
        runs = [r for r in results if r.start is not None]
        if len(runs) == len(org.datasets) and all(r.start == org.offsets[r.dataset_id] for r in runs):
            text = "each dataset's cells consecutive, in source order, datasets in manifest order (as our builder)"
        elif len(runs) == len(results):
            text = "each dataset's cells consecutive, in source order, datasets in another order"
        else:
            text = (f"cells of {len(results) - len(runs)} of {len(org.datasets)} dataset(s) not one consecutive run "
                    "in source order (compared through the (dataset_id, observation_joinid) map)")
        self.findings.readings[f"{org.organism.name} cells"] = text

    def _n_measured_vars(self, org: OrganismModel) -> None:
        found = self.found[org.organism.name].n_measured_vars
        for p in org.datasets:
            want = org.n_measured_vars(p.dataset_id)
            for value, (n, sj, oj) in sorted(found.get(p.dataset_id, {}).items()):
                if value != want:
                    self.findings.merge("obs_statistics", [Finding(
                        f"obs n_measured_vars differs from the dataset's recomputed presence count ({n} cell(s))",
                        dataset_id=p.dataset_id, organism=org.organism.name, soma_joinid=sj, observation_joinid=oj,
                        column="n_measured_vars", expected=want, found=value)], n)

    def _beyond_expected_rows(self, org: OrganismModel) -> None:
        """obs rows and X values at soma_joinids past the expected cells (the chunk tasks never read them)."""
        import tiledbsoma as soma

        name = org.organism.name
        exp = self._layout().experiments[name]
        found = self.found[name]
        n_obs = max(org.n_obs, found.scanned)  # rows the content tasks read
        if exp.obs:
            t: Any = None
            try:
                with soma.DataFrame.open(exp.obs) as df:
                    written = df.non_empty_domain()[0]
                    t = (df.read(coords=(slice(n_obs, int(written[1])),)).concat()
                         if written is not None and int(written[1]) >= n_obs else None)
            except Exception as e:
                self.findings.add("obs_cells", Finding(f"obs rows past {n_obs - 1} cannot be read: {e}",
                                                       organism=name))
            # rows of known datasets are reported by the per-dataset cell check, others by _foreign_cells
            if t is not None and "nnz" in t.column_names:
                found.obs_nnz += int(np.asarray(t.column("nnz").to_numpy()).sum())
        for layer, check in (("raw", "x_raw"), ("normalized", "x_normalized")):
            uri = exp.x.get(layer)
            if uri is None:
                continue
            try:
                with soma.SparseNDArray.open(uri) as arr:
                    written = arr.non_empty_domain()[0]
                    if written is None or int(written[1]) < n_obs:
                        continue
                    t = arr.read(coords=(slice(n_obs, int(written[1])),)).tables().concat()
            except Exception as e:
                self.findings.add(check, Finding(f"X['{layer}'] rows past {n_obs - 1} cannot be read: {e}",
                                                 organism=name))
                continue
            rows = t.column("soma_dim_0").to_numpy()
            if layer == "raw":
                found.raw_nnz += int(rows.size)
            else:
                found.normalized_nnz += int(rows.size)
            if rows.size:
                self.findings.merge(check, [Finding(
                    f"X['{layer}'] stores values for rows past the last expected cell ({n_obs - 1})",
                    organism=name, soma_joinid=int(rows[0]), found=int(rows.size))], int(rows.size))

    def _foreign_cells(self, org: OrganismModel) -> None:
        """obs rows of datasets with no cells of the organism, wherever the release numbers them."""
        name, exp = org.organism.name, self._layout().experiments[org.organism.name]
        found = self.found[name]
        members = [p.dataset_id for p in org.datasets]
        if not exp.obs or found.obs_count <= sum(found.cells.get(d, 0) for d in members):
            return
        try:
            n, first = foreign_cells(exp.obs, members)
        except Exception as e:
            self.findings.add("obs_cells", Finding(f"obs rows of other datasets cannot be listed: {e}", organism=name))
            return
        self.findings.merge("obs_cells", [Finding(
            f"obs row of a dataset with no {org.organism.label} cells (not a contributing dataset of this "
            "organism)", organism=name, dataset_id=r["dataset_id"], soma_joinid=r["soma_joinid"],
            observation_joinid=r["observation_joinid"], expected="absent", found="present") for r in first], n)

    def _layout(self) -> ReleaseLayout:
        if self.layout is None:
            raise RuntimeError("check_structure has not run")
        return self.layout

    # -- tables ----------------------------------------------------------------------------------------
    def check_tables(self) -> None:
        model, layout = self._model(), self._layout()
        if not layout.opened:
            return
        for name, org in model.organisms.items():
            exp = layout.experiments.get(name)
            if exp is None:
                continue
            found = self.found[name]
            if exp.var:
                var = check_var(self.findings, org, exp.var)
                if var is not None and "nnz" in var.column_names:
                    found.var_nnz = int(np.asarray(var.column("nnz").to_numpy()).sum())
                if var is not None and "n_measured_obs" in var.column_names:
                    found.var_n_measured_obs = np.asarray(var.column("n_measured_obs").to_numpy(), dtype=np.int64)
            if exp.presence:
                try:
                    found.presence = read_presence(exp.presence, len(model.contributing))
                except Exception as e:
                    self.findings.add("presence_matrix", Finding(f"cannot be read: {type(e).__name__}: {e}",
                                                                 organism=name))
                else:
                    check_presence(self.findings, model, org, found.presence, self._var_numbering(org))
                if found.presence_shape is not None:
                    check_presence_shape(self.findings, model, org, found.presence_shape)
        for name, check in (("datasets", "census_info_datasets"), ("summary", "census_info_summary"),
                            ("summary_cell_counts", "census_info_summary_cell_counts")):
            uri = layout.tables.get(name)
            if uri is None:
                self.findings.add(check, Finding(f"census_info['{name}'] is missing: rows not checked"))
                continue
            try:
                self.tables[name] = read_table(uri)
            except Exception as e:
                self.findings.add(check, Finding(f"census_info['{name}'] cannot be read: {type(e).__name__}: {e}"))
        paths: dict[str, str] = {}
        if "datasets" in self.tables:
            paths = check_datasets_table(self.findings, model, self.tables["datasets"])
        if "summary" in self.tables:
            check_summary(self.findings, self.spec, model, self.tables["summary"])
        if "summary_cell_counts" in self.tables:
            check_summary_cell_counts(self.findings, self.spec, model, self.tables["summary_cell_counts"])
        release_dir = Path(self.release_uri.removeprefix("file://")).resolve().parent
        check_h5ad_paths(self.findings, model, release_dir, paths, {k: v[0] for k, v in self.sources.items()})

    # -- consistency -----------------------------------------------------------------------------------
    def check_consistency(self) -> None:
        model, layout = self._model(), self._layout()
        if not layout.opened:
            return
        add = self.findings.add
        total_cells, total_primary = 0, 0
        for name, f in self.found.items():
            total_cells += f.obs_count
            total_primary += sum(f.primary.values())
            sums = {"sum of obs nnz": f.obs_nnz, "sum of var nnz": f.var_nnz, "X['raw'] values": f.raw_nnz,
                    "X['normalized'] values": f.normalized_nnz}
            known = {k: v for k, v in sums.items() if v is not None}
            if len(set(known.values())) > 1:
                add("consistency", Finding("obs nnz, var nnz and the X layers' value counts disagree", organism=name,
                                           expected="all equal", found=known))
            if f.presence is None:
                continue
            org = model.organisms.get(name)
            for p in org.datasets if org else []:
                row_sum = int(f.presence.get(model.dataset_joinid[p.dataset_id], np.zeros(0)).size)
                for value, (n, sj, oj) in sorted(f.n_measured_vars.get(p.dataset_id, {}).items()):
                    if value != row_sum:
                        self.findings.merge("consistency", [Finding(
                            f"obs n_measured_vars is not the release's presence row sum ({n} cell(s))",
                            organism=name, dataset_id=p.dataset_id, soma_joinid=sj, observation_joinid=oj,
                            expected=row_sum, found=value)], n)
            if f.var_n_measured_obs is not None:
                weighted = np.zeros(f.var_n_measured_obs.size, dtype=np.int64)
                for joinid, present in f.presence.items():
                    ds = model.dataset_at(joinid)
                    weighted[present[present < weighted.size]] += f.cells.get(ds, 0) if ds else 0
                bad = np.nonzero(weighted != f.var_n_measured_obs)[0]
                names = list(self._var_numbering(org).release_ids) if org else []
                self.findings.merge("consistency", [Finding(
                    "var n_measured_obs is not the presence-weighted cell count of the release", organism=name,
                    var_joinid=int(j), feature_id=names[j] if j < len(names) else None,
                    expected=int(weighted[j]), found=int(f.var_n_measured_obs[j])) for j in bad[:20]], int(bad.size))
        datasets = self.tables.get("datasets")
        if datasets is not None and {"dataset_id", "dataset_total_cell_count"} <= set(datasets.column_names):
            obs_cells = {ds: n for f in self.found.values() for ds, n in f.cells.items()}
            for ds, n in zip(datasets.column("dataset_id").to_pylist(),
                             datasets.column("dataset_total_cell_count").to_pylist(), strict=True):
                if ds in obs_cells and obs_cells[ds] != n:
                    add("consistency", Finding("dataset_total_cell_count is not the number of obs rows of the dataset",
                                               dataset_id=ds, expected=obs_cells[ds], found=n))
        summary = self.tables.get("summary")
        if summary is not None and {"label", "value"} <= set(summary.column_names):
            rows = dict(zip(summary.column("label").to_pylist(), summary.column("value").to_pylist(), strict=True))
            for label, n in (("total_cell_count", total_cells), ("unique_cell_count", total_primary)):
                if label in rows and rows[label] != str(n):
                    add("consistency", Finding(f"summary {label} is not the release's obs count", column=label,
                                               expected=str(n), found=rows[label]))

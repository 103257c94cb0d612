"""The build command: an ordered list of plainly named, resumable steps.

    stage_and_inspect  copy/download each source into h5ads/, preflight it, plan its cells, genes, chunks
    plan_axes          assign soma_joinids (datasets, cells, genes) and create the empty release structure
    write_matrices     X["raw"] and X["normalized"], one dask task per (dataset, row chunk)
    write_tables       obs (a task per dataset), var, presence matrix, census_info
    finalize_release   consolidate metadata (X) or whole arrays (the rest), root metadata, move into place

Each step records its completion under ``.build/stages``; a re-run skips finished steps (and, inside the
matrix and obs steps, finished tasks). The release appears at ``DIR/VERSION/soma`` only when complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from census_builder import __version__, config

from census_builder.build import exclusions

from census_builder.runtime import faults

from census_builder.build import host_check

from census_builder.soma import writers

from census_builder.sources import staged

from census_builder.build import summary
from census_builder.runtime.cluster import dask_client, run_tasks
from census_builder.diskfull import disk_full_error
from census_builder.errors import BuildStateError, InputError, PreflightError, ReleaseExistsError
from census_builder.sources.manifest import Manifest, ManifestEntry, load_manifest, write_manifest
from census_builder.build.write_matrices import ChunkSummary, ChunkTask, process_chunk, result_exists
from census_builder.names import check_version_name
from census_builder.build.inspect import DatasetPlan, PlanFiles, inspect_dataset, unreadable
from census_builder.runtime.progress import Progress
from census_builder.build.restart import discard_run_state, refuse_restart_of, release_started
from census_builder.census.schema import CensusSchema, load_schema
from census_builder.sources.staging import (
    changed_sources,
    check_layout,
    records_dir,
    remove_staged,
    source_identity,
    source_size,
    source_uri,
    stage_source,
)
from census_builder.build.state import BuildPaths, StageRecord, build_lock, read_json, write_json_atomic
from census_builder.build.write_tables import (
    CellCounts,
    ObsTask,
    PresenceReducer,
    summary_table,
    write_census_info_table,
    write_obs,
    write_presence,
    write_var,
)

logger = logging.getLogger(__name__)

STAGES = ("stage_and_inspect", "plan_axes", "write_matrices", "write_tables", "finalize_release")


@dataclass(frozen=True)
class BuildConfig:
    """What to build (frozen; run state lives in :class:`BuildRun`)."""

    version: str
    manifest: Path
    workdir: Path = config.DEFAULT_WORKDIR
    workers: int | None = None
    scheduler: str | None = None
    chunk_nnz: int = config.DEFAULT_CHUNK_NNZ  # stored entries read per matrix task: bounds worker memory
    exclude_invalid: bool = False
    schema_version: str = config.DEFAULT_SCHEMA_VERSION
    build_date: str | None = None  # ISO date; default: today (UTC) when the build first started
    memory_limit: str | None = None  # per local dask worker
    force_rebuild: bool = False  # build a complete version again, into a new DIR/VERSION.rebuild-<UTC time>
    skip_host_check: bool = False  # build even when the host check finds too little disk space
    restart: bool = False  # discard an unfinished build's run state first (never a complete release)
    max_excluded: float = config.DEFAULT_MAX_EXCLUDED  # with exclude_invalid: refuse above this share invalid


@dataclass
class BuildRun:
    """Mutable state of one run of the build command."""

    config: BuildConfig
    schema: CensusSchema
    manifest: Manifest
    paths: BuildPaths
    stages: StageRecord
    client: Any = None
    run_id: str = ""  # this run's build-lock token; tasks of a dead run refuse to write
    build_date: str = ""  # fixed when the build first starts; a resumed build keeps it
    timings: dict[str, float] = field(default_factory=dict)

    def report(self, status: str, **extra: Any) -> None:
        previous = read_json(self.paths.report) if self.paths.report.is_file() else {}
        timings = {**previous.get("stage_seconds", {}), **self.timings}
        write_json_atomic(
            self.paths.report,
            {
                **previous,
                "version": self.config.version,
                "status": status,
                "manifest": str(self.config.manifest),
                "manifest_sha256": self.manifest.sha256,
                "census_schema_version": self.schema.version,
                "census_builder_version": __version__,
                "stage_seconds": timings,
                "stages_done": [s for s in STAGES if self.stages.done(s)],
                "updated": time.time(),
                **extra,
            },
        )


def build(config: BuildConfig) -> BuildPaths:
    """Build (or resume building) ``config.version``; returns its paths once complete."""
    check_version_name(config.version)
    schema = load_schema(config.schema_version)
    manifest = load_manifest(config.manifest)
    paths = BuildPaths.for_version(config.workdir, config.version)
    if paths.is_complete():
        if config.restart and not config.force_rebuild:
            refuse_restart_of(paths)
        if not config.force_rebuild:
            raise ReleaseExistsError(
                f"release {config.version} at {paths.root} is complete and immutable; build another version, "
                "or pass --force-rebuild to build it again into a new directory beside it"
            )
        unfinished = _unfinished_rebuild(paths)
        if unfinished is not None:  # an interrupted rebuild: the same command continues it
            paths = unfinished
            logger.warning(
                "%s is complete and stays untouched; continuing the rebuild in %s", config.version, paths.root
            )
        else:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            paths = BuildPaths(paths.root.with_name(f"{config.version}.rebuild-{stamp}"))
            logger.warning("%s is complete and stays untouched; rebuilding into %s", config.version, paths.root)
    check_layout(manifest, config.manifest, paths)  # before anything is written
    paths.root.mkdir(parents=True, exist_ok=True)
    with build_lock(paths) as lock:  # no live build holds it from here on: run state may be discarded
        if config.restart:
            discard_run_state(paths, reason="--restart")
        run = BuildRun(config, schema, manifest, paths, StageRecord(paths), run_id=lock.run_id)
        _check_same_inputs(run)
        _check_sources_unchanged(run)
        _check_not_wedged(run)
        run.report("running")
        try:
            run.report("running", host_check=host_check.preflight(config, manifest, paths).to_json())
            with dask_client(
                workers=config.workers, scheduler=config.scheduler, memory_limit=config.memory_limit
            ) as client:
                run.client = client
                if not config.scheduler:  # local workers outlive a killed driver: let a successor kill them
                    lock.record_workers(list(client.run(os.getpid).values()))
                for name, step in STEPS:
                    if run.stages.done(name):
                        logger.info("[%s] already done; skipping", name)
                        continue
                    logger.info("[%s] starting", name)
                    t0 = time.perf_counter()
                    outputs = step(run)
                    run.timings[name] = round(time.perf_counter() - t0, 3)
                    run.stages.mark(name, outputs)
                    faults.point(f"after:{name}")
                    run.report("running")
        except BaseException as e:
            full = disk_full_error(e, where=paths.root)  # ENOSPC in any form, from any worker: one clear line
            with contextlib.suppress(OSError):  # e.g. the disk is full: the original error matters more
                if isinstance(e, KeyboardInterrupt):  # Ctrl-C, SIGTERM: nothing is wrong, the run just stopped
                    run.report("interrupted", error=f"interrupted by {e or 'SIGINT'}", interrupted=time.time())
                else:
                    run.report("failed", error=f"{type(full or e).__name__}: {full or e}")
            if full is not None and full is not e:
                raise full from e
            raise
        run.report("complete", completed=time.time())
        summary.store_summary(paths, STAGES)
        invalid = run.stages.get("stage_and_inspect")["outputs"].get("invalid", [])
        exclusions.log_summary(invalid, len(manifest), _user_sources(manifest))
    logger.info("release %s complete: %s", config.version, paths.soma)
    return paths


def _unfinished_rebuild(paths: BuildPaths) -> BuildPaths | None:
    """The latest ``DIR/VERSION.rebuild-<time>`` that is not complete, if any."""
    candidates = sorted(paths.root.parent.glob(f"{paths.root.name}.rebuild-*"))
    unfinished = [BuildPaths(p) for p in candidates if p.is_dir() and not BuildPaths(p).is_complete()]
    return unfinished[-1] if unfinished else None


def _check_same_inputs(run: BuildRun) -> None:
    """A resumed build must use the same manifest, schema and options that shape the release."""
    key = {
        "manifest_sha256": run.manifest.sha256,
        "schema": run.schema.version,
        "chunk_nnz": run.config.chunk_nnz,
        "exclude_invalid": run.config.exclude_invalid,
    }
    path = run.paths.state / "inputs.json"
    recorded = read_json(path) if path.is_file() else None
    diff = {k: (recorded.get(k), v) for k, v in key.items() if recorded.get(k) != v} if recorded else {}
    if diff:
        changed = "; ".join(_describe_change(k, old, new, recorded or {}, run) for k, (old, new) in diff.items())
        if release_started(run.paths, run.stages):
            raise BuildStateError(
                f"{run.paths.root} holds an unfinished build that already wrote release objects, with other "
                f"inputs: {changed}. Resume it with its recorded manifest and options, or discard it and build "
                "from scratch with these inputs: add --restart to this command (or build another --version)"
            )
        logger.warning(
            "%s: the unfinished build wrote no release object yet; restarting it with the new inputs (%s)",
            run.paths.root,
            changed,
        )
        discard_run_state(run.paths, reason="inputs changed before any release object was written", level=logging.DEBUG)
        recorded = None
    if recorded:
        run_date = recorded["build_date"]
        if run.config.build_date is not None and run.config.build_date != run_date:
            raise BuildStateError(
                f"{run.paths.root} holds an unfinished build with --build-date {run_date}, not "
                f"{run.config.build_date}; resume it with --build-date {run_date} (or without --build-date), "
                "or discard it with --restart, or use another --workdir/--version"
            )
    else:
        run_date = run.config.build_date or dt.datetime.now(dt.UTC).date().isoformat()
        write_json_atomic(path, {**key, "manifest": str(run.config.manifest.resolve()), "build_date": run_date})
    run.build_date = run_date


def _check_sources_unchanged(run: BuildRun) -> None:
    """A resumed build was planned from the sources as they were staged: refuse if one changed since."""
    if not run.stages.done("stage_and_inspect"):
        return  # staging notices changed sources itself and stages them again
    outputs = run.stages.get("stage_and_inspect")["outputs"]
    ids = [*outputs["datasets"], *(p["dataset_id"] for p in outputs.get("invalid", []))]
    changed = changed_sources(run.manifest, ids, run.paths)
    if changed:
        lines = "\n".join(f"  - {c}" for c in changed)
        raise BuildStateError(
            f"{len(changed)} source(s) changed after this build of {run.config.version} planned them:\n{lines}\n"
            "The unfinished release was planned from the old contents. Restore the old file(s), or discard the "
            "unfinished build and start again with the same command plus --restart (or build another --version)."
        )


def _check_not_wedged(run: BuildRun) -> None:
    """An unfinished build whose release under construction is gone cannot be resumed: say how to start over."""
    if run.stages.done("plan_axes") and not run.paths.partial.is_dir() and not run.paths.soma.is_dir():
        raise BuildStateError(
            f"{run.paths.root} holds an unfinished build whose release under construction ({run.paths.partial}) "
            "is gone (removed by hand or by a crashed run); it cannot be resumed. Discard the unfinished build "
            "and start again with the same command plus --restart"
        )


def _user_sources(manifest: Manifest) -> dict[str, str]:
    return {e.dataset_id: e.h5ad_uri if e.is_s3 else str(manifest.local_path(e)) for e in manifest.entries}


def _describe_change(key: str, old: Any, new: Any, recorded: dict[str, Any], run: BuildRun) -> str:
    if key == "manifest_sha256":
        was = recorded.get("manifest", "")
        now = str(run.config.manifest.resolve())
        where = f"{was} -> {now}" if was and was != now else now
        return f"manifest ({where}; content sha256 {str(old)[:12]}... -> {str(new)[:12]}...)"
    option = {"chunk_nnz": "--chunk-nnz", "exclude_invalid": "--exclude-invalid", "schema": "schema version"}
    return f"{option.get(key, key)} ({old} -> {new})"


# -- step 1 ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectTask:
    entry: ManifestEntry
    manifest: Manifest
    dest: str
    plan_dir: str
    schema_version: str
    chunk_nnz: int
    records: str  # .build/staged: what staging created


def _stage_and_inspect_one(task: InspectTask) -> DatasetPlan | InputError:
    """Worker: stage one source and preflight it. Input problems come back as values, to be reported together."""
    ds = task.entry.dataset_id
    uri = source_uri(task.manifest, task.entry)  # errors name the user's file, not the staged copy
    try:
        faults.point(f"stage:{ds}", task.dest)
        local = stage_source(task.manifest, task.entry, Path(task.dest), Path(task.records))
        schema = load_schema(task.schema_version)
        return inspect_dataset(ds, str(local), schema, task.chunk_nnz, task.plan_dir, source=uri)
    except InputError as e:
        return e
    except Exception as e:  # a malformed file can make h5py/anndata raise anything
        # A full disk is not the dataset's fault: fail the build (resumable), saying what the copy needs.
        full = disk_full_error(e, where=task.dest, needed=_source_size_or_none(task), what=f"staging dataset {ds}")
        if full is not None:
            raise full from e
        return unreadable(ds, uri, e)


def _source_size_or_none(task: InspectTask) -> int | None:
    try:
        return source_size(task.manifest, task.entry)
    except Exception:
        return None


def stage_and_inspect(run: BuildRun) -> dict[str, Any]:
    entries = run.manifest.entries
    # Missing or unreadable sources are found with a cheap look before anything is staged, and reported at
    # once (naming the manifest's files): nothing is downloaded or copied before they are fixed.
    problems: list[InputError] = []
    for e in entries:
        try:
            source_identity(run.manifest, e)
        except InputError as err:
            problems.append(err)
    if problems and not run.config.exclude_invalid:
        raise PreflightError(problems)
    bad = {p.dataset_id for p in problems}
    tasks = [
        InspectTask(
            e,
            run.manifest,
            str(run.paths.h5ad(e.dataset_id)),
            str(run.paths.plans),
            run.schema.version,
            run.config.chunk_nnz,
            str(records_dir(run.paths)),
        )
        for e in entries
        if e.dataset_id not in bad
    ]
    progress = Progress("stage_and_inspect", len(tasks), "datasets")
    done: dict[str, DatasetPlan] = {}

    def on_result(task: InspectTask, res: DatasetPlan | InputError) -> None:
        if isinstance(res, InputError):
            problems.append(res)
        else:
            done[task.entry.dataset_id] = res
        progress.update(1, res.n_cells if isinstance(res, DatasetPlan) else 0)

    run_tasks(run.client, _stage_and_inspect_one, tasks, on_result=on_result)
    order = {e.dataset_id: i for i, e in enumerate(entries)}
    problems.sort(key=lambda p: order.get(p.dataset_id, -1))
    if problems and not run.config.exclude_invalid:
        raise PreflightError(problems)
    invalid = [p.to_json() for p in problems]
    if problems:  # loud, and refused before any release object when too many are left out
        run.report("running", excluded=exclusions.record(invalid, len(entries), run.config.max_excluded))
        exclusions.log_summary(invalid, len(entries), _user_sources(run.manifest))
        exclusions.enforce_max_excluded(invalid, len(entries), run.config.max_excluded)
    for bad_input in problems:
        remove_staged(records_dir(run.paths), bad_input.dataset_id, run.paths.h5ad(bad_input.dataset_id))
    plans = [done[e.dataset_id] for e in entries if e.dataset_id in done]
    if not any(p.organism is not None for p in plans):
        raise PreflightError(
            [*problems, *(InputError(p.dataset_id, f"contributes no cells: {p.excluded_reason}") for p in plans)],
            hint="No dataset contributes any cell to the Census; nothing to build. Check the manifest.",
        )
    # The release is built from the staged copies: validation reads them too (a moved corpus does not matter).
    staged.set_aside(run.paths, records_dir(run.paths), {p.dataset_id for p in plans if p.organism is None})
    uris = {p.dataset_id: staged.staged_uri(run.paths, p.dataset_id, p.organism is not None) for p in plans}
    write_manifest(run.paths.manifest, run.manifest, set(done), uris)  # what this release was built from
    for plan in plans:
        if plan.organism is None:
            logger.info("dataset %s contributes no cells: %s", plan.dataset_id, plan.excluded_reason)
        for warning in plan.warnings:
            logger.warning("dataset %s: %s", plan.dataset_id, warning)
    inputs = {
        "invalid": invalid,
        "no_cells": [{"dataset_id": p.dataset_id, "reason": p.excluded_reason} for p in plans if p.organism is None],
        "warnings": {p.dataset_id: list(p.warnings) for p in plans if p.warnings},
    }
    run.report("running", inputs=inputs)  # kept in build_report.json; release notes list them
    return {"datasets": [p.dataset_id for p in plans], "invalid": inputs["invalid"]}


# -- step 2 ------------------------------------------------------------------------------------------------


def _plans(run: BuildRun) -> list[DatasetPlan]:
    return [PlanFiles(run.paths.plans, ds).load() for ds in run.stages.get("stage_and_inspect")["outputs"]["datasets"]]


def _axes(run: BuildRun) -> dict[str, Any]:
    out: dict[str, Any] = run.stages.get("plan_axes")["outputs"]
    return out


def plan_axes(run: BuildRun) -> dict[str, Any]:
    plans = _plans(run)
    contributing = [p for p in plans if p.organism is not None]
    datasets: list[dict[str, Any]] = []
    organisms: dict[str, dict[str, int]] = {}
    offsets: dict[str, int] = {}
    for joinid, p in enumerate(contributing):
        org_name = str(p.organism)
        off = offsets.get(org_name, 0)
        datasets.append(
            {
                "dataset_id": p.dataset_id,
                "organism": org_name,
                "joinid": joinid,
                "obs_offset": off,
                "n_cells": p.n_cells,
            }
        )
        offsets[org_name] = off + p.n_cells
    axes_dir = run.paths.state / "axes"
    axes_dir.mkdir(parents=True, exist_ok=True)
    for org in run.schema.organisms:
        members = [p for p in contributing if p.organism == org.name]
        if not members:
            logger.warning("no cells for %s: its experiment is left out of the release", org.name)
            continue
        var = _union_var(run, members)
        var.to_parquet(axes_dir / f"{org.name}.var.parquet", index=False)
        organisms[org.name] = {"n_obs": offsets[org.name], "n_var": len(var)}
        position = pd.Series(np.arange(len(var), dtype=np.int64), index=var["feature_id"].to_numpy())
        col_length = var["feature_length"].to_numpy(dtype=np.float64)
        for p in members:
            files = PlanFiles(run.paths.plans, p.dataset_id)
            arrays = files.load_arrays()
            genes = pd.read_parquet(files.genes)
            col_map = np.full(p.n_source_var, -1, dtype=np.int64)
            col_map[arrays["gene_cols"]] = position.loc[genes["feature_id"].to_numpy()].to_numpy()
            np.savez(
                axes_dir / f"{p.dataset_id}.npz",
                kept_rows=arrays["kept_rows"],
                smart=arrays["smart"],
                col_map=col_map,
                col_length=col_length,
            )
    if not organisms:
        raise PreflightError(
            [InputError(p.dataset_id, f"contributes no cells: {p.excluded_reason}") for p in plans],
            hint="No dataset contributes any cell to the Census; nothing to build. Check the manifest.",
        )
    if run.paths.partial.exists():
        shutil.rmtree(run.paths.partial)  # a structure half-created by an interrupted run
    shapes = {k: writers.ExperimentShape(v["n_obs"], v["n_var"]) for k, v in organisms.items()}
    writers.create_release(str(run.paths.partial), run.schema, shapes, n_datasets=len(contributing))
    time.sleep(0.002)  # the timestamps below start strictly after the arrays were created
    return {
        # Resumable writes carry timestamps (ms) from here on: X chunk k at base + 1 + k, its obs rows at
        # base + 1 + n_chunks + k. All are in the past by the time anything reads the release.
        "timestamp_base": int(time.time() * 1000),
        "datasets": datasets,
        "organisms": organisms,
        "excluded": [{"dataset_id": p.dataset_id, "reason": p.excluded_reason} for p in plans if p.organism is None],
    }


def _union_var(run: BuildRun, members: list[DatasetPlan]) -> pd.DataFrame:
    """The organism's genes: the union over its datasets, sorted by feature_id (independent of manifest order)."""
    frames = [pd.read_parquet(PlanFiles(run.paths.plans, p.dataset_id).genes) for p in members]
    allg = pd.concat(frames, ignore_index=True)
    first = allg.drop_duplicates("feature_id", keep="first")
    lengths = allg[allg["feature_length"] > 0].groupby("feature_id")["feature_length"].agg(["min", "max"])
    conflicting = lengths.index[lengths["min"] != lengths["max"]]
    if len(conflicting):
        logger.warning(
            "%d genes have different feature_length across datasets (e.g. %s); the first seen is used",
            len(conflicting),
            conflicting[0],
        )
    known = allg[allg["feature_length"] > 0].drop_duplicates("feature_id", keep="first").set_index("feature_id")
    var = first.set_index("feature_id")
    var["feature_length"] = known["feature_length"].reindex(var.index).fillna(0).astype(np.int64)
    return var.sort_index().reset_index()[["feature_id", "feature_name", "feature_length"]]


# -- step 3 ------------------------------------------------------------------------------------------------


def chunk_tasks(run: BuildRun) -> list[ChunkTask]:
    axes = _axes(run)
    plans = {p.dataset_id: p for p in _plans(run)}
    part = run.paths.partial
    tasks: list[ChunkTask] = []
    base = int(axes["timestamp_base"])
    for d in axes["datasets"]:
        p = plans[d["dataset_id"]]
        org = d["organism"]
        x = part / "census_data" / org / "ms" / run.schema.measurement / "X"
        offset = d["obs_offset"]
        for i, ((a, b), n) in enumerate(zip(p.chunks, p.chunk_cells, strict=True)):
            tasks.append(
                ChunkTask(
                    dataset_id=p.dataset_id,
                    chunk=i,
                    h5ad_path=p.h5ad_path,
                    counts_matrix=p.counts_matrix,
                    row_start=a,
                    row_stop=b,
                    obs_offset=offset,
                    n_cells=n,
                    n_var=axes["organisms"][org]["n_var"],
                    axes_file=str(run.paths.state / "axes" / f"{p.dataset_id}.npz"),
                    raw_uri=str(x / "raw"),
                    normalized_uri=str(x / "normalized"),
                    result_path=str(run.paths.chunks / p.dataset_id / f"{i:06d}.npz"),
                    lock_path=str(run.paths.lock),
                    run_id=run.run_id,
                    timestamp=base + 1 + len(tasks),
                )
            )
            offset += n
    return tasks


def _process_chunk_with_faults(task: ChunkTask) -> ChunkSummary:
    faults.point(f"chunk:{task.key}", task.raw_uri)
    return process_chunk(task)


def write_matrices(run: BuildRun) -> dict[str, Any]:
    tasks = chunk_tasks(run)
    todo = [t for t in tasks if not result_exists(t)]
    # A rerun first drops whatever an interrupted run wrote for chunks that never recorded a result.
    stale = {t.timestamp for t in todo}
    for uri in sorted({u for t in todo for u in (t.raw_uri, t.normalized_uri)}):
        n = writers.delete_fragments_at(uri, stale)
        if n:
            logger.info("[write_matrices] deleted %d fragment(s) of unfinished chunks in %s", n, uri)
    total_cells = sum(t.n_cells for t in todo)
    logger.info("[write_matrices] %d chunk task(s), %d already done", len(tasks), len(tasks) - len(todo))
    progress = Progress("write_matrices", len(todo), "chunks", total_cells=total_cells)
    nnz = 0

    def on_result(task: ChunkTask, res: ChunkSummary) -> None:
        nonlocal nnz
        nnz += res.nnz
        progress.update(1, res.n_cells, note=f"{nnz / max(time.monotonic() - progress.start, 1e-9):,.0f} nnz/s")
        faults.point(f"matrix:after_chunks:{progress.done}")

    run_tasks(run.client, _process_chunk_with_faults, todo, on_result=on_result)
    return {"chunks": len(tasks), "written_this_run": len(todo)}


# -- step 4 ------------------------------------------------------------------------------------------------


def write_tables(run: BuildRun) -> dict[str, Any]:
    axes = _axes(run)
    plans = {p.dataset_id: p for p in _plans(run)}
    tasks_by_ds: dict[str, list[ChunkTask]] = {}
    all_chunks = chunk_tasks(run)
    for t in all_chunks:
        tasks_by_ds.setdefault(t.dataset_id, []).append(t)
    obs_ts_offset = len(all_chunks)  # obs rows of chunk k are written at X chunk k's timestamp + n_chunks
    part = str(run.paths.partial)
    reducers = {org: PresenceReducer(v["n_var"]) for org, v in axes["organisms"].items()}
    for d in axes["datasets"]:
        for t in tasks_by_ds.get(d["dataset_id"], []):
            reducers[d["organism"]].add(d["dataset_id"], t.result_path)

    obs_tasks = [
        ObsTask(
            dataset_id=d["dataset_id"],
            obs_uri=os.path.join(part, "census_data", d["organism"], "obs"),
            obs_offset=d["obs_offset"],
            n_cells=d["n_cells"],
            plan_obs_path=str(PlanFiles(run.paths.plans, d["dataset_id"]).obs),
            result_paths=tuple(t.result_path for t in tasks_by_ds.get(d["dataset_id"], [])),
            n_measured_vars=reducers[d["organism"]].n_measured_vars(d["dataset_id"]),
            marker_path=str(run.paths.state / "obs" / f"{d['dataset_id']}.done"),
            lock_path=str(run.paths.lock),
            run_id=run.run_id,
            schema_version=run.schema.version,
            timestamps=tuple(t.timestamp + obs_ts_offset for t in tasks_by_ds.get(d["dataset_id"], [])),
        )
        for d in axes["datasets"]
    ]
    todo = [t for t in obs_tasks if not Path(t.marker_path).is_file()]
    for uri in sorted({t.obs_uri for t in todo}):  # likewise obs rows of datasets without a marker
        writers.delete_fragments_at(uri, {ts for t in todo if t.obs_uri == uri for ts in t.timestamps})
    progress = Progress("write_tables:obs", len(todo), "datasets", total_cells=sum(t.n_cells for t in todo))
    run_tasks(run.client, write_obs, todo, on_result=lambda t, n: progress.update(1, n))

    figures: dict[str, Any] = {}
    joinids = {d["dataset_id"]: d["joinid"] for d in axes["datasets"]}
    counts = CellCounts(run.schema)
    for org in run.schema.organisms:
        if org.name not in axes["organisms"]:
            continue
        red = reducers[org.name]
        members = [d for d in axes["datasets"] if d["organism"] == org.name]
        cells = {d["dataset_id"]: d["n_cells"] for d in members}
        rna = os.path.join(part, "census_data", org.name, "ms", run.schema.measurement)
        var = pd.read_parquet(run.paths.state / "axes" / f"{org.name}.var.parquet")
        write_var(os.path.join(rna, "var"), run.schema, var, red.var_nnz, red.n_measured_obs(cells))
        n_true = write_presence(os.path.join(rna, run.schema.presence_matrix), joinids, red.present)
        for d in members:
            obs = pd.read_parquet(
                PlanFiles(run.paths.plans, d["dataset_id"]).obs, columns=list(_count_columns(run.schema))
            )
            counts.add(org.label, org.name, d["dataset_id"], obs)
        figures[org.name] = {
            "cells": sum(cells.values()),
            "genes": len(var),
            "nnz": int(red.var_nnz.sum()),
            "presence_true": n_true,
            "datasets": len(members),
        }

    datasets_rows = _datasets_table(run, axes, plans)
    write_census_info_table(part, "datasets", run.schema.datasets_columns, datasets_rows)
    write_census_info_table(part, "summary_cell_counts", run.schema.summary_cell_counts_columns, counts.table())
    total = sum(d["n_cells"] for d in axes["datasets"])
    unique = sum(plans[d["dataset_id"]].n_primary for d in axes["datasets"])
    donors = {k: len(v) for k, v in counts.donors.items()}
    summary = summary_table(run.schema, run.build_date, total, unique, donors)
    write_census_info_table(part, "summary", run.schema.summary_columns, summary)
    return {"organisms": figures, "total_cell_count": total, "unique_cell_count": unique, "donors": donors}


def _count_columns(schema: CensusSchema) -> set[str]:
    cols = {"is_primary_data", "donor_id"}
    for c in schema.summary_categories:
        cols.update(x for x in (c.label_column, c.ontology_column) if x)
    return cols


def _datasets_table(run: BuildRun, axes: dict[str, Any], plans: dict[str, DatasetPlan]) -> dict[str, list[Any]]:
    entries = {e.dataset_id: e for e in run.manifest.entries}
    rows: dict[str, list[Any]] = {c.name: [] for c in run.schema.datasets_columns}
    for d in axes["datasets"]:
        e, p = entries[d["dataset_id"]], plans[d["dataset_id"]]
        values = {
            "soma_joinid": d["joinid"],
            "citation": p.citation,
            "collection_id": e.collection_id,
            "collection_name": e.collection_name,
            "collection_doi": e.collection_doi,
            "dataset_id": e.dataset_id,
            "dataset_version_id": e.dataset_version_id,
            "dataset_title": e.dataset_title or p.title,
            "dataset_h5ad_path": run.paths.h5ad_relative(e.dataset_id),
            "dataset_total_cell_count": p.n_cells,
        }
        for c in run.schema.datasets_columns:
            rows[c.name].append(values[c.name])
    return rows


# -- step 5 ------------------------------------------------------------------------------------------------


def finalize_release(run: BuildRun) -> dict[str, Any]:
    import tiledbsoma as soma

    paths = run.paths
    if not paths.partial.exists() and paths.soma.is_dir():
        return {"note": "release was moved into place by an interrupted run"}
    tables = run.stages.get("write_tables")["outputs"]
    x_uris = [str(paths_x(run, org) / layer) for org in tables["organisms"] for layer in run.schema.x_layers]
    for uri in x_uris:  # X keeps its per-chunk fragments (disjoint row ranges); see consolidate_metadata
        writers.consolidate_metadata(uri)
    uris = [u for u in writers.array_uris(paths.partial) if u not in x_uris]
    progress = Progress("finalize_release", len(uris), "arrays consolidated")
    run_tasks(run.client, writers.consolidate_and_vacuum, uris, on_result=lambda u, _: progress.update(1))
    _check_nnz(run)
    meta = {
        "census_schema_version": run.schema.version,
        "dataset_schema_version": run.schema.dataset_schema_version,
        "census_build_date": run.build_date,
        "census_version": run.config.version,
        "manifest_sha256": run.manifest.sha256,
        "census_builder_version": __version__,
        "tiledbsoma_version": soma.__version__,
        "anndata_version": _version("anndata"),
        "git_commit": os.environ.get("CENSUS_BUILDER_GIT_COMMIT", ""),
    }
    with soma.Collection.open(str(paths.partial), "w", context=writers.context()) as root:  # type: ignore[var-annotated]
        for k, v in meta.items():
            root.metadata[k] = v
    faults.point("before:move_release", paths.partial)
    os.replace(paths.partial, paths.soma)
    return {"metadata": meta, "totals": tables}


def _check_nnz(run: BuildRun) -> None:
    """X["raw"], X["normalized"] and the sum of chunk nnz must agree before the release is moved into place.

    Read from fragment metadata: chunks write disjoint row ranges, and a rerun deletes the fragments of
    chunks without a result, so any coordinate written twice shows up here as a surplus.
    """
    figures = run.stages.get("write_tables")["outputs"]["organisms"]
    for org, f in figures.items():
        x = paths_x(run, org)
        for layer in run.schema.x_layers:
            stored = writers.stored_cells(str(x / layer))
            if stored != f["nnz"]:
                raise BuildStateError(f"{org} X[{layer!r}] holds {stored} values, chunk results say {f['nnz']}")


def paths_x(run: BuildRun, organism: str) -> Path:
    return run.paths.partial / "census_data" / organism / "ms" / run.schema.measurement / "X"


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return ""


STEPS: tuple[tuple[str, Callable[[BuildRun], dict[str, Any]]], ...] = (
    ("stage_and_inspect", stage_and_inspect),
    ("plan_axes", plan_axes),
    ("write_matrices", write_matrices),
    ("write_tables", write_tables),
    ("finalize_release", finalize_release),
)

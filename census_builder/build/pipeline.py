"""The build command: an ordered list of plainly named, resumable steps, each in its module (build/<step>.py).

    stage_and_inspect  copy/download each source into h5ads/, preflight it, plan its cells, genes, chunks
    plan_axes          assign soma_joinids (datasets, cells, genes) and create the empty release structure
    write_matrices     X["raw"] and X["normalized"], one dask task per (dataset, row chunk)
    write_tables       obs (a task per dataset), var, presence matrix, census_info
    finalize_release   consolidate metadata (X) or whole arrays (the rest), root metadata, move into place

Each step returns a typed record (build/outputs.py), stored as JSON under ``.build/stages``; a re-run skips
finished steps (and, inside the matrix and obs steps, finished tasks). The release appears at
``DIR/VERSION/soma`` only when complete. Write timestamps: build/timestamps.py; release URIs: soma/layout.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from census_builder import __version__
from census_builder.build import exclusions, host_check, summary
from census_builder.build.finalize_release import finalize_release
from census_builder.build.inspect import DatasetPlan, PlanFiles
from census_builder.build.outputs import AxesPlan, Inspected, OutputT, StageOutput, read_output
from census_builder.build.plan_axes import plan_axes
from census_builder.build.restart import discard_run_state, refuse_restart_of, release_started
from census_builder.build.stage_and_inspect import stage_and_inspect, user_sources
from census_builder.build.state import BuildPaths, StageRecord, build_lock, read_json, write_json_atomic
from census_builder.build.write_matrices import write_matrices
from census_builder.build.write_tables import write_tables
from census_builder.census.schema import CensusSchema, load_schema
from census_builder.config import DEFAULT_CHUNK_NNZ, DEFAULT_MAX_EXCLUDED, DEFAULT_SCHEMA_VERSION, DEFAULT_WORKDIR
from census_builder.diskfull import disk_full_error
from census_builder.errors import BuildStateError, ReleaseExistsError
from census_builder.names import check_version_name
from census_builder.runtime import faults
from census_builder.runtime.cluster import dask_client
from census_builder.soma.layout import ReleaseLayout
from census_builder.sources.manifest import Manifest, load_manifest
from census_builder.sources.staging import changed_sources, check_layout

logger = logging.getLogger(__name__)

STAGES = ("stage_and_inspect", "plan_axes", "write_matrices", "write_tables", "finalize_release")


@dataclass(frozen=True)
class BuildConfig:
    """What to build (frozen; run state lives in :class:`BuildRun`)."""

    version: str
    manifest: Path
    workdir: Path = DEFAULT_WORKDIR
    workers: int | None = None
    scheduler: str | None = None
    chunk_nnz: int = DEFAULT_CHUNK_NNZ  # stored entries read per matrix task: bounds worker memory
    exclude_invalid: bool = False
    schema_version: str = DEFAULT_SCHEMA_VERSION
    build_date: str | None = None  # ISO date; default: today (UTC) when the build first started
    memory_limit: str | None = None  # per local dask worker
    force_rebuild: bool = False  # build a complete version again, into a new DIR/VERSION.rebuild-<UTC time>
    skip_host_check: bool = False  # build even when the host check finds too little disk space
    restart: bool = False  # discard an unfinished build's run state first (never a complete release)
    max_excluded: float = DEFAULT_MAX_EXCLUDED  # with exclude_invalid: refuse above this share invalid


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

    @cached_property
    def layout(self) -> ReleaseLayout:
        """Every URI of the release under construction (``.build``'s partial release)."""
        return ReleaseLayout(str(self.paths.partial), self.schema)

    def output(self, kind: type[OutputT]) -> OutputT:
        """Return the recorded output of a finished stage, typed (``kind`` names the stage)."""
        return read_output(self.stages, kind)

    def axes(self) -> AxesPlan:
        """Return plan_axes' output."""
        return self.output(AxesPlan)

    def plans(self) -> list[DatasetPlan]:
        """Return the plan of every dataset stage_and_inspect kept (manifest order)."""
        return [PlanFiles(self.paths.plans, ds).load() for ds in self.output(Inspected).datasets]

    def report(self, status: str, **extra: Any) -> None:
        """Update build_report.json with this run's status, stage times and ``extra``."""
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
                "dataset_schema_version": self.schema.dataset_schema_version,
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
                    run.stages.mark(name, outputs.to_json())
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
        invalid = [dict(p) for p in run.output(Inspected).invalid]
        exclusions.log_summary(invalid, len(manifest), user_sources(manifest))
    logger.info("release %s complete: %s", config.version, paths.soma)
    return paths


def _unfinished_rebuild(paths: BuildPaths) -> BuildPaths | None:
    """Return the latest ``DIR/VERSION.rebuild-<time>`` that is not complete, if any."""
    candidates = sorted(paths.root.parent.glob(f"{paths.root.name}.rebuild-*"))
    unfinished = [BuildPaths(p) for p in candidates if p.is_dir() and not BuildPaths(p).is_complete()]
    return unfinished[-1] if unfinished else None


def _check_same_inputs(run: BuildRun) -> None:
    """Check that a resumed build uses the same manifest, schema and options that shape the release."""
    key = {
        "manifest_sha256": run.manifest.sha256,
        "schema": run.schema.version,
        "chunk_nnz": run.config.chunk_nnz,
        "exclude_invalid": run.config.exclude_invalid,
    }
    path = run.paths.state / "inputs.json"
    recorded = read_json(path) if path.is_file() else None
    if recorded and recorded.get("schema") != run.schema.version:  # never silently: a schema is not an option
        was = recorded.get("schema")
        raise BuildStateError(
            f"{run.paths.root} holds an unfinished build of Census schema {was}, not {run.schema.version}; resume "
            f"it with --census-schema {was}, or discard it and build Census schema {run.schema.version} from "
            "scratch: add --restart to this command (or build another --version)"
        )
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
    """Refuse to resume a build when a source changed since it was staged (the plan is of the old one)."""
    if not run.stages.done("stage_and_inspect"):
        return  # staging notices changed sources itself and stages them again
    inspected = run.output(Inspected)
    ids = [*inspected.datasets, *inspected.invalid_ids]
    changed = changed_sources(run.manifest, ids, run.paths)
    if changed:
        lines = "\n".join(f"  - {c}" for c in changed)
        raise BuildStateError(
            f"{len(changed)} source(s) changed after this build of {run.config.version} planned them:\n{lines}\n"
            "The unfinished release was planned from the old contents. Restore the old file(s), or discard the "
            "unfinished build and start again with the same command plus --restart (or build another --version)."
        )


def _check_not_wedged(run: BuildRun) -> None:
    """Refuse to resume an unfinished build whose release under construction is gone; say how to start over."""
    if run.stages.done("plan_axes") and not run.paths.partial.is_dir() and not run.paths.soma.is_dir():
        raise BuildStateError(
            f"{run.paths.root} holds an unfinished build whose release under construction ({run.paths.partial}) "
            "is gone (removed by hand or by a crashed run); it cannot be resumed. Discard the unfinished build "
            "and start again with the same command plus --restart"
        )


def _describe_change(key: str, old: Any, new: Any, recorded: dict[str, Any], run: BuildRun) -> str:
    if key == "manifest_sha256":
        was = recorded.get("manifest", "")
        now = str(run.config.manifest.resolve())
        where = f"{was} -> {now}" if was and was != now else now
        return f"manifest ({where}; content sha256 {str(old)[:12]}... -> {str(new)[:12]}...)"
    option = {"chunk_nnz": "--chunk-nnz", "exclude_invalid": "--exclude-invalid", "schema": "schema version"}
    return f"{option.get(key, key)} ({old} -> {new})"


STEPS: tuple[tuple[str, Callable[[BuildRun], StageOutput]], ...] = (
    ("stage_and_inspect", stage_and_inspect),
    ("plan_axes", plan_axes),
    ("write_matrices", write_matrices),
    ("write_tables", write_tables),
    ("finalize_release", finalize_release),
)

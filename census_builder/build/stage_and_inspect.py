"""Stage 1, stage_and_inspect: copy/download each source into h5ads/, preflight it, plan it.

One dask task per dataset plans its cells, genes and row chunks (build/inspect.py is the per-dataset
preflight).

Input problems are collected and reported together, before anything of the release is written; with
``--exclude-invalid`` the invalid datasets are left out instead (within ``--max-excluded``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from census_builder.build import exclusions
from census_builder.build.inspect import DatasetPlan, inspect_dataset, unreadable
from census_builder.build.outputs import Inspected
from census_builder.census.schema import load_schema
from census_builder.diskfull import disk_full_error
from census_builder.errors import InputError, PreflightError
from census_builder.runtime import faults
from census_builder.runtime.cluster import run_tasks
from census_builder.runtime.progress import Progress
from census_builder.sources import staged
from census_builder.sources.manifest import Manifest, ManifestEntry, write_manifest
from census_builder.sources.staging import (
    records_dir,
    remove_staged,
    source_identity,
    source_size,
    source_uri,
    stage_source,
)

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InspectTask:
    """One dataset to stage and preflight (a dask task)."""

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


def stage_and_inspect(run: BuildRun) -> Inspected:
    """Stage and preflight every manifest dataset; record what each contributes and what is left out."""
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
        exclusions.log_summary(invalid, len(entries), user_sources(run.manifest))
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
    return Inspected(tuple(p.dataset_id for p in plans), tuple(invalid))


def user_sources(manifest: Manifest) -> dict[str, str]:
    """Each dataset's source as the user named it (S3 URI or local path), for messages."""
    return {e.dataset_id: e.h5ad_uri if e.is_s3 else str(manifest.local_path(e)) for e in manifest.entries}

"""validate_release: prove a Census release against the schema and the source H5ADs named in a manifest.

    plan_datasets      validation.plan: a dask task per dataset: what the release must hold (from obs / var)
    check_structure    validation.structure: object tree, types, column encodings, shapes, soma_joinids
    check_contents     validation.contents: dask tasks per (dataset, row chunk) and per dataset: obs, X, statistics
    check_tables       validation.tables: var, presence matrix, census_info tables, dataset_h5ad_path files
    check_spatial      validation.spatial: census_spatial_sequencing against the sources (2.4.0)
    check_spatial_contents  validation.spatial_contents: the content checks above, run on its experiments
    check_consistency  validation.consistency: the release's own sums agree with each other

Findings are collected throughout and judged once at the end; the JSON report is always written.
Every task's result is recorded in a checkpoint beside the report (validation.checkpoint), so an
interrupted validation resumes where it stopped; a completed one removes its checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from validation.checkpoint import Checkpoint, checkpoint_dir, fingerprint, local_path
from validation.cluster import dask_cluster
from validation.consistency import check_consistency
from validation.contents.step import check_contents
from validation.errors import ReleaseNotFoundError
from validation.expected.spec import load_spec
from validation.inputs.manifest import fetch_sources, read_manifest
from validation.inputs.schema_version import choose_version, read_recorded, version_findings
from validation.plan import plan_datasets
from validation.report import Finding, Findings, ValidationReport
from validation.run import DEFAULT_CHUNK_ENTRIES, DEFAULT_TASK_ROWS, Run
from validation.spatial import check_spatial
from validation.spatial_contents import check_spatial_contents
from validation.structure import check_structure
from validation.tables import check_tables

logger = logging.getLogger(__name__)

REPORT_NAME = "validation_report.json"
STEPS: tuple[Callable[[Run], None], ...] = (
    plan_datasets,
    check_structure,
    check_contents,
    check_tables,
    check_spatial,
    check_spatial_contents,
    check_consistency,
)


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
    (default: one per CPU this process may use). Writes the JSON report to ``report_path`` (default: beside
    the release) and returns it. Each finished task is recorded in a checkpoint beside the report; the same
    call after an interruption resumes from it. ``schema_version``: the Census schema to validate against;
    None: the one the release records (validation.inputs.schema_version). Raises an InputError
    (ManifestError, ReleaseNotFoundError, CheckpointBusyError, SchemaVersionError) before touching anything
    if an input is unusable.
    """
    t0 = time.perf_counter()
    path = report_path or default_report_path(release_uri)
    manifest = read_manifest(manifest_path)
    release = local_path(release_uri)
    if release is not None and not release.is_dir():
        raise ReleaseNotFoundError(
            f"no release at {release_uri}: {release} is not a directory (expected the "
            "release's root SOMACollection, e.g. DIR/VERSION/soma)"
        )
    recorded = read_recorded(release_uri)
    version, how = choose_version(release_uri, schema_version, recorded)
    spec = load_spec(version)
    options = {"chunk_entries": chunk_entries, "task_rows": task_rows, "schema": spec.version}
    checkpoint = Checkpoint.open(checkpoint_dir(path), fingerprint(release_uri, manifest, options))
    try:
        path.unlink(missing_ok=True)  # a crashed run must not leave an earlier verdict behind
        findings = Findings()
        findings.readings["Census schema"] = how
        findings.readings["written by"] = recorded.writer
        for f in version_findings(version, how, recorded):
            findings.add("census_info_summary", f)
        for problem in manifest.problems:
            findings.add("sources", Finding(problem))
        with dask_cluster(client, workers, checkpoint.scratch) as cl:
            run = Run(
                spec,
                manifest,
                release_uri,
                cl,
                chunk_entries,
                findings,
                task_rows=task_rows,
                checkpoint=checkpoint,
                foreign=recorded.census_builder is None,
            )
            run.sources = fetch_sources(manifest, checkpoint.sources)
            for step in STEPS:
                t = time.perf_counter()
                step(run)
                logger.info("[%s] done in %.1fs", step.__name__, time.perf_counter() - t)
        report = ValidationReport(
            release_uri,
            str(manifest.path),
            list(findings.checks.values()),
            time.perf_counter() - t0,
            source_checksums=run.checksums,
            readings=dict(findings.readings),
        )
        report.write(path)
    finally:
        checkpoint.close()
    checkpoint.remove()  # complete: the next validation starts afresh
    logger.info("validation %s; report: %s", "passed" if report.passed else "FAILED", path)
    return report

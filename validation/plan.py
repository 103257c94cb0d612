"""Step 1, plan_datasets: what the release must hold for each dataset, and the SHA-256 of every source.

A dask task per dataset and one per source file beside it; then the expected release (validation.expected).
"""

from __future__ import annotations

import logging
from typing import Any

from validation.expected.dataset import DatasetPlan, PlanTask, plan_dataset
from validation.expected.model import build_model
from validation.inputs.checksums import ChecksumTask, source_checksum
from validation.report import Finding
from validation.run import Run
from validation.tasks import Job, run_jobs

logger = logging.getLogger(__name__)


def plan_datasets(run: Run) -> None:
    """Plan every dataset of the manifest; record source problems; build the expected release."""
    plans: dict[str, DatasetPlan] = {}
    tasks: list[PlanTask] = []
    for s in run.manifest.sources:
        path, problem = run.sources[s.dataset_id]
        if path is None:
            plans[s.dataset_id] = DatasetPlan(s.dataset_id, "", problems=[problem])
        else:
            tasks.append(PlanTask(s.dataset_id, str(path), run.spec.version, run.chunk_entries))
            if run.spec.spatial_assays:  # the same plan of its census_spatial_sequencing cells
                tasks.append(PlanTask(s.dataset_id, str(path), run.spec.version, run.chunk_entries, spatial=True))
    spatial: dict[str, DatasetPlan] = {}

    def on_result(task: PlanTask, plan: DatasetPlan) -> None:
        plan.share_strings()
        (spatial if task.spatial else plans)[task.dataset_id] = plan

    def on_error(task: PlanTask, e: BaseException) -> None:
        if task.spatial:
            return  # the census_data plan of the same file reports it
        plans[task.dataset_id] = DatasetPlan(
            task.dataset_id, task.path, problems=[f"cannot be planned: {type(e).__name__}: {e}"]
        )

    jobs = [Job(plan_dataset, t, on_result, on_error) for t in tasks]
    run_jobs(run.client, jobs + _checksum_jobs(run), "plan_datasets", run.checkpoint)
    ordered = [plans[s.dataset_id] for s in run.manifest.sources]
    for p in ordered:
        for problem in p.problems:
            run.findings.add(
                "sources", Finding(f"source cannot be validated against: {problem}", dataset_id=p.dataset_id)
            )
        for w in p.warnings:
            logger.warning("dataset %s: %s", p.dataset_id, w)
        if p.readable and not p.contributes:
            logger.info("dataset %s contributes no cells: %s", p.dataset_id, p.exclusion)
    run.model = build_model(run.spec, {s.dataset_id: s for s in run.manifest.sources}, ordered)
    run.model.spatial = [
        sp for s in run.manifest.sources if (sp := spatial.get(s.dataset_id)) is not None and sp.contributes
    ]


def _checksum_jobs(run: Run) -> list[Job]:
    """Return a SHA-256 task per readable source (for ``source_checksums`` in the report)."""
    tasks = [
        ChecksumTask(s.dataset_id, str(path), s.uri if s.is_s3 else str(path))
        for s in run.manifest.sources
        for path in [run.sources[s.dataset_id][0]]
        if path is not None
    ]

    def on_result(task: ChecksumTask, checksum: dict[str, Any]) -> None:
        run.checksums[task.dataset_id] = checksum

    def on_error(task: ChecksumTask, e: BaseException) -> None:
        run.findings.add(
            "sources", Finding(f"cannot be read to its end: {type(e).__name__}: {e}", dataset_id=task.dataset_id)
        )

    return [Job(source_checksum, t, on_result, on_error) for t in tasks]

"""Running a step's tasks on the cluster, resumably: each result is recorded in the checkpoint as it arrives.

The submission, streaming and cancellation are census_builder.runtime.cluster's ``run_calls`` (shared with
the builder); this adds what a validation needs: a per-task outcome handler, the checkpoint and progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from census_builder.runtime.cluster import TaskCall, run_calls
from validation.checkpoint import MISSING, Checkpoint, task_key
from validation.progress import Progress

logger = logging.getLogger(__name__)


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
    progress = Progress(
        what, len(jobs), total_cells=sum(j.cells for j in jobs), resumed=resumed, resumed_cells=resumed_cells
    )

    def done(k: int, res: Any, error: Exception | None) -> None:
        i = pending[k]
        job = jobs[i]
        if error is not None:
            job.on_error(job.item, error)
        else:
            if checkpoint:
                checkpoint.save(keys[i], res)
            job.on_result(job.item, res)
        progress.update(job.cells)

    calls = [TaskCall(jobs[i].fn, (jobs[i].item, *jobs[i].extra), jobs[i].priority) for i in pending]
    run_calls(client, calls, done)

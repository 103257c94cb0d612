"""Step 3, check_contents: obs and X of every dataset against its source, through the release's numbering.

First each dataset's set of cells (validation.contents.cells: where the release put them); then the source
row chunks, grouped into tasks (validation.contents.chunks), compared with the release at those cells: the
fast path for cells numbered in one consecutive run per dataset, the general path (validation.contents.general)
otherwise; last the per-organism checks of what no task reads (validation.contents.organism).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from validation.contents.cells import CellSetResult, CellSetTask, check_cell_set
from validation.contents.chunks import check_chunk
from validation.contents.general import GeneralPath, check_general
from validation.contents.organism import beyond_expected_rows, cell_reading, n_measured_vars, other_datasets_cells
from validation.contents.tasks import ChunkResult, ChunkTask, DatasetContext
from validation.expected.dataset import DatasetPlan
from validation.expected.model import Model, OrganismModel
from validation.inputs.release import ReleaseLayout, ReleaseUris
from validation.report import Finding
from validation.run import Run
from validation.tasks import Job, run_jobs

logger = logging.getLogger(__name__)

# Checks that need the release open; each records "not checked" rather than passing when it is not.
CONTENT_CHECKS = (
    "encodings",
    "shapes",
    "soma_joinids",
    "obs_cells",
    "obs_metadata",
    "obs_statistics",
    "var_features",
    "var_statistics",
    "x_raw",
    "x_raw_explicit_zeros",
    "x_normalized",
    "presence_matrix",
    "census_info_summary",
    "census_info_datasets",
    "census_info_summary_cell_counts",
    "census_info_organisms",
    "dataset_h5ad_paths",
    "consistency",
)


def task_groups(chunks: Sequence[tuple[int, int, int, int]], max_rows: int) -> list[list[tuple[int, int, int, int]]]:
    """Group consecutive row chunks (start, stop, kept before, kept in) into tasks of up to ``max_rows`` rows.

    Source rows; a chunk longer than that is a task of its own.
    """
    groups: list[list[tuple[int, int, int, int]]] = []
    for chunk in chunks:
        if groups and chunk[1] - groups[-1][0][0] <= max_rows:
            groups[-1].append(chunk)
        else:
            groups.append([chunk])
    return groups


def check_contents(run: Run) -> None:
    """Step 3 (see the module docstring); every problem becomes a finding."""
    model, layout = run.planned(), run.layout
    if layout is None or not layout.opened:
        for check in CONTENT_CHECKS:
            run.findings.add(check, Finding("not checked: the release root could not be opened"))
        return
    placed, n_datasets = _check_cell_sets(run, model, layout)
    general: dict[str, GeneralPath] = {}  # organisms not numbered in consecutive runs: validation.contents.general
    chunk_tasks = _chunk_tasks(run, model, layout, placed, general)
    placed.clear()
    logger.info("checking %d task(s) of %d dataset(s)", len(chunk_tasks), n_datasets)
    _check_chunks(run, model, chunk_tasks, general)
    for name, path in general.items():
        try:
            check_general(run, model.organisms[name], path)
        finally:
            path.close()
    for name, org in model.organisms.items():
        if name in layout.experiments:
            n_measured_vars(run, org)
            beyond_expected_rows(run, org)
            other_datasets_cells(run, org)


def _check_cell_sets(run: Run, model: Model, layout: ReleaseLayout) -> tuple[dict[str, CellSetResult], int]:
    """Check the cells of each dataset, matched by observation_joinid: where the release put them.

    Returns each dataset's result (its cells' release soma_joinids) and the number of datasets checked.
    """
    cell_tasks: list[CellSetTask] = []
    for name, org in model.organisms.items():
        exp = layout.experiments.get(name)
        if exp is None:
            for p in org.datasets:
                run.findings.add(
                    "obs_cells",
                    Finding(
                        f"the dataset's {p.n_cells} cells are not in the release: its experiment is missing",
                        dataset_id=p.dataset_id,
                        organism=name,
                        expected=p.n_cells,
                        found=0,
                    ),
                )
            continue
        if exp.obs:
            cell_tasks.extend(
                CellSetTask(p.dataset_id, name, p.organism_term, p.path, run.spec.version, exp.obs)
                for p in org.datasets
            )
    placed: dict[str, CellSetResult] = {}

    def cells_done(task: CellSetTask, res: CellSetResult) -> None:
        run.findings.merge("obs_cells", res.findings, res.total)
        run.found[task.organism].cells[task.dataset_id] = res.n_found
        run.found[task.organism].primary[task.dataset_id] = res.n_primary_found
        placed[task.dataset_id] = res

    def cells_failed(task: CellSetTask, e: BaseException) -> None:
        run.findings.add(
            "obs_cells",
            Finding(
                f"cells could not be checked: {type(e).__name__}: {e}",
                dataset_id=task.dataset_id,
                organism=task.organism,
            ),
        )

    run_jobs(
        run.client,
        [Job(check_cell_set, t, cells_done, cells_failed) for t in cell_tasks],
        "check_contents (cells)",
        run.checkpoint,
    )
    return placed, len(cell_tasks)


def _chunk_tasks(
    run: Run, model: Model, layout: ReleaseLayout, placed: dict[str, CellSetResult], general: dict[str, GeneralPath]
) -> list[tuple[ChunkTask, Any]]:
    """Return the row-chunk tasks of every organism, each with the future of its dataset's context.

    An organism whose cells are not numbered in consecutive runs gets a general path (in ``general``) and
    fingerprint tasks.
    """
    chunk_tasks: list[tuple[ChunkTask, Any]] = []
    for name, org in model.organisms.items():
        exp = layout.experiments.get(name)
        if exp is None:
            continue
        if any(placed[p.dataset_id].start is None for p in org.datasets if p.dataset_id in placed):
            general[name] = GeneralPath(
                name,
                max(run.found[name].obs_count, org.n_obs),
                scratch=run.checkpoint.scratch if run.checkpoint else None,
            )
            run.found[name].scanned = general[name].n_rows
        numbering = run.var_numbering(org)
        run.findings.readings[f"{name} genes"] = (
            "sorted by feature_id (as our builder numbers them)"
            if numbering.in_order
            else "another order than sorted by feature_id (matched by feature_id)"
        )
        cell_reading(run, org, placed)
        uris = ReleaseUris(exp.obs, exp.x.get("raw"), exp.x.get("normalized"))
        for p in org.datasets:
            for task, context in _dataset_tasks(run, org, p, uris, placed.get(p.dataset_id)):
                chunk_tasks.append((general[name].add(task, context) if name in general else task, context))
    return chunk_tasks


def _dataset_tasks(
    run: Run, org: OrganismModel, p: DatasetPlan, uris: ReleaseUris, cells: CellSetResult | None
) -> list[tuple[ChunkTask, Any]]:
    """Return one dataset's row chunks grouped into tasks, through the release's gene and cell numbering.

    Its context (column map, lengths, tissue_general) is scattered to the workers once.
    """
    numbering = run.var_numbering(org)
    n_var = numbering.n_release + len(org.var)
    col_map, col_length = org.col_map(p)
    kept = col_map >= 0
    col_map[kept] = numbering.joinids(col_map[kept])
    [context] = run.client.scatter([DatasetContext(col_map, col_length, p.tissue_general)], hash=False)
    start = org.offsets[p.dataset_id] if cells is None or cells.start is None else cells.start
    tasks: list[tuple[ChunkTask, Any]] = []
    for group in task_groups(p.chunks, run.task_rows):
        (a, _, before, _), (_, b, _, _) = group[0], group[-1]
        n_cells = sum(c[3] for c in group)
        joinids = None if cells is None or cells.joinids is None else cells.joinids[before : before + n_cells].copy()
        task = ChunkTask(
            dataset_id=p.dataset_id,
            organism=org.organism.name,
            path=p.path,
            matrix_key=p.matrix_key,
            schema_version=run.spec.version,
            organism_term=p.organism_term,
            row_start=a,
            row_stop=b,
            joinid_start=start + before,
            n_cells=n_cells,
            n_var=n_var,
            uris=uris,
            parts=tuple((c[0], c[1]) for c in group),
            joinids=joinids,
        )
        tasks.append((task, context))
    return tasks


def _check_chunks(
    run: Run, model: Model, chunk_tasks: list[tuple[ChunkTask, Any]], general: dict[str, GeneralPath]
) -> None:
    """Run the row-chunk tasks (biggest first); add up what each found.

    Into the expected var figures, the findings and the found totals; a fingerprint task's expectations go
    to its organism's general path.
    """

    def chunk_done(task: ChunkTask, res: ChunkResult) -> None:
        org = model.organisms[task.organism]
        numbering = run.var_numbering(org)
        for check, kept in res.findings.items():
            run.findings.merge(check, [run.named(numbering, f) for f in kept], res.totals[check])
        genes = numbering.expected(res.var_ids)
        known = genes >= 0
        org.var_nnz[genes[known]] += res.var_nnz[known]
        org.presence[task.dataset_id][genes[known]] = True
        if res.cells is not None:
            general[task.organism].place(task, res.cells)
        run.found_counts(task.organism, res, {task.dataset_id: res.n_measured_vars})

    def chunk_failed(task: ChunkTask, e: BaseException) -> None:
        for check in ("obs_metadata", "x_raw", "x_normalized"):
            run.findings.add(
                check,
                Finding(
                    f"rows {task.row_start}..{task.row_stop - 1} could not be checked: {type(e).__name__}: {e}",
                    dataset_id=task.dataset_id,
                    organism=task.organism,
                ),
            )

    jobs = [
        Job(check_chunk, t, chunk_done, chunk_failed, priority=t.n_cells, extra=(ctx,), cells=t.n_cells)
        for t, ctx in chunk_tasks
    ]
    run_jobs(run.client, jobs, "check_contents", run.checkpoint)

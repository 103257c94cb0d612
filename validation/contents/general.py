"""The driver's side of the general path, for an organism whose release numbers cells in another order.

(Another order than one consecutive run per dataset in source order.)

1. The source chunks run in ``mode="fingerprint"``: each returns its kept cells' expectations
   (validation.contents.tasks.CellExpectations), which ``GeneralPath.place`` writes at the cells' release
   soma_joinids into disk-backed arrays (numpy memmaps in a temporary directory: ~70 bytes per cell on disk,
   none of it held in the driver's memory beyond the pages in use).
2. ``scan_jobs``: the release is read once in soma_joinid order (validation.contents.scan), each row range
   with its slice of those arrays.
3. ``detail_tasks``: the cells whose X['raw'] row or obs metadata fingerprint differs are compared again
   value by value by their source chunk (``mode="detail"``, reading the release only at those cells), at
   most ``MAX_DETAIL_CELLS`` of them; the rest are counted.

``check_general`` runs steps 2 and 3 once the chunks have run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.contents.chunks import check_chunk
from validation.contents.scan import RowExpectations, ScanResult, ScanTask, check_scan
from validation.contents.tasks import CellExpectations, ChunkResult, ChunkTask
from validation.expected.model import OrganismModel
from validation.inputs.release import ReleaseUris
from validation.report import Finding
from validation.run import Run
from validation.tasks import Job, run_jobs

MAX_DETAIL_CELLS = 2_000  # cells compared value by value after a fingerprint differs (per organism)
MAX_DETAIL_PER_TASK = 200  # of them per source task (a detail task re-reads its whole source rows)

_FIELDS: dict[str, Any] = {
    "known": np.bool_,
    "raw": np.uint64,
    "metadata": np.uint64,
    "nnz": np.int64,
    "raw_sum": np.float64,
    "raw_mean_nnz": np.float64,
    "raw_variance_nnz": np.float64,
    "denominator": np.float64,
    "smart": np.bool_,
    "task": np.int32,
    "row": np.int32,
}


@dataclass
class GeneralPath:
    """One organism's general path: the expectations per release row, on disk, and the mismatches found."""

    organism: str
    n_rows: int  # release obs rows to scan: soma_joinids [0, n_rows)
    tasks: list[tuple[ChunkTask, Any]] = field(default_factory=list)  # (fingerprint task, its context future)
    mismatch: dict[str, list[npt.NDArray[np.int64]]] = field(default_factory=lambda: {"raw": [], "metadata": []})
    scratch: Path | None = None  # where the disk-backed arrays live (the checkpoint's scratch; default: TMPDIR)
    _dir: tempfile.TemporaryDirectory[str] | None = None
    arrays: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
        self._dir = tempfile.TemporaryDirectory(prefix=f"census-validate-{self.organism}-", dir=self.scratch)
        for name, dtype in _FIELDS.items():
            arr = np.lib.format.open_memmap(
                str(Path(self._dir.name) / f"{name}.npy"), mode="w+", dtype=dtype, shape=(max(self.n_rows, 1),)
            )
            arr[:] = -1 if name in ("task", "row") else 0
            self.arrays[name] = arr

    def close(self) -> None:
        """Delete the disk-backed arrays."""
        self.arrays.clear()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def add(self, task: ChunkTask, context: Any) -> ChunkTask:
        """Register a source chunk (before it runs); returns it in fingerprint mode."""
        task = replace(task, mode="fingerprint")
        index = len(self.tasks)
        self.tasks.append((task, context))
        sj, rows = self._placed(task)
        self.arrays["task"][sj] = index
        self.arrays["row"][sj] = rows
        return task

    def _placed(self, task: ChunkTask) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(release soma_joinids, task rows) of the task's cells the release holds (within the scanned rows)."""
        sj = task.cell_joinids
        rows = np.flatnonzero((sj >= 0) & (sj < self.n_rows))
        return sj[rows], rows

    def place(self, task: ChunkTask, cells: CellExpectations) -> None:
        """Write a fingerprint task's expectations at its cells' release soma_joinids."""
        sj, rows = self._placed(task)
        a = self.arrays
        a["known"][sj] = True
        for name in ("raw", "metadata", "nnz", "raw_sum", "raw_mean_nnz", "raw_variance_nnz", "denominator", "smart"):
            a[name][sj] = getattr(cells, name)[rows]

    def scan_jobs(self, uris: ReleaseUris, schema_version: str, rows: int) -> list[tuple[ScanTask, RowExpectations]]:
        """Return the release scan tasks (``rows`` rows each), each with its rows' expectations."""
        out = []
        a = self.arrays
        for lo in range(0, self.n_rows, rows):
            hi = min(self.n_rows, lo + rows)
            want = RowExpectations(
                *(
                    np.array(a[name][lo:hi])
                    for name in (
                        "known",
                        "raw",
                        "metadata",
                        "nnz",
                        "raw_sum",
                        "raw_mean_nnz",
                        "raw_variance_nnz",
                        "denominator",
                        "smart",
                    )
                )
            )
            out.append((ScanTask(self.organism, uris, lo, hi, schema_version), want))
        return out

    def scanned(self, result: ScanResult) -> None:
        """Keep the mismatches a scan task found."""
        self.mismatch["raw"].append(result.raw_mismatch)
        self.mismatch["metadata"].append(result.metadata_mismatch)

    def detail_tasks(self) -> tuple[list[tuple[ChunkTask, Any]], dict[str, int]]:
        """Return detail tasks for the cells whose fingerprints differ, and how many are left uncompared.

        The second is per kind ("raw", "metadata"): cells over the caps.
        """
        raw = np.unique(np.concatenate([np.zeros(0, np.int64), *self.mismatch["raw"]]))
        meta = np.unique(np.concatenate([np.zeros(0, np.int64), *self.mismatch["metadata"]]))
        cells = np.union1d(raw, meta)
        tasks = self.arrays["task"][cells].astype(np.int64)
        rows = self.arrays["row"][cells].astype(np.int64)
        chosen: dict[int, list[int]] = {}
        taken: list[int] = []
        for k in np.argsort(tasks, kind="stable"):
            t = int(tasks[k])
            if t < 0 or len(taken) >= MAX_DETAIL_CELLS or len(chosen.get(t, [])) >= MAX_DETAIL_PER_TASK:
                continue
            chosen.setdefault(t, []).append(int(rows[k]))
            taken.append(int(cells[k]))
        out = []
        for t, task_rows in chosen.items():
            task, context = self.tasks[t]
            joinids = np.full(task.n_cells, -1, dtype=np.int64)
            joinids[task_rows] = task.cell_joinids[task_rows]
            out.append((replace(task, mode="detail", joinids=joinids), context))
        left = {"raw": int(np.setdiff1d(raw, taken).size), "metadata": int(np.setdiff1d(meta, taken).size)}
        return out, left


def check_general(run: Run, org: OrganismModel, path: GeneralPath) -> None:
    """Run steps 2 and 3 of the general path for one organism (the chunks have run).

    Scan the release in its own order, then compare the cells whose fingerprints differ value by value.
    """
    name = org.organism.name
    exp = run.release_layout().experiments[name]
    numbering = run.var_numbering(org)
    lengths = np.zeros(max(numbering.n_release, 1), dtype=np.float64)
    found_genes = numbering.release_of_expected >= 0
    lengths[numbering.release_of_expected[found_genes]] = org.var.lengths[found_genes]
    [lengths_future] = run.client.scatter([lengths], hash=False)
    per_cell = max(1, int(org.var_nnz.sum()) // max(org.n_obs, 1))
    rows = max(1, min(run.task_rows, run.chunk_entries // per_cell))  # X entries per scan task: one chunk's
    uris = ReleaseUris(exp.obs, exp.x.get("raw"), exp.x.get("normalized"))

    def scan_done(task: ScanTask, result: ScanResult) -> None:
        for check, kept in result.res.findings.items():
            run.findings.merge(check, [run.named(numbering, f) for f in kept], result.res.totals[check])
        run.found_counts(name, result.res, result.n_measured_vars)
        path.scanned(result)

    def scan_failed(task: ScanTask, e: BaseException) -> None:
        for check in ("obs_statistics", "x_raw", "x_normalized"):
            run.findings.add(
                check,
                Finding(
                    f"release rows {task.lo}..{task.hi - 1} could not be checked: {type(e).__name__}: {e}",
                    organism=name,
                ),
            )

    scans = path.scan_jobs(uris, run.spec.version, rows)
    run_jobs(
        run.client,
        [Job(check_scan, t, scan_done, scan_failed, extra=(lengths_future, want)) for t, want in scans],
        f"check_contents ({name}, release scan)",
    )
    details, left = path.detail_tasks()

    def detail_done(task: ChunkTask, res: ChunkResult) -> None:
        for check, kept in res.findings.items():
            if check in ("x_raw", "x_raw_explicit_zeros", "x_normalized", "obs_metadata", "obs_cells"):
                run.findings.merge(check, [run.named(numbering, f) for f in kept], res.totals[check])

    def detail_failed(task: ChunkTask, e: BaseException) -> None:
        run.findings.add(
            "x_raw",
            Finding(
                f"differing cells could not be compared: {type(e).__name__}: {e}",
                dataset_id=task.dataset_id,
                organism=name,
            ),
        )

    run_jobs(
        run.client,
        [Job(check_chunk, t, detail_done, detail_failed, extra=(ctx,)) for t, ctx in details],
        f"check_contents ({name}, differing cells)",
    )
    for kind, check in (("raw", "x_raw"), ("metadata", "obs_metadata")):
        if left[kind]:
            run.findings.merge(
                check,
                [
                    Finding(
                        f"{left[kind]} more cell(s) whose {'X row' if kind == 'raw' else 'obs metadata'} "
                        "differs from the "
                        "source (fingerprints differ; not compared value by value)",
                        organism=name,
                        found=left[kind],
                    )
                ],
                left[kind],
            )

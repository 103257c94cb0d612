"""What the content tasks take and return (sent to and from the dask workers, and kept in the checkpoint)."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from validation.inputs.release import ReleaseUris
from validation.report import Finding

MAX_TASK_FINDINGS = 20  # findings a task keeps per check (it counts them all)


@dataclass(frozen=True)
class ChunkTask:
    """One phase-2 task: source rows [row_start, row_stop) of a dataset, compared with the release in row chunks."""

    dataset_id: str
    organism: str
    path: str
    matrix_key: str
    schema_version: str
    organism_term: str
    row_start: int  # source rows [row_start, row_stop)
    row_stop: int
    joinid_start: int  # obs soma_joinid of the task's first kept cell (fast path: consecutive joinids)
    n_cells: int  # kept cells in the task
    n_var: int  # width of the var soma_joinid space compared in (release var + virtual joinids of absent genes)
    uris: ReleaseUris
    parts: tuple[tuple[int, int], ...]  # the row chunks X is compared in: source rows [start, stop), in order
    max_findings: int = MAX_TASK_FINDINGS
    context: DatasetContext | None = None  # passed separately (scattered once per dataset), bound on the worker
    # General path: the release obs soma_joinid of each kept cell of the task (-1: the release lacks the cell);
    # None when they are joinid_start, joinid_start + 1, ...
    joinids: npt.NDArray[np.int64] | None = field(default=None, compare=False)
    # "compare": read the release at the cells and compare (fast or general path); "fingerprint": read only the
    # source, return each kept cell's expectations (CellExpectations) for the release scan (validation.contents.scan);
    # "detail": compare, value by value, only the cells whose joinid is not -1, reporting X and obs metadata
    # differences only (the scan checked the rest).
    mode: str = "compare"

    @property
    def cell_joinids(self) -> npt.NDArray[np.int64]:
        """The release obs soma_joinid of each kept cell of the task (-1: the release lacks it)."""
        if self.joinids is not None:
            return self.joinids
        return np.arange(self.joinid_start, self.joinid_start + self.n_cells, dtype=np.int64)

    @property
    def ctx(self) -> DatasetContext:
        """The dataset context bound on the worker."""
        if self.context is None:
            raise RuntimeError("ChunkTask has no dataset context")
        return self.context


@dataclass(frozen=True)
class DatasetContext:
    """Per-dataset arrays every chunk task of the dataset needs (sent to the workers once, not per task)."""

    col_map: npt.NDArray[np.int64]  # source column -> release var soma_joinid, -1 if not a Census gene
    col_length: npt.NDArray[np.float64]  # source column -> the Census var feature_length of that gene
    tissue_general: dict[str, tuple[str, str]]

    @functools.cached_property
    def source_col(self) -> npt.NDArray[np.int64]:
        """Release var soma_joinid -> the dataset's source column of that gene, -1 if it has none."""
        kept = np.flatnonzero(self.col_map >= 0)
        out = np.full(int(self.col_map.max(initial=-1)) + 1, -1, dtype=np.int64)
        out[self.col_map[kept]] = kept
        return out


@dataclass
class CellExpectations:
    """What the release must hold for each kept cell of a task (fingerprint mode), in the task's cell order."""

    raw: npt.NDArray[np.uint64]  # fingerprint of the expected X['raw'] row (validation.checks.fingerprint)
    metadata: npt.NDArray[np.uint64]  # fingerprint of the expected obs metadata
    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]
    denominator: npt.NDArray[np.float64]  # X['normalized'] = value [/ feature_length] / denominator
    smart: npt.NDArray[np.bool_]  # divided by feature_length (Smart-seq)


@dataclass
class ChunkResult:
    """What one content task found: findings (capped per check, all counted) and the figures the driver sums."""

    dataset_id: str
    organism: str
    findings: dict[str, list[Finding]] = field(default_factory=lambda: defaultdict(list))
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    var_ids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # expected genes present
    var_nnz: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # their expected nnz
    raw_nnz: int = 0  # found in the chunk's joinid range
    normalized_nnz: int = 0
    obs_nnz: int = 0  # sum of found obs.nnz in the range
    # found n_measured_vars value -> (cells, first soma_joinid, its observation_joinid)
    n_measured_vars: dict[int, tuple[int, int, str]] = field(default_factory=dict)
    max_findings: int = MAX_TASK_FINDINGS
    cells: CellExpectations | None = None  # fingerprint mode

    def add(self, check: str, finding: Finding) -> None:
        """Count a finding for ``check``; keep it while fewer than ``max_findings`` are kept."""
        self.totals[check] += 1
        if len(self.findings[check]) < self.max_findings:
            self.findings[check].append(finding)

    def room(self, check: str) -> int:
        """How many more findings ``check`` keeps."""
        return max(0, self.max_findings - len(self.findings[check]))

"""The state one validation's steps share: inputs, the cluster, the findings, and what each step learned.

The steps (validation.plan, .structure, .contents, .tables, .consistency) are functions of a ``Run``; each
fills in what later ones read (``model`` after plan_datasets, ``layout`` after check_structure, ``found`` and
``tables`` on the way).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checkpoint import Checkpoint
from validation.checks.numbering import VarNumbering, match_var
from validation.contents.tasks import ChunkResult
from validation.expected.model import Model, OrganismModel
from validation.expected.spec import Spec
from validation.inputs.manifest import Manifest
from validation.inputs.release import ReleaseLayout
from validation.report import Finding, Findings

# Source entries per row chunk: bounds a worker's memory. A 4 M-entry chunk's comparison held ~550 MB at its
# peak; at 2 M the 250 k-cell validation tree peaked at 1.38 instead of 1.71 GiB, in no more time (26 vs 28 s;
# at 1 M: 1.21 GiB, 30 s), and the 5 M one at 1.76 instead of 2.06 GiB, 577 s (benchmarks/RESULTS.md, "Scale").
DEFAULT_CHUNK_ENTRIES = 2_000_000
# Source rows per phase-2 task (consecutive chunks of a dataset): obs is read once per task, and TileDB
# decompresses whole tiles of obs rows (the builder's obs capacity is 65,536), so one read per 2 M-entry
# chunk (~2,000 cells) decompressed the same tiles again and again.
DEFAULT_TASK_ROWS = 16_384

# n_measured_vars values found, per dataset: value -> (cells, first soma_joinid, its observation_joinid)
MeasuredVars = dict[str, dict[int, tuple[int, int, str]]]


@dataclass
class Found:
    """What phase 2 found in the release, per organism, for the consistency check."""

    obs_nnz: int = 0
    raw_nnz: int = 0
    normalized_nnz: int = 0
    cells: dict[str, int] = field(default_factory=dict)  # dataset -> obs rows with its dataset_id
    primary: dict[str, int] = field(default_factory=dict)
    n_measured_vars: MeasuredVars = field(default_factory=dict)
    var_nnz: int | None = None
    var_n_measured_obs: npt.NDArray[np.int64] | None = None
    presence: dict[int, npt.NDArray[np.int64]] | None = None
    obs_count: int = 0
    var_numbering: VarNumbering | None = None  # the release's var matched to the expected genes
    presence_shape: tuple[int, int] | None = None
    scanned: int = 0  # obs rows [0, scanned) read (and counted) by the general path's release scan


@dataclass
class Run:
    """One validation in progress (see the module docstring)."""

    spec: Spec
    manifest: Manifest
    release_uri: str
    client: Any
    chunk_entries: int
    findings: Findings
    task_rows: int = DEFAULT_TASK_ROWS
    checkpoint: Checkpoint | None = None
    foreign: bool = False  # written by another tool than census-builder (validation.inputs.schema_version)
    sources: dict[str, tuple[Path | None, str]] = field(default_factory=dict)
    checksums: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset_id -> {path, size, sha256}
    model: Model | None = None
    layout: ReleaseLayout | None = None
    found: dict[str, Found] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)

    def planned(self) -> Model:
        """Return the expected release (after plan_datasets)."""
        if self.model is None:
            raise RuntimeError("plan_datasets has not run")
        return self.model

    def release_layout(self) -> ReleaseLayout:
        """Return what the release holds (after check_structure)."""
        if self.layout is None:
            raise RuntimeError("check_structure has not run")
        return self.layout

    def var_numbering(self, org: OrganismModel) -> VarNumbering:
        """Return the release's var of ``org`` matched to the expected genes (feature_id order if unreadable)."""
        found = self.found.setdefault(org.organism.name, Found())
        if found.var_numbering is None:  # var unreadable: compare in feature_id order (var_features reports it)
            ids = org.var.feature_ids
            found.var_numbering = match_var(ids, np.arange(len(ids), dtype=np.int64), list(ids))
        return found.var_numbering

    @staticmethod
    def named(numbering: VarNumbering, f: Finding) -> Finding:
        """Name the gene of a task's finding by the release's var soma_joinid and feature_id.

        A task names genes by comparison joinid; a gene the release lacks has no var soma_joinid, only its
        feature_id.
        """
        if f.feature_id is None and f.var_joinid is not None:
            joinid, feature_id = numbering.name(f.var_joinid)
            return replace(f, var_joinid=joinid, feature_id=feature_id)
        return f

    def found_counts(self, organism: str, res: ChunkResult, per_dataset: MeasuredVars) -> None:
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

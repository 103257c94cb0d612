"""Findings, per-check results and the validation report.

Every check runs to the end and records what it finds; the report is assembled and judged once, at the
end. A check that could not run (e.g. the object it reads is missing) records that as a finding, so an
unchecked release never passes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Checks in report order, with what each proves.
CHECKS: dict[str, str] = {
    "sources": "the manifest's source H5ADs are readable CELLxGENE dataset schema files",
    "structure": "census_info / census_data keys, experiments, ms['RNA'], X layers, presence matrix and object types",
    "encodings": "column sets and encodings of every dataframe; X and presence dimension and value types",
    "shapes": "obs / var lengths, X and presence matrix shapes",
    "soma_joinids": "every dataframe's soma_joinid is exactly 0..n-1 (their order is free)",
    "obs_cells": "the cells of each dataset (by dataset_id, observation_joinid) are the filtered source cells",
    "obs_metadata": "every obs metadata value equals the source (tissue_general from the ontology)",
    "obs_statistics": "obs nnz, raw_sum, raw_mean_nnz, raw_variance_nnz, n_measured_vars recomputed from sources",
    "var_features": "var holds exactly the kept genes (by feature_id, in any order), with source names and lengths",
    "var_statistics": "var nnz and n_measured_obs recomputed from sources",
    "x_raw": "every X['raw'] value equals the source count at (cell, gene) and nothing is stored elsewhere",
    "x_raw_explicit_zeros": "X['raw'] stores no zeros",
    "x_normalized": "X['normalized'] recomputed: raw's coordinates, values > 0, row sums 1",
    "presence_matrix": "feature_dataset_presence_matrix recomputed per dataset",
    "census_info_summary": "census_info['summary'] rows recomputed",
    "census_info_datasets": "census_info['datasets'] rows recomputed",
    "census_info_summary_cell_counts": "census_info['summary_cell_counts'] rows recomputed",
    "census_info_organisms": "census_info['organisms'] rows (schemas with that table): the organisms with cells",
    "dataset_h5ad_paths": "every dataset_h5ad_path names an existing copy of the source",
    "spatial_structure": "census_spatial_sequencing: experiments, ms['RNA'] (X['raw'] only), obs_spatial_presence, "
    "Scenes, obsl['loc'], img only for Visium (schemas with spatial assays)",
    "spatial_obs": "the spatial cells are the source's (spatial assay, is_single, kept tissue_type, all of them); "
    "is_primary_data, in_tissue, array_row, array_col equal the source",
    "spatial_presence": "obs_spatial_presence: one row (data True) per observation and the scene of its dataset",
    "spatial_points": "obsl['loc']: x, y are obsm['spatial'] columns 1 and 2 (float), a point per observation; radius",
    "spatial_images": "Visium: img[library_id]['highres_image'] is the source's hires image pixel for pixel; its scale",
    "consistency": "internal sums agree: obs nnz, var nnz, X nnz; n_measured_vars / n_measured_obs vs presence",
}

FINDINGS_KEPT = 100  # per check, in the JSON report (all are counted)
FINDINGS_SHOWN = 5  # per check, on the console


def plain(value: Any) -> Any:
    """Return a JSON-friendly version of a numpy / Python value."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Finding:
    """One thing that is wrong, and where."""

    message: str
    dataset_id: str | None = None
    organism: str | None = None
    soma_joinid: int | None = None  # obs soma_joinid of the cell
    observation_joinid: str | None = None
    feature_id: str | None = None
    var_joinid: int | None = None  # var soma_joinid of the gene (feature_id is filled from it when known)
    column: str | None = None
    expected: Any = None
    found: Any = None

    def to_json(self) -> dict[str, Any]:
        """Return the finding as in the JSON report (fields that are None left out)."""
        out: dict[str, Any] = {"message": self.message}
        for key in (
            "organism",
            "dataset_id",
            "observation_joinid",
            "soma_joinid",
            "feature_id",
            "var_joinid",
            "column",
        ):
            v = getattr(self, key)
            if v is not None:
                out[key] = plain(v)
        if self.expected is not None or self.found is not None:
            out["expected"] = plain(self.expected)
            out["found"] = plain(self.found)
        return out

    def line(self) -> str:
        """Return the finding as one console line: where, what, expected and found."""
        where: list[str] = []
        if self.organism:
            where.append(self.organism)
        if self.dataset_id:
            where.append(f"dataset {self.dataset_id}")
        if self.observation_joinid is not None:
            where.append(f"observation_joinid {self.observation_joinid}")
        if self.soma_joinid is not None:
            where.append(f"obs soma_joinid {self.soma_joinid}")
        if self.feature_id is not None:
            where.append(f"feature_id {self.feature_id}")
        elif self.var_joinid is not None:
            where.append(f"var soma_joinid {self.var_joinid}")
        if self.column:
            where.append(f"column {self.column}")
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        values = [f"{k} {plain(v)!r}" for k, v in (("expected", self.expected), ("found", self.found)) if v is not None]
        return f"{text} ({', '.join(values)})" if values else text


@dataclass
class CheckResult:
    """One check's verdict: its findings (the first FINDINGS_KEPT) and how many there are."""

    name: str
    description: str
    findings: list[Finding] = field(default_factory=list)  # the first FINDINGS_KEPT
    n_findings: int = 0  # offending rows, including those not kept (a finding may stand for many cells)

    @property
    def passed(self) -> bool:
        """No findings."""
        return self.n_findings == 0

    def add(self, finding: Finding) -> None:
        """Count ``finding``; keep it if fewer than FINDINGS_KEPT are kept."""
        self.n_findings += 1
        if len(self.findings) < FINDINGS_KEPT:
            self.findings.append(finding)

    def to_json(self) -> dict[str, Any]:
        """Return the check as in the JSON report."""
        return {
            "name": self.name,
            "description": self.description,
            "passed": self.passed,
            "n_findings": self.n_findings,
            "findings": [f.to_json() for f in self.findings],
        }

    def lines(self, shown: int = FINDINGS_SHOWN) -> Iterator[str]:
        """Yield the console lines: PASS / FAIL and the first ``shown`` findings."""
        if self.passed:
            yield f"PASS {self.name}: {self.description}"
            return
        yield f"FAIL {self.name}: {self.n_findings} finding(s): {self.description}"
        listed = self.findings[:shown]
        for f in listed:
            yield f"    - {f.line()}"
        if self.n_findings > len(listed):
            yield f"    ... and {self.n_findings - len(listed)} more (see the JSON report)"


class Findings:
    """Collects findings for every check (all checks are listed, passing or not)."""

    def __init__(self) -> None:
        self.checks: dict[str, CheckResult] = {k: CheckResult(k, v) for k, v in CHECKS.items()}
        # Where the schema leaves a choice (numbering, presence-matrix height, ...): which one the release made.
        self.readings: dict[str, str] = {}

    def add(self, check: str, finding: Finding) -> None:
        """Record a finding of ``check``."""
        self.checks[check].add(finding)

    def merge(self, check: str, findings: Iterable[Finding], total: int) -> None:
        """Add findings that were capped elsewhere: ``total`` counts those left out too."""
        result = self.checks[check]
        kept = 0
        for f in findings:
            result.add(f)
            kept += 1
        result.n_findings += max(0, total - kept)


@dataclass
class ValidationReport:
    """The verdict of a validation: every check, the source checksums and the readings of the release."""

    release: str
    manifest: str
    checks: list[CheckResult]
    seconds: float = 0.0
    # dataset_id -> {"path": the file read (S3: its URI), "size": bytes, "sha256": hex} of every source read
    source_checksums: dict[str, dict[str, Any]] = field(default_factory=dict)
    readings: dict[str, str] = field(default_factory=dict)  # choice the schema leaves free -> the release's

    @property
    def passed(self) -> bool:
        """Every check passed."""
        return all(c.passed for c in self.checks)

    def check(self, name: str) -> CheckResult:
        """Return the check called ``name``."""
        return next(c for c in self.checks if c.name == name)

    @property
    def failed(self) -> list[str]:
        """The names of the checks that failed."""
        return [c.name for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        """Return the report as written to the JSON file."""
        return {
            "passed": self.passed,
            "release": self.release,
            "manifest": self.manifest,
            "checks": [c.to_json() for c in self.checks],
            "seconds": round(self.seconds, 3),
            "source_checksums": {k: dict(v) for k, v in sorted(self.source_checksums.items())},
            "readings": dict(self.readings),
        }

    def lines(self) -> Iterator[str]:
        """Yield the console lines: one per check (with findings), the readings, the verdict."""
        for c in self.checks:
            yield from c.lines()
        for what, reading in self.readings.items():
            yield f"NOTE {what}: {reading}"
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failed)} of {len(self.checks)} checks failed)"
        yield f"validation {verdict}: {self.release} against {self.manifest} in {self.seconds:.1f}s"

    def write(self, path: Path) -> None:
        """Write the JSON report atomically (a reader never sees half a report)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)

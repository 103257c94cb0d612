"""What the comparison helpers record findings in: a task's capped, per-check lists and totals."""

from __future__ import annotations

from typing import Protocol

from validation.report import Finding


class TaskFindings(Protocol):
    """Findings of one task: ``findings[check]`` keeps the first few, ``totals[check]`` counts them all."""

    findings: dict[str, list[Finding]]
    totals: dict[str, int]

    def add(self, check: str, finding: Finding) -> None:
        """Count a finding; keep it if there is room."""

    def room(self, check: str) -> int:
        """How many more findings ``check`` keeps."""

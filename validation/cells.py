"""The set of cells of one dataset, by observation_joinid: release obs rows with that dataset_id vs the
filtered source (a dask task per dataset). Positions are checked chunk by chunk (validation.chunks); this
check sees cells that are missing, added or duplicated wherever they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from validation.expected import FILTER_COLUMNS, as_bools, keep_mask
from validation.report import Finding
from validation.source import SourceFile
from validation.spec import load_spec


@dataclass(frozen=True)
class CellSetTask:
    dataset_id: str
    organism: str
    organism_term: str
    path: str
    schema_version: str
    obs_uri: str
    max_findings: int = 20


@dataclass
class CellSetResult:
    dataset_id: str
    organism: str
    n_found: int = 0  # obs rows with this dataset_id
    n_primary_found: int = 0
    findings: list[Finding] = field(default_factory=list)
    total: int = 0

    def add(self, finding: Finding, max_findings: int) -> None:
        self.total += 1
        if len(self.findings) < max_findings:
            self.findings.append(finding)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_cell_set(task: CellSetTask) -> CellSetResult:
    import tiledbsoma as soma

    res = CellSetResult(task.dataset_id, task.organism)
    spec = load_spec(task.schema_version)
    with SourceFile(task.path) as src:
        keep = keep_mask(spec, task.organism_term, {c: src.column("obs", c) for c in FILTER_COLUMNS})
        expected = [str(v) for v in src.column("obs", "observation_joinid")[keep]]
    try:
        with soma.DataFrame.open(task.obs_uri) as obs:
            table = obs.read(column_names=["soma_joinid", "observation_joinid", "is_primary_data"],
                             value_filter=f"dataset_id == {_quoted(task.dataset_id)}").concat()
    except Exception as e:
        res.add(Finding(f"cannot read the dataset's obs rows: {type(e).__name__}: {e}", dataset_id=task.dataset_id,
                        organism=task.organism), task.max_findings)
        return res
    joinids = table.column("soma_joinid").to_numpy()
    found = [str(v) for v in table.column("observation_joinid").to_pylist()]
    res.n_found = len(found)
    res.n_primary_found = int(as_bools(np.asarray(table.column("is_primary_data").to_pylist())).sum())
    expected_set = set(expected)
    seen: dict[str, int] = {}
    for sj, oj in zip(joinids, found, strict=True):
        if oj in seen:
            res.add(Finding("cell appears more than once in obs", dataset_id=task.dataset_id, organism=task.organism,
                            soma_joinid=int(sj), observation_joinid=oj, expected=seen[oj], found=int(sj)),
                    task.max_findings)
            continue
        seen[oj] = int(sj)
        if oj not in expected_set:
            res.add(Finding("obs has a cell that is not among the dataset's filtered source cells",
                            dataset_id=task.dataset_id, organism=task.organism, soma_joinid=int(sj),
                            observation_joinid=oj, expected="absent", found="present"), task.max_findings)
    for oj in expected:
        if oj not in seen:
            res.add(Finding("source cell that passes the filters is missing from obs", dataset_id=task.dataset_id,
                            organism=task.organism, observation_joinid=oj, expected="present", found="absent"),
                    task.max_findings)
    return res

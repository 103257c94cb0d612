"""The set of cells of one dataset, by observation_joinid (a dask task per dataset).

Release obs rows with that dataset_id vs the filtered source. Positions are checked chunk by chunk
(validation.contents.chunks); this check sees cells that are missing, added or duplicated wherever they are.

Both sides are streamed in slices and compared as 64-bit hashes of the observation_joinid strings, so a
dataset of millions of cells costs 8 bytes per cell; the few offending cells are read again by position
to name them. The same hashes give the release soma_joinid of every kept source cell
(validation.checks.numbering): the map the content checks compare through, whatever order the release
numbers the cells in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from validation.checks.numbering import cell_joinids, contiguous_start
from validation.contents.tasks import MAX_TASK_FINDINGS
from validation.expected.filters import as_bools, keep_rows
from validation.expected.spec import load_spec
from validation.inputs.source import SourceFile
from validation.report import Finding

SLICE = 200_000  # source rows read at a time


@dataclass(frozen=True)
class CellSetTask:
    """Check the cells of one dataset."""

    dataset_id: str
    organism: str
    organism_term: str
    path: str
    schema_version: str
    obs_uri: str
    max_findings: int = MAX_TASK_FINDINGS


@dataclass
class CellSetResult:
    """What the cell-set check found, and where the release put the dataset's cells."""

    dataset_id: str
    organism: str
    n_found: int = 0  # obs rows with this dataset_id
    n_primary_found: int = 0
    findings: list[Finding] = field(default_factory=list)
    total: int = 0
    # The release soma_joinid of each kept source cell (source order, -1: not in obs): only ``start`` when they
    # are one consecutive run (the fast path), else the whole map in ``joinids``.
    start: int | None = None
    joinids: npt.NDArray[np.int64] | None = None


def _hash(values: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    return np.asarray(pd.util.hash_array(np.asarray(values, dtype=object)), dtype=np.uint64)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _source_hashes(task: CellSetTask, src: SourceFile) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Hashes of the kept cells' observation_joinids (in source order) and their source rows."""
    keep = keep_rows(load_spec(task.schema_version), task.organism_term, src)
    rows = np.nonzero(keep)[0].astype(np.int64)
    out = np.empty(rows.size, dtype=np.uint64)
    pos = 0
    n = keep.size
    for a in range(0, n, SLICE):
        k = keep[a : min(n, a + SLICE)]
        if k.any():
            codes, names = src.codes("obs", "observation_joinid", a, min(n, a + SLICE))
            hashed = _hash(np.append(names, "nan")[codes[k]])
            out[pos : pos + hashed.size] = hashed
            pos += hashed.size
    return out, rows


def _release_hashes(task: CellSetTask, res: CellSetResult) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Hashes of the observation_joinids of the release's obs rows with this dataset_id, and their soma_joinids."""
    import tiledbsoma as soma

    hashes: list[npt.NDArray[np.uint64]] = []
    joinids: list[npt.NDArray[np.int64]] = []
    with soma.DataFrame.open(task.obs_uri) as obs:
        for batch in obs.read(
            column_names=["soma_joinid", "observation_joinid", "is_primary_data"],
            value_filter=f"dataset_id == {_quoted(task.dataset_id)}",
        ):
            joinids.append(np.asarray(batch.column("soma_joinid").to_numpy(), dtype=np.int64))
            hashes.append(_hash(np.asarray(batch.column("observation_joinid").to_numpy(zero_copy_only=False))))
            res.n_primary_found += int(
                as_bools(np.asarray(batch.column("is_primary_data").to_numpy(zero_copy_only=False))).sum()
            )
    if not hashes:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(hashes), np.concatenate(joinids)


def _release_names(uri: str, joinids: npt.NDArray[np.int64]) -> dict[int, str]:
    import tiledbsoma as soma

    if joinids.size == 0:
        return {}
    with soma.DataFrame.open(uri) as obs:
        t = obs.read(coords=(joinids,), column_names=["soma_joinid", "observation_joinid"]).concat()
    return dict(zip(t.column("soma_joinid").to_pylist(), t.column("observation_joinid").to_pylist(), strict=True))


def check_cell_set(task: CellSetTask) -> CellSetResult:
    """Compare the dataset's cells in the release with its filtered source cells (a dask task)."""
    res = CellSetResult(task.dataset_id, task.organism)
    where: dict[str, Any] = {"dataset_id": task.dataset_id, "organism": task.organism}
    try:
        found, joinids = _release_hashes(task, res)
    except Exception as e:
        res.total += 1
        res.findings.append(Finding(f"cannot read the dataset's obs rows: {type(e).__name__}: {e}", **where))
        return res
    res.n_found = int(found.size)
    with SourceFile(task.path) as src:
        expected, rows = _source_hashes(task, src)
        where_found = cell_joinids(expected, found, joinids)
        res.start = contiguous_start(where_found)
        if res.start is None:
            res.joinids = where_found
        order = np.argsort(found, kind="stable")
        found_sorted = found[order]
        dup = np.nonzero(found_sorted[1:] == found_sorted[:-1])[0] + 1  # second and later copies
        in_expected = np.isin(found, expected)
        unexpected = np.nonzero(~in_expected)[0]
        missing = np.nonzero(~np.isin(expected, found))[0]
        res.total = int(dup.size + unexpected.size + missing.size)
        cap = task.max_findings
        dup_joinids = joinids[order[dup[:cap]]]
        first = {int(h): int(joinids[order[np.searchsorted(found_sorted, h)]]) for h in found[order[dup[:cap]]]}
        names = _release_names(task.obs_uri, np.concatenate([dup_joinids, joinids[unexpected[:cap]]]))
        for i in order[dup[:cap]]:
            res.findings.append(
                Finding(
                    "cell appears more than once in obs",
                    soma_joinid=int(joinids[i]),
                    observation_joinid=names.get(int(joinids[i])),
                    expected=first[int(found[i])],
                    found=int(joinids[i]),
                    **where,
                )
            )
        for i in unexpected[: max(0, cap - len(res.findings))]:
            res.findings.append(
                Finding(
                    "obs has a cell that is not among the dataset's filtered source cells",
                    soma_joinid=int(joinids[i]),
                    observation_joinid=names.get(int(joinids[i])),
                    expected="absent",
                    found="present",
                    **where,
                )
            )
        for i in missing[: max(0, cap - len(res.findings))]:
            codes, values = src.codes("obs", "observation_joinid", int(rows[i]), int(rows[i]) + 1)
            res.findings.append(
                Finding(
                    "source cell that passes the filters is missing from obs",
                    observation_joinid=str(values[codes[0]]),
                    expected="present",
                    found="absent",
                    **where,
                )
            )
    return res


def foreign_cells(obs_uri: str, members: list[str], limit: int = MAX_TASK_FINDINGS) -> tuple[int, list[dict[str, Any]]]:
    """Find obs rows whose dataset_id is none of ``members`` (the organism's contributing datasets).

    Returns their number and the first ``limit`` (soma_joinid, dataset_id, observation_joinid), wherever they are.
    """
    import tiledbsoma as soma

    condition = "dataset_id not in [" + ", ".join(_quoted(m) for m in members) + "]"
    n = 0
    first: list[dict[str, Any]] = []
    with soma.DataFrame.open(obs_uri) as obs:
        for batch in obs.read(
            column_names=["soma_joinid", "dataset_id", "observation_joinid"],
            value_filter=condition if members else None,
        ):
            n += batch.num_rows
            if len(first) < limit:
                first.extend(batch.slice(0, limit - len(first)).to_pylist())
    return n, first

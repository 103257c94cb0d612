"""obs in a content task: the expected obs rows of the task's kept cells, and their comparison with the release.

Metadata columns are compared value by value with the source (tissue_general from the dataset context);
statistics with the recomputed ones (validation.expected.statistics): nnz exactly, raw_sum exactly or as its
float32 rounding, the others within STAT_RTOL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checks.entries import RowIndex
from validation.checks.exact import raw_sum_differs
from validation.checks.tolerance import STAT_ATOL, STAT_RTOL
from validation.contents.tasks import ChunkResult, ChunkTask
from validation.expected.filters import as_bools, keep_rows
from validation.expected.spec import Spec
from validation.expected.statistics import RowStats
from validation.inputs.release import read_obs
from validation.inputs.source import SourceFile
from validation.report import Finding


def metadata_columns(spec: Spec) -> tuple[str, ...]:
    """Return the obs columns compared with the source value by value (observation_joinid identifies the cell)."""
    columns = (*spec.obs_source_columns, "dataset_id", "tissue_general", "tissue_general_ontology_term_id")
    return tuple(c for c in columns if c != "observation_joinid")


def compare_obs(
    task: ChunkTask, spec: Spec, res: ChunkResult, expected: dict[str, npt.NDArray[Any]], stats: RowStats
) -> None:
    """Compare the task's obs rows with the expected ones: the cell at each joinid, metadata, statistics.

    Also tallies the n_measured_vars values found (the driver checks them against the presence counts).
    """
    cells = task.cell_joinids
    if task.uris.obs is None:
        res.add("obs_cells", Finding("obs is missing: cannot compare cells", dataset_id=task.dataset_id))
        return
    try:
        found = read_obs(task.uris.obs, cells)
    except Exception as e:
        res.add(
            "obs_cells",
            Finding(
                f"cannot read obs rows of {task.n_cells} cells: {type(e).__name__}: {e}",
                dataset_id=task.dataset_id,
                organism=task.organism,
            ),
        )
        return
    sj = found.get("soma_joinid", np.zeros(0, np.int64)).astype(np.int64)
    if "nnz" in found:
        res.obs_nnz = int(np.asarray(found["nnz"], dtype=np.int64).sum())
    pos = np.full(task.n_cells, -1, dtype=np.int64)  # expected row -> position in `found`
    pos[RowIndex(cells)(sj)] = np.arange(sj.size)
    exp_oj = expected["observation_joinid"]
    f_oj = found.get("observation_joinid")
    f_ds = found.get("dataset_id")
    matched = pos >= 0
    # A cell the release lacks (general path: joinid -1) is reported once, by the dataset's cell-set check.
    for i in np.nonzero(~matched & (cells >= 0))[0]:
        res.add(
            "obs_cells",
            Finding(
                "no obs row for this cell at its expected soma_joinid",
                dataset_id=task.dataset_id,
                organism=task.organism,
                soma_joinid=int(cells[i]),
                observation_joinid=str(exp_oj[i]),
            ),
        )
    if f_oj is not None and f_ds is not None:
        same = np.zeros(task.n_cells, dtype=bool)
        same[matched] = (f_oj[pos[matched]] == exp_oj[matched]) & (f_ds[pos[matched]] == task.dataset_id)
        for i in np.nonzero(matched & ~same)[0]:
            res.add(
                "obs_cells",
                Finding(
                    "obs row holds another cell than the one matched to it",
                    dataset_id=task.dataset_id,
                    organism=task.organism,
                    soma_joinid=int(cells[i]),
                    observation_joinid=str(exp_oj[i]),
                    expected=f"{task.dataset_id}/{exp_oj[i]}",
                    found=f"{f_ds[pos[i]]}/{f_oj[pos[i]]}",
                ),
            )
        matched = same
    idx = np.nonzero(matched)[0]
    fpos = pos[idx]

    def report(
        check: str, column: str, bad: npt.NDArray[np.bool_], exp: npt.NDArray[Any], got: npt.NDArray[Any]
    ) -> None:
        where = np.nonzero(bad)[0]
        res.totals[check] += int(where.size)
        for k in where[: res.room(check)]:
            i = int(idx[k])
            res.findings[check].append(
                Finding(
                    f"obs {column} differs from the source",
                    dataset_id=task.dataset_id,
                    organism=task.organism,
                    soma_joinid=int(cells[i]),
                    observation_joinid=str(exp_oj[i]),
                    column=column,
                    expected=exp[k],
                    found=got[k],
                )
            )

    for column in metadata_columns(spec):
        if column not in found:
            continue  # a missing column is an encodings finding
        exp, got = expected[column][idx], found[column][fpos]
        report("obs_metadata", column, exp != got, exp, got)
    if task.mode == "detail":
        return  # statistics were compared by the release scan

    exp_stats = {
        "nnz": stats.nnz,
        "raw_sum": stats.raw_sum,
        "raw_mean_nnz": stats.raw_mean_nnz,
        "raw_variance_nnz": stats.raw_variance_nnz,
    }
    for column, values in exp_stats.items():
        if column not in found:
            continue
        exp, got = values[idx], np.asarray(found[column][fpos], dtype=np.float64)
        bad = (
            exp != got
            if column == "nnz"
            else raw_sum_differs(exp, got)
            if column == "raw_sum"
            else ~np.isclose(got, exp, rtol=STAT_RTOL, atol=STAT_ATOL)
        )
        report("obs_statistics", column, bad, exp, got)
    if "n_measured_vars" in found:
        nmv = np.asarray(found["n_measured_vars"][fpos], dtype=np.int64)
        for value in np.unique(nmv):
            first = int(np.nonzero(nmv == value)[0][0])
            res.n_measured_vars[int(value)] = (
                int((nmv == value).sum()),
                int(cells[idx[first]]),
                str(exp_oj[idx[first]]),
            )


def source_obs(
    task: ChunkTask, spec: Spec, src: SourceFile
) -> tuple[npt.NDArray[np.bool_], dict[str, npt.NDArray[Any]], npt.NDArray[np.bool_]]:
    """Read the task's source rows: which are kept, the kept cells' expected obs metadata, Smart-seq flags."""
    a, b = task.row_start, task.row_stop
    keep = keep_rows(spec, task.organism_term, src, a, b)
    if int(keep.sum()) != task.n_cells:
        raise RuntimeError(
            f"source rows {a}..{b - 1} now hold {int(keep.sum())} kept cells, planned "
            f"{task.n_cells} (did the file change?)"
        )
    obs: dict[str, npt.NDArray[Any]] = {}
    for c in spec.obs_source_columns:
        if c == "is_primary_data":
            obs[c] = as_bools(src.column("obs", c, a, b))[keep]
        else:
            codes, names = src.codes("obs", c, a, b)
            obs[c] = np.append(names, "nan")[codes[keep]]  # code -1 (NA) -> "nan"
    obs["dataset_id"] = np.full(task.n_cells, task.dataset_id, dtype=object)
    tissue = obs["tissue_ontology_term_id"]
    obs["tissue_general_ontology_term_id"] = np.array([task.ctx.tissue_general[t][0] for t in tissue], dtype=object)
    obs["tissue_general"] = np.array([task.ctx.tissue_general[t][1] for t in tissue], dtype=object)
    smart = np.isin(obs["assay_ontology_term_id"].astype(str), sorted(spec.length_normalized_assays))
    return keep, obs, smart

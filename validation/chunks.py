"""Phase 2: compare one row chunk of one source dataset with the release (a dask task).

A chunk is a source row range. Its kept cells have consecutive obs soma_joinids, so the release is read
in exactly that joinid range: obs rows (metadata and statistics), X["raw"] and X["normalized"] (all
columns, so values stored where none belong are seen too). Expected values are computed here from the
source rows, in float64, with plain numpy / scipy. Memory is bounded by the chunk size.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import scipy.sparse as sp

from validation.expected import as_bools, keep_rows
from validation.report import Finding
from validation.source import SourceFile
from validation.spec import Spec, load_spec

logger = logging.getLogger(__name__)

STAT_RTOL = 1e-5  # float32 statistics vs float64 recomputation
NORM_RTOL = 1e-5  # float32 normalized values vs float64 recomputation
ROW_SUM_TOL = 1e-4  # |sum(normalized row) - 1|
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)


@dataclass(frozen=True)
class ReleaseUris:
    obs: str | None
    raw: str | None
    normalized: str | None


@dataclass(frozen=True)
class ChunkTask:
    dataset_id: str
    organism: str
    path: str
    matrix_key: str
    schema_version: str
    organism_term: str
    row_start: int  # source rows [row_start, row_stop)
    row_stop: int
    joinid_start: int  # obs soma_joinid of the chunk's first kept cell
    n_cells: int  # kept cells in the chunk
    n_var: int  # genes in the organism's expected var
    uris: ReleaseUris
    max_findings: int = 20
    context: DatasetContext | None = None  # passed separately (scattered once per dataset), bound on the worker

    @property
    def ctx(self) -> DatasetContext:
        if self.context is None:
            raise RuntimeError("ChunkTask has no dataset context")
        return self.context


@dataclass(frozen=True)
class DatasetContext:
    """Per-dataset arrays every chunk task of the dataset needs (sent to the workers once, not per task)."""

    col_map: npt.NDArray[np.int64]  # source column -> expected var soma_joinid, -1 if not a Census gene
    col_length: npt.NDArray[np.float64]  # source column -> the Census var feature_length of that gene
    tissue_general: dict[str, tuple[str, str]]


@dataclass
class ChunkResult:
    dataset_id: str
    organism: str
    findings: dict[str, list[Finding]] = field(default_factory=lambda: defaultdict(list))
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    var_ids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # expected genes present
    var_nnz: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # their expected nnz
    expected_nnz: int = 0
    raw_nnz: int = 0  # found in the chunk's joinid range
    normalized_nnz: int = 0
    obs_rows: int = 0  # obs rows found in the range
    obs_nnz: int = 0  # sum of found obs.nnz in the range
    # found n_measured_vars value -> (cells, first soma_joinid, its observation_joinid)
    n_measured_vars: dict[int, tuple[int, int, str]] = field(default_factory=dict)
    max_findings: int = 20

    def add(self, check: str, finding: Finding) -> None:
        self.totals[check] += 1
        if len(self.findings[check]) < self.max_findings:
            self.findings[check].append(finding)

    def room(self, check: str) -> int:
        return max(0, self.max_findings - len(self.findings[check]))


def _numpy(col: pa.ChunkedArray) -> npt.NDArray[Any]:
    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _read_obs(uri: str, lo: int, hi: int) -> dict[str, npt.NDArray[Any]]:
    import tiledbsoma as soma

    with soma.DataFrame.open(uri) as df:
        table = df.read(coords=(slice(lo, hi - 1),)).concat()
    return {name: _numpy(table.column(name)) for name in table.column_names}


def _read_x(uri: str, lo: int, hi: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]:
    import tiledbsoma as soma

    with soma.SparseNDArray.open(uri) as arr:
        table = arr.read(coords=(slice(lo, hi - 1),)).tables().concat()
    rows = np.asarray(table.column("soma_dim_0").to_numpy(), dtype=np.int64)
    cols = np.asarray(table.column("soma_dim_1").to_numpy(), dtype=np.int64)
    vals = np.asarray(table.column("soma_data").to_numpy())
    keys = _keys(rows, cols, int(cols.max(initial=0)) + 1)
    if keys.size < 2 or bool((keys[1:] > keys[:-1]).all()):
        return rows, cols, vals
    # Reads come in tile order: column tiles ascending within a row band, so a stable sort by row alone
    # (a radix sort on small integers) gives (row, column) order; a general sort is the fallback.
    order = np.argsort((rows - lo).astype(np.int32), kind="stable")
    keys = keys[order]
    if not bool((keys[1:] > keys[:-1]).all()):
        order = order[np.argsort(keys, kind="stable")]
    return rows[order], cols[order], vals[order]


def check_chunk(task: ChunkTask, context: DatasetContext) -> ChunkResult:
    """Compare one chunk; never raises for a broken release (problems become findings)."""
    task = replace(task, context=context)
    res = ChunkResult(task.dataset_id, task.organism, max_findings=task.max_findings)
    spec = load_spec(task.schema_version)
    try:
        expected_obs, counts, smart = _source_chunk(task, spec, res)
    except Exception as e:
        res.add("sources", Finding(f"cannot read source rows {task.row_start}..{task.row_stop - 1}: "
                                   f"{type(e).__name__}: {e}", dataset_id=task.dataset_id))
        return res
    stats = _row_stats(counts)
    coo = counts.tocoo()
    per_gene = np.bincount(coo.col, minlength=task.n_var)
    res.var_ids = np.nonzero(per_gene)[0].astype(np.int64)
    res.var_nnz = per_gene[res.var_ids].astype(np.int64)
    res.expected_nnz = int(counts.nnz)
    _compare_obs(task, spec, res, expected_obs, stats)
    lo, hi = task.joinid_start, task.joinid_start + task.n_cells
    oj = expected_obs["observation_joinid"]

    def where(row: int, var_joinid: int | None = None) -> dict[str, Any]:
        return {"dataset_id": task.dataset_id, "organism": task.organism, "soma_joinid": lo + row,
                "observation_joinid": str(oj[row]) if 0 <= row < oj.size else None, "var_joinid": var_joinid}

    exp_rows = coo.row.astype(np.int64)
    exp_cols = coo.col.astype(np.int64)
    exp_vals = coo.data.astype(np.float64)
    if task.uris.raw is None:
        res.add("x_raw", Finding("X['raw'] is missing: cannot compare", dataset_id=task.dataset_id))
    else:
        try:
            rows, cols, vals = _read_x(task.uris.raw, lo, hi)
        except Exception as e:
            res.add("x_raw", Finding(f"cannot read X['raw'] rows {lo}..{hi - 1}: {type(e).__name__}: {e}",
                                     dataset_id=task.dataset_id, organism=task.organism))
        else:
            res.raw_nnz = int(vals.size)
            _compare_raw(res, where, exp_rows, exp_cols, exp_vals, rows - lo, cols, vals)
    if task.uris.normalized is None:
        res.add("x_normalized", Finding("X['normalized'] is missing: cannot compare", dataset_id=task.dataset_id))
    else:
        try:
            rows, cols, vals = _read_x(task.uris.normalized, lo, hi)
        except Exception as e:
            res.add("x_normalized", Finding(f"cannot read X['normalized'] rows {lo}..{hi - 1}: "
                                            f"{type(e).__name__}: {e}", dataset_id=task.dataset_id,
                                            organism=task.organism))
        else:
            res.normalized_nnz = int(vals.size)
            expected_norm = _normalized(task, res, counts, smart, where)
            _compare_normalized(res, where, exp_rows, exp_cols, expected_norm, rows - lo, cols, vals)
    return res


def _source_chunk(
    task: ChunkTask, spec: Spec, res: ChunkResult
) -> tuple[dict[str, npt.NDArray[Any]], sp.csr_matrix, npt.NDArray[np.bool_]]:
    """The chunk's kept cells: expected obs metadata, canonical counts (kept cells x expected var), Smart-seq rows."""
    a, b = task.row_start, task.row_stop
    with SourceFile(task.path) as src:
        keep = keep_rows(spec, task.organism_term, src, a, b)
        if int(keep.sum()) != task.n_cells:
            raise RuntimeError(f"source rows {a}..{b - 1} now hold {int(keep.sum())} kept cells, planned "
                               f"{task.n_cells} (did the file change?)")
        obs: dict[str, npt.NDArray[Any]] = {}
        for c in spec.obs_source_columns:
            if c == "is_primary_data":
                obs[c] = as_bools(src.column("obs", c, a, b))[keep]
            else:
                codes, names = src.codes("obs", c, a, b)
                obs[c] = np.append(names, "nan")[codes[keep]]  # code -1 (NA) -> "nan"
        block = src.matrix(task.matrix_key).read_rows(a, b)
    _check_source_values(task, res, block.data)
    rank = np.cumsum(keep) - 1
    mapped = task.ctx.col_map[block.col]
    sel = keep[block.row] & (mapped >= 0)
    counts = sp.csr_matrix(
        (np.asarray(block.data[sel], dtype=np.float64), (rank[block.row[sel]], mapped[sel])),
        shape=(task.n_cells, task.n_var))  # duplicate entries are summed here
    counts.eliminate_zeros()
    counts.sort_indices()
    obs["dataset_id"] = np.full(task.n_cells, task.dataset_id, dtype=object)
    tissue = obs["tissue_ontology_term_id"]
    obs["tissue_general_ontology_term_id"] = np.array([task.ctx.tissue_general[t][0] for t in tissue], dtype=object)
    obs["tissue_general"] = np.array([task.ctx.tissue_general[t][1] for t in tissue], dtype=object)
    smart = np.isin(obs["assay_ontology_term_id"].astype(str), sorted(spec.length_normalized_assays))
    return obs, counts, smart


def _check_source_values(task: ChunkTask, res: ChunkResult, data: npt.NDArray[Any]) -> None:
    values = np.asarray(data, dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        res.add("sources", Finding(f"{int(bad.sum())} count(s) in source rows {task.row_start}..{task.row_stop - 1}"
                                   " are negative, non-integer or not finite", dataset_id=task.dataset_id,
                                   found=float(values[bad][0])))


@dataclass(frozen=True)
class RowStats:
    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]


def _row_sums(m: sp.csr_matrix, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-row sums of ``values`` (aligned with ``m.data``); 0 for empty rows."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    return np.asarray(np.bincount(rows, weights=values, minlength=m.shape[0]), dtype=np.float64)


def _row_stats(m: sp.csr_matrix) -> RowStats:
    """Per-row statistics over each row's non-zero values, two-pass in float64: sum, mean (0 without values),
    sample variance ddof=1 (0 with fewer than two values)."""
    nnz = np.diff(m.indptr).astype(np.int64)
    total = _row_sums(m, m.data)
    mean = np.divide(total, nnz, out=np.zeros_like(total), where=nnz > 0)
    squares = _row_sums(m, (m.data - np.repeat(mean, nnz)) ** 2)
    var = np.divide(squares, nnz - 1, out=np.zeros_like(squares), where=nnz > 1)
    return RowStats(nnz, total, mean, var)


def _compare_obs(task: ChunkTask, spec: Spec, res: ChunkResult, expected: dict[str, npt.NDArray[Any]],
                 stats: RowStats) -> None:
    lo, hi = task.joinid_start, task.joinid_start + task.n_cells
    if task.uris.obs is None:
        res.add("obs_cells", Finding("obs is missing: cannot compare cells", dataset_id=task.dataset_id))
        return
    try:
        found = _read_obs(task.uris.obs, lo, hi)
    except Exception as e:
        res.add("obs_cells", Finding(f"cannot read obs rows {lo}..{hi - 1}: {type(e).__name__}: {e}",
                                     dataset_id=task.dataset_id, organism=task.organism))
        return
    sj = found.get("soma_joinid", np.zeros(0, np.int64)).astype(np.int64)
    res.obs_rows = int(sj.size)
    if "nnz" in found:
        res.obs_nnz = int(np.asarray(found["nnz"], dtype=np.int64).sum())
    pos = np.full(task.n_cells, -1, dtype=np.int64)  # expected row -> position in `found`
    pos[sj - lo] = np.arange(sj.size)
    exp_oj = expected["observation_joinid"]
    f_oj = found.get("observation_joinid")
    f_ds = found.get("dataset_id")
    matched = pos >= 0
    for i in np.nonzero(~matched)[0]:
        res.add("obs_cells", Finding("no obs row for this cell at its expected soma_joinid",
                                     dataset_id=task.dataset_id, organism=task.organism, soma_joinid=lo + int(i),
                                     observation_joinid=str(exp_oj[i])))
    if f_oj is not None and f_ds is not None:
        same = np.zeros(task.n_cells, dtype=bool)
        same[matched] = (f_oj[pos[matched]] == exp_oj[matched]) & (f_ds[pos[matched]] == task.dataset_id)
        for i in np.nonzero(matched & ~same)[0]:
            res.add("obs_cells", Finding(
                "obs row holds another cell than the source order puts here", dataset_id=task.dataset_id,
                organism=task.organism, soma_joinid=lo + int(i), observation_joinid=str(exp_oj[i]),
                expected=f"{task.dataset_id}/{exp_oj[i]}", found=f"{f_ds[pos[i]]}/{f_oj[pos[i]]}"))
        matched = same
    idx = np.nonzero(matched)[0]
    fpos = pos[idx]

    def report(check: str, column: str, bad: npt.NDArray[np.bool_], exp: npt.NDArray[Any],
               got: npt.NDArray[Any]) -> None:
        where = np.nonzero(bad)[0]
        res.totals[check] += int(where.size)
        for k in where[: res.room(check)]:
            i = int(idx[k])
            res.findings[check].append(Finding(
                f"obs {column} differs from the source", dataset_id=task.dataset_id, organism=task.organism,
                soma_joinid=lo + i, observation_joinid=str(exp_oj[i]), column=column, expected=exp[k], found=got[k]))

    for column in (*spec.obs_source_columns, "dataset_id", "tissue_general", "tissue_general_ontology_term_id"):
        if column not in found or column == "observation_joinid":
            continue  # a missing column is an encodings finding
        exp, got = expected[column][idx], found[column][fpos]
        report("obs_metadata", column, exp != got, exp, got)

    exp_stats = {"nnz": stats.nnz, "raw_sum": stats.raw_sum, "raw_mean_nnz": stats.raw_mean_nnz,
                 "raw_variance_nnz": stats.raw_variance_nnz}
    for column, values in exp_stats.items():
        if column not in found:
            continue
        exp, got = values[idx], np.asarray(found[column][fpos], dtype=np.float64)
        bad = exp != got if column == "nnz" else ~np.isclose(got, exp, rtol=STAT_RTOL, atol=1e-6)
        report("obs_statistics", column, bad, exp, got)
    if "n_measured_vars" in found:
        nmv = np.asarray(found["n_measured_vars"][fpos], dtype=np.int64)
        for value in np.unique(nmv):
            first = int(np.nonzero(nmv == value)[0][0])
            res.n_measured_vars[int(value)] = (int((nmv == value).sum()), lo + int(idx[first]),
                                               str(exp_oj[idx[first]]))


def _keys(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.int64]:
    return rows * width + cols


def _align(exp_keys: npt.NDArray[np.int64], got_keys: npt.NDArray[np.int64]) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Match two sorted key arrays: (expected-only positions, found-only positions, matched expected positions,
    matched found positions)."""
    if got_keys.size == 0:
        empty = np.zeros(0, np.int64)
        return np.arange(exp_keys.size, dtype=np.int64), empty, empty, empty
    if exp_keys.size == got_keys.size and np.array_equal(exp_keys, got_keys):  # the usual case: all match
        every = np.arange(exp_keys.size, dtype=np.int64)
        return np.zeros(0, np.int64), np.zeros(0, np.int64), every, every
    pos = np.minimum(np.searchsorted(got_keys, exp_keys), got_keys.size - 1)
    hit = got_keys[pos] == exp_keys
    matched = np.zeros(got_keys.size, dtype=bool)
    matched[pos[hit]] = True
    return (np.nonzero(~hit)[0].astype(np.int64), np.nonzero(~matched)[0].astype(np.int64),
            np.nonzero(hit)[0].astype(np.int64), pos[hit].astype(np.int64))


Where = Any  # callable (row, var_joinid) -> Finding location fields


def _compare_raw(res: ChunkResult, where: Where, er: npt.NDArray[np.int64], ec: npt.NDArray[np.int64],
                 ev: npt.NDArray[np.float64], gr: npt.NDArray[np.int64], gc: npt.NDArray[np.int64],
                 gv: npt.NDArray[Any]) -> None:
    width = int(max(ec.max(initial=0), gc.max(initial=0)) + 1)
    only_e, only_g, mi, mg = _align(_keys(er, ec, width), _keys(gr, gc, width))
    zeros = np.nonzero(gv == 0)[0]
    res.totals["x_raw_explicit_zeros"] += int(zeros.size)
    for k in zeros[: res.room("x_raw_explicit_zeros")]:
        res.findings["x_raw_explicit_zeros"].append(Finding(
            "explicitly stored zero in X['raw']", **where(int(gr[k]), int(gc[k])), found=float(gv[k])))
    res.totals["x_raw"] += int(only_e.size + only_g.size)
    for k in only_e[: res.room("x_raw")]:
        res.findings["x_raw"].append(Finding("source count missing from X['raw']", **where(int(er[k]), int(ec[k])),
                                             expected=float(ev[k]), found="absent"))
    for k in only_g[: res.room("x_raw")]:
        res.findings["x_raw"].append(Finding("X['raw'] stores a value where the source has no count",
                                             **where(int(gr[k]), int(gc[k])), expected="absent", found=float(gv[k])))
    bad = np.nonzero(ev[mi].astype(np.float32) != np.asarray(gv[mg], dtype=np.float32))[0]
    res.totals["x_raw"] += int(bad.size)
    for k in bad[: res.room("x_raw")]:
        res.findings["x_raw"].append(Finding("X['raw'] value differs from the source count",
                                             **where(int(er[mi[k]]), int(ec[mi[k]])), expected=float(ev[mi[k]]),
                                             found=float(gv[mg[k]])))


def _normalized(task: ChunkTask, res: ChunkResult, counts: sp.csr_matrix, smart: npt.NDArray[np.bool_],
                where: Where) -> npt.NDArray[np.float64]:
    """Expected normalized values for the stored entries of ``counts`` (same order as ``counts.tocoo()``)."""
    length = np.zeros(task.n_var, dtype=np.float64)
    length[task.ctx.col_map[task.ctx.col_map >= 0]] = task.ctx.col_length[task.ctx.col_map >= 0]
    row_of = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    by_length = smart[row_of]  # entries of Smart-seq cells: X[i, j] / feature_length[j]
    lengths = length[counts.indices]
    bad = np.nonzero(by_length & (lengths <= 0))[0]
    if bad.size:
        res.add("sources", Finding(f"{bad.size} count(s) of Smart-seq cells are for genes without a positive "
                                   "feature_length", **where(int(row_of[bad[0]]), int(counts.indices[bad[0]]))))
    x = np.where(by_length, counts.data / np.where(lengths > 0, lengths, np.nan), counts.data)
    out: npt.NDArray[np.float64] = x / _row_sums(counts, x)[row_of]
    return out


def _compare_normalized(res: ChunkResult, where: Where, er: npt.NDArray[np.int64], ec: npt.NDArray[np.int64],
                        ev: npt.NDArray[np.float64], gr: npt.NDArray[np.int64], gc: npt.NDArray[np.int64],
                        gv: npt.NDArray[Any]) -> None:
    check = "x_normalized"
    values = np.asarray(gv, dtype=np.float64)
    nonpos = np.nonzero(~(values > 0))[0]
    res.totals[check] += int(nonpos.size)
    for k in nonpos[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] value is not > 0", **where(int(gr[k]), int(gc[k])),
                                           found=float(values[k])))
    width = int(max(ec.max(initial=0), gc.max(initial=0)) + 1)
    only_e, only_g, mi, mg = _align(_keys(er, ec, width), _keys(gr, gc, width))
    res.totals[check] += int(only_e.size + only_g.size)
    for k in only_e[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] has no value where X['raw'] must have one",
                                           **where(int(er[k]), int(ec[k])), expected=float(ev[k]), found="absent"))
    for k in only_g[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] stores a value where X['raw'] must have none",
                                           **where(int(gr[k]), int(gc[k])), expected="absent",
                                           found=float(values[k])))
    exp, got = ev[mi], values[mg]
    ok = np.isclose(got, exp, rtol=NORM_RTOL, atol=0) | ((exp < F32_TINY) & (got == F32_TINY))
    bad = np.nonzero(~ok)[0]
    res.totals[check] += int(bad.size)
    for k in bad[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] value differs from the recomputed value",
                                           **where(int(er[mi[k]]), int(ec[mi[k]])), expected=float(exp[k]),
                                           found=float(got[k])))
    if gr.size:
        starts = np.nonzero(np.concatenate([[True], gr[1:] != gr[:-1]]))[0]
        row_ids = gr[starts]
        sums = np.add.reduceat(values, starts)
        off = np.nonzero(np.abs(sums - 1.0) > ROW_SUM_TOL)[0]
        res.totals[check] += int(off.size)
        for k in off[: res.room(check)]:
            res.findings[check].append(Finding("X['normalized'] row does not sum to 1", **where(int(row_ids[k])),
                                               expected=1.0, found=float(sums[k])))

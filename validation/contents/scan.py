"""The general path's release side: one pass over the release in soma_joinid order.

A dask task per obs row range compares each row with what the sources say about the cell the release put
there. The sources were read once in their own order (validation.contents.chunks, ``mode="fingerprint"``);
the driver placed each kept cell's expectations at the cell's release soma_joinid
(validation.contents.general). Here, per row:

- X['raw']: the row's fingerprint against the source row's; a differing row is compared value by value
  afterwards (``raw_mismatch``), where every difference is named;
- obs metadata: likewise (``metadata_mismatch``);
- obs nnz / raw_sum / raw_mean_nnz / raw_variance_nnz against the source statistics, value by value;
- X['normalized'] of rows whose raw matches: raw's coordinates, values > 0, ``value [/ feature_length] /
  denominator`` with the source cell's denominator, rows summing to 1.

Memory is bounded by the row range (X is read one range at a time, like the fast path's chunks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checks.entries import Entries, align, only_rows, sorted_keys
from validation.checks.fingerprint import entry_hashes, metadata_fingerprints, row_fingerprints
from validation.checks.matrix import compare_normalized
from validation.checks.tolerance import STAT_ATOL, STAT_RTOL
from validation.contents.obs import metadata_columns
from validation.contents.tasks import MAX_TASK_FINDINGS, ChunkResult
from validation.expected.spec import load_spec
from validation.inputs.release import ReleaseUris, read_obs, read_x
from validation.report import Finding


@dataclass(frozen=True)
class ScanTask:
    """Scan release obs rows [lo, hi) of one organism."""

    organism: str
    uris: ReleaseUris
    lo: int  # release obs soma_joinids [lo, hi)
    hi: int
    schema_version: str
    max_findings: int = MAX_TASK_FINDINGS


@dataclass(frozen=True)
class RowExpectations:
    """What the sources say about each release row of a scan task (``known`` False: no source cell there)."""

    known: npt.NDArray[np.bool_]
    raw: npt.NDArray[np.uint64]
    metadata: npt.NDArray[np.uint64]
    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]
    denominator: npt.NDArray[np.float64]
    smart: npt.NDArray[np.bool_]


@dataclass
class ScanResult:
    """What a scan task found: findings and figures, and the rows whose fingerprints differ."""

    res: ChunkResult
    raw_mismatch: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # soma_joinids
    metadata_mismatch: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    # dataset_id -> found n_measured_vars value -> (cells, first soma_joinid, its observation_joinid)
    n_measured_vars: dict[str, dict[int, tuple[int, int, str]]] = field(default_factory=dict)


def _sorted_entries(
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
    lo: int,
    n: int,
    col_bits: int,
    col_map: npt.NDArray[np.int64],
) -> tuple[Entries, npt.NDArray[np.int64] | None]:
    key = (rows - lo) << col_bits
    key |= cols
    key, order = sorted_keys(key, max(n - 1, 1).bit_length() + col_bits)
    return Entries(key, values if order is None else values[order], col_bits, col_map), order


def check_scan(task: ScanTask, lengths: npt.NDArray[np.float64], want: RowExpectations) -> ScanResult:
    """Compare release rows [lo, hi) with the expectations; never raises for a broken release."""
    spec = load_spec(task.schema_version)
    lo, n = task.lo, task.hi - task.lo
    out = ScanResult(ChunkResult("", task.organism, max_findings=task.max_findings))
    res = out.res
    obs: dict[str, npt.NDArray[Any]] = {}
    if task.uris.obs is not None:
        try:
            obs = read_obs(task.uris.obs, np.arange(lo, task.hi, dtype=np.int64))
        except Exception as e:
            res.add(
                "obs_cells",
                Finding(f"cannot read obs rows {lo}..{task.hi - 1}: {type(e).__name__}: {e}", organism=task.organism),
            )
    sj = np.asarray(obs.get("soma_joinid", np.zeros(0, np.int64)), dtype=np.int64)
    pos = np.full(n, -1, dtype=np.int64)  # row -> position in obs
    inside = (sj >= lo) & (sj < task.hi)
    pos[sj[inside] - lo] = np.flatnonzero(inside)
    present = pos >= 0
    known = want.known & present

    def column(name: str) -> npt.NDArray[Any] | None:
        if name not in obs:
            return None
        values = np.full(n, None, dtype=object)
        values[present] = obs[name][pos[present]]
        return values

    ds, oj = column("dataset_id"), column("observation_joinid")

    def where(row: int, var_joinid: int | None = None) -> dict[str, Any]:
        return {
            "dataset_id": None if ds is None else ds[row],
            "organism": task.organism,
            "soma_joinid": lo + row,
            "observation_joinid": None if oj is None else oj[row],
            "var_joinid": var_joinid,
        }

    if "nnz" in obs:
        res.obs_nnz = int(np.asarray(obs["nnz"], dtype=np.int64).sum())
    _scan_obs(out, spec, obs, pos, known, want, where, lo)

    layers: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]] = {}
    for check, layer, uri in (("x_raw", "raw", task.uris.raw), ("x_normalized", "normalized", task.uris.normalized)):
        if uri is None:
            continue  # a missing layer is a structure finding
        try:
            layers[layer] = read_x(uri, slice(lo, task.hi - 1))
        except Exception as e:
            res.add(
                check,
                Finding(
                    f"cannot read X['{layer}'] rows {lo}..{task.hi - 1}: {type(e).__name__}: {e}",
                    organism=task.organism,
                ),
            )
    widest = max([lengths.size - 1, 1, *(int(c.max(initial=0)) for _, c, _ in layers.values())])
    col_bits = widest.bit_length()
    col_map = np.arange(widest + 1, dtype=np.int64)  # codes are var soma_joinids
    ok = known.copy()
    raw: Entries | None = None
    raw_order: npt.NDArray[np.int64] | None = None
    same = (
        "raw" in layers
        and "normalized" in layers
        and all(  # normalized has raw's coordinates (the usual case)
            np.array_equal(a, b) for a, b in zip(layers["raw"][:2], layers["normalized"][:2], strict=True)
        )
    )
    if "raw" in layers:
        rows, cols, vals = layers.pop("raw")
        res.raw_nnz = int(vals.size)
        raw, raw_order = _sorted_entries(rows, cols, vals, lo, n, col_bits, col_map)
        del rows, cols, vals
        fingerprints = row_fingerprints(entry_hashes(raw.codes, raw.values), raw.row_bounds(n))
        differs = known & (fingerprints != want.raw)
        out.raw_mismatch = (lo + np.flatnonzero(differs)).astype(np.int64)
        ok &= ~differs
    if "normalized" in layers and raw is not None:
        rows, cols, vals = layers.pop("normalized")
        res.normalized_nnz = int(vals.size)
        if same:  # raw's keys and order
            norm = Entries(raw.key, vals if raw_order is None else vals[raw_order], col_bits, col_map)
        else:
            norm, _ = _sorted_entries(rows, cols, vals, lo, n, col_bits, col_map)
        del rows, cols, vals
        bounds = raw.row_bounds(n)
        exp, _ = only_rows(raw, bounds, ok)
        if same:  # the same rows of raw's order
            got = Entries(
                exp.key, norm.values if ok.all() else norm.values[np.repeat(ok, np.diff(bounds))], col_bits, col_map
            )
        else:
            got, _ = only_rows(norm, norm.row_bounds(n), ok)
        x = np.asarray(exp.values, dtype=np.float64)
        row_of = exp.key >> col_bits
        smart = want.smart[row_of]
        if smart.any():
            length = lengths[np.minimum(exp.codes[smart], lengths.size - 1)]
            x[smart] /= np.where(length > 0, length, np.nan)
        expected = x / want.denominator[row_of]
        compare_normalized(res, where, exp, expected, got, align(exp.key, got.key), n)
    elif "normalized" in layers:
        res.normalized_nnz = int(layers["normalized"][2].size)
    return out


def _scan_obs(
    out: ScanResult,
    spec: Any,
    obs: dict[str, npt.NDArray[Any]],
    pos: npt.NDArray[np.int64],
    known: npt.NDArray[np.bool_],
    want: RowExpectations,
    where: Any,
    lo: int,
) -> None:
    res = out.res
    rows = np.flatnonzero(known)
    at = pos[rows]
    names = [c for c in metadata_columns(spec)]
    if rows.size and all(c in obs for c in names):
        found = metadata_fingerprints([obs[c][at] for c in names], rows.size)
        out.metadata_mismatch = (lo + rows[found != want.metadata[rows]]).astype(np.int64)
    elif rows.size:  # a column is missing (an encodings finding): compare the rest value by value
        out.metadata_mismatch = (lo + rows).astype(np.int64)
    expected = {
        "nnz": want.nnz,
        "raw_sum": want.raw_sum,
        "raw_mean_nnz": want.raw_mean_nnz,
        "raw_variance_nnz": want.raw_variance_nnz,
    }
    for name, values in expected.items():
        if name not in obs:
            continue
        exp, got = values[rows], np.asarray(obs[name][at], dtype=np.float64)
        bad = exp != got if name == "nnz" else ~np.isclose(got, exp, rtol=STAT_RTOL, atol=STAT_ATOL)
        offending = np.flatnonzero(bad)
        res.totals["obs_statistics"] += int(offending.size)
        for k in offending[: res.room("obs_statistics")]:
            res.findings["obs_statistics"].append(
                Finding(
                    f"obs {name} differs from the source",
                    **{**where(int(rows[k])), "var_joinid": None},
                    column=name,
                    expected=exp[k],
                    found=got[k],
                )
            )
    if "n_measured_vars" in obs and "dataset_id" in obs and rows.size:
        values = np.asarray(obs["n_measured_vars"][at], dtype=np.int64)
        datasets = obs["dataset_id"][at]
        oj = obs.get("observation_joinid")
        for d in np.unique(datasets.astype(str)):
            mine = np.flatnonzero(datasets.astype(str) == d)
            acc = out.n_measured_vars.setdefault(str(d), {})
            for value in np.unique(values[mine]):
                hits = mine[values[mine] == value]
                first = int(hits[0])
                acc[int(value)] = (int(hits.size), lo + int(rows[first]), str(oj[at[first]]) if oj is not None else "")

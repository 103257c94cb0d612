"""Phase 2: compare a source row range of one dataset with the release (a dask task).

The release soma_joinid of each kept cell comes from matching the cells by (dataset_id, observation_joinid)
(validation.checks.numbering). When the task's cells are one consecutive joinid run (our builder's numbering, in
any dataset order) the release is read in exactly that joinid range (the fast path); otherwise at the
cells' joinids (``ChunkTask.joinids``). Either way: obs rows (metadata and statistics) once for the task,
X["raw"] and X["normalized"] (all columns, so values stored where none belong are seen too) one row chunk
(``part``) at a time. Columns are release var soma_joinids; the dataset context maps them to source columns
by feature_id. Expected values are computed from the source rows, in float64, with plain numpy
(validation.expected); obs is compared in validation.contents.obs, X values in validation.checks.matrix.
Memory is bounded by the chunk size; a task of several chunks reads obs, which TileDB decompresses a
whole tile of rows at a time, once instead of once per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checks.entries import Alignment, Entries, RowIndex, align, entry_at, found_entries, only_rows
from validation.checks.fingerprint import entry_hashes, metadata_fingerprints, row_fingerprints
from validation.checks.matrix import Where, compare_normalized, compare_raw
from validation.contents.obs import compare_obs, metadata_columns, source_obs
from validation.contents.tasks import CellExpectations, ChunkResult, ChunkTask, DatasetContext
from validation.expected.counts import expected_entries
from validation.expected.normalization import length_divided, normalized
from validation.expected.spec import load_spec
from validation.expected.statistics import RowStats, row_stats, row_sums
from validation.inputs.release import obs_coords, read_x
from validation.inputs.source import Coords, SourceFile
from validation.report import Finding


def _codes(cols: npt.NDArray[np.int64], ctx: DatasetContext) -> npt.NDArray[np.int64]:
    """Column codes (see validation.checks.entries.Entries) of release var soma_joinids."""
    source_col, n = ctx.source_col, ctx.col_map.size
    if cols.size and int(cols.max()) >= source_col.size:  # beyond every gene of the dataset (a broken release)
        codes = np.full(cols.size, -1, dtype=np.int64)
        inside = cols < source_col.size
        codes[inside] = source_col[cols[inside]]
    else:
        codes = source_col[cols]
    stray = codes < 0
    if stray.any():
        codes[stray] = n + cols[stray]
    return codes


def check_chunk(task: ChunkTask, context: DatasetContext) -> ChunkResult:
    """Compare one task's rows; never raises for a broken release (problems become findings)."""
    task = replace(task, context=context)
    res = ChunkResult(task.dataset_id, task.organism, max_findings=task.max_findings)
    spec = load_spec(task.schema_version)
    a = task.row_start
    with SourceFile(task.path) as src:
        try:
            keep, expected_obs, smart = source_obs(task, spec, src)
        except Exception as e:
            res.add(
                "sources",
                Finding(
                    f"cannot read source rows {a}..{task.row_stop - 1}: {type(e).__name__}: {e}",
                    dataset_id=task.dataset_id,
                ),
            )
            return res
        oj = expected_obs["observation_joinid"]
        sj = task.cell_joinids

        def where(row: int, var_joinid: int | None = None) -> dict[str, Any]:
            inside = 0 <= row < oj.size
            return {
                "dataset_id": task.dataset_id,
                "organism": task.organism,
                "soma_joinid": int(sj[row]) if inside and sj[row] >= 0 else None,
                "observation_joinid": str(oj[row]) if inside else None,
                "var_joinid": var_joinid,
            }

        stats = RowStats.zeros(task.n_cells)
        fingerprints = np.zeros(task.n_cells, dtype=np.uint64)
        denominators = np.zeros(task.n_cells, dtype=np.float64)
        per_gene = np.zeros(task.n_var, dtype=np.int64)
        before = 0  # kept cells of the task before the part
        for start, stop in task.parts:
            part_keep = keep[start - a : stop - a]
            n = int(np.count_nonzero(part_keep))
            try:
                coords = src.matrix(task.matrix_key).read_coords(start, stop)
            except Exception as e:
                res.add(
                    "sources",
                    Finding(
                        f"cannot read source rows {start}..{stop - 1}: {type(e).__name__}: {e}",
                        dataset_id=task.dataset_id,
                    ),
                )
                return res
            part = _Part(task, start, stop, before, n, smart[before : before + n])
            _check_source_values(part, res, coords[2])
            if task.mode == "fingerprint":
                col_bits = max(context.col_map.size - 1, 1).bit_length()
                expected, bounds = _expected_part(part, coords, part_keep, col_bits)
                hashes = entry_hashes(expected.col_map[expected.codes], expected.values)
                fingerprints[before : before + n] = row_fingerprints(hashes, bounds)
                divided, _ = length_divided(expected, bounds, part.smart, context.col_length)
                denominators[before : before + n] = row_sums(bounds, divided)  # what normalized values divide by
            else:
                expected, bounds = _compare_x(part, res, coords, part_keep, where)
            stats.fill(before, row_stats(bounds, expected.values))
            per_source_col = np.bincount(expected.codes, minlength=context.col_map.size)
            present = np.flatnonzero(per_source_col)
            per_gene[context.col_map[present]] += per_source_col[present]
            before += n
            del coords, expected, bounds  # before the next part's are read: memory stays one chunk's
    res.var_ids = np.nonzero(per_gene)[0].astype(np.int64)
    res.var_nnz = per_gene[res.var_ids]
    if task.mode == "fingerprint":
        columns = [expected_obs[c] for c in metadata_columns(spec)]
        res.cells = CellExpectations(
            fingerprints,
            metadata_fingerprints(columns, task.n_cells),
            stats.nnz,
            stats.raw_sum,
            stats.raw_mean_nnz,
            stats.raw_variance_nnz,
            denominators,
            smart,
        )
    else:
        compare_obs(task, spec, res, expected_obs, stats)
    return res


@dataclass(frozen=True)
class _Part:
    """One row chunk of a task: source rows [start, stop) holding the task's kept cells [before, before + n)."""

    task: ChunkTask
    start: int
    stop: int
    before: int
    n: int
    smart: npt.NDArray[np.bool_]  # Smart-seq cells among the part's kept cells

    @property
    def joinids(self) -> npt.NDArray[np.int64]:
        """Release obs soma_joinids of the part's kept cells, in source order (-1: not in the release)."""
        return self.task.cell_joinids[self.before : self.before + self.n]


def _compare_x(
    part: _Part, res: ChunkResult, coords: Coords, keep: npt.NDArray[np.bool_], task_where: Where
) -> tuple[Entries, npt.NDArray[np.int64]]:
    """Compare X["raw"] and X["normalized"] over one part with its source counts.

    Returns the expected entries and their row pointers.
    """
    task, joinids = part.task, part.joinids
    read_rows, local = obs_coords(joinids), RowIndex(joinids)
    lo = local.lo if local.lo is not None else 0  # found rows are made part-local in the keys
    what = (
        f"rows {read_rows.start}..{read_rows.stop}"
        if isinstance(read_rows, slice)
        else f"{read_rows.size} row(s) of the part's cells"
    )

    def where(row: int, var_joinid: int | None = None) -> dict[str, Any]:
        return task_where(part.before + row, var_joinid)

    found: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]] = {}
    for check, layer, uri in (("x_raw", "raw", task.uris.raw), ("x_normalized", "normalized", task.uris.normalized)):
        if uri is None:
            if layer not in load_spec(task.schema_version).x_layers:
                continue  # census_spatial_sequencing: X['raw'] only
            res.add(check, Finding(f"X['{layer}'] is missing: cannot compare", dataset_id=task.dataset_id))
            continue
        try:
            rows, cols, vals = read_x(uri, read_rows)
        except Exception as e:
            res.add(
                check,
                Finding(
                    f"cannot read X['{layer}'] {what}: {type(e).__name__}: {e}",
                    dataset_id=task.dataset_id,
                    organism=task.organism,
                ),
            )
            continue
        if local.lo is None:
            rows = local(rows)
        found[layer] = (rows, cols, vals)
    col_map = task.ctx.col_map
    same = (
        "raw" in found
        and "normalized" in found
        and all(np.array_equal(a, b) for a, b in zip(found["normalized"][:2], found["raw"][:2], strict=True))
    )
    codes = {layer: _codes(f[1], task.ctx) for layer, f in found.items() if not (same and layer == "normalized")}
    # One key layout for expected and found entries: wide enough for any column code either holds.
    widest = max([col_map.size - 1, 1, *(int(c.max(initial=0)) for c in codes.values())])
    col_bits = widest.bit_length()
    expected_all, bounds = _expected_part(part, coords, keep, col_bits)
    expected, cmp_bounds, cmp_smart = expected_all, bounds, part.smart
    if task.joinids is not None and bool((joinids < 0).any()):  # cells the release lacks, or not asked about
        expected, cmp_bounds = only_rows(expected_all, bounds, joinids >= 0)
    raw_order: npt.NDArray[np.int64] | None = None
    raw: tuple[Entries, Alignment] | None = None
    if "raw" in found:
        rows, _, vals = found["raw"]
        raw_entries, raw_order = found_entries(rows, codes["raw"], vals, lo, part.n, col_bits, col_map)
        raw = raw_entries, align(expected.key, raw_entries.key)
        res.raw_nnz += int(vals.size)
        compare_raw(res, where, expected, *raw)
    if "normalized" in found:
        rows, _, vals = found["normalized"]
        res.normalized_nnz += int(vals.size)
        if raw is not None and same:  # raw's coordinates: its order and its alignment with the source
            norm = Entries(raw[0].key, vals if raw_order is None else vals[raw_order], col_bits, col_map)
            aligned = raw[1]
        else:
            norm, _ = found_entries(rows, codes["normalized"], vals, lo, part.n, col_bits, col_map)
            aligned = align(expected.key, norm.key)
        divided, no_length = length_divided(expected, cmp_bounds, cmp_smart, task.ctx.col_length)
        if no_length.size:
            res.add(
                "sources",
                Finding(
                    f"{no_length.size} count(s) of Smart-seq cells are for genes without a positive feature_length",
                    **where(*entry_at(expected, int(no_length[0]))),
                ),
            )
        want = normalized(divided, cmp_bounds)
        compare_normalized(res, where, expected, want, norm, aligned, part.n)
    return expected_all, bounds


def _expected_part(
    part: _Part, coords: Coords, keep: npt.NDArray[np.bool_], col_bits: int
) -> tuple[Entries, npt.NDArray[np.int64]]:
    """Return a part's expected entries (rows: the part's kept cells) and their row pointers."""
    col_map = part.task.ctx.col_map
    s_rows, s_cols, s_vals = coords
    dropped = col_map[s_cols] < 0  # entries of genes and cells the Census leaves out
    if not keep.all():
        dropped |= ~keep[s_rows]
        s_rows = (np.cumsum(keep) - 1)[s_rows]  # row among kept cells
    expected = expected_entries(s_rows, s_cols, s_vals, part.n, col_bits, dropped if dropped.any() else None, col_map)
    return expected, expected.row_bounds(part.n)


def _check_source_values(part: _Part, res: ChunkResult, values: npt.NDArray[Any]) -> None:
    """Check that counts are finite non-negative integers (in the stored dtype: no float64 copy)."""
    if values.dtype.kind == "u":
        return
    ok = values >= 0  # False for NaN too
    if values.dtype.kind == "f":
        ok &= values < np.inf
        ok &= values == np.trunc(values)
    bad = ~ok
    if bad.any():
        res.add(
            "sources",
            Finding(
                f"{int(bad.sum())} count(s) in source rows {part.start}..{part.stop - 1}"
                " are negative, non-integer or not finite",
                dataset_id=part.task.dataset_id,
                found=float(values[np.argmax(bad)]),
            ),
        )

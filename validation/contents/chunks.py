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

import collections
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.checks.entries import (
    Alignment,
    Entries,
    RowIndex,
    align,
    entry_at,
    only_rows,
    sorted_entries,
    widened,
)
from validation.checks.fingerprint import entry_hashes, metadata_fingerprints, row_fingerprints
from validation.checks.matrix import Where, compare_normalized, compare_raw, normalized_sound
from validation.checks.multiset import multiset_sum
from validation.contents.obs import compare_obs, metadata_columns, source_obs
from validation.contents.tasks import CellExpectations, ChunkResult, ChunkTask, DatasetContext
from validation.expected.counts import expected_entries
from validation.expected.normalization import length_divided, normalized
from validation.expected.spec import load_spec
from validation.expected.statistics import RowStats, row_stats, row_sums
from validation.inputs.release import obs_coords, read_x
from validation.inputs.source import Coords, SourceFile
from validation.report import Finding

# Parts whose X["raw"] / X["normalized"] were proven right without a sort, in this process (for tests and profiles)
ORDER_FREE: collections.Counter[str] = collections.Counter()


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
                del coords
                hashes = entry_hashes(expected.col_map[expected.codes], expected.values)
                fingerprints[before : before + n] = row_fingerprints(hashes, bounds)
                divided, _ = length_divided(expected, bounds, part.smart, context.col_length)
                denominators[before : before + n] = row_sums(bounds, divided)  # what normalized values divide by
            else:
                # Column codes of a sound release stay below n_source + n_var (_codes); a wider one found in the
                # release widens the keys (_compare_x). The source's coordinates are freed before it is read.
                col_bits = max(context.col_map.size + task.n_var - 1, 1).bit_length()
                expected, bounds = _expected_part(part, coords, part_keep, col_bits)
                del coords
                expected = _compare_x(part, res, expected, bounds, where)
            stats.fill(before, row_stats(bounds, expected.values))
            per_source_col = np.bincount(expected.codes, minlength=context.col_map.size)
            present = np.flatnonzero(per_source_col)
            per_gene[context.col_map[present]] += per_source_col[present]
            before += n
            del expected, bounds  # before the next part's are read: memory stays one chunk's
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
    part: _Part, res: ChunkResult, expected_all: Entries, bounds: npt.NDArray[np.int64], task_where: Where
) -> Entries:
    """Compare X["raw"] and X["normalized"] over one part with its expected entries (``bounds``: their rows).

    One layer at a time, each freed before the next is read. First without a sort (tasks of one joinid run):
    X["raw"] is right when its entries and the expected ones are the same multiset (validation.checks.multiset),
    and X["normalized"] read at raw's keys in raw's order is then checked in that order (``ORDER_FREE`` counts
    both). Otherwise, and for any doubt, both sides are sorted and aligned, which names every difference;
    X["normalized"] is compared through X["raw"]'s sort and alignment when both hold the same coordinates.
    Returns the expected entries (in wider keys if the release holds column codes beyond their width).
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

    col_map = task.ctx.col_map
    subset = task.joinids is not None and bool((joinids < 0).any())  # cells the release lacks, or not asked about
    order_free = task.joinids is None and local.lo is not None  # the builder's numbering: one joinid run
    raw: _Raw | None = None
    sound_raw: tuple[npt.NDArray[np.int64], npt.NDArray[Any]] | None = None  # X["raw"] as read, proven right
    for check, layer, uri in (("x_raw", "raw", task.uris.raw), ("x_normalized", "normalized", task.uris.normalized)):
        if uri is None:
            if layer not in load_spec(task.schema_version).x_layers:
                continue  # census_spatial_sequencing: X['raw'] only
            res.add(check, Finding(f"X['{layer}'] is missing: cannot compare", dataset_id=task.dataset_id))
            continue
        try:
            rows, cols, vals = read_x(uri, read_rows, expected_all.key.size)
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
        codes = _codes(cols, task.ctx)
        del cols
        # only the dataset's genes and the part's rows can match the expected entries without a sort
        in_range = layer == "raw" and order_free and _inside(rows, codes, lo, part.n, col_map.size)
        widest = int(codes.max(initial=0)).bit_length()
        if widest > expected_all.col_bits:  # a column far beyond the genes (a broken release): wider keys
            expected_all = widened(expected_all, widest)
            if raw is not None:  # its keys are narrower now: normalized is sorted and aligned on its own
                raw = replace(raw, key=np.zeros(0, np.int64), sorted=widened(raw.sorted, widest))
        col_bits = expected_all.col_bits
        key = rows << col_bits
        del rows
        key |= codes
        del codes
        key -= lo << col_bits  # rows part-local
        expected, cmp_bounds = expected_all, bounds
        if subset:
            expected, cmp_bounds = only_rows(expected_all, bounds, joinids >= 0)
        if layer == "raw":
            res.raw_nnz += int(vals.size)
            if in_range and multiset_sum(key, vals) == multiset_sum(expected.key, expected.values):
                ORDER_FREE["raw"] += 1
                sound_raw = (key, vals)
                del key, vals
                continue
            raw_entries, raw_order = sorted_entries(key, vals, part.n, col_bits, col_map)
            aligned = align(expected.key, raw_entries.key)
            compare_raw(res, where, expected, raw_entries, aligned)
            raw = _Raw(key, raw_entries, raw_order, aligned)
            del key, vals, raw_entries
            continue
        res.normalized_nnz += int(vals.size)
        divided, no_length = length_divided(expected, cmp_bounds, part.smart, task.ctx.col_length)
        if no_length.size:
            res.add(
                "sources",
                Finding(
                    f"{no_length.size} count(s) of Smart-seq cells are for genes without a positive feature_length",
                    **where(*entry_at(expected, int(no_length[0]))),
                ),
            )
        if (
            sound_raw is not None
            and np.array_equal(key, sound_raw[0])
            and _normalized_in_order(part, key, vals, sound_raw[1], row_sums(cmp_bounds, divided), col_bits)
        ):
            ORDER_FREE["normalized"] += 1
            continue
        sound_raw = None
        if raw is not None and np.array_equal(key, raw.key):  # raw's coordinates: its order and its alignment
            norm = Entries(raw.sorted.key, vals if raw.order is None else vals[raw.order], col_bits, col_map)
            aligned = raw.aligned
        else:
            norm, _ = sorted_entries(key, vals, part.n, col_bits, col_map)
            aligned = align(expected.key, norm.key)
        raw = None
        del key, vals
        want = normalized(divided, cmp_bounds)
        del divided
        compare_normalized(res, where, expected, want, norm, aligned, part.n)
    return expected_all


def _inside(rows: npt.NDArray[np.int64], codes: npt.NDArray[np.int64], lo: int, n_rows: int, n_codes: int) -> bool:
    """Whether every entry read is in rows [lo, lo + n_rows) and one of the dataset's genes (codes < n_codes)."""
    if not rows.size:
        return True
    return int(rows.min()) >= lo and int(rows.max()) < lo + n_rows and int(codes.max()) < n_codes


def _normalized_in_order(
    part: _Part,
    key: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
    raw_values: npt.NDArray[Any],
    denominators: npt.NDArray[np.float64],
    col_bits: int,
) -> bool:
    """Whether X["normalized"] read at X["raw"]'s keys (same order) is right, computed in the order read.

    X["raw"] is proven equal to the expected counts (validation.checks.multiset), so the expected normalized
    value of entry i is raw's value i, divided by its gene's feature_length in Smart-seq cells (NaN without a
    positive one, as validation.expected.normalization.length_divided does), over its row's ``denominators``
    (the expected rows' sums of those values). False on any doubt: the caller then compares it sorted.
    """
    rows = key >> col_bits
    if not part.smart.any():
        want: npt.NDArray[np.float64] = np.divide(raw_values, denominators[rows], dtype=np.float64)
        return normalized_sound(want, values, rows, part.n)
    want = np.array(raw_values, dtype=np.float64)
    by_length = np.flatnonzero(part.smart[rows])
    lengths = part.task.ctx.col_length[key[by_length] & ((1 << col_bits) - 1)]
    want[by_length] /= np.where(lengths > 0, lengths, np.nan)
    want /= denominators[rows]
    return normalized_sound(want, values, rows, part.n)


@dataclass(frozen=True)
class _Raw:
    """X["raw"] of a part as read (unsorted keys), sorted, the permutation that sorted it, and its alignment."""

    key: npt.NDArray[np.int64]
    sorted: Entries
    order: npt.NDArray[np.int64] | None
    aligned: Alignment


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

"""Phase 2: compare a source row range of one dataset with the release (a dask task).

The release soma_joinid of each kept cell comes from matching the cells by (dataset_id, observation_joinid)
(validation.numbering). When the task's cells are one consecutive joinid run (our builder's numbering, in
any dataset order) the release is read in exactly that joinid range (the fast path); otherwise at the
cells' joinids (``ChunkTask.joinids``). Either way: obs rows (metadata and statistics) once for the task,
X["raw"] and X["normalized"] (all columns, so values stored where none belong are seen too) one row chunk
(``part``) at a time. Columns are release var soma_joinids; the dataset context maps them to source columns
by feature_id. Expected values are computed here from the source rows, in float64, with plain numpy.
Memory is bounded by the chunk size; a task of several chunks reads obs, which TileDB decompresses a
whole tile of rows at a time, once instead of once per chunk.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from validation.exact import raw_differs, raw_sum_differs
from validation.expected import as_bools, keep_rows
from validation.fingerprint import entry_hashes, metadata_fingerprints, row_fingerprints
from validation.report import Finding
from validation.source import Coords, SourceFile
from validation.spec import Spec, load_spec

logger = logging.getLogger(__name__)

STAT_RTOL = 1e-5  # float32 statistics vs float64 recomputation
NORM_RTOL = 1e-5  # float32 normalized values vs float64 recomputation
ROW_SUM_TOL = 1e-4  # |sum(normalized row) - 1|
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)
READ_BUFFER_BYTES = 128 * 2**20  # per column: one read of a 16 M-value chunk; below the workers' mmap threshold


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
    joinid_start: int  # obs soma_joinid of the task's first kept cell (fast path: consecutive joinids)
    n_cells: int  # kept cells in the task
    n_var: int  # width of the var soma_joinid space compared in (release var + virtual joinids of absent genes)
    uris: ReleaseUris
    parts: tuple[tuple[int, int], ...]  # the row chunks X is compared in: source rows [start, stop), in order
    max_findings: int = 20
    context: DatasetContext | None = None  # passed separately (scattered once per dataset), bound on the worker
    # General path: the release obs soma_joinid of each kept cell of the task (-1: the release lacks the cell);
    # None when they are joinid_start, joinid_start + 1, ...
    joinids: npt.NDArray[np.int64] | None = field(default=None, compare=False)
    # "compare": read the release at the cells and compare (fast or general path); "fingerprint": read only the
    # source, return each kept cell's expectations (CellExpectations) for the release scan (validation.scan);
    # "detail": compare, value by value, only the cells whose joinid is not -1, reporting X and obs metadata
    # differences only (the scan checked the rest).
    mode: str = "compare"

    @property
    def cell_joinids(self) -> npt.NDArray[np.int64]:
        if self.joinids is not None:
            return self.joinids
        return np.arange(self.joinid_start, self.joinid_start + self.n_cells, dtype=np.int64)

    @property
    def ctx(self) -> DatasetContext:
        if self.context is None:
            raise RuntimeError("ChunkTask has no dataset context")
        return self.context


@dataclass(frozen=True)
class DatasetContext:
    """Per-dataset arrays every chunk task of the dataset needs (sent to the workers once, not per task)."""

    col_map: npt.NDArray[np.int64]  # source column -> release var soma_joinid, -1 if not a Census gene
    col_length: npt.NDArray[np.float64]  # source column -> the Census var feature_length of that gene
    tissue_general: dict[str, tuple[str, str]]

    @functools.cached_property
    def source_col(self) -> npt.NDArray[np.int64]:
        """Release var soma_joinid -> the dataset's source column of that gene, -1 if it has none."""
        kept = np.flatnonzero(self.col_map >= 0)
        out = np.full(int(self.col_map.max(initial=-1)) + 1, -1, dtype=np.int64)
        out[self.col_map[kept]] = kept
        return out


@dataclass
class CellExpectations:
    """What the release must hold for each kept cell of a task (fingerprint mode), in the task's cell order."""

    raw: npt.NDArray[np.uint64]  # fingerprint of the expected X['raw'] row (validation.fingerprint)
    metadata: npt.NDArray[np.uint64]  # fingerprint of the expected obs metadata
    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]
    denominator: npt.NDArray[np.float64]  # X['normalized'] = value [/ feature_length] / denominator
    smart: npt.NDArray[np.bool_]  # divided by feature_length (Smart-seq)


def metadata_columns(spec: Spec) -> tuple[str, ...]:
    """The obs columns compared with the source value by value (observation_joinid identifies the cell)."""
    columns = (*spec.obs_source_columns, "dataset_id", "tissue_general", "tissue_general_ontology_term_id")
    return tuple(c for c in columns if c != "observation_joinid")


@dataclass
class ChunkResult:
    dataset_id: str
    organism: str
    findings: dict[str, list[Finding]] = field(default_factory=lambda: defaultdict(list))
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    var_ids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # expected genes present
    var_nnz: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # their expected nnz
    raw_nnz: int = 0  # found in the chunk's joinid range
    normalized_nnz: int = 0
    obs_nnz: int = 0  # sum of found obs.nnz in the range
    # found n_measured_vars value -> (cells, first soma_joinid, its observation_joinid)
    n_measured_vars: dict[int, tuple[int, int, str]] = field(default_factory=dict)
    max_findings: int = 20
    cells: CellExpectations | None = None  # fingerprint mode

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


def _rows(joinids: npt.NDArray[np.int64]) -> Any:
    """A read's coordinates for obs soma_joinids given in row order: a slice for a consecutive run (the fast
    path), else the sorted distinct joinids (-1, a cell the release lacks, left out)."""
    if joinids.size and int(joinids[0]) >= 0 and int(joinids[-1]) - int(joinids[0]) == joinids.size - 1 and \
            bool((np.diff(joinids) == 1).all()):
        return slice(int(joinids[0]), int(joinids[-1]))
    return np.unique(joinids[joinids >= 0])


class RowIndex:
    """Release obs soma_joinid -> row among ``joinids`` (the task's or part's cells, in source order)."""

    def __init__(self, joinids: npt.NDArray[np.int64]) -> None:
        valid = np.flatnonzero(joinids >= 0)
        order = np.argsort(joinids[valid], kind="stable")
        self.keys = joinids[valid][order]
        self.rows = valid[order].astype(np.int64)
        self.lo = int(joinids[0]) if joinids.size and isinstance(_rows(joinids), slice) else None

    def __call__(self, joinids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Rows of ``joinids`` that are among the cells (every joinid a read at ``_rows`` returns is)."""
        if self.lo is not None:
            return joinids - self.lo
        pos = np.minimum(np.searchsorted(self.keys, joinids), max(self.keys.size - 1, 0))
        return self.rows[pos] if self.keys.size else np.zeros(0, np.int64)


def _read_obs(uri: str, joinids: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
    import tiledbsoma as soma

    rows = _rows(joinids)
    if not isinstance(rows, slice) and rows.size == 0:
        return {}
    with soma.DataFrame.open(uri, context=_context()) as df:
        table = df.read(coords=(rows,)).concat()
    return {name: _numpy(table.column(name)) for name in table.column_names}


@functools.cache
def _context(buffer_bytes: int | None = None) -> Any:
    """For every chunk read: TileDB must not malloc_trim after each query (its default), which hands the
    freed heap back to the kernel so the next chunk page-faults all of it in again (measured in-process
    at 250 k cells: 6.1 M -> 2.9 M page faults, 52 s -> 46 s, with the worker malloc settings of core).
    X reads pass ``buffer_bytes``: TileDB-SOMA's default read buffers are above the workers' mmap threshold,
    so every read mapped them afresh and faulted in every page it filled; READ_BUFFER_BYTES keeps them on
    the reused heap (one 3.5 M-value X read: 17,700 -> 500 page faults, 100 -> 74 ms). obs reads keep the
    default: dozens of columns of that size would push the heap past the trim threshold."""
    import tiledbsoma as soma

    config: dict[str, str | float] = {"sm.mem.malloc_trim": "false"}
    if buffer_bytes:
        config["soma.init_buffer_bytes"] = str(buffer_bytes)
    return soma.SOMATileDBContext(tiledb_config=config)


def _read_x(uri: str, rows: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Every stored value of ``rows`` (a slice or sorted joinids), in whatever order TileDB returns them."""
    import tiledbsoma as soma

    if not isinstance(rows, slice) and rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    with soma.SparseNDArray.open(uri, context=_context(READ_BUFFER_BYTES)) as arr:
        table = arr.read(coords=(rows,)).tables().concat()
    rows = np.asarray(table.column("soma_dim_0").to_numpy(), dtype=np.int64)
    cols = np.asarray(table.column("soma_dim_1").to_numpy(), dtype=np.int64)
    return rows, cols, np.asarray(table.column("soma_data").to_numpy())


@dataclass(frozen=True)
class Entries:
    """A chunk's stored values sorted by (row, column code): ``key = row << col_bits | code``, rows chunk-local.

    Columns are compared in the source's order, where a CSR source's stored counts already are: a gene's
    code is its source column; a release column that is none of the dataset's genes (var soma_joinid v)
    gets code n_source + v, so it matches nothing. ``col_map`` turns codes back into var soma_joinids.
    """

    key: npt.NDArray[np.int64]
    values: npt.NDArray[Any]
    col_bits: int
    col_map: npt.NDArray[np.int64]

    @property
    def codes(self) -> npt.NDArray[np.int64]:
        return self.key & ((1 << self.col_bits) - 1)

    def var_joinid(self, code: int) -> int:
        n = self.col_map.size
        return int(self.col_map[code]) if code < n else code - n

    def row_bounds(self, n_rows: int) -> npt.NDArray[np.int64]:
        """CSR-style row pointers: row i's entries are [bounds[i], bounds[i + 1])."""
        return np.searchsorted(self.key, np.arange(n_rows + 1, dtype=np.int64) << self.col_bits).astype(np.int64)


class _Positions:
    """``np.arange(n)`` as a read-only view of one array kept per process (every sort needs one)."""

    def __init__(self) -> None:
        self._all = np.zeros(0, dtype=np.int64)

    def __call__(self, n: int) -> npt.NDArray[np.int64]:
        if self._all.size < n:
            self._all = np.arange(n, dtype=np.int64)
            self._all.flags.writeable = False
        return self._all[:n]


_positions = _Positions()


def _sorted(key: npt.NDArray[np.int64], key_bits: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | None]:
    """(``key`` ascending, the stable permutation that sorts it; None if it was sorted already)."""
    if key.size < 2 or bool((key[1:] >= key[:-1]).all()):
        return key, None
    pos_bits = int(key.size - 1).bit_length()
    if key_bits + pos_bits > 63:
        order = np.argsort(key, kind="stable")
        return key[order], order
    # Packing each key with its position into one int64 lets numpy's value sort do it, several times
    # faster than an argsort; the sorted keys come out of the packed values without a gather.
    packed = key << pos_bits
    packed |= _positions(key.size)
    packed.sort()
    order = packed & ((1 << pos_bits) - 1)
    packed >>= pos_bits
    return packed, order


def _codes(cols: npt.NDArray[np.int64], ctx: DatasetContext) -> npt.NDArray[np.int64]:
    """Column codes (see Entries) of release var soma_joinids."""
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


def _found(rows: npt.NDArray[np.int64], codes: npt.NDArray[np.int64], values: npt.NDArray[Any], lo: int,
           n_rows: int, col_bits: int, col_map: npt.NDArray[np.int64]) -> tuple[Entries, npt.NDArray[np.int64] | None]:
    """Values read back from the release for rows [lo, lo + n_rows), sorted by (row - lo, column code), and
    the permutation that sorted them (None when nothing moved)."""
    key = rows << col_bits
    key |= codes
    key -= lo << col_bits  # rows chunk-local
    key, order = _sorted(key, max(n_rows - 1, 1).bit_length() + col_bits)
    return Entries(key, values if order is None else values[order], col_bits, col_map), order


def _expected(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], values: npt.NDArray[Any], n_rows: int,
              col_bits: int, dropped: npt.NDArray[np.bool_] | None, col_map: npt.NDArray[np.int64]) -> Entries:
    """What a source's stored entries (rows among kept cells, source columns) mean, as the release must hold
    them: sorted by (row, column) with duplicates summed and zeros dropped, in float64; entries marked
    ``dropped`` (cells or genes the Census leaves out) removed. A canonical CSR source needs no sort."""
    if dropped is not None:
        kept = ~dropped
        rows, cols, values = rows[kept], cols[kept], values[kept]
    key = rows << col_bits
    key |= cols
    key, order = _sorted(key, max(n_rows - 1, 1).bit_length() + col_bits)
    n = key.size
    x = np.asarray(values if order is None else values[order], dtype=np.float64)
    first = np.empty(n, dtype=bool)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    if not first.all():
        starts = np.flatnonzero(first)
        key, x = key[starts], np.add.reduceat(x, starts)
    nonzero = x != 0
    if not nonzero.all():
        key, x = key[nonzero], x[nonzero]
    return Entries(key, x, col_bits, col_map)


def check_chunk(task: ChunkTask, context: DatasetContext) -> ChunkResult:
    """Compare one task's rows; never raises for a broken release (problems become findings)."""
    task = replace(task, context=context)
    res = ChunkResult(task.dataset_id, task.organism, max_findings=task.max_findings)
    spec = load_spec(task.schema_version)
    a = task.row_start
    with SourceFile(task.path) as src:
        try:
            keep, expected_obs, smart = _source_obs(task, spec, src)
        except Exception as e:
            res.add("sources", Finding(f"cannot read source rows {a}..{task.row_stop - 1}: {type(e).__name__}: {e}",
                                       dataset_id=task.dataset_id))
            return res
        oj = expected_obs["observation_joinid"]
        sj = task.cell_joinids

        def where(row: int, var_joinid: int | None = None) -> dict[str, Any]:
            inside = 0 <= row < oj.size
            return {"dataset_id": task.dataset_id, "organism": task.organism,
                    "soma_joinid": int(sj[row]) if inside and sj[row] >= 0 else None,
                    "observation_joinid": str(oj[row]) if inside else None, "var_joinid": var_joinid}

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
                res.add("sources", Finding(f"cannot read source rows {start}..{stop - 1}: {type(e).__name__}: {e}",
                                           dataset_id=task.dataset_id))
                return res
            part = _Part(task, start, stop, before, n, smart[before : before + n])
            _check_source_values(part, res, coords[2])
            if task.mode == "fingerprint":
                col_bits = max(context.col_map.size - 1, 1).bit_length()
                expected, bounds = _expected_part(part, coords, part_keep, col_bits)
                hashes = entry_hashes(expected.col_map[expected.codes], expected.values)
                fingerprints[before : before + n] = row_fingerprints(hashes, bounds)
                denominators[before : before + n] = _denominators(task, expected, bounds, part.smart)
            else:
                expected, bounds = _compare_x(part, res, coords, part_keep, where)
            stats.fill(before, _row_stats(bounds, expected.values))
            per_source_col = np.bincount(expected.codes, minlength=context.col_map.size)
            present = np.flatnonzero(per_source_col)
            per_gene[context.col_map[present]] += per_source_col[present]
            before += n
            del coords, expected, bounds  # before the next part's are read: memory stays one chunk's
    res.var_ids = np.nonzero(per_gene)[0].astype(np.int64)
    res.var_nnz = per_gene[res.var_ids]
    if task.mode == "fingerprint":
        columns = [expected_obs[c] for c in metadata_columns(spec)]
        res.cells = CellExpectations(fingerprints, metadata_fingerprints(columns, task.n_cells), stats.nnz,
                                     stats.raw_sum, stats.raw_mean_nnz, stats.raw_variance_nnz, denominators, smart)
    else:
        _compare_obs(task, spec, res, expected_obs, stats)
    return res


def _denominators(task: ChunkTask, exp: Entries, bounds: npt.NDArray[np.int64],
                  smart: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Per kept cell: the sum normalized values divide by (of counts, or of counts / feature_length)."""
    x = np.asarray(exp.values, dtype=np.float64)
    if smart.any():
        by_length = np.flatnonzero(np.repeat(smart, np.diff(bounds)))
        lengths = task.ctx.col_length[exp.codes[by_length]]
        x = x.copy()
        x[by_length] /= np.where(lengths > 0, lengths, np.nan)
    return _row_sums(bounds, x)


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


def _compare_x(part: _Part, res: ChunkResult, coords: Coords, keep: npt.NDArray[np.bool_], task_where: Where
               ) -> tuple[Entries, npt.NDArray[np.int64]]:
    """Compare X["raw"] and X["normalized"] over one part with its source counts; returns the expected entries
    and their row pointers."""
    task, joinids = part.task, part.joinids
    read_rows, local = _rows(joinids), RowIndex(joinids)
    lo = local.lo if local.lo is not None else 0  # found rows are made part-local in the keys
    what = (f"rows {read_rows.start}..{read_rows.stop}" if isinstance(read_rows, slice)
            else f"{read_rows.size} row(s) of the part's cells")

    def where(row: int, var_joinid: int | None = None) -> dict[str, Any]:
        return task_where(part.before + row, var_joinid)  # type: ignore[no-any-return]

    found: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]] = {}
    for check, layer, uri in (("x_raw", "raw", task.uris.raw), ("x_normalized", "normalized", task.uris.normalized)):
        if uri is None:
            res.add(check, Finding(f"X['{layer}'] is missing: cannot compare", dataset_id=task.dataset_id))
            continue
        try:
            rows, cols, vals = _read_x(uri, read_rows)
        except Exception as e:
            res.add(check, Finding(f"cannot read X['{layer}'] {what}: {type(e).__name__}: {e}",
                                   dataset_id=task.dataset_id, organism=task.organism))
            continue
        if local.lo is None:
            rows = local(rows)
        found[layer] = (rows, cols, vals)
    col_map = task.ctx.col_map
    same = "raw" in found and "normalized" in found and all(
        np.array_equal(a, b) for a, b in zip(found["normalized"][:2], found["raw"][:2], strict=True))
    codes = {layer: _codes(f[1], task.ctx) for layer, f in found.items() if not (same and layer == "normalized")}
    # One key layout for expected and found entries: wide enough for any column code either holds.
    widest = max([col_map.size - 1, 1, *(int(c.max(initial=0)) for c in codes.values())])
    col_bits = widest.bit_length()
    expected_all, bounds = _expected_part(part, coords, keep, col_bits)
    expected, cmp_bounds, cmp_smart = expected_all, bounds, part.smart
    if task.joinids is not None and bool((joinids < 0).any()):  # cells the release lacks, or not asked about
        expected, cmp_bounds = _only_rows(expected_all, bounds, joinids >= 0)
    raw_order: npt.NDArray[np.int64] | None = None
    raw: tuple[Entries, Alignment] | None = None
    if "raw" in found:
        rows, _, vals = found["raw"]
        raw_entries, raw_order = _found(rows, codes["raw"], vals, lo, part.n, col_bits, col_map)
        raw = raw_entries, _align(expected.key, raw_entries.key)
        res.raw_nnz += int(vals.size)
        _compare_raw(res, where, expected, *raw)
    if "normalized" in found:
        rows, _, vals = found["normalized"]
        res.normalized_nnz += int(vals.size)
        if raw is not None and same:  # raw's coordinates: its order and its alignment with the source
            norm = Entries(raw[0].key, vals if raw_order is None else vals[raw_order], col_bits, col_map)
            aligned = raw[1]
        else:
            norm, _ = _found(rows, codes["normalized"], vals, lo, part.n, col_bits, col_map)
            aligned = _align(expected.key, norm.key)
        want = _normalized(task, res, expected, cmp_bounds, cmp_smart, where)
        _compare_normalized(res, where, expected, want, norm, aligned, part.n)
    return expected_all, bounds


def _expected_part(part: _Part, coords: Coords, keep: npt.NDArray[np.bool_], col_bits: int
                   ) -> tuple[Entries, npt.NDArray[np.int64]]:
    """A part's expected entries (rows: the part's kept cells) and their row pointers."""
    col_map = part.task.ctx.col_map
    s_rows, s_cols, s_vals = coords
    dropped = col_map[s_cols] < 0  # entries of genes and cells the Census leaves out
    if not keep.all():
        dropped |= ~keep[s_rows]
        s_rows = (np.cumsum(keep) - 1)[s_rows]  # row among kept cells
    expected = _expected(s_rows, s_cols, s_vals, part.n, col_bits, dropped if dropped.any() else None, col_map)
    return expected, expected.row_bounds(part.n)


def _only_rows(e: Entries, bounds: npt.NDArray[np.int64], rows: npt.NDArray[np.bool_]
               ) -> tuple[Entries, npt.NDArray[np.int64]]:
    """The entries of the rows marked in ``rows`` only (row numbers unchanged) and their row pointers."""
    if rows.all():
        return e, bounds
    sel = np.repeat(rows, np.diff(bounds))
    kept = Entries(e.key[sel], e.values[sel], e.col_bits, e.col_map)
    return kept, kept.row_bounds(rows.size)


def _source_obs(task: ChunkTask, spec: Spec, src: SourceFile
                ) -> tuple[npt.NDArray[np.bool_], dict[str, npt.NDArray[Any]], npt.NDArray[np.bool_]]:
    """The task's source rows: which are kept, the kept cells' expected obs metadata, their Smart-seq flags."""
    a, b = task.row_start, task.row_stop
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
    obs["dataset_id"] = np.full(task.n_cells, task.dataset_id, dtype=object)
    tissue = obs["tissue_ontology_term_id"]
    obs["tissue_general_ontology_term_id"] = np.array([task.ctx.tissue_general[t][0] for t in tissue], dtype=object)
    obs["tissue_general"] = np.array([task.ctx.tissue_general[t][1] for t in tissue], dtype=object)
    smart = np.isin(obs["assay_ontology_term_id"].astype(str), sorted(spec.length_normalized_assays))
    return keep, obs, smart


def _check_source_values(part: _Part, res: ChunkResult, values: npt.NDArray[Any]) -> None:
    """Counts must be finite non-negative integers (checked in the stored dtype: no float64 copy)."""
    if values.dtype.kind == "u":
        return
    ok = values >= 0  # False for NaN too
    if values.dtype.kind == "f":
        ok &= values < np.inf
        ok &= values == np.trunc(values)
    bad = ~ok
    if bad.any():
        res.add("sources", Finding(f"{int(bad.sum())} count(s) in source rows {part.start}..{part.stop - 1}"
                                   " are negative, non-integer or not finite", dataset_id=part.task.dataset_id,
                                   found=float(values[np.argmax(bad)])))


@dataclass(frozen=True)
class RowStats:
    nnz: npt.NDArray[np.int64]
    raw_sum: npt.NDArray[np.float64]
    raw_mean_nnz: npt.NDArray[np.float64]
    raw_variance_nnz: npt.NDArray[np.float64]

    @classmethod
    def zeros(cls, n: int) -> RowStats:
        return cls(np.zeros(n, np.int64), np.zeros(n), np.zeros(n), np.zeros(n))

    def fill(self, start: int, part: RowStats) -> None:
        """Set rows [start, start + len(part)) from ``part``."""
        for name in ("nnz", "raw_sum", "raw_mean_nnz", "raw_variance_nnz"):
            getattr(self, name)[start : start + part.nnz.size] = getattr(part, name)


def _row_sums(bounds: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Per-row sums of ``values`` (summed in float64) for rows [bounds[i], bounds[i + 1]); 0 for empty rows."""
    out = np.zeros(bounds.size - 1, dtype=np.float64)
    filled = bounds[1:] > bounds[:-1]
    if filled.any():  # (converting first is 2x faster than reduceat's own casting)
        out[filled] = np.add.reduceat(np.asarray(values, dtype=np.float64), bounds[:-1][filled])
    return out


def _row_stats(bounds: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> RowStats:
    """Per-row statistics over each row's non-zero values (rows as CSR pointers into sorted ``values``),
    two-pass in float64: sum, mean (0 without values), sample variance ddof=1 (0 with fewer than two)."""
    nnz = np.diff(bounds).astype(np.int64)
    total = _row_sums(bounds, values)
    mean = np.divide(total, nnz, out=np.zeros_like(total), where=nnz > 0)
    squares = _row_sums(bounds, (values - np.repeat(mean, nnz)) ** 2)
    var = np.divide(squares, nnz - 1, out=np.zeros_like(squares), where=nnz > 1)
    return RowStats(nnz, total, mean, var)


def _compare_obs(task: ChunkTask, spec: Spec, res: ChunkResult, expected: dict[str, npt.NDArray[Any]],
                 stats: RowStats) -> None:
    cells = task.cell_joinids
    if task.uris.obs is None:
        res.add("obs_cells", Finding("obs is missing: cannot compare cells", dataset_id=task.dataset_id))
        return
    try:
        found = _read_obs(task.uris.obs, cells)
    except Exception as e:
        res.add("obs_cells", Finding(f"cannot read obs rows of {task.n_cells} cells: {type(e).__name__}: {e}",
                                     dataset_id=task.dataset_id, organism=task.organism))
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
        res.add("obs_cells", Finding("no obs row for this cell at its expected soma_joinid",
                                     dataset_id=task.dataset_id, organism=task.organism, soma_joinid=int(cells[i]),
                                     observation_joinid=str(exp_oj[i])))
    if f_oj is not None and f_ds is not None:
        same = np.zeros(task.n_cells, dtype=bool)
        same[matched] = (f_oj[pos[matched]] == exp_oj[matched]) & (f_ds[pos[matched]] == task.dataset_id)
        for i in np.nonzero(matched & ~same)[0]:
            res.add("obs_cells", Finding(
                "obs row holds another cell than the one matched to it", dataset_id=task.dataset_id,
                organism=task.organism, soma_joinid=int(cells[i]), observation_joinid=str(exp_oj[i]),
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
                soma_joinid=int(cells[i]), observation_joinid=str(exp_oj[i]), column=column, expected=exp[k],
                found=got[k]))

    for column in metadata_columns(spec):
        if column not in found:
            continue  # a missing column is an encodings finding
        exp, got = expected[column][idx], found[column][fpos]
        report("obs_metadata", column, exp != got, exp, got)
    if task.mode == "detail":
        return  # statistics were compared by the release scan

    exp_stats = {"nnz": stats.nnz, "raw_sum": stats.raw_sum, "raw_mean_nnz": stats.raw_mean_nnz,
                 "raw_variance_nnz": stats.raw_variance_nnz}
    for column, values in exp_stats.items():
        if column not in found:
            continue
        exp, got = values[idx], np.asarray(found[column][fpos], dtype=np.float64)
        bad = (exp != got if column == "nnz" else raw_sum_differs(exp, got) if column == "raw_sum"
               else ~np.isclose(got, exp, rtol=STAT_RTOL, atol=1e-6))
        report("obs_statistics", column, bad, exp, got)
    if "n_measured_vars" in found:
        nmv = np.asarray(found["n_measured_vars"][fpos], dtype=np.int64)
        for value in np.unique(nmv):
            first = int(np.nonzero(nmv == value)[0][0])
            res.n_measured_vars[int(value)] = (int((nmv == value).sum()), int(cells[idx[first]]),
                                               str(exp_oj[idx[first]]))


Alignment = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64] | None,
                  npt.NDArray[np.int64] | None]


def _align(exp_keys: npt.NDArray[np.int64], got_keys: npt.NDArray[np.int64]) -> Alignment:
    """Match two sorted key arrays: (expected-only positions, found-only positions, matched expected positions,
    matched found positions); the last two are None when every key matches (the usual case)."""
    empty = np.zeros(0, np.int64)
    if exp_keys.size == got_keys.size and np.array_equal(exp_keys, got_keys):
        return empty, empty, None, None
    if got_keys.size == 0:
        return np.arange(exp_keys.size, dtype=np.int64), empty, empty, empty
    pos = np.minimum(np.searchsorted(got_keys, exp_keys), got_keys.size - 1)
    hit = got_keys[pos] == exp_keys
    matched = np.zeros(got_keys.size, dtype=bool)
    matched[pos[hit]] = True
    return (np.nonzero(~hit)[0].astype(np.int64), np.nonzero(~matched)[0].astype(np.int64),
            np.nonzero(hit)[0].astype(np.int64), pos[hit].astype(np.int64))


def _taken(values: npt.NDArray[Any], positions: npt.NDArray[np.int64] | None) -> npt.NDArray[Any]:
    return values if positions is None else values[positions]


def _at(e: Entries, k: int) -> tuple[int, int]:
    """(row, var soma_joinid) of entry ``k``."""
    key = int(e.key[k])
    return key >> e.col_bits, e.var_joinid(key & ((1 << e.col_bits) - 1))


Where = Any  # callable (row, var_joinid) -> Finding location fields


def _compare_raw(res: ChunkResult, where: Where, exp: Entries, got: Entries, aligned: Alignment) -> None:
    only_e, only_g, mi, mg = aligned
    zeros = np.nonzero(got.values == 0)[0]
    res.totals["x_raw_explicit_zeros"] += int(zeros.size)
    for k in zeros[: res.room("x_raw_explicit_zeros")]:
        res.findings["x_raw_explicit_zeros"].append(Finding(
            "explicitly stored zero in X['raw']", **where(*_at(got, k)), found=float(got.values[k])))
    res.totals["x_raw"] += int(only_e.size + only_g.size)
    for k in only_e[: res.room("x_raw")]:
        res.findings["x_raw"].append(Finding("source count missing from X['raw']", **where(*_at(exp, k)),
                                             expected=float(exp.values[k]), found="absent"))
    for k in only_g[: res.room("x_raw")]:
        res.findings["x_raw"].append(Finding("X['raw'] stores a value where the source has no count",
                                             **where(*_at(got, k)), expected="absent", found=float(got.values[k])))
    have = _taken(got.values, mg)
    bad = raw_differs(_taken(exp.values, mi), have)  # exact: not float32 casts of the source counts
    res.totals["x_raw"] += int(bad.size)
    for k in bad[: res.room("x_raw")]:
        i = int(k if mi is None else mi[k])
        res.findings["x_raw"].append(Finding("X['raw'] value differs from the source count", **where(*_at(exp, i)),
                                             expected=float(exp.values[i]), found=float(have[k])))


def _normalized(task: ChunkTask, res: ChunkResult, exp: Entries, bounds: npt.NDArray[np.int64],
                smart: npt.NDArray[np.bool_], where: Where) -> npt.NDArray[np.float64]:
    """Expected normalized values for the entries of ``exp`` (same order)."""
    x = np.asarray(exp.values, dtype=np.float64)
    nnz = np.diff(bounds)
    if smart.any():
        by_length = np.flatnonzero(np.repeat(smart, nnz))  # entries of Smart-seq cells: X[i, j] / feature_length[j]
        lengths = task.ctx.col_length[exp.key[by_length] & ((1 << exp.col_bits) - 1)]
        bad = by_length[lengths <= 0]
        if bad.size:
            res.add("sources", Finding(f"{bad.size} count(s) of Smart-seq cells are for genes without a positive "
                                       "feature_length", **where(*_at(exp, int(bad[0])))))
        x = x.copy()
        x[by_length] /= np.where(lengths > 0, lengths, np.nan)
    out: npt.NDArray[np.float64] = x / np.repeat(_row_sums(bounds, x), nnz)
    return out


def _compare_normalized(res: ChunkResult, where: Where, exp: Entries, want: npt.NDArray[np.float64],
                        got: Entries, aligned: Alignment, n_rows: int) -> None:
    check = "x_normalized"
    values = got.values
    nonpos = np.nonzero(~(values > 0))[0]
    res.totals[check] += int(nonpos.size)
    for k in nonpos[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] value is not > 0", **where(*_at(got, k)),
                                           found=float(values[k])))
    only_e, only_g, mi, mg = aligned
    res.totals[check] += int(only_e.size + only_g.size)
    for k in only_e[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] has no value where X['raw'] must have one",
                                           **where(*_at(exp, k)), expected=float(want[k]), found="absent"))
    for k in only_g[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] stores a value where X['raw'] must have none",
                                           **where(*_at(got, k)), expected="absent", found=float(values[k])))
    e, g = _taken(want, mi), _taken(values, mg)
    # np.isclose(g, e, rtol=NORM_RTOL, atol=0) without its temporaries; then the values float32 cannot hold
    diff = g - e
    np.abs(diff, out=diff)
    tol = np.abs(e)
    tol *= NORM_RTOL
    bad = np.nonzero(~(diff <= tol))[0]
    if bad.size:
        bad = bad[~((e[bad] < F32_TINY) & (g[bad] == F32_TINY))]
    res.totals[check] += int(bad.size)
    for k in bad[: res.room(check)]:
        i = int(k if mi is None else mi[k])
        res.findings[check].append(Finding("X['normalized'] value differs from the recomputed value",
                                           **where(*_at(exp, i)), expected=float(e[k]), found=float(g[k])))
    bounds = got.row_bounds(n_rows)
    sums = _row_sums(bounds, values)
    off = np.nonzero((bounds[1:] > bounds[:-1]) & (np.abs(sums - 1.0) > ROW_SUM_TOL))[0]
    res.totals[check] += int(off.size)
    for k in off[: res.room(check)]:
        res.findings[check].append(Finding("X['normalized'] row does not sum to 1", **where(int(k)),
                                           expected=1.0, found=float(sums[k])))

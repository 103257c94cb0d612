"""The Gene Expression method as pure functions (no I/O): which cells count, the value of a gene in a cell,
the per-chunk aggregation, the reduction of chunk results and the Cell Ontology roll-up.

The facts (Table 1's assays, 500 genes, the missing threshold 3, the scale 10,000, the group-by categories,
the marker settings) are data: ``schema/gene_expression.yaml``, read by :func:`load_method`.

A cell counts when it is primary data, its assay is in Table 1, and at least ``min_genes`` genes have a raw
count > 0 in X raw (counted from the X raw entries the chunk reads, not from obs ``nnz``). A gene's value in a
cell is ln(count / total * scale + 1), total = the sum of the cell's raw counts over all of the release's genes;
a raw count <= ``missing_max_count`` is missing: it counts neither as expressing nor in the sums.

Aggregation works on *tables*: a table gives each cell a group code (-1: the cell is not in any group);
table 0 groups by tissue_general x cell type, the group-by tables by (tissue_general x cell type) x category
value. Per table, a chunk yields the cells per group and, per (group, gene) key = group * n_genes + gene, the
number of expressing cells, the sum and the sum of squares of the values. Sums are additive, so chunk
results reduce by adding, and the roll-up adds the aggregated rows of a cell type's descendants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from census_builder.errors import GeneExpressionError, SchemaError

METHOD_FILE = "gene_expression.yaml"


@dataclass(frozen=True)
class Method:
    """The method's facts (``schema/gene_expression.yaml``)."""

    version: str
    assays: Mapping[str, str]  # Table 1: EFO term id -> label
    primary_only: bool
    min_genes: int
    missing_max_count: float
    scale: float
    group_by: tuple[str, ...]
    marker_top_n: int
    marker_percentile: float
    bootstrap_replicates: int

    def to_json(self) -> dict[str, Any]:
        """Return the facts as gene_expression.json's ``method``."""
        return {
            "version": self.version,
            "assays": dict(self.assays),
            "primary_only": self.primary_only,
            "min_genes": self.min_genes,
            "missing_max_count": self.missing_max_count,
            "scale": self.scale,
            "group_by": list(self.group_by),
            "marker_top_n": self.marker_top_n,
            "marker_percentile": self.marker_percentile,
            "bootstrap_replicates": self.bootstrap_replicates,
        }


def load_method(path: Path | None = None) -> Method:
    """Read the method's facts (default: the shipped ``schema/gene_expression.yaml``)."""
    import census_schema
    import yaml

    where = path or Path(census_schema.SCHEMA_DIR) / METHOD_FILE
    with where.open(encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    try:
        return Method(
            version=str(doc["version"]),
            assays={str(k): str(v) for k, v in doc["assays"].items()},
            primary_only=bool(doc["primary_only"]),
            min_genes=int(doc["min_genes"]),
            missing_max_count=float(doc["missing_max_count"]),
            scale=float(doc["scale"]),
            group_by=tuple(str(c) for c in doc["group_by"]),
            marker_top_n=int(doc["marker_top_n"]),
            marker_percentile=float(doc["marker_percentile"]),
            bootstrap_replicates=int(doc["bootstrap_replicates"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SchemaError(f"{where}: malformed Gene Expression method file ({type(e).__name__}: {e})") from e


def obs_eligible(is_primary: npt.NDArray[np.bool_], assay: npt.NDArray[Any], method: Method) -> npt.NDArray[np.bool_]:
    """Return the cells the obs columns admit: primary data (if required) and a Table-1 assay."""
    ok = np.isin(np.asarray(assay, dtype=object), list(method.assays))
    if method.primary_only:
        ok &= np.asarray(is_primary, dtype=bool)
    return ok


@dataclass
class TableSums:
    """One table's aggregate: cells per group, and per (group, gene) key the expressing cells, sum, sumsq."""

    n_cells: npt.NDArray[np.int64]  # indexed by group code
    keys: npt.NDArray[np.int64]  # group * n_genes + gene, sorted, unique
    n_expressing: npt.NDArray[np.int64]
    sum: npt.NDArray[np.float64]
    sumsq: npt.NDArray[np.float64]


@dataclass
class Sums:
    """The aggregate of some cells: one :class:`TableSums` per table, and how many cells were eligible."""

    tables: list[TableSums]
    n_eligible: int = 0


# (group, gene) cells of a table summed in dense arrays (3 x 8 bytes each) up to this, by a chunk's aggregation and
# by the driver's Reducer: at 250 k cells the largest table (240 groups x 30 k genes) was 7.2 M, and its sorted
# sparse sums cost more time and memory than the dense arrays (issue 18).
DENSE_LIMIT = 16_000_000


def _empty_table(n_groups: int) -> TableSums:
    return TableSums(
        np.zeros(n_groups, np.int64),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.zeros(0, np.float64),
        np.zeros(0, np.float64),
    )


def aggregate_chunk(
    rows: npt.NDArray[np.integer[Any]],
    cols: npt.NDArray[np.integer[Any]],
    counts: npt.NDArray[np.floating[Any]],
    codes: Sequence[npt.NDArray[np.integer[Any]]],
    n_groups: Sequence[int],
    n_genes: int,
    method: Method,
) -> Sums:
    """Aggregate the X raw entries of a chunk of cells.

    ``rows`` are the chunk's local cell positions (0..n_cells-1), ``cols`` the gene positions, ``counts`` the raw
    counts (each (row, col) at most once). ``codes[t]`` gives each cell its group in table t (-1: excluded by obs);
    ``n_groups[t]`` the number of groups of table t.
    """
    n = len(codes[0]) if codes else 0
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    counts = np.asarray(counts, np.float64)
    positive = counts > 0
    totals = np.bincount(rows[positive], counts[positive], minlength=n)
    n_genes_expr = np.bincount(rows[positive], minlength=n)
    keep = (np.asarray(codes[0]) >= 0) & (n_genes_expr >= method.min_genes)
    m = keep[rows] & (counts > method.missing_max_count)
    r, c = rows[m], cols[m]
    values = np.log1p(counts[m] / totals[r] * method.scale)
    out: list[TableSums] = []
    for table_codes, n_g in zip(codes, n_groups, strict=True):
        code = np.asarray(table_codes, np.int64)
        cells = code[keep]
        n_cells = np.bincount(cells[cells >= 0], minlength=n_g).astype(np.int64)
        cell_group = code[r]
        ok = cell_group >= 0
        keys = cell_group[ok] * n_genes + c[ok]
        v = values[ok]
        if n_g * n_genes <= DENSE_LIMIT:
            out.append(_sum_dense(n_cells, keys, v, n_g * n_genes))
        else:
            out.append(_sum_by_key(n_cells, keys, np.ones(keys.size, np.int64), v, v**2))
    return Sums(out, int(keep.sum()))


def _sum_dense(
    n_cells: npt.NDArray[np.int64], keys: npt.NDArray[np.int64], values: npt.NDArray[np.float64], size: int
) -> TableSums:
    """:func:`_sum_by_key` of a chunk's entries (each with 1 expressing cell) over a key space of ``size``, without
    sorting: ``bincount`` adds in the entries' order as ``_sum_by_key`` does, so the sums are the same to the bit."""
    count = np.bincount(keys, minlength=size)
    nz = np.flatnonzero(count)
    return TableSums(
        n_cells,
        nz.astype(np.int64),
        count[nz].astype(np.int64),
        np.bincount(keys, values, minlength=size)[nz].astype(np.float64, copy=False),
        np.bincount(keys, values**2, minlength=size)[nz].astype(np.float64, copy=False),
    )


def _sum_by_key(
    n_cells: npt.NDArray[np.int64],
    keys: npt.NDArray[np.int64],
    n_expressing: npt.NDArray[np.int64],
    sums: npt.NDArray[np.float64],
    sumsqs: npt.NDArray[np.float64],
) -> TableSums:
    uniq, inv = np.unique(keys, return_inverse=True)
    return TableSums(
        n_cells,
        uniq.astype(np.int64),
        np.bincount(inv, n_expressing, minlength=uniq.size).astype(np.int64),
        np.bincount(inv, sums, minlength=uniq.size).astype(np.float64),
        np.bincount(inv, sumsqs, minlength=uniq.size).astype(np.float64),
    )


def reduce_sums(parts: Sequence[Sums], n_groups: Sequence[int]) -> Sums:
    """Add chunk aggregates (any number, any order) into one."""
    tables: list[TableSums] = []
    for t, n_g in enumerate(n_groups):
        ts = [p.tables[t] for p in parts]
        if not ts:
            tables.append(_empty_table(n_g))
            continue
        n_cells = np.sum([x.n_cells for x in ts], axis=0).astype(np.int64)
        tables.append(
            _sum_by_key(
                n_cells,
                np.concatenate([x.keys for x in ts]),
                np.concatenate([x.n_expressing for x in ts]),
                np.concatenate([x.sum for x in ts]),
                np.concatenate([x.sumsq for x in ts]),
            )
        )
    return Sums(tables, sum(p.n_eligible for p in parts))


@dataclass
class _Dense:
    n_cells: npt.NDArray[np.int64]
    n_expressing: npt.NDArray[np.int64]
    sum: npt.NDArray[np.float64]
    sumsq: npt.NDArray[np.float64]


class Reducer:
    """Adds chunk aggregates as they arrive, in bounded memory.

    A table with at most ``dense_limit`` (group, gene) cells is summed into dense arrays (each chunk's keys are
    unique, so ``a[keys] += values``); a larger one keeps at most ``batch`` chunk aggregates unreduced.
    """

    def __init__(self, n_groups: Sequence[int], n_genes: int, *, batch: int = 4, dense_limit: int = DENSE_LIMIT):
        self.n_groups = list(n_groups)
        self.batch = batch
        self._dense: list[_Dense | None] = []
        for n_g in self.n_groups:
            size = n_g * n_genes
            if size <= dense_limit:
                z = np.zeros(size, np.float64)
                self._dense.append(_Dense(np.zeros(n_g, np.int64), np.zeros(size, np.int64), z, z.copy()))
            else:
                self._dense.append(None)
        self._pending: list[Sums] = []
        self._n_eligible = 0

    def add(self, part: Sums) -> None:
        """Take one chunk's aggregate."""
        self._n_eligible += part.n_eligible
        sparse = []
        for t, (d, table) in enumerate(zip(self._dense, part.tables, strict=True)):
            if d is None:
                sparse.append(t)
                continue
            d.n_cells += table.n_cells
            d.n_expressing[table.keys] += table.n_expressing
            d.sum[table.keys] += table.sum
            d.sumsq[table.keys] += table.sumsq
        if sparse:
            self._pending.append(Sums([p if t in sparse else _empty_table(0) for t, p in enumerate(part.tables)]))
            if len(self._pending) > self.batch:
                self._pending = [reduce_sums(self._pending, self.n_groups)]

    def take(self, _index: int, part: Sums | None, error: Exception | None) -> None:
        """Take one chunk's aggregate, or raise its task's error (the ``on_done`` of ``runtime.cluster.run_calls``,
        which, unlike ``run_tasks``, keeps no result: memory stays that of the sums)."""
        if error is not None:
            raise error
        if part is not None:
            self.add(part)

    def result(self) -> Sums:
        """Return the sum of everything added."""
        reduced = reduce_sums(self._pending, self.n_groups)
        tables = []
        for d, sparse in zip(self._dense, reduced.tables, strict=True):
            if d is None:
                tables.append(sparse)
                continue
            keys = np.flatnonzero(d.n_expressing).astype(np.int64)
            tables.append(TableSums(d.n_cells.copy(), keys, d.n_expressing[keys], d.sum[keys], d.sumsq[keys]))
        return Sums(tables, self._n_eligible)


def rollup_matrix(
    groups: Sequence[tuple[str, str]],
    present: npt.NDArray[np.bool_],
    descendants: Callable[[str], frozenset[str]],
) -> sp.csr_matrix:
    """Return R (groups x groups): R[i, j] = 1 when group j's cells count in group i.

    Groups are (tissue, cell type). Group j counts in group i when both are ``present`` (have cells), they share
    the tissue and j's cell type is i's or one of its descendants (``descendants(cell_type)`` includes itself).
    """
    by_tissue: dict[str, list[int]] = {}
    for j, (tissue, _ct) in enumerate(groups):
        if present[j]:
            by_tissue.setdefault(tissue, []).append(j)
    ri: list[int] = []
    rj: list[int] = []
    for i, (tissue, ct) in enumerate(groups):
        if not present[i]:
            continue
        below = descendants(ct)
        for j in by_tissue.get(tissue, []):
            if groups[j][1] in below:
                ri.append(i)
                rj.append(j)
    n = len(groups)
    return sp.csr_matrix((np.ones(len(ri), np.float64), (ri, rj)), shape=(n, n))


@dataclass
class Rolled:
    """One table after the roll-up, rows with n_expressing > 0 only, sorted by (group, gene)."""

    n_cells: npt.NDArray[np.int64]  # per group
    group: npt.NDArray[np.int64]
    gene: npt.NDArray[np.int64]
    n_expressing: npt.NDArray[np.int64]
    sum: npt.NDArray[np.float64]
    sumsq: npt.NDArray[np.float64]


def rollup(table: TableSums, r: sp.csr_matrix, n_values: int, n_genes: int) -> Rolled:
    """Apply the roll-up ``r`` (base groups x base groups) to a table whose group codes are base * n_values + value.

    Table 0 has ``n_values`` 1. Counts stay exact (integers summed as float64 below 2**53).
    """
    big = r if n_values == 1 else sp.kron(r, sp.identity(n_values, format="csr"), format="csr")
    n_rows = big.shape[0]
    g, gene = np.divmod(table.keys, n_genes)

    def mat(values: npt.NDArray[Any]) -> sp.csr_matrix:
        return sp.csr_matrix((np.asarray(values, np.float64), (g, gene)), shape=(n_rows, n_genes))

    n_cells = np.rint(big @ table.n_cells.astype(np.float64)).astype(np.int64)
    products = []
    for values in (table.n_expressing, table.sum, table.sumsq):
        prod = (big @ mat(values)).tocsr()
        prod.sum_duplicates()
        prod.sort_indices()
        products.append(prod)
    ne, s, ss = products
    # every input entry is > 0 (an expressing cell has a value > 0): the three products share one pattern
    for other in (s, ss):
        if not (np.array_equal(ne.indptr, other.indptr) and np.array_equal(ne.indices, other.indices)):
            raise GeneExpressionError("roll-up: the sums' sparsity differs from the expressing counts'")
    group = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(ne.indptr))
    return Rolled(
        n_cells=n_cells,
        group=group,
        gene=ne.indices.astype(np.int64),
        n_expressing=np.rint(ne.data).astype(np.int64),
        sum=s.data.astype(np.float64),
        sumsq=ss.data.astype(np.float64),
    )

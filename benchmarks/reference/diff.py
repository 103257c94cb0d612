"""Differences between two Arrow tables matched by key columns, and the bounded report that lists them.

Used by :mod:`benchmarks.reference.compare` for every table of two releases (census_info, var, obs, X).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

JOINID = "soma_joinid"


@dataclass(frozen=True)
class Difference:
    """One difference: the place in the release, the matched key and what differs (ours vs the reference)."""

    where: str  # e.g. "census_data/homo_sapiens/obs"
    key: str  # e.g. "dataset_id='d1' observation_joinid='x'" ("" for the place as a whole)
    what: str  # e.g. "cell_type: 'T cell' (ours) != 'B cell' (reference)"

    def __str__(self) -> str:
        return f"{self.key}: {self.what}" if self.key else self.what


@dataclass
class Report:
    """The differences found, grouped by place; at most ``limit`` kept per place, all counted."""

    limit: int = 20
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    kept: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # what matched on both sides
    largest: dict[str, float] = field(default_factory=dict)  # e.g. the largest relative difference within tolerance

    def add(self, where: str, key: str, what: str) -> None:
        """Count one difference; keep it when its place has fewer than ``limit`` so far."""
        self.counts[where] += 1
        if self.counts[where] <= self.limit:
            self.kept.append(Difference(where, key, what))

    @property
    def total(self) -> int:
        """The number of differences found."""
        return sum(self.counts.values())

    def lines(self) -> Iterator[str]:
        """Yield the readable listing: notes, then each place with its count and its kept differences."""
        yield from (f"note: {n}" for n in self.notes)
        for where in sorted(self.counts):
            n = self.counts[where]
            yield f"{where}: {n} difference{'s' if n != 1 else ''}"
            yield from (f"  {d}" for d in self.kept if d.where == where)
            if n > self.limit:
                yield f"  ... and {n - self.limit} more"
        yield "compared: " + ", ".join(f"{n} {what}" for what, n in sorted(self.compared.items()))
        yield from (f"largest {what}: {v:.3g}" for what, v in sorted(self.largest.items()))
        yield f"{self.total} difference{'s' if self.total != 1 else ''} in total" if self.total else "no differences"


# ---------------------------------------------------------------------------------------------- values


def member_sets(report: Report, where: str, a: set[str], b: set[str], what: str) -> list[str]:
    """Report the names in only one of ``a`` (ours) and ``b`` (the reference's); return those in both, sorted."""
    for name in sorted(a - b):
        report.add(where, "", f"{what} {name!r} only in ours")
    for name in sorted(b - a):
        report.add(where, "", f"{what} {name!r} only in the reference")
    return sorted(a & b)


def fmt(v: Any) -> str:
    """Return a value as a difference listing shows it."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def plain(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Decode dictionaries and widen large strings: the values, not how they are stored."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = t.value_type
    if pa.types.is_large_string(t):
        col = col.cast(pa.string())
    return col


def value_type(t: pa.DataType) -> pa.DataType:
    """Return the value type a column holds, dictionaries decoded and large strings as strings."""
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.string() if pa.types.is_large_string(t) else t


def mismatches(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array, rtol: float, atol: float) -> Any:
    """Return the indices where two aligned columns differ (floats within rtol/atol, NaN == NaN, null == null)."""
    a, b = plain(a), plain(b)
    if pa.types.is_floating(a.type) and pa.types.is_floating(b.type):
        x = np.asarray(a.to_numpy(zero_copy_only=False), dtype=np.float64)
        y = np.asarray(b.to_numpy(zero_copy_only=False), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            close = np.abs(x - y) <= rtol * np.maximum(np.abs(x), np.abs(y)) + atol
        same = close | (x == y) | (np.isnan(x) & np.isnan(y))
        return np.flatnonzero(~same)
    if a.type != b.type:
        try:
            b = b.cast(a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            a, b = a.cast(pa.string()), b.cast(pa.string())
    eq = pc.fill_null(pc.equal(a, b), False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    ok = pc.or_(eq, both_null)
    return np.flatnonzero(~np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool))


def compare_columns(
    report: Report,
    where: str,
    a: pa.Table,
    b: pa.Table,
    key_of: Callable[[int], str],
    skip: Sequence[str],
    rtol: float = 0.0,
) -> None:
    """Compare every common column of two row-aligned tables (``key_of(row)`` names a row in the listing)."""
    for name in (c for c in a.column_names if c in b.column_names and c not in skip):
        ca, cb = a.column(name), b.column(name)
        for i in mismatches(ca, cb, rtol, 0.0):
            va, vb = fmt(plain(ca)[int(i)].as_py()), fmt(plain(cb)[int(i)].as_py())
            report.add(where, key_of(int(i)), f"{name}: {va} (ours) != {vb} (reference)")


def compare_schemas(report: Report, where: str, a: pa.Schema, b: pa.Schema) -> None:
    """Columns only on one side, and columns whose value types differ."""
    for name in a.names:
        if name not in b.names:
            report.add(where, "", f"column {name!r} only in ours")
        elif value_type(a.field(name).type) != value_type(b.field(name).type):
            ta, tb = value_type(a.field(name).type), value_type(b.field(name).type)
            report.add(where, "", f"column {name!r}: type {ta} (ours) != {tb} (reference)")
    for name in b.names:
        if name not in a.names:
            report.add(where, "", f"column {name!r} only in the reference")


def keyed(table: pa.Table, keys: Sequence[str]) -> dict[tuple[Any, ...], int]:
    """Return key tuple -> row index of ``table``."""
    cols = [plain(table.column(k)).to_pylist() for k in keys]
    out: dict[tuple[Any, ...], int] = {}
    for i, key in enumerate(zip(*cols, strict=True)):
        out.setdefault(key, i)
    return out


def key_text(keys: Sequence[str], key: tuple[Any, ...]) -> str:
    """Return ``k=v ...`` naming a row by its key."""
    return " ".join(f"{k}={fmt(v)}" for k, v in zip(keys, key, strict=True))


def compare_tables(
    report: Report, where: str, a: pa.Table, b: pa.Table, keys: Sequence[str], rtol: float = 0.0
) -> None:
    """Compare two dataframes read whole: rows matched by ``keys``, every column but soma_joinid."""
    compare_schemas(report, where, a.schema, b.schema)
    keys = [k for k in keys if k in a.column_names and k in b.column_names]
    if not keys:
        keys = [c for c in a.column_names if c in b.column_names and c != JOINID]
    ka, kb = keyed(a, keys), keyed(b, keys)
    for side, mine, other, n in (("ours", ka, kb, a.num_rows), ("the reference", kb, ka, b.num_rows)):
        if len(mine) != n:
            report.add(where, "", f"{n - len(mine)} rows with a repeated key ({', '.join(keys)}) in {side}")
        for key in mine:
            if key not in other:
                report.add(where, key_text(keys, key), f"row only in {side}")
    common = [k for k in ka if k in kb]
    rows_a = a.take(pa.array([ka[k] for k in common], type=pa.int64()))
    rows_b = b.take(pa.array([kb[k] for k in common], type=pa.int64()))
    compare_columns(report, where, rows_a, rows_b, lambda i: key_text(keys, common[i]), [JOINID, *keys], rtol)


# ---------------------------------------------------------------------------------------------- releases

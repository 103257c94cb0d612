"""The presence matrix's entries: every present (dataset, gene), sorted by dataset joinid, then gene."""

from __future__ import annotations

import numpy as np

from census_builder.build.write_tables import presence_entries


def test_entries_sorted_by_row_then_column_whatever_the_insertion_order() -> None:
    rng = np.random.default_rng(11)
    joinids = {"c": 2, "a": 0, "d": 5, "b": 1}
    present = {ds: rng.random(40) < 0.3 for ds in ("d", "b", "c", "a")}  # not in joinid order
    present["b"][:] = False  # a dataset without any gene: no row
    rows, cols = presence_entries(joinids, present)
    expected = sorted((joinids[ds], int(g)) for ds, p in present.items() for g in np.flatnonzero(p))
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == expected
    assert rows.dtype == np.int64 and cols.dtype == np.int64


def test_no_entries() -> None:
    rows, cols = presence_entries({}, {})
    assert rows.size == 0 and cols.size == 0 and rows.dtype == np.int64

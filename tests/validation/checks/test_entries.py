"""Entries as the content tasks build them: sorting values read back without touching their keys, and widening
keys when the release holds a column code beyond the planned width (each layer is compared on its own then)."""

from __future__ import annotations

import numpy as np

from validation.checks.entries import Entries, align, sorted_entries, widened


def test_sorted_entries_keeps_the_unsorted_keys_and_returns_the_permutation() -> None:
    key = np.array([5, 1, 4, 2], dtype=np.int64)
    values = np.array([50.0, 10.0, 40.0, 20.0], dtype=np.float32)
    e, order = sorted_entries(key, values, n_rows=1, col_bits=3, col_map=np.arange(8, dtype=np.int64))
    assert key.tolist() == [5, 1, 4, 2]  # the caller compares the other layer's keys with these
    assert e.key.tolist() == [1, 2, 4, 5]
    assert e.values.tolist() == [10.0, 20.0, 40.0, 50.0]
    assert order is not None and order.tolist() == [1, 3, 2, 0]
    same, none = sorted_entries(e.key, e.values, n_rows=1, col_bits=3, col_map=e.col_map)
    assert none is None and same.key is e.key  # already sorted: nothing copied


def test_widened_keeps_rows_codes_values_and_order() -> None:
    col_map = np.arange(4, dtype=np.int64)
    rows = np.array([0, 0, 1, 3], dtype=np.int64)
    codes = np.array([2, 3, 0, 1], dtype=np.int64)
    e = Entries(rows << 2 | codes, np.array([1.0, 2.0, 3.0, 4.0]), 2, col_map)
    w = widened(e, 9)
    assert w.col_bits == 9
    assert (w.key >> 9).tolist() == rows.tolist()
    assert w.codes.tolist() == codes.tolist()
    assert w.values is e.values
    assert bool((np.diff(w.key) > 0).all())
    assert widened(e, 2) is e
    # a found code of 300 fits only the widened keys, and sorts after every gene of its row
    found = np.array([1 << 9 | 0, 1 << 9 | 300], dtype=np.int64)
    only_expected, only_found, _, _ = align(w.key, found)
    assert only_expected.tolist() == [0, 1, 3] and only_found.tolist() == [1]

"""The order-free summary of a part's X entries (validation.checks.multiset): the same entries in any order
give the same summary; any changed value, column, row, or an extra or missing entry gives another."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.checks.multiset import multiset_sum

COL_BITS = 10

# (row, column code, count) entries of a part: distinct (row, code), counts as the release stores them
_entries = st.dictionaries(
    st.tuples(st.integers(0, 63), st.integers(0, (1 << COL_BITS) - 1)),
    st.integers(1, 1 << 24).map(float),
    min_size=1,
    max_size=60,
)


def _arrays(entries: dict[tuple[int, int], float]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    rows = np.array([r for r, _ in entries], dtype=np.int64)
    codes = np.array([c for _, c in entries], dtype=np.int64)
    return rows << COL_BITS | codes, np.array(list(entries.values()), dtype=np.float64)


@settings(max_examples=200, deadline=None)
@given(_entries, st.randoms(use_true_random=False))
def test_same_entries_in_any_order_and_dtype_give_the_same_sum(
    entries: dict[tuple[int, int], float], rnd: random.Random
) -> None:
    key, values = _arrays(entries)
    order = np.array(rnd.sample(range(key.size), key.size), dtype=np.int64)
    # the release's float32 values against the source's float64 counts (exact below 2**24)
    assert multiset_sum(key[order], values[order].astype(np.float32)) == multiset_sum(key, values)


@settings(max_examples=200, deadline=None)
@given(_entries, st.data())
def test_any_single_change_gives_another_sum(entries: dict[tuple[int, int], float], data: st.DataObject) -> None:
    key, values = _arrays(entries)
    before = multiset_sum(key, values)
    k = data.draw(st.integers(0, key.size - 1))
    change = data.draw(st.sampled_from(["value", "column", "row", "extra", "missing", "zero", "float32"]))
    key2, values2 = key.copy(), values.copy()
    if change == "value":
        values2[k] += data.draw(st.sampled_from([1.0, -1.0, 0.5, 1e-3]))
    elif change == "column":
        key2[k] ^= data.draw(st.integers(1, (1 << COL_BITS) - 1))  # another code, same row
    elif change == "row":
        key2[k] += data.draw(st.integers(1, 64)) << COL_BITS  # the same code in another row
    elif change == "extra":
        key2, values2 = np.append(key2, key2[k]), np.append(values2, values2[k])  # a duplicate entry
    elif change == "missing":
        key2, values2 = np.delete(key2, k), np.delete(values2, k)
    elif change == "zero":
        values2[k] = 0.0  # an explicitly stored zero instead of the count
    else:
        values2[k] = 16_777_217.0  # a count float32 cannot hold, stored as its float32 rounding
        key, values = key2, values2.copy()
        before = multiset_sum(key, values)
        values2 = values2.astype(np.float32)
    assert multiset_sum(key2, values2) != before


def test_swapped_values_and_known_collisions_of_plain_sums_differ() -> None:
    """Sums of the keys and of the values alone would call these equal; the mixed hashes do not."""
    key = np.array([1, 2], dtype=np.int64)
    assert multiset_sum(key, np.array([3.0, 5.0])) != multiset_sum(key, np.array([5.0, 3.0]))
    assert multiset_sum(np.array([1, 4], np.int64), np.ones(2)) != multiset_sum(np.array([2, 3], np.int64), np.ones(2))
    assert multiset_sum(key[:0], np.zeros(0)) == (0, 0)

"""The method's pure functions: chunked aggregation + reduction equals one-shot aggregation, for any chunking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from census_builder.gene_expression import method as gm

METHOD = gm.Method(
    version="test",
    assays={"EFO:0009922": "10x 3' v3"},
    primary_only=True,
    min_genes=3,  # small cells: the rule still bites
    missing_max_count=3,
    scale=10_000,
    group_by=("sex",),
    marker_top_n=25,
    marker_percentile=10,
    bootstrap_replicates=10,
)
N_GENES = 7


@st.composite
def chunked_cells(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """A dense count matrix, each cell's (base group, sex) codes, and the cut points of a chunking."""
    n = draw(st.integers(1, 30))
    counts = np.array(
        draw(st.lists(st.lists(st.integers(0, 12), min_size=N_GENES, max_size=N_GENES), min_size=n, max_size=n)),
        dtype=np.float64,
    )
    base = np.array(draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)), dtype=np.int64)
    sex = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int64)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=6)) or []) - {n})
    return counts, base, sex, cuts


def _aggregate(counts: np.ndarray, base: np.ndarray, sex: np.ndarray) -> gm.Sums:
    rows, cols = np.nonzero(counts)
    codes = (base, np.where(base >= 0, base * 2 + sex, -1))
    return gm.aggregate_chunk(rows, cols, counts[rows, cols], codes, (4, 8), N_GENES, METHOD)


@settings(max_examples=80, deadline=None)
@given(chunked_cells(), st.sampled_from([0, 10_000]))
def test_chunked_aggregation_equals_one_shot(
    data: tuple[np.ndarray, np.ndarray, np.ndarray, list[int]], dense_limit: int
) -> None:
    """Sparse (dense_limit 0) and dense reduction alike."""
    counts, base, sex, cuts = data
    whole = _aggregate(counts, base, sex)
    bounds = [0, *cuts, len(counts)]
    parts = [_aggregate(counts[a:b], base[a:b], sex[a:b]) for a, b in itertools.pairwise(bounds)]
    reducer = gm.Reducer((4, 8), N_GENES, batch=2, dense_limit=dense_limit)
    for p in reversed(parts):  # any order
        reducer.add(p)
    chunked = reducer.result()
    assert chunked.n_eligible == whole.n_eligible
    for a, b in zip(chunked.tables, whole.tables, strict=True):
        np.testing.assert_array_equal(a.n_cells, b.n_cells)
        np.testing.assert_array_equal(a.keys, b.keys)
        np.testing.assert_array_equal(a.n_expressing, b.n_expressing)
        np.testing.assert_allclose(a.sum, b.sum, rtol=1e-12)
        np.testing.assert_allclose(a.sumsq, b.sumsq, rtol=1e-12)


def test_values_missing_rule_and_gene_filter() -> None:
    # cell 0: 3 genes, counts 4, 3, 13 (total 20): gene 1 (count 3) is missing; cell 1: 2 genes, below min_genes 3
    counts = np.array([[4, 3, 13, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 9]], dtype=np.float64)
    sums = _aggregate(counts, np.array([0, 0]), np.array([1, 0]))
    t = sums.tables[0]
    assert sums.n_eligible == 1
    assert t.n_cells.tolist() == [1, 0, 0, 0]
    assert t.keys.tolist() == [0, 2]
    assert t.n_expressing.tolist() == [1, 1]
    assert t.sum.tolist() == pytest.approx([np.log1p(4 / 20 * 1e4), np.log1p(13 / 20 * 1e4)], rel=1e-15)
    assert sums.tables[1].keys.tolist() == [1 * N_GENES + 0, 1 * N_GENES + 2]  # group 0 * 2 + sex 1


def test_rollup_adds_present_descendants_of_the_same_tissue_only() -> None:
    groups = [("lung", "lymphocyte"), ("lung", "B cell"), ("blood", "B cell"), ("lung", "T cell")]
    below = {"lymphocyte": frozenset({"lymphocyte", "B cell", "T cell"})}
    r = gm.rollup_matrix(groups, np.array([True, True, True, False]), lambda ct: below.get(ct, frozenset({ct})))
    assert r.toarray().tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    table = gm.TableSums(
        np.array([2, 3, 5, 0]),
        np.array([0 * N_GENES + 1, 1 * N_GENES + 1, 2 * N_GENES + 1]),
        np.array([1, 2, 4]),
        np.array([1.5, 2.0, 4.0]),
        np.array([2.25, 2.5, 4.5]),
    )
    rolled = gm.rollup(table, r, 1, N_GENES)
    assert rolled.n_cells.tolist() == [5, 3, 5, 0]
    assert list(zip(rolled.group.tolist(), rolled.gene.tolist(), strict=True)) == [(0, 1), (1, 1), (2, 1)]
    assert rolled.n_expressing.tolist() == [3, 2, 4]
    assert rolled.sum.tolist() == [3.5, 2.0, 4.0]
    assert rolled.sumsq.tolist() == [4.75, 2.5, 4.5]


def test_the_shipped_method_file_holds_table_1() -> None:
    m = gm.load_method()
    assert len(m.assays) == 12 and m.assays["EFO:0010550"] == "sci-RNA-seq"
    assert (m.min_genes, m.missing_max_count, m.scale, m.group_by) == (
        500,
        3,
        10_000,
        ("sex", "self_reported_ethnicity", "disease"),
    )


def test_chunk_sums_dense_and_sorted_paths_agree_to_the_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """aggregate_chunk sums a small key space by bincount, a large one by sorting keys: same arrays, same bits."""
    rng = np.random.default_rng(18)
    counts = rng.integers(0, 40, (50, N_GENES)).astype(np.float64)
    base = rng.integers(-1, 4, 50)
    sex = rng.integers(0, 2, 50)
    dense = _aggregate(counts, base, sex)
    monkeypatch.setattr(gm, "DENSE_LIMIT", 0)
    by_sort = _aggregate(counts, base, sex)
    assert dense.n_eligible == by_sort.n_eligible > 0
    for a, b in zip(dense.tables, by_sort.tables, strict=True):
        assert a.keys.size > 0
        for field in ("n_cells", "keys", "n_expressing", "sum", "sumsq"):
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)

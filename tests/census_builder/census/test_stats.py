"""Property tests: chunked reading + statistics equal the one-shot numpy answer, for any layout and chunking."""

from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from anndata.io import write_elem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from census_builder.census.stats import (
    F32_TINY,
    Counts,
    chunk_counts,
    column_nnz,
    normalize,
    round_mantissa,
    row_stats,
)
from census_builder.sources.h5ad import H5AD, plan_row_chunks

BIG_TILE = 1 << 20  # one space tile: global order is then plain row-major order


Drawn = tuple[npt.NDArray[np.float64], list[tuple[int, int, float]]]  # a dense count matrix, extra stored entries


@st.composite
def count_matrices(draw: st.DrawFn) -> Drawn:
    """A dense integer count matrix plus extra stored entries (duplicates that sum in, explicit zeros)."""
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 9))
    values = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 3, 7, 250, 65_000]), min_size=n * m, max_size=n * m))
    dense = np.array(values, dtype=np.float64).reshape(n, m)
    extras = draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, m - 1), st.sampled_from([0.0, 1.0, 5.0])), max_size=6)
    )
    return dense, extras


def _stored(dense: npt.NDArray[np.float64], extras: list[tuple[int, int, float]]) -> sp.coo_matrix:
    coo = sp.coo_matrix(dense)
    rows = np.concatenate([coo.row, [e[0] for e in extras]]).astype(np.int64)
    cols = np.concatenate([coo.col, [e[1] for e in extras]]).astype(np.int64)
    vals = np.concatenate([coo.data, [e[2] for e in extras]]).astype(np.float32)
    return sp.coo_matrix((vals, (rows, cols)), shape=dense.shape)


def _truth(dense: npt.NDArray[np.float64], extras: list[tuple[int, int, float]]) -> npt.NDArray[np.float64]:
    out = dense.copy()
    for r, c, v in extras:
        out[r, c] += v
    return out


def _write(path: Path, stored: sp.coo_matrix, layout: str) -> None:
    with h5py.File(path, "w") as f:
        if layout == "dense":
            write_elem(f, "X", stored.toarray().astype(np.float32))
            return
        if layout == "csr":
            order = np.lexsort((stored.col, stored.row))
            major, minor, n_major = stored.row[order], stored.col[order], stored.shape[0]
        else:
            order = np.lexsort((stored.row, stored.col))
            major, minor, n_major = stored.col[order], stored.row[order], stored.shape[1]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(major, minlength=n_major))])
        g = f.create_group("X")
        g.attrs["encoding-type"] = f"{layout}_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = stored.shape
        g.create_dataset("data", data=stored.data[order])
        g.create_dataset("indices", data=minor.astype(np.int32))
        g.create_dataset("indptr", data=indptr.astype(np.int64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=count_matrices(), layout=st.sampled_from(["csr", "csc", "dense"]), target=st.integers(1, 40))
def test_chunked_stats_equal_one_shot(tmp_path: Path, data: Drawn, layout: str, target: int) -> None:
    dense, extras = data
    if layout == "dense":
        extras = []  # a dense matrix has one value per cell
    truth = _truth(dense, extras)
    path = tmp_path / f"m-{layout}.h5"
    _write(path, _stored(dense, extras), layout)

    nnz_rows, sums, means, variances = [], [], [], []
    col_nnz = np.zeros(truth.shape[1], dtype=np.int64)
    with H5AD(path, "prop") as h5:
        counts = h5.counts()
        assert counts.format == layout
        chunks = plan_row_chunks(counts.row_costs(), target)
        assert chunks[0][0] == 0 and chunks[-1][1] == truth.shape[0]
        assert all(a < b for a, b in chunks) and all(b == c for (_, b), (c, _) in itertools.pairwise(chunks))
        for a, b in chunks:
            m = chunk_counts(counts.read_rows(a, b), row_offset=a, tile=4)
            np.testing.assert_array_equal(m.to_csr().toarray(), truth[a:b])
            assert (m.data != 0).all()
            s = row_stats(m)
            nnz_rows.append(s.nnz)
            sums.append(s.raw_sum)
            means.append(s.raw_mean_nnz)
            variances.append(s.raw_variance_nnz)
            ids, cnt = column_nnz(m)
            col_nnz[ids] += cnt

    nz = truth != 0
    np.testing.assert_array_equal(np.concatenate(nnz_rows), nz.sum(axis=1))
    np.testing.assert_array_equal(np.concatenate(sums), truth.sum(axis=1))
    want_mean = [r[r != 0].mean() if (r != 0).any() else 0.0 for r in truth]
    want_var = [r[r != 0].var(ddof=1) if (r != 0).sum() > 1 else 0.0 for r in truth]
    np.testing.assert_allclose(np.concatenate(means), want_mean, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate(variances), want_var, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(col_nnz, nz.sum(axis=0))


@settings(max_examples=60, deadline=None)
@given(data=count_matrices(), smart=st.lists(st.booleans(), min_size=12, max_size=12))
def test_normalize_matches_formula(data: Drawn, smart: list[bool]) -> None:
    dense, _ = data
    m = chunk_counts(sp.csr_matrix(dense), tile=2)
    rows = np.array(smart[: dense.shape[0]])
    length = np.arange(1, dense.shape[1] + 1, dtype=np.float64) * 137.0
    values = normalize(m, row_stats(m).raw_sum, rows, length)
    got = sp.csr_matrix((values, (m.rows, m.cols)), shape=dense.shape)
    for i, r in enumerate(dense):
        v = r / length if rows[i] else r
        want = v / v.sum() if v.sum() else v
        np.testing.assert_allclose(got[i].toarray().ravel(), want.astype(np.float32), rtol=1e-6)
    assert (values > 0).all()


def test_normalize_never_stores_zero() -> None:
    m = chunk_counts(sp.csr_matrix(np.array([[1.0, 1e50]])), tile=BIG_TILE)
    out = normalize(m, row_stats(m).raw_sum, np.array([False]), np.ones(2))
    assert out[0] == F32_TINY and out[1] == pytest.approx(1.0)
    rounded = normalize(m, row_stats(m).raw_sum, np.array([False]), np.ones(2), keep_bits=15)
    assert rounded[0] == F32_TINY and rounded[1] == 1.0  # the tiny value rounds to 0, and is stored as F32_TINY


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=0, max_value=2.0**126, width=32, allow_subnormal=True), min_size=1, max_size=50
    ),
    keep=st.integers(1, 22),
)
def test_round_mantissa_is_round_half_to_even(values: list[float], keep: int) -> None:
    x = np.array(values, dtype=np.float32)
    got = x.copy()
    round_mantissa(got, keep)
    # the same rounding in exact arithmetic: the value's significand to keep + 1 bits (float64 holds them all)
    _, exp = np.frexp(x.astype(np.float64))
    quantum = np.ldexp(1.0, np.maximum(exp - (keep + 1), -149 + 23 - keep))  # subnormals: a fixed quantum
    want = (np.round(x.astype(np.float64) / quantum) * quantum).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert (np.abs(got.astype(np.float64) - x) <= np.abs(x.astype(np.float64)) * 2.0 ** -(keep + 1) + 2.0**-149).all()
    assert not (got.view(np.uint32) & np.uint32((1 << (23 - keep)) - 1)).any()


def test_round_mantissa_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match=r"keep_bits must be 1\.\.22, not 23"):
        round_mantissa(np.ones(1, np.float32), 23)


@settings(max_examples=40, deadline=None)
@given(
    cells=st.lists(st.tuples(st.integers(0, 9000), st.integers(0, 6000)), min_size=1, max_size=200, unique=True),
    n_cols=st.integers(6001, 9000),
    row_offset=st.integers(0, 5000),
    seed=st.integers(0, 2**32 - 1),
)
def test_chunk_counts_are_in_global_order(
    cells: list[tuple[int, int]], n_cols: int, row_offset: int, seed: int
) -> None:
    """Tile-major (row tile, column tile), then row-major inside a tile, for rows placed at row_offset."""
    from census_builder.soma.platform import X_TILE

    n_rows = max(r for r, _ in cells) + 1
    per_row: list[list[int]] = [[] for _ in range(n_rows)]
    for r, c in cells:
        per_row[r].append(c)
    rng = np.random.default_rng(seed)
    per_row = [[int(c) for c in rng.permutation(cols)] for cols in per_row]  # stored column order is arbitrary
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in per_row])])
    indices = np.array([c for cols in per_row for c in cols], dtype=np.int64)
    m = sp.csr_matrix((np.ones(len(cells)), indices, indptr), shape=(n_rows, n_cols))
    got = chunk_counts(m, row_offset=row_offset, tile=X_TILE)
    want = sorted(((r + row_offset, c) for r, c in cells), key=lambda x: (x[0] // X_TILE, x[1] // X_TILE, x[0], x[1]))
    assert list(zip((got.rows + row_offset).tolist(), got.cols.tolist(), strict=True)) == want


@settings(max_examples=80, deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 9), st.sampled_from([0.0, 1.0, 2.0, 5.0, 1e30])), max_size=60
    ),
    col_map=st.lists(st.integers(-1, 11), min_size=10, max_size=10),
    tile=st.sampled_from([1, 2, 4, 8, BIG_TILE]),
)
def test_chunk_counts_remap_sum_and_drop_zeros(
    entries: list[tuple[int, int, float]], col_map: list[int], tile: int
) -> None:
    """Any stored CSR (duplicates, explicit zeros, unsorted columns) and any column map (-1 drops a column,
    several source columns may share a target): the sum of what lands in each cell, nothing else, once."""
    n_rows, n_cols = 8, 12
    rows = np.array([e[0] for e in entries], dtype=np.int64)
    cols = np.array([e[1] for e in entries], dtype=np.int64)
    vals = np.array([e[2] for e in entries], dtype=np.float32)
    order = np.argsort(rows, kind="stable")  # CSR: rows grouped, columns in arbitrary order within a row
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    stored = sp.csr_matrix((vals[order], cols[order], indptr), shape=(n_rows, 10))
    cmap = np.array(col_map, dtype=np.int64)
    want = np.zeros((n_rows, n_cols))
    for r, c, v in entries:
        if cmap[c] >= 0:
            want[r, cmap[c]] += float(np.float32(v))
    got = chunk_counts(stored, cmap, n_cols, tile=tile)
    assert isinstance(got, Counts)
    assert (got.n_rows, got.n_cols) == (n_rows, n_cols)
    np.testing.assert_array_equal(got.to_csr().toarray(), want)
    assert (got.data != 0).all()
    assert len(set(zip(got.rows.tolist(), got.cols.tolist(), strict=True))) == got.nnz


def test_write_x_refuses_rows_outside_the_chunk(tmp_path: Path) -> None:
    import pyarrow as pa
    import tiledbsoma as soma

    from census_builder.errors import StorageError
    from census_builder.soma.platform import X_PLATFORM_CONFIG
    from census_builder.soma.writers import write_x

    uri = str(tmp_path / "x")
    soma.SparseNDArray.create(uri, type=pa.float32(), shape=(100, 10), platform_config=X_PLATFORM_CONFIG).close()
    rows, cols = np.array([10, 10, 11], dtype=np.int64), np.array([0, 3, 9], dtype=np.int64)
    values = np.ones(3, dtype=np.float32)
    with pytest.raises(StorageError, match="out of bounds"):
        write_x({uri: values}, rows, cols, row_range=(10, 11), n_cols=10)
    with pytest.raises(StorageError, match="out of bounds"):
        write_x({uri: values}, rows, cols, row_range=(10, 12), n_cols=9)
    write_x({uri: values}, rows, cols, row_range=(10, 12), n_cols=10)
    with soma.SparseNDArray.open(uri) as arr:
        t = arr.read().tables().concat()
    got = sorted(zip(t["soma_dim_0"].to_pylist(), t["soma_dim_1"].to_pylist(), strict=True))
    assert got == [(10, 0), (10, 3), (11, 9)]

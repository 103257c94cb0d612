"""Reads of compressed sources are cut on HDF5 chunk boundaries: dense row ranges in whole bands of chunk rows,
scan blocks in whole chunks; odd chunk sizes (7 rows, 5 columns; 9 entries) on purpose."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from census_builder.errors import InputError
from census_builder.sources.h5ad import H5AD, aligned, plan_row_chunks
from validation.inputs.source import SourceFile

N_OBS, N_VAR = 100, 13


def _dense(path: Path, chunks: tuple[int, int] | None, compression: str | None = "gzip") -> np.ndarray:
    values = np.arange(N_OBS * N_VAR, dtype=np.float32).reshape(N_OBS, N_VAR) % 5
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("X", data=values, chunks=chunks, compression=compression)
        ds.attrs["encoding-type"] = "array"
    return values


def test_plan_row_chunks_ends_ranges_on_whole_bands() -> None:
    costs = np.full(N_OBS, N_VAR, dtype=np.int64)
    # 12 rows of 13 values fit 160: cut at 7 (one band of 7 rows); the last range, 12 rows or fewer, ends at the end
    assert plan_row_chunks(costs, 160, align=7) == [(a, a + 7) for a in range(0, 91, 7)] + [(91, 100)]
    assert plan_row_chunks(costs, 160) == [(a, min(a + 12, N_OBS)) for a in range(0, N_OBS, 12)]
    # 30 rows fit 400: 28 (4 bands)
    assert plan_row_chunks(costs, 400, align=7)[:2] == [(0, 28), (28, 56)]
    # ranges shorter than a band are left as they are (a band then is read by several ranges)
    assert plan_row_chunks(costs, 40, align=7)[:2] == [(0, 3), (3, 6)]
    # uneven costs: every range still moves forward and the ranges cover every row once
    uneven = np.arange(1, N_OBS + 1, dtype=np.int64)
    bounds = plan_row_chunks(uneven, 300, align=7)
    assert bounds[0][0] == 0 and bounds[-1][1] == N_OBS
    assert all(a < b and b == c for (a, b), (c, _) in zip(bounds, [*bounds[1:], (N_OBS, 0)], strict=True))
    assert aligned(20, 7) == 14 and aligned(6, 7) == 6 and aligned(20, 1) == 20


def test_row_align_is_the_chunk_rows_of_a_chunked_dense_matrix(tmp_path: Path) -> None:
    _dense(tmp_path / "gz.h5", (7, 5))
    _dense(tmp_path / "plain.h5", None, None)
    with H5AD(tmp_path / "gz.h5", "gz") as a, H5AD(tmp_path / "plain.h5", "plain") as b:
        assert a.counts().row_align() == 7 and b.counts().row_align() == 1


def test_aligned_reads_of_a_compressed_dense_matrix_give_every_row(tmp_path: Path) -> None:
    values = _dense(tmp_path / "gz.h5", (7, 5))
    with H5AD(tmp_path / "gz.h5", "gz") as h5:
        m = h5.counts()
        ranges = plan_row_chunks(m.row_costs(), 160, m.row_align())
        got = np.vstack([m.read_rows(a, b).toarray() for a, b in ranges])
    np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize("block", [50, 200, 10_000])
def test_check_values_in_whole_bands_finds_the_first_bad_value(tmp_path: Path, block: int) -> None:
    path = tmp_path / "gz.h5"
    values = _dense(path, (7, 5))
    values[45, 6] = -1.0
    values[80, 2] = 0.5
    with h5py.File(path, "r+") as f:
        f["X"][...] = values
    with H5AD(path, "gz") as h5, pytest.raises(InputError) as e:
        h5.counts().check_values(block=block)
    assert "(row 45, column 6)" in str(e.value) and "negative" in str(e.value)


def _csr(path: Path, chunk: int) -> None:
    rng = np.random.default_rng(3)
    per_row = rng.integers(0, 6, N_OBS)
    indptr = np.concatenate([[0], np.cumsum(per_row)])
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"], g.attrs["shape"] = "csr_matrix", (N_OBS, N_VAR)
        cols = np.concatenate([np.sort(rng.choice(N_VAR, k, replace=False)) for k in per_row]).astype(np.int32)
        g.create_dataset("indices", data=cols, chunks=(chunk,), compression="gzip")
        g.create_dataset("data", data=np.ones(cols.size, np.float32), chunks=(chunk,), compression="gzip")
        g.create_dataset("indptr", data=indptr)


def test_sparse_scan_blocks_are_whole_chunks(tmp_path: Path) -> None:
    _csr(tmp_path / "csr.h5", 9)
    with H5AD(tmp_path / "csr.h5", "csr") as h5:
        m = h5.counts()
        assert m._block("indices", 50) == 45 and m._block("indices", 5) == 9
        m.check_values(block=50)  # every value fine: no error
        row = int(np.searchsorted(m.indptr, 47, side="right")) - 1
    with h5py.File(tmp_path / "csr.h5", "r+") as f:
        f["X/data"][47] = -2
        col = int(f["X/indices"][47])
    with H5AD(tmp_path / "csr.h5", "csr") as h5, pytest.raises(InputError) as e:
        h5.counts().check_values(block=50)
    assert f"(row {row}, column {col})" in str(e.value)


def test_validation_reads_dense_sources_in_whole_bands(tmp_path: Path) -> None:
    _dense(tmp_path / "gz.h5", (7, 5))
    with SourceFile(tmp_path / "gz.h5") as src:
        assert src.matrix("X").row_chunks(160, 4096)[:2] == [(0, 7), (7, 14)]
        assert src.matrix("X").row_chunks(40, 4096)[:2] == [(0, 3), (3, 6)]
    _dense(tmp_path / "plain.h5", None, None)
    with SourceFile(tmp_path / "plain.h5") as src:
        assert src.matrix("X").row_chunks(160, 4096)[:2] == [(0, 12), (12, 24)]

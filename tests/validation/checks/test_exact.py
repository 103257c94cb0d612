"""Counts are compared exactly: a source count float32 cannot hold (16,777,217) is never "equal" to its float32
rounding in X["raw"], and obs raw_sum is the exact source row sum (rounded once to float32), not a sum of
rounded counts within a tolerance."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import tiledbsoma as soma

from tests.conftest import BuiltRelease
from tests.validation import corruptions as c
from validation import validate_release
from validation.checks.exact import raw_differs, raw_sum_differs
from validation.inputs.source import SourceFile
from validation.report import ValidationReport

F32 = np.float32
BIG = 2**24 + 1  # 16,777,217: the first integer float32 cannot hold


def test_raw_values_are_compared_exactly() -> None:
    expected = np.array([BIG, 3.0, 2.0**24], dtype=np.float64)
    assert raw_differs(expected, expected.astype(F32)).tolist() == [0]  # 16,777,217 stored as 16,777,216
    assert raw_differs(expected[1:], expected[1:].astype(F32)).tolist() == []
    assert raw_differs(expected, expected).tolist() == []


def test_raw_sum_is_the_exact_sum_rounded_once() -> None:
    exact = np.array([BIG + 1.0, BIG, 7.0])  # 16,777,218 is a float32; 16,777,217 is not
    assert not raw_sum_differs(exact, exact.astype(F32)).any()  # rounded once to float32: right
    assert not raw_sum_differs(exact, exact).any()  # stored exactly: right
    summed_rounded = np.array([F32(BIG) + 1.0, BIG, 7.0], dtype=F32)  # 16,777,216 + 1 -> 16,777,216 in float32
    assert raw_sum_differs(exact, summed_rounded).tolist() == [True, False, False]
    assert raw_sum_differs(exact, np.array([BIG + 1.0, BIG, 7.0001])).tolist() == [False, False, True]


def _planted_value(others: float) -> tuple[float, float, float]:
    """A count v float32 cannot hold such that the sum of float32-rounded counts, in float32, is not the exact
    row sum rounded to float32: (v, v as X["raw"] stores it, that raw_sum)."""
    for v in range(BIG, BIG + 64, 2):
        stored = float(F32(v))
        summed = float(F32(others + stored))
        if summed != float(F32(others + v)) and summed != others + v:
            return float(v), stored, summed
    raise AssertionError("no such count")


def _finding(report: ValidationReport, check: str, **where: Any) -> dict[str, Any]:
    for f in report.check(check).findings:
        doc = f.to_json()
        if all(doc.get(k) == v for k, v in where.items()):
            return doc
    raise AssertionError(f"no {check} finding with {where}: {[f.line() for f in report.check(check).findings]}")


def test_a_count_float32_cannot_hold_fails_validation(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    """The source holds 16,777,217 (float64); the release holds what a float32 cast makes of it, and the raw_sum
    a sum of rounded counts gives. Both are findings naming the dataset, the cell and the gene."""
    root = tmp_path / "release"
    shutil.copytree(example_release.paths.root, root, ignore=shutil.ignore_patterns(".build"))
    corpus = tmp_path / "corpus"
    shutil.copytree(example_release.corpus, corpus)
    human = root / "soma" / c.HUMAN
    joinid = 10
    with soma.DataFrame.open(str(human / "obs")) as df:
        cell = df.read(coords=(slice(joinid, joinid),)).concat()
    dataset_id, obs_id = cell.column("dataset_id")[0].as_py(), cell.column("observation_joinid")[0].as_py()
    assert dataset_id == "human-lung-10x"  # a CSR source with counts in X

    with SourceFile(corpus / f"{dataset_id}.h5ad") as src:
        row = list(src.column("obs", "observation_joinid")).index(obs_id)
    with h5py.File(corpus / f"{dataset_id}.h5ad", "r+") as f:
        indptr = f["X/indptr"][...]
        data = f["X/data"][...].astype(np.float64)
        lo, hi = int(indptr[row]), int(indptr[row + 1])
        pos = lo + int(np.flatnonzero(data[lo:hi] > 0)[0])
        feature_id = f["var"][f["var"].attrs["_index"]][int(f["X/indices"][pos])].decode()
        others = float(data[lo:hi].sum() - data[pos])
        value, stored, raw_sum = _planted_value(others)
        data[pos] = value
        del f["X/data"]
        f["X"].create_dataset("data", data=data)  # float64: holds 16,777,217 exactly

    with soma.DataFrame.open(str(human / "ms/RNA/var")) as df:
        ids = df.read(column_names=["soma_joinid", "feature_id"]).concat().to_pydict()
    var_joinid = ids["soma_joinid"][ids["feature_id"].index(feature_id)]
    c._write_one(human / "ms/RNA/X/raw", joinid, var_joinid, stored, pa.float32())
    cell = cell.set_column(cell.column_names.index("raw_sum"), "raw_sum", pa.array([raw_sum], pa.float32()))
    with soma.DataFrame.open(str(human / "obs"), "w") as df:
        df.write(cell)

    report = validate_release(str(root / "soma"), corpus / "manifest.csv", client=validation_client)
    assert not report.passed
    where = {"dataset_id": dataset_id, "observation_joinid": obs_id, "soma_joinid": joinid}
    _finding(report, "x_raw", **where, feature_id=feature_id, expected=value, found=stored)
    assert report.check("x_raw").n_findings == 1
    _finding(report, "obs_statistics", **where, column="raw_sum", expected=others + value, found=raw_sum)

"""plan_axes' var union: one dataset at a time, the same genes, names and lengths as the union of all at once."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from census_builder.build.plan_axes import VarUnion, union_var


def _genes(ids: list[str], names: list[str], lengths: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"feature_id": ids, "feature_name": names, "feature_length": np.array(lengths, np.int64)})


def test_union_takes_first_name_and_first_positive_length_sorted_by_feature_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = _genes(["G3", "G1"], ["three", "one"], [0, 100])
    b = _genes(["G2", "G3", "G1"], ["two", "THREE", "ONE"], [50, 30, 120])
    c = _genes(["G3", "G4"], ["3", "four"], [30, 0])
    with caplog.at_level(logging.WARNING, logger="census_builder"):
        var = union_var([a, b, c])
    expected = _genes(["G1", "G2", "G3", "G4"], ["one", "two", "three", "four"], [100, 50, 30, 0])
    pd.testing.assert_frame_equal(var, expected)
    assert [r.getMessage() for r in caplog.records] == [
        "1 genes have different feature_length across datasets (e.g. G1); the first seen is used"
    ]


def _oracle(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The union by plain dicts, gene by gene."""
    name: dict[str, str] = {}
    length: dict[str, int] = {}
    for f in frames:
        for i, n, ln in zip(f["feature_id"], f["feature_name"], f["feature_length"], strict=True):
            name.setdefault(i, n)
            if ln > 0:
                length.setdefault(i, int(ln))
    ids = sorted(name)
    return _genes(ids, [name[i] for i in ids], [length.get(i, 0) for i in ids])


def test_union_equals_gene_by_gene_union_on_random_datasets() -> None:
    rng = np.random.default_rng(7)
    pool = [f"ENSG{k:011d}" for k in range(500)]
    frames = []
    for _ in range(12):
        idx = rng.choice(len(pool), int(rng.integers(1, 300)), replace=False)
        lengths = np.where(rng.random(idx.size) < 0.3, 0, 1000 + idx)  # consistent lengths, some unknown
        frames.append(_genes([pool[k] for k in idx], [f"name{k}-{rng.integers(3)}" for k in idx], list(lengths)))
    pd.testing.assert_frame_equal(union_var(frames), _oracle(frames))
    pd.testing.assert_frame_equal(
        union_var(pa.Table.from_pandas(f, preserve_index=False) for f in frames), _oracle(frames)
    )


def test_union_holds_the_union_not_every_dataset() -> None:
    union = VarUnion()
    for _ in range(50):  # the same 1,000 genes over and over: nothing grows
        union.add(pa.Table.from_pandas(_genes([f"G{k:05d}" for k in range(1000)], ["n"] * 1000, [5] * 1000)))
    assert len(union.var()) == 1000
    assert len(union._ids) == 1000 and sum(len(n) for n in union._names) == 1000

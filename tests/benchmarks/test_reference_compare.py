"""benchmarks.reference.compare: two releases with the same content are equal whatever their numbering; one
planted change each is listed as exactly that difference, keyed the way a user looks it up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import tiledbsoma as soma

from benchmarks.reference.compare import NORMALIZED_RTOL, compare_releases, main
from benchmarks.reference.diff import Difference, Report, compare_tables
from tests.conftest import BuiltRelease
from tests.validation.renumber import Numbering, Release, renumber

SHUFFLED = Numbering(cells="shuffled", genes="shuffled", datasets="reversed", summary_rows_reversed=True, seed=7)
RUNS = Numbering(cells="runs", genes="reversed", datasets="mouse-first", presence_height="organism", seed=2)
HUMAN = "census_data/homo_sapiens"


def _copy(
    release: BuiltRelease, tmp_path: Path, numbering: Numbering, defect: Callable[[Release], Any] | None = None
) -> tuple[str, Any]:
    soma, changed = renumber(release.paths.root, tmp_path / "copy", numbering, release.manifest, defect)
    return str(soma), changed


def _set(table: pa.Table, name: str, row: int, value: Any) -> pa.Table:
    col = table.column(name)
    values = col.to_pylist()
    values[row] = value
    return table.set_column(table.column_names.index(name), name, pa.array(values, col.type))


def _diffs(report: Report) -> list[tuple[str, str, str]]:
    assert report.total == len(report.kept), report.counts
    return sorted((d.where, d.key, d.what) for d in report.kept)


@pytest.mark.parametrize("numbering", [Numbering(), SHUFFLED, RUNS], ids=["same", "shuffled", "runs"])
def test_same_content_in_any_numbering_is_equal(
    example_release: BuiltRelease, tmp_path: Path, numbering: Numbering, capsys: pytest.CaptureFixture[str]
) -> None:
    other, _ = _copy(example_release, tmp_path, numbering)
    assert main([example_release.soma_uri, other, "--batch-cells", "7"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "no differences"


def test_a_release_equals_itself(example_release: BuiltRelease) -> None:
    report = compare_releases(example_release.soma_uri, example_release.soma_uri)
    assert report.total == 0
    c: Any
    with soma.Collection.open(example_release.soma_uri) as c:
        data = c["census_data"]
        cells = sum(int(data[org].obs.count) for org in data)
        genes = sum(int(data[org].ms["RNA"].var.count) for org in data)
        raw = sum(int(data[org].ms["RNA"].X["raw"].nnz) for org in data)
    assert dict(report.compared) == {
        "cells": cells,
        "genes": genes,
        "X raw entries": raw,
        "X normalized entries": raw,
    }
    assert list(report.lines())[-1] == "no differences"


def test_one_changed_obs_value_is_that_difference(example_release: BuiltRelease, tmp_path: Path) -> None:
    def defect(r: Release) -> tuple[str, str, str]:
        obs = r.experiments["homo_sapiens"].obs
        row = int(np.argmax(np.asarray(obs.column("soma_joinid").to_numpy()) == 3))
        old = obs.column("donor_id")[row].as_py()
        r.experiments["homo_sapiens"].obs = _set(obs, "donor_id", row, "donor-x")
        return obs.column("dataset_id")[row].as_py(), obs.column("observation_joinid")[row].as_py(), old

    other, (ds, oid, old) = _copy(example_release, tmp_path, SHUFFLED, defect)
    report = compare_releases(example_release.soma_uri, other)
    assert _diffs(report) == [
        (
            f"{HUMAN}/obs",
            f"dataset_id={ds!r} observation_joinid={oid!r}",
            f"donor_id: {old!r} (ours) != 'donor-x' (reference)",
        )
    ]


@pytest.mark.parametrize("layer", ["raw", "normalized"])
def test_one_changed_x_value_is_that_difference(example_release: BuiltRelease, tmp_path: Path, layer: str) -> None:
    def defect(r: Release) -> tuple[str, str, str, float]:
        e = r.experiments["homo_sapiens"]
        x = e.x[layer]
        cell, gene = int(x.column("soma_dim_0")[0].as_py()), int(x.column("soma_dim_1")[0].as_py())
        old = float(x.column("soma_data")[0].as_py())
        e.x[layer] = _set(x, "soma_data", 0, old * 2 + 1)
        row = int(np.flatnonzero(np.asarray(e.obs.column("soma_joinid").to_numpy()) == cell)[0])
        g = int(np.flatnonzero(np.asarray(e.var.column("soma_joinid").to_numpy()) == gene)[0])
        ds, oid = e.obs.column("dataset_id")[row].as_py(), e.obs.column("observation_joinid")[row].as_py()
        return ds, oid, e.var.column("feature_id")[g].as_py(), old

    other, (ds, oid, fid, old) = _copy(example_release, tmp_path, SHUFFLED, defect)
    report = compare_releases(example_release.soma_uri, other)
    new = float(np.float32(old * 2 + 1))
    assert _diffs(report) == [
        (
            f"{HUMAN}/ms/RNA/X/{layer}",
            f"dataset_id={ds!r} observation_joinid={oid!r} feature_id={fid!r}",
            f"{float(np.float32(old))!r} (ours) != {new!r} (reference)",
        )
    ]


def test_a_missing_gene_is_that_difference(example_release: BuiltRelease, tmp_path: Path) -> None:
    """The reference lacks one mouse gene: its var row, X entries and presence entries (the last one)."""

    def defect(r: Release) -> tuple[str, int]:
        e = r.experiments["mus_musculus"]
        last = e.var.num_rows - 1  # the highest soma_joinid: the others keep theirs, 0..n-2
        gene = int(e.var.column("soma_joinid")[last].as_py())
        fid = str(e.var.column("feature_id")[last].as_py())
        n = int(np.count_nonzero(np.asarray(e.x["raw"].column("soma_dim_1").to_numpy()) == gene))
        e.var = e.var.slice(0, last)
        for layer, t in e.x.items():
            e.x[layer] = t.filter(pa.array(np.asarray(t.column("soma_dim_1").to_numpy()) != gene))
        e.presence = e.presence.filter(pa.array(np.asarray(e.presence.column("soma_dim_1").to_numpy()) != gene))
        return fid, n

    other, (fid, n) = _copy(example_release, tmp_path, Numbering(), defect)
    report = compare_releases(example_release.soma_uri, other)
    mouse, key = "census_data/mus_musculus", f"feature_id={fid!r}"
    assert _diffs(report) == [
        (f"{mouse}/ms/RNA/X/normalized", key, f"{n} entries in ours, a gene only in ours"),
        (f"{mouse}/ms/RNA/X/raw", key, f"{n} entries in ours, a gene only in ours"),
        (
            f"{mouse}/ms/RNA/feature_dataset_presence_matrix",
            key,
            "present in 1 dataset(s) in ours, a gene only in ours",
        ),
        (f"{mouse}/ms/RNA/var", key, "row only in ours"),
    ]


def test_a_changed_census_info_row_is_that_difference(example_release: BuiltRelease, tmp_path: Path) -> None:
    def defect(r: Release) -> tuple[str, str, str, str, int]:
        t = r.summary_cell_counts
        row = 2
        old = int(t.column("total_cell_count")[row].as_py())
        r.summary_cell_counts = _set(t, "total_cell_count", row, old + 1)
        org, cat, term, label = (
            str(t.column(c)[row].as_py()) for c in ("organism", "category", "ontology_term_id", "label")
        )
        return org, cat, term, label, old

    other, (org, cat, term, label, old) = _copy(example_release, tmp_path, SHUFFLED, defect)
    report = compare_releases(example_release.soma_uri, other)
    key = f"organism={org!r} category={cat!r} ontology_term_id={term!r} label={label!r}"
    assert _diffs(report) == [
        ("census_info/summary_cell_counts", key, f"total_cell_count: {old} (ours) != {old + 1} (reference)")
    ]


def test_the_listing_is_bounded_and_the_exit_status_is_1(
    example_release: BuiltRelease, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def defect(r: Release) -> int:
        e = r.experiments["homo_sapiens"]
        for row, value in enumerate(("donor-x", "donor-y", "donor-z")):
            e.obs = _set(e.obs, "donor_id", row, value)
        return 3

    other, _ = _copy(example_release, tmp_path, Numbering(), defect)
    assert main([example_release.soma_uri, other, "--limit", "1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == f"{HUMAN}/obs: 3 differences"
    assert lines[4] == "  ... and 2 more"
    assert lines[-1] == "3 differences in total"


def test_tables_match_by_key_and_report_rows_columns_and_types() -> None:
    a = pa.table({"soma_joinid": [0, 1, 2], "label": ["a", "b", "c"], "value": ["1", "2", "3"], "n": [1, 2, 3]})
    b = pa.table(
        {
            "soma_joinid": [0, 1, 2],
            "label": pa.array(["d", "b", "a"]).dictionary_encode(),
            "value": ["4", "2", "1"],
            "n": pa.array([3.0, 2.0, 1.0]),
        }
    )
    report = Report()
    compare_tables(report, "t", a, b, ("label",))
    assert sorted(map(str, report.kept)) == [
        "column 'n': type int64 (ours) != double (reference)",
        "label='c': row only in ours",
        "label='d': row only in the reference",
    ]
    assert report.kept[0] == Difference("t", "", "column 'n': type int64 (ours) != double (reference)")


def test_normalized_tolerance_is_one_quantum_of_15_mantissa_bits() -> None:
    assert NORMALIZED_RTOL == 2.0**-15


def test_normalized_values_within_one_quantum_are_equal(example_release: BuiltRelease, tmp_path: Path) -> None:
    def defect(r: Release) -> None:
        e = r.experiments["homo_sapiens"]
        x = e.x["normalized"]
        values = np.asarray(x.column("soma_data").to_numpy(), dtype=np.float32)
        e.x["normalized"] = _set(x, "soma_data", 0, float(values[0] * np.float32(1 + 2.0**-16)))
        e.x["normalized"] = _set(e.x["normalized"], "soma_data", 1, float(values[1] * np.float32(1 - 2.0**-16)))

    other, _ = _copy(example_release, tmp_path, Numbering(), defect)
    assert compare_releases(example_release.soma_uri, other).total == 0

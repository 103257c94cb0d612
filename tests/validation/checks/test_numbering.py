"""The validator matches by content, not by our builder's numbering (issue 13): releases with the same content
and other numberings (written by tests/validation/renumber.py, straight with tiledbsoma) pass; the same
releases with one planted defect each fail with a finding that names the cell / gene the way a user looks
it up (dataset_id, observation_joinid and the release's soma_joinid; feature_id and the release's var
soma_joinid)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import BuiltRelease
from tests.validation.renumber import Numbering, Release, renumber
from validation import ValidationReport, validate_release
from validation.checks.numbering import cell_joinids, contiguous_start, match_var

SHUFFLED = Numbering(
    cells="shuffled",
    genes="reversed",
    datasets="reversed",
    presence_height="all",
    list_empty_datasets=True,
    summary_rows_reversed=True,
    seed=1,
)
RUNS = Numbering(cells="runs", genes="shuffled", datasets="mouse-first", presence_height="organism", seed=2)
RANDOM_GENES = Numbering(cells="shuffled", genes="shuffled", datasets="reversed", seed=3)


def _validate(
    release: BuiltRelease,
    tmp_path: Path,
    client: Any,
    numbering: Numbering,
    defect: Callable[[Release], Any] | None = None,
) -> tuple[ValidationReport, Any]:
    soma, changed = renumber(release.paths.root, tmp_path / "other", numbering, release.manifest, defect)
    return validate_release(str(soma), release.manifest, client=client), changed


def _failures(report: ValidationReport) -> dict[str, list[str]]:
    return {ch.name: [f.line() for f in ch.findings[:5]] for ch in report.checks if not ch.passed}


def _finding(report: ValidationReport, check: str, **where: Any) -> dict[str, Any]:
    result = report.check(check)
    assert not result.passed, f"{check} passed; failed: {report.failed}"
    for f in result.findings:
        doc = f.to_json()
        if all(doc.get(k) == v for k, v in where.items()):
            return doc
    raise AssertionError(f"no {check} finding with {where}: {[f.line() for f in result.findings]}")


@pytest.mark.parametrize(
    ("numbering", "readings"),
    [
        (
            SHUFFLED,
            {
                "homo_sapiens cells": "cells of 3 of 3 dataset(s) not one consecutive run",
                "mus_musculus genes": "another order than sorted by feature_id",
                "homo_sapiens presence matrix height": "7 rows: one per census_info['datasets'] row",
                "datasets without cells": "listed in census_info['datasets'] with 0 cells: mixed-cells-mixed-genes, "
                "human-all-filtered",
                "summary_cell_counts row order": "another order",
            },
        ),
        (
            RUNS,
            {
                "homo_sapiens cells": "each dataset's cells consecutive, in source order, datasets in another order",
                "mus_musculus presence matrix height": "2 rows: one per dataset with Mus musculus cells",
                "homo_sapiens presence matrix height": "5 rows: one per census_info['datasets'] row",
                "datasets without cells": "not listed",
            },
        ),
    ],
    ids=["shuffled", "runs"],
)
def test_other_numbering_passes(
    numbering: Numbering,
    readings: dict[str, str],
    example_release: BuiltRelease,
    validation_client: Any,
    tmp_path: Path,
) -> None:
    report, _ = _validate(example_release, tmp_path, validation_client, numbering)
    assert report.passed, _failures(report)
    for what, text in readings.items():
        assert report.readings[what].startswith(text), (what, report.readings[what])
    assert report.to_json()["readings"] == report.readings


def test_our_numbering_is_read_as_ours(example_release: BuiltRelease, validation_client: Any, tmp_path: Path) -> None:
    report = validate_release(
        example_release.soma_uri, example_release.manifest, client=validation_client, report_path=tmp_path / "r.json"
    )
    assert report.passed, _failures(report)
    assert report.readings["homo_sapiens cells"].endswith("datasets in manifest order (as our builder)")
    assert report.readings["mus_musculus genes"].startswith("sorted by feature_id")
    assert report.readings["datasets without cells"] == "not listed in census_info['datasets']"


# -- one planted defect each -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    organism: str
    dataset_id: str | None = None
    observation_joinid: str | None = None
    soma_joinid: int | None = None
    feature_id: str | None = None
    var_joinid: int | None = None
    expected: Any = None
    found: Any = None
    cells: dict[int, tuple[str, str]] | None = None  # the organism's obs: soma_joinid -> (dataset, observation_joinid)


def _cells(r: Release, org: str) -> dict[int, tuple[str, str]]:
    obs = r.experiments[org].obs
    return {
        int(j): (str(d), str(o))
        for j, d, o in zip(
            obs.column("soma_joinid").to_pylist(),
            obs.column("dataset_id").to_pylist(),
            obs.column("observation_joinid").to_pylist(),
            strict=True,
        )
    }


def _cell(r: Release, org: str, soma_joinid: int) -> dict[str, Any]:
    row: dict[str, Any] = r.experiments[org].obs.slice(soma_joinid, 1).to_pylist()[0]
    return row


def _gene(r: Release, org: str, var_joinid: int) -> str:
    return str(r.experiments[org].var.column("feature_id")[var_joinid].as_py())


def _entry(r: Release, org: str, k: int, layer: str = "raw") -> tuple[int, int, float]:
    t = r.experiments[org].x[layer]
    return (
        int(t.column("soma_dim_0")[k].as_py()),
        int(t.column("soma_dim_1")[k].as_py()),
        float(t.column("soma_data")[k].as_py()),
    )


def _set_column(t: pa.Table, name: str, values: Any) -> pa.Table:
    return t.set_column(t.column_names.index(name), name, pa.array(values, t.schema.field(name).type))


def drop_cell(r: Release) -> Planted:
    """The writer lost one human cell: its obs row and X rows, the others renumbered 0..n-2."""
    e = r.experiments["homo_sapiens"]
    k = e.obs.num_rows // 2
    cell = _cell(r, "homo_sapiens", k)

    def shift(values: Any) -> Any:
        v = np.asarray(values, dtype=np.int64)
        return np.where(v > k, v - 1, v)

    e.obs = e.obs.filter(pa.array(np.arange(e.obs.num_rows) != k))
    e.obs = _set_column(e.obs, "soma_joinid", shift(e.obs.column("soma_joinid").to_numpy()))
    for layer, t in e.x.items():
        kept = t.filter(pa.array(np.asarray(t.column("soma_dim_0").to_numpy()) != k))
        e.x[layer] = _set_column(kept, "soma_dim_0", shift(kept.column("soma_dim_0").to_numpy()))
    return Planted("homo_sapiens", cell["dataset_id"], cell["observation_joinid"], expected="present", found="absent")


def move_value(r: Release) -> Planted:
    """One human count stored under another gene of the same cell."""
    t = r.experiments["homo_sapiens"].x["raw"]
    row, col, value = _entry(r, "homo_sapiens", t.num_rows // 3)
    used = set(np.asarray(t.column("soma_dim_1").to_numpy())[np.asarray(t.column("soma_dim_0").to_numpy()) == row])
    to = next(j for j in range(r.experiments["homo_sapiens"].var.num_rows) if j not in used)
    cols = np.asarray(t.column("soma_dim_1").to_numpy()).copy()
    cols[t.num_rows // 3] = to
    t = _set_column(t, "soma_dim_1", cols)
    r.experiments["homo_sapiens"].x["raw"] = t.take(pa.array(np.lexsort((cols, t.column("soma_dim_0").to_numpy()))))
    cell = _cell(r, "homo_sapiens", row)
    return Planted(
        "homo_sapiens",
        cell["dataset_id"],
        cell["observation_joinid"],
        row,
        _gene(r, "homo_sapiens", col),
        col,
        expected=value,
        found="absent",
    )


def swap_gene_columns(r: Release) -> Planted:
    """X['raw'] of two genes written under each other's var soma_joinid (var itself is right)."""
    t = r.experiments["homo_sapiens"].x["raw"]
    cols = np.asarray(t.column("soma_dim_1").to_numpy())
    rows = np.asarray(t.column("soma_dim_0").to_numpy())
    a, b = (int(j) for j in np.unique(cols)[[1, 2]])
    swapped = np.where(cols == a, b, np.where(cols == b, a, cols))
    t = _set_column(t, "soma_dim_1", swapped)
    r.experiments["homo_sapiens"].x["raw"] = t.take(pa.array(np.lexsort((swapped, rows))))
    return Planted(
        "homo_sapiens", feature_id=_gene(r, "homo_sapiens", a), var_joinid=a, cells=_cells(r, "homo_sapiens")
    )


def flip_presence_bit(r: Release) -> Planted:
    e = r.experiments["homo_sapiens"]
    t = e.presence
    values = np.asarray(t.column("soma_data").to_numpy(zero_copy_only=False)).copy()
    k = int(np.flatnonzero(values)[len(np.flatnonzero(values)) // 2])
    values[k] = False
    e.presence = _set_column(t, "soma_data", values)
    ds_row, gene = int(t.column("soma_dim_0")[k].as_py()), int(t.column("soma_dim_1")[k].as_py())
    ids = dict(
        zip(r.datasets.column("soma_joinid").to_pylist(), r.datasets.column("dataset_id").to_pylist(), strict=True)
    )
    return Planted(
        "homo_sapiens",
        ids[ds_row],
        feature_id=_gene(r, "homo_sapiens", gene),
        var_joinid=gene,
        expected=True,
        found=False,
    )


def wrong_dataset_count(r: Release) -> Planted:
    counts = r.datasets.column("dataset_total_cell_count").to_pylist()
    k = counts.index(max(counts))
    ds = r.datasets.column("dataset_id")[k].as_py()
    counts[k] += 1
    r.datasets = _set_column(r.datasets, "dataset_total_cell_count", counts)
    return Planted("", ds, expected=counts[k] - 1, found=counts[k])


def mouse_value(r: Release) -> Planted:
    t = r.experiments["mus_musculus"].x["raw"]
    k = t.num_rows // 2
    row, col, value = _entry(r, "mus_musculus", k)
    values = np.asarray(t.column("soma_data").to_numpy()).copy()
    values[k] = value + 1
    r.experiments["mus_musculus"].x["raw"] = _set_column(t, "soma_data", values)
    cell = _cell(r, "mus_musculus", row)
    return Planted(
        "mus_musculus",
        cell["dataset_id"],
        cell["observation_joinid"],
        row,
        _gene(r, "mus_musculus", col),
        col,
        expected=value,
        found=value + 1,
    )


def change_cell_type(r: Release) -> Planted:
    """One human cell's cell_type replaced by another cell type of the release."""
    e = r.experiments["homo_sapiens"]
    types = e.obs.column("cell_type").to_pylist()
    k = len(types) // 4
    other = next(t for t in types if t != types[k])
    cell = _cell(r, "homo_sapiens", k)
    planted = Planted(
        "homo_sapiens", cell["dataset_id"], cell["observation_joinid"], soma_joinid=k, expected=types[k], found=other
    )
    types[k] = other
    e.obs = _set_column(e.obs, "cell_type", types)
    return planted


def presence_too_tall(r: Release) -> Planted:
    """A presence matrix of neither allowed height (one row per datasets row, or per dataset of the organism)."""
    r.experiments["mus_musculus"].presence_height = r.datasets.num_rows + 1
    return Planted("mus_musculus", found=r.datasets.num_rows + 1)


DEFECTS: list[tuple[str, Callable[[Release], Planted], str, Callable[[Planted], dict[str, Any]]]] = [
    (
        "dropped_cell",
        drop_cell,
        "obs_cells",
        lambda p: {"dataset_id": p.dataset_id, "observation_joinid": p.observation_joinid, "found": "absent"},
    ),
    (
        "moved_value",
        move_value,
        "x_raw",
        lambda p: {
            "dataset_id": p.dataset_id,
            "observation_joinid": p.observation_joinid,
            "soma_joinid": p.soma_joinid,
            "feature_id": p.feature_id,
            "var_joinid": p.var_joinid,
            "expected": p.expected,
            "found": "absent",
        },
    ),
    (
        "swapped_gene_column",
        swap_gene_columns,
        "x_raw",
        lambda p: {"feature_id": p.feature_id, "var_joinid": p.var_joinid},
    ),
    (
        "flipped_presence_bit",
        flip_presence_bit,
        "presence_matrix",
        lambda p: {
            "dataset_id": p.dataset_id,
            "feature_id": p.feature_id,
            "var_joinid": p.var_joinid,
            "expected": True,
            "found": False,
        },
    ),
    (
        "wrong_census_info_count",
        wrong_dataset_count,
        "census_info_datasets",
        lambda p: {
            "dataset_id": p.dataset_id,
            "column": "dataset_total_cell_count",
            "expected": p.expected,
            "found": p.found,
        },
    ),
    (
        "cell_type",
        change_cell_type,
        "obs_metadata",
        lambda p: {
            "dataset_id": p.dataset_id,
            "observation_joinid": p.observation_joinid,
            "soma_joinid": p.soma_joinid,
            "column": "cell_type",
            "expected": p.expected,
            "found": p.found,
        },
    ),
    ("presence_height", presence_too_tall, "shapes", lambda p: {"organism": p.organism, "found": p.found}),
    (
        "mouse_only",
        mouse_value,
        "x_raw",
        lambda p: {
            "organism": "mus_musculus",
            "dataset_id": p.dataset_id,
            "observation_joinid": p.observation_joinid,
            "soma_joinid": p.soma_joinid,
            "feature_id": p.feature_id,
            "var_joinid": p.var_joinid,
            "expected": p.expected,
            "found": p.found,
        },
    ),
]


@pytest.mark.parametrize(("name", "defect", "check", "where"), DEFECTS, ids=[d[0] for d in DEFECTS])
def test_planted_defect_in_other_numbering_is_named(
    name: str,
    defect: Callable[[Release], Planted],
    check: str,
    where: Callable[[Planted], dict[str, Any]],
    example_release: BuiltRelease,
    validation_client: Any,
    tmp_path: Path,
) -> None:
    report, planted = _validate(example_release, tmp_path, validation_client, RANDOM_GENES, defect)
    assert not report.passed
    finding = _finding(report, check, **where(planted))
    if planted.cells is not None:  # the cell is named as the release numbers it
        assert planted.cells[finding["soma_joinid"]] == (finding["dataset_id"], finding["observation_joinid"])
    if name == "mouse_only":
        assert report.failed == ["x_raw"], _failures(report)
        assert report.check("x_raw").n_findings == 1


# -- the maps themselves ------------------------------------------------------------------------------------


@given(
    st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=60), st.randoms(use_true_random=False), st.integers(0, 5)
)
def test_cell_joinids_find_every_cell_wherever_it_is(hashes: list[int], rnd: Any, dropped: int) -> None:
    expected = np.asarray(hashes, dtype=np.uint64)
    joinids = np.arange(expected.size, dtype=np.int64)
    rnd.shuffle(joinids)
    keep = np.ones(expected.size, dtype=bool)
    keep[:dropped] = False  # cells the release lacks
    got = cell_joinids(expected, expected[keep], joinids[keep])
    assert got.tolist() == np.where(keep, joinids, -1).tolist()


def test_contiguous_start_and_var_matching() -> None:
    assert contiguous_start(np.array([4, 5, 6])) == 4
    assert contiguous_start(np.array([4, 6, 5])) is None
    assert contiguous_start(np.array([-1, 0, 1])) is None
    numbering = match_var(["A", "B", "C"], np.array([0, 1, 2, 3]), ["C", "X", "A", "C"])
    assert numbering.release_of_expected.tolist() == [2, -1, 0]  # "B" absent; "C" twice: its first row
    assert numbering.joinids(np.array([0, 1, 2])).tolist() == [2, 4 + 1, 0]  # absent "B": virtual joinid 4 + 1
    assert numbering.expected(np.array([0, 1, 2, 5])).tolist() == [2, -1, 0, 1]
    assert numbering.name(5) == (None, "B") and numbering.name(1) == (1, "X")
    assert not numbering.in_order and match_var(["A", "B"], np.array([0, 1]), ["A", "B"]).in_order

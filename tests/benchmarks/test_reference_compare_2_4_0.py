"""benchmarks.reference.compare on what Census schema 2.4.0 adds: the organisms table, collection_doi_label, the
summary rows, five experiments (one may be empty or absent on one side), dictionary-encoded columns.

Each test writes two tiny hand-made 2.4.0 releases with tiledbsoma (nothing from census_builder), the second
in another numbering and encoding, plants one change and checks that exactly that difference is listed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import tiledbsoma as soma

from benchmarks.reference.compare import NORMALIZED_RTOL, compare_releases
from benchmarks.reference.diff import Report
from tests.benchmarks.minirelease import CHIMP, HUMAN, MACAQUE, Exp, Mini, content, write_release


def _pair(tmp_path: Path, change: Callable[[Mini], Any] | None = None, **kwargs: Any) -> Report:
    ours = write_release(tmp_path / "ours", content())
    ref = content()
    if change is not None:
        change(ref)
    return compare_releases(ours, write_release(tmp_path / "ref", ref, reverse=True, encode=True, **kwargs))


def _diffs(report: Report) -> list[tuple[str, str, str]]:
    assert report.total == len(report.kept), report.counts
    return sorted((d.where, d.key, d.what) for d in report.kept)


def test_the_same_content_in_another_numbering_and_encoding_is_equal(tmp_path: Path) -> None:
    report = _pair(tmp_path)
    assert _diffs(report) == []
    assert dict(report.compared) == {"cells": 3, "genes": 4, "X raw entries": 4, "X normalized entries": 4}


def test_organisms_rows_are_matched_by_term_id(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.organisms[1]["organism_label"] = "chimpanzee"
        m.organisms.append({"organism_ontology_term_id": "NCBITaxon:9483", "organism_label": "x", "organism": "y"})

    assert _diffs(_pair(tmp_path, change)) == [
        (
            "census_info/organisms",
            "organism_ontology_term_id='NCBITaxon:9483'",
            "row only in the reference",
        ),
        (
            "census_info/organisms",
            "organism_ontology_term_id='NCBITaxon:9598'",
            "organism_label: 'Pan troglodytes' (ours) != 'chimpanzee' (reference)",
        ),
    ]


def test_a_different_collection_doi_label_is_that_difference(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.datasets[1]["collection_doi_label"] = "Doe et al. (2026) Cell"

    assert _diffs(_pair(tmp_path, change)) == [
        (
            "census_info/datasets",
            "dataset_id='d2'",
            "collection_doi_label: 'Doe et al. (2025) Cell' (ours) != 'Doe et al. (2026) Cell' (reference)",
        )
    ]


def test_a_summary_row_on_one_side_only_is_listed(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.summary["number_donors_homo_sapiens"] = "3"  # a 1.3.0 row that 2.4.0 no longer has

    assert _diffs(_pair(tmp_path, change)) == [
        ("census_info/summary", "label='number_donors_homo_sapiens'", "row only in the reference")
    ]


def test_an_experiment_on_one_side_only_is_listed_with_its_cells(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.experiments["callithrix_jacchus"] = Exp()
        del m.experiments[CHIMP]

    assert _diffs(_pair(tmp_path, change)) == [
        ("census_data", "", "experiment 'callithrix_jacchus' (0 cells) only in the reference"),
        ("census_data", "", "experiment 'pan_troglodytes' (1 cells) only in ours"),
    ]


def test_an_experiment_empty_on_one_side_is_listed(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.experiments[CHIMP] = Exp()

    place = f"census_data/{CHIMP}"
    assert _diffs(_pair(tmp_path, change)) == [
        (place, "", "experiment empty on one side: 1 cells in ours, 0 in the reference"),
        (f"{place}/ms/RNA", "", "array 'feature_dataset_presence_matrix' only in ours"),
        (f"{place}/ms/RNA/X", "", "layer 'normalized' only in ours"),
        (f"{place}/ms/RNA/X", "", "layer 'raw' only in ours"),
        (f"{place}/ms/RNA/var", "feature_id='ENSPTRG1'", "row only in ours"),
        (f"{place}/obs", "dataset_id='d2' observation_joinid='c'", "cell only in ours"),
    ]


def test_presence_is_compared_by_dataset_and_feature(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.experiments[HUMAN].presence.discard(("d1", "ENSG2"))

    assert _diffs(_pair(tmp_path, change)) == [
        (
            f"census_data/{HUMAN}/ms/RNA/feature_dataset_presence_matrix",
            "dataset_id='d1' feature_id='ENSG2'",
            "present only in ours",
        )
    ]


def test_normalized_beyond_the_reference_precision_is_a_difference(tmp_path: Path) -> None:
    within = float(np.float32(0.6) * np.float32(1 + NORMALIZED_RTOL / 2))
    beyond = float(np.float32(0.4) * np.float32(1 + 4 * NORMALIZED_RTOL))

    def change(m: Mini) -> None:
        m.experiments[HUMAN].normalized[("a", "ENSG1")] = within
        m.experiments[HUMAN].normalized[("a", "ENSG3")] = beyond

    report = _pair(tmp_path, change)
    assert _diffs(report) == [
        (
            f"census_data/{HUMAN}/ms/RNA/X/normalized",
            "dataset_id='d1' observation_joinid='a' feature_id='ENSG3'",
            f"{float(np.float32(0.4))!r} (ours) != {float(np.float32(beyond))!r} (reference)",
        )
    ]
    x, y = float(np.float32(0.6)), float(np.float32(within))  # the largest difference found equal, as listed
    assert report.largest == {"relative difference of X normalized values within tolerance": abs(x - y) / max(x, y)}
    assert "largest relative difference of X normalized values within tolerance: " in "\n".join(report.lines())


def test_obs_statistics_of_another_float_type_are_one_difference_per_experiment(tmp_path: Path) -> None:
    report = _pair(tmp_path, stats=pa.float64())
    assert _diffs(report) == [
        (f"census_data/{name}/obs", "", "column 'raw_sum': type float (ours) != double (reference)")
        for name in sorted((CHIMP, HUMAN, MACAQUE))
    ]


@pytest.mark.parametrize("part", ["var", "obs"])
def test_a_part_missing_from_an_empty_experiment_is_listed(tmp_path: Path, part: str) -> None:
    ours = write_release(tmp_path / "ours", content())
    ref = write_release(tmp_path / "ref", copy.deepcopy(content()))
    # remove the part from the reference's empty experiment (a release writer that skips it)
    c: Any
    with soma.Collection.open(ref, "w") as c:
        exp = c["census_data"][MACAQUE]
        target = exp.ms["RNA"] if part == "var" else exp
        del target[part]
    where = f"census_data/{MACAQUE}"
    expected = "ms/RNA/var" if part == "var" else "obs"
    assert _diffs(compare_releases(ours, ref)) == [(where, "", f"{expected} only in ours")]

"""benchmarks.reference.prove: differences sorted into explained and unexplained; the listing stays bounded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.reference.compare import compare_releases
from benchmarks.reference.corpus import reference_corpus
from benchmarks.reference.diff import Difference, Report
from benchmarks.reference.prove import (
    EXPLAINED,
    MAPPED,
    bounded,
    classify,
    main,
    recheck_summary_cell_counts,
    results_markdown,
    validator_lines,
)
from tests.benchmarks.minirelease import content, write_release

HUMAN = "census_data/homo_sapiens"
SPATIAL = "census_spatial_sequencing/homo_sapiens"
SCENE = f"{SPATIAL}/spatial/d"
# One difference of each expected kind, exactly as benchmarks.reference.compare words it.
SUSPENSION = "organism='Homo sapiens' category='suspension_type' ontology_term_id='na' label="
EXAMPLES = [
    Difference(f"{HUMAN}/obs", "", "column 'raw_sum': type float (ours) != double (reference)"),
    Difference(f"{HUMAN}/ms/RNA/var", "", "column 'feature_type' only in the reference"),
    Difference(
        "census_info/datasets", "dataset_id='d'", "dataset_h5ad_path: 'h5ads/d.h5ad' (ours) != 'd.h5ad' (reference)"
    ),
    Difference(
        "census_info/summary_cell_counts",
        "organism='Homo sapiens' category='all' ontology_term_id='na' label='na'",
        "row only in ours",
    ),
    Difference(MAPPED, f"{SUSPENSION}'nucleus'", "row only in ours"),
    Difference(MAPPED, f"{SUSPENSION}'cell'", "total_cell_count: 5 (ours) != 7 (reference)"),
    Difference(f"{SPATIAL}/obs", "", "column 'raw_mean_nnz': type float (ours) != double (reference)"),
    Difference(
        f"{SCENE}/obsl/loc",
        "",
        "column order ['x', 'y', 'soma_joinid'] (ours) != ['y', 'x', 'soma_joinid'] (reference)",
    ),
    Difference(
        f"{SCENE}/obsl/loc", "", "x and y swapped: ours x == reference y and ours y == reference x for all 9 points"
    ),
    Difference(f"{SCENE}/obsl/loc", "", "column 'x': type double (ours) != int64 (reference)"),
    Difference(
        SCENE,
        "",
        "coordinate space [('x', None), ('y', None)] (ours) != [('y', 'pixels'), ('x', 'pixels')] (reference)",
    ),
    Difference(
        f"{SCENE}/img/d_A1",
        "",
        "layout: img[library_id]['highres_image'] is the MultiscaleImage (ours) != img[library_id] is the "
        "MultiscaleImage (reference)",
    ),
    Difference(
        f"{SCENE}/img/d_A1",
        "",
        "data_axis_order ('soma_channel', 'y', 'x') (ours) != ('soma_channel', 'x', 'y') (reference)",
    ),
    Difference(
        f"{SCENE}/img/d_A1",
        "",
        "level 0 equal only with y and x swapped: the reference's data_axis_order ('soma_channel', 'x', 'y') does "
        "not match its layout",
    ),
    Difference("census_data", "", "experiment 'pan_troglodytes' (0 cells) only in the reference"),
    Difference("census_info/organisms", "organism_ontology_term_id='NCBITaxon:9598'", "row only in the reference"),
]


def _report(diffs: list[Difference]) -> Report:
    r = Report(limit=1_000)
    for d in diffs:
        r.add(d.where, d.key, d.what)
    return r


def test_each_expected_kind_is_explained_once() -> None:
    explained, unexplained = classify(_report(EXAMPLES))
    assert unexplained == []
    assert sum(len(v) for v in explained.values()) == len(EXAMPLES)
    assert all(e.sentence and e.verdict and e.note for e in EXPLAINED)


@pytest.mark.parametrize(
    "d",
    [
        Difference(
            f"{HUMAN}/ms/RNA/feature_dataset_presence_matrix", "dataset_id='d' feature_id='G'", "present only in ours"
        ),
        Difference(
            f"{HUMAN}/ms/RNA/feature_dataset_presence_matrix",
            "dataset_id='d' feature_id='G'",
            "present only in the reference",
        ),
        Difference(f"{HUMAN}/ms/RNA/var", "feature_id='G'", "n_measured_obs: 1 (ours) != 2 (reference)"),
        Difference(MAPPED, "organism='Homo sapiens' category='sex' ontology_term_id='x' label='y'", "row only in ours"),
        Difference("/", "", "collection 'census_info' only in the reference"),
        Difference(
            f"{HUMAN}/obs",
            "dataset_id='d' observation_joinid='o'",
            "cell_type: 'T cell' (ours) != 'B cell' (reference)",
        ),
        Difference(f"{HUMAN}/ms/RNA/X/raw", "k", "1.0 (ours) != 2.0 (reference)"),
        Difference(f"{HUMAN}/obs", "", "column 'raw_sum': type double (ours) != float (reference)"),
        Difference("census_data", "", "experiment 'pan_troglodytes' (3 cells) only in the reference"),
        Difference(f"{SCENE}/obsl/loc", "k", "(x, y): (1.0, 2.0) (ours) != (1.0, 3.0) (reference)"),
        Difference(f"{SCENE}/img/d_A1", "", "level 0: 1 of 72 pixel values differ"),
        Difference(f"{SCENE}/obsl/loc", "", "metadata soma_geometry: 85.9375 (ours) != 2.0 (reference)"),
        Difference(f"{SPATIAL}/obs_spatial_presence", "k", "row only in ours"),
    ],
)
def test_other_differences_stay_unexplained(d: Difference) -> None:
    assert classify(_report([d])) == ({}, [d])


def test_bounded_keeps_the_counts_and_limits_the_examples() -> None:
    r = _report([Difference("p", f"k{i}", "x") for i in range(5)])
    r.compared["cells"] = 7
    b = bounded(r, 2)
    assert b.total == 5 and len(b.kept) == 2 and dict(b.compared) == {"cells": 7}
    assert list(b.lines())[-3:] == ["  ... and 3 more", "compared: 7 cells", "5 differences in total"]


def test_results_list_each_kind_with_its_sentence_and_the_unexplained() -> None:
    stray = Difference(f"{HUMAN}/ms/RNA/X/raw", "k", "1.0 (ours) != 2.0 (reference)")
    report = _report([*EXAMPLES, stray])
    explained, unexplained = classify(report)
    text = results_markdown(
        "python -m benchmarks.reference.prove --out DIR",
        "2026-11-26",
        report,
        explained,
        unexplained,
        {"our build": 0},
        "abc",
        reference_corpus(),
    )
    assert f"- Differences: {len(EXAMPLES) + 1}, of which {len(EXAMPLES)} explained and 1 unexplained." in text
    for e in EXPLAINED:
        assert e.sentence in text
    assert text.endswith(f"## Unexplained differences\n\n- `{stray.where}`: {stray}\n")


def test_only_refuses_an_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "new"), "--only", "ref-human-lung-10x,nope"]) == 2
    assert "--only: nope not in the corpus (reference_corpus)" in capsys.readouterr().err


def test_a_directory_in_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").write_text("", encoding="utf-8")
    assert main(["--out", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_summary_cell_counts_are_compared_again_by_organism_label(tmp_path: Path) -> None:
    """Ours names organisms by label, the reference by experiment name: every row is on one side only (explained);
    compared again with the names mapped through each side's organisms table, only the planted change is left."""
    ours = write_release(tmp_path / "ours", content())
    ref = content()
    names = {o["organism_label"]: o["organism"] for o in ref.organisms}
    for row in ref.cell_counts:
        row["organism"] = names[row["organism"]]
    ref.cell_counts[1]["total"] = 5
    report = compare_releases(ours, write_release(tmp_path / "ref", ref, reverse=True), limit=sys.maxsize)
    assert report.counts["census_info/summary_cell_counts"] == 6
    assert recheck_summary_cell_counts(report, ours, str(tmp_path / "ref"))
    explained, unexplained = classify(report)
    assert [(d.where, d.key, d.what) for d in unexplained] == [
        (
            MAPPED,
            "organism='Homo sapiens' category='cell_type' ontology_term_id='CL:0000084' label='T cell'",
            "total: 1 (ours) != 5 (reference)",
        )
    ]
    assert sum(map(len, explained.values())) == 6


def test_summary_cell_counts_named_alike_are_not_compared_again(tmp_path: Path) -> None:
    ours = write_release(tmp_path / "ours", content())
    ref = write_release(tmp_path / "ref", content())
    report = compare_releases(ours, ref, limit=sys.maxsize)
    assert not recheck_summary_cell_counts(report, ours, ref)
    assert report.total == 0


def test_validator_lines_list_each_failed_check_with_its_count(tmp_path: Path) -> None:
    good_check = {"name": "x_raw", "passed": True, "n_findings": 0, "findings": []}
    bad_check = {"name": "encodings", "passed": False, "n_findings": 2, "findings": [{"message": "raw_sum is double"}]}
    ok = {"passed": True, "checks": [good_check]}
    bad = {"passed": False, "checks": [good_check, bad_check]}
    (tmp_path / "ours.json").write_text(json.dumps(ok), encoding="utf-8")
    (tmp_path / "ref.json").write_text(json.dumps(bad), encoding="utf-8")
    sides = {"ours": tmp_path / "ours.json", "reference": tmp_path / "ref.json", "third": tmp_path / "none.json"}
    lines = validator_lines(sides)
    assert lines[3:] == [
        "- ours: passed (1 checks)",
        "- reference: FAILED (2 checks)",
        "  - encodings: 2 finding(s), e.g. raw_sum is double",
        "- third: no report (none.json missing)",
    ]

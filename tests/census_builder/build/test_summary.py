"""The summary every complete build ends with: build_report.json's ``summary`` and the console text."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import tiledbsoma as soma

from census_builder.build.host_check import tree_bytes
from census_builder.build.pipeline import STAGES
from census_builder.build.state import BuildPaths, read_json
from census_builder.build.summary import record_validation, store_summary, stored_summary, summary_lines
from tests.conftest import BuiltRelease


def test_report_summary_matches_the_release(example_release: BuiltRelease) -> None:
    paths = example_release.paths
    s = read_json(paths.report)["summary"]
    for org, figures in s["organisms"].items():
        exp = f"{example_release.soma_uri}/census_data/{org}"
        with soma.DataFrame.open(f"{exp}/obs") as obs, soma.DataFrame.open(f"{exp}/ms/RNA/var") as var:
            assert figures["cells"] == obs.count
            assert figures["genes"] == var.count
            assert figures["datasets"] == len(
                set(obs.read(column_names=["dataset_id"]).concat()["dataset_id"].to_pylist())
            )
    assert set(s["organisms"]) == {"homo_sapiens", "mus_musculus"}
    assert s["datasets"] == {
        "in_manifest": 7,
        "included": 5,
        "excluded_no_cells": ["mixed-cells-mixed-genes", "human-all-filtered"],
        "excluded_invalid": [],
    }
    assert s["release_bytes"] == tree_bytes(paths.soma) > 0
    assert [x["stage"] for x in s["stages"]] == list(STAGES)
    assert s["build_seconds"] == round(sum(x["seconds"] for x in s["stages"]), 3)
    assert s["paths"] == {
        "release": str(paths.soma),
        "report": str(paths.report),
        "log": str(paths.log),
        "validation_report": str(paths.validation_report),
    }
    assert s["version"] == "example" and s["validation"] is None


def test_record_validation(example_release: BuiltRelease, tmp_path: Path) -> None:
    paths = BuildPaths(tmp_path / "example")
    paths.root.mkdir()
    shutil.copy(example_release.paths.report, paths.report)
    before = read_json(paths.report)
    updated = record_validation(paths, passed=False, seconds=12.3456)
    assert updated is not None and updated["validation"] == {"passed": False, "seconds": 12.346}
    after = read_json(paths.report)
    assert after["summary"] == updated and stored_summary(paths) == updated
    assert {k: v for k, v in after.items() if k != "summary"} == {k: v for k, v in before.items() if k != "summary"}
    assert record_validation(BuildPaths(tmp_path / "absent"), passed=True, seconds=1) is None


SUMMARY = {
    "version": "2026-11-22",
    "organisms": {
        "homo_sapiens": {"cells": 1_234_567, "genes": 60_530, "datasets": 12},
        "mus_musculus": {"cells": 350, "genes": 600, "datasets": 1},
    },
    "datasets": {
        "in_manifest": 16,
        "included": 13,
        "excluded_no_cells": ["a"],
        "excluded_invalid": ["b", "c"],
    },
    "release_bytes": 5 * 2**30 + 2**29,
    "stages": [
        {"stage": "stage_and_inspect", "seconds": 6.04},
        {"stage": "write_matrices", "seconds": 750.0},
    ],
    "build_seconds": 756.04,
    "paths": {
        "release": "/w/2026-11-22/soma",
        "report": "/w/2026-11-22/build_report.json",
        "log": "/w/2026-11-22/build.log",
        "validation_report": "/w/2026-11-22/validation_report.json",
    },
    "validation": {"passed": True, "seconds": 80.5},
}


def test_console_text() -> None:
    assert summary_lines(SUMMARY) == [
        "build 2026-11-22 complete: /w/2026-11-22/soma (5.5 GiB on disk)",
        "  homo_sapiens: 1,234,567 cells, 60,530 genes, 12 dataset(s)",
        "  mus_musculus: 350 cells, 600 genes, 1 dataset(s)",
        "  datasets: 13 of 16 included; excluded: 1 with no Census cells (a); 2 invalid (b, c)",
        "  time: stage_and_inspect 6.0s, write_matrices 12m30s, validation 80.5s; total 13m56s",
        "  validation: passed; report /w/2026-11-22/validation_report.json",
        "  build report: /w/2026-11-22/build_report.json",
        "  log: /w/2026-11-22/build.log",
    ]
    unvalidated = json.loads(json.dumps({**SUMMARY, "validation": None}))
    lines = summary_lines(unvalidated)
    assert lines[4] == "  time: stage_and_inspect 6.0s, write_matrices 12m30s; total 12m36s"
    assert lines[5] == (
        "  validation: not run; run python -m census_builder validate --version 2026-11-22 --workdir /w"
    )


def test_store_summary_never_fails_a_complete_build(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = BuildPaths(tmp_path / "v")
    paths.root.mkdir()
    paths.report.write_text('{"status": "complete"}')
    with caplog.at_level(logging.WARNING, logger="census_builder"):
        assert store_summary(paths) is None  # no stage records
    assert caplog.messages == [
        f"could not write the build summary to {paths.report}: "
        f"[Errno 2] No such file or directory: '{paths.stages / 'stage_and_inspect.json'}'"
    ]
    assert read_json(paths.report) == {"status": "complete"}

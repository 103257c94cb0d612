"""Typed stage outputs: each reads its recorded JSON back unchanged (a resumed build reads older records)."""

from __future__ import annotations

import json

from census_builder.build.outputs import (
    AxesPlan,
    Inspected,
    MatricesWritten,
    ReleaseFinalized,
    TablesWritten,
    read_output,
)
from census_builder.build.state import StageRecord
from tests.conftest import BuiltRelease


def test_recorded_outputs_round_trip(example_release: BuiltRelease) -> None:
    stages = StageRecord(example_release.paths)
    typed = {
        Inspected.stage: read_output(stages, Inspected).to_json(),
        AxesPlan.stage: read_output(stages, AxesPlan).to_json(),
        MatricesWritten.stage: read_output(stages, MatricesWritten).to_json(),
        TablesWritten.stage: read_output(stages, TablesWritten).to_json(),
        ReleaseFinalized.stage: read_output(stages, ReleaseFinalized).to_json(),
    }
    for stage, outputs in typed.items():
        recorded = json.loads((example_release.paths.stages / f"{stage}.json").read_text())["outputs"]
        assert json.loads(json.dumps(outputs)) == recorded, stage


def test_a_record_written_before_the_types_reads_back() -> None:
    """The JSON written by census_builder before stage outputs were typed (keys as then)."""
    axes = {
        "timestamp_base": 1_700_000_000_000,
        "datasets": [{"dataset_id": "a", "organism": "homo_sapiens", "joinid": 0, "obs_offset": 0, "n_cells": 5}],
        "organisms": {"homo_sapiens": {"n_obs": 5, "n_var": 7}},
        "excluded": [{"dataset_id": "b", "reason": "no cells of a Census organism"}],
    }
    plan = AxesPlan.from_json(axes)
    assert plan.members("homo_sapiens")[0].obs_offset == 0 and plan.organisms["homo_sapiens"].n_var == 7
    assert plan.to_json() == axes
    assert Inspected.from_json({"datasets": ["a", "b"]}).invalid == ()
    assert ReleaseFinalized.from_json({"note": "moved"}).to_json() == {"note": "moved"}

"""``census_builder validate`` resumes an interrupted validation: the validator keeps its checkpoint beside the
build's validation_report.json, whichever command started it."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from census_builder.cli import main
from tests.conftest import BuiltRelease
from validation.checkpoint import Checkpoint


class Interrupted(Exception):  # noqa: N818 - stands for a KeyboardInterrupt
    pass


@pytest.fixture
def validation_logger_level() -> Iterator[None]:
    logger = logging.getLogger("validation")
    level = logger.level
    yield
    logger.setLevel(level)


def test_validate_resumes_where_an_interrupted_validation_stopped(
    example_release: BuiltRelease,
    validation_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    validation_logger_level: None,
) -> None:
    root = tmp_path / "example"
    shutil.copytree(example_release.paths.root, root)
    real = Checkpoint.save
    saved = [0]

    def save(self: Checkpoint, key: str, result: Any) -> None:
        if saved[0] == 4:
            raise Interrupted
        real(self, key, result)
        saved[0] += 1

    monkeypatch.setattr(Checkpoint, "save", save)
    argv = [
        "validate",
        "--version",
        "example",
        "--workdir",
        str(tmp_path),
        "--scheduler",
        validation_client.scheduler.address,
    ]
    with pytest.raises(Interrupted):
        main.main(argv)
    assert len(list((root / ".validation" / "tasks").glob("*.pkl"))) == 4
    monkeypatch.undo()

    assert main.main(argv) == 0
    err = capsys.readouterr().err
    assert "plan_datasets: resuming: 4 of 14 tasks already checked" in err
    assert "[check_contents] " in err  # the validator's progress lines reach the builder's console
    assert not (root / ".validation").exists()
    doc = json.loads((root / "validation_report.json").read_text(encoding="utf-8"))
    assert doc["passed"] is True and set(doc["source_checksums"]) == {
        row.split(",")[0] for row in (root / "manifest.csv").read_text(encoding="utf-8").splitlines()[1:] if row
    }

"""A resumed build must keep the Census schema it started with; --restart starts over with another."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from census_builder.build.pipeline import BuildConfig, build
from census_builder.errors import BuildStateError, PreflightError
from census_builder.testing.synthetic_7 import DatasetSpec7, write_corpus_7


def test_another_schema_is_refused_then_restart_builds_it(tmp_path: Path) -> None:
    manifest = write_corpus_7(tmp_path / "corpus", [DatasetSpec7("h7", n_cells=20, n_genes=20)])
    config = BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", workers=1, schema_version="1.3.0")
    with pytest.raises(
        PreflightError, match=re.escape("dataset schema version is '7.0.0'; Census schema 1.3.0 requires")
    ):
        build(config)  # a 1.3.0 build of 7.0.0 files stops in preflight, unfinished
    root = tmp_path / "w" / "v"
    with pytest.raises(BuildStateError) as info:
        build(replace(config, schema_version="2.4.0"))
    assert str(info.value) == (
        f"{root} holds an unfinished build of Census schema 1.3.0, not 2.4.0; resume it with --census-schema 1.3.0, "
        "or discard it and build Census schema 2.4.0 from scratch: add --restart to this command (or build another "
        "--version)"
    )
    paths = build(replace(config, schema_version="2.4.0", restart=True))
    report = json.loads(paths.report.read_text(encoding="utf-8"))
    assert (report["status"], report["census_schema_version"]) == ("complete", "2.4.0")

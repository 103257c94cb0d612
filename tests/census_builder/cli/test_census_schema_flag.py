"""``--census-schema``: the flag of the schema_version setting on build, example and config."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import pytest

from census_builder.cli import main
from census_builder.testing.synthetic_7 import example_gene_expression_specs_7, example_specs_7
from census_builder.testing.synthetic_spatial import example_spatial_specs


@pytest.fixture(autouse=True)
def logging_restored(restore_logging: None) -> None:
    """Every test here runs main(), which configures logging."""


def _schema_row(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main.main(["config", *argv]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("schema_version "))
    return row.split(None, 2)


def test_config_shows_the_flag_the_environment_and_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _schema_row(capsys, []) == ["schema_version", "1.3.0", "default"]
    assert _schema_row(capsys, ["--census-schema", "2.4.0"]) == ["schema_version", "2.4.0", "flag --census-schema"]
    monkeypatch.setenv("CENSUS_BUILDER_SCHEMA_VERSION", "2.4.0")
    assert _schema_row(capsys, []) == ["schema_version", "2.4.0", "environment CENSUS_BUILDER_SCHEMA_VERSION"]
    assert _schema_row(capsys, ["--census-schema", "1.3.0"]) == ["schema_version", "1.3.0", "flag --census-schema"]


def test_an_unknown_schema_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main.main(["build", "--census-schema", "9.9.9", "--version", "v", "--manifest", "m.csv"])
    assert info.value.code == 2
    assert (
        "argument --census-schema: '9.9.9' is not a Census schema version this builder has (1.3.0, 2.4.0)"
        in capsys.readouterr().err
    )


def test_example_with_2_4_0_writes_the_7_0_0_corpus_with_spatial_datasets(tmp_path: Path) -> None:
    assert main.main(["example", "--census-schema", "2.4.0", "--out", str(tmp_path / "c")]) == 0
    with (tmp_path / "c" / "manifest.csv").open(newline="", encoding="utf-8") as f:
        ids = [row["dataset_id"] for row in csv.DictReader(f)]
    expected = [s.dataset_id for s in [*example_specs_7(), *example_gene_expression_specs_7()]]
    assert ids == expected + [s.dataset_id for s in example_spatial_specs()]
    for dataset_id in ids:
        with h5py.File(tmp_path / "c" / f"{dataset_id}.h5ad", "r") as h5:
            assert h5["uns/schema_version"][()].decode() == "7.0.0"

"""benchmarks.x_storage writes real rows of a release with each X storage setting and reports each file's size."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiledbsoma as soma

from benchmarks.x_storage import SETTINGS, main, measure, reads_table, time_reads
from tests.conftest import BuiltRelease

HUMAN = "census_data/homo_sapiens/ms/RNA/X"


def test_settings_are_measured_on_the_release_rows(example_release: BuiltRelease, tmp_path: Path) -> None:
    with soma.SparseNDArray.open(f"{example_release.soma_uri}/{HUMAN}/raw") as a:
        entries = sum(t.num_rows for t in a.read(coords=(slice(0, 99),)).tables())
    rows = measure(example_release.soma_uri, "homo_sapiens", 100, tmp_path, ["before", "chosen"])
    assert [r["setting"] for r in rows] == ["before", "chosen"]
    for r in rows:
        assert r["entries"] == entries > 0
        for layer in ("raw", "normalized"):
            assert r[layer]["a0_mib"] > 0 and r[layer]["d1_mib"] > 0
    assert list(tmp_path.iterdir()) == []  # every array written is removed again


def test_unknown_setting_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["/nowhere", "no such setting"])
    assert "unknown setting(s) ['no such setting']" in capsys.readouterr().err
    assert "chosen" in SETTINGS and "before" in SETTINGS


def test_reads_are_timed_on_every_kept_array(example_release: BuiltRelease, tmp_path: Path) -> None:
    measure(example_release.soma_uri, "homo_sapiens", 100, tmp_path, ["before", "chosen"], keep=True)
    arrays = {"other": f"{example_release.soma_uri}/{HUMAN}/raw", "before": str(tmp_path / "0-raw")}
    arrays["chosen"] = str(tmp_path / "1-raw")
    medians = time_reads(arrays, 100, repeats=1)
    assert list(medians) == ["50 genes", "row range", "scattered rows", "scan"]
    assert all(list(per) == ["other", "before", "chosen"] and min(per.values()) > 0 for per in medians.values())
    lines = reads_table(medians).splitlines()
    assert lines[0] == "| read | other s | before s | chosen s |" and lines[2].startswith("| 50 genes | ")

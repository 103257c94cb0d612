"""What the commands tell their user: the build's closing summary, validation progress inside ``validate``,
and the log files of ``validate``, ``publish`` and ``notes``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from census_builder.build.state import BuildPaths, read_json
from census_builder.cli import main
from census_builder.testing.synthetic import DatasetSpec, write_corpus
from tests.conftest import BuiltRelease


@pytest.fixture
def release_copy(example_release: BuiltRelease, tmp_path: Path) -> BuildPaths:
    """A writable copy of the example build (validate/publish/notes write beside it)."""
    shutil.copytree(example_release.paths.root, tmp_path / "wd" / "example")
    return BuildPaths.for_version(tmp_path / "wd", "example")


def test_build_prints_its_summary(tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("one", n_cells=60, n_genes=80)])
    argv = ["build", "--version", "v1", "--manifest", str(manifest), "--workdir", str(tmp_path / "wd")]
    assert main.main([*argv, "--workers", "1", "--no-validate"]) == 0
    out, err = capsys.readouterr()
    paths = BuildPaths.for_version(tmp_path / "wd", "v1")
    summary = read_json(paths.report)["summary"]
    cells = summary["organisms"]["homo_sapiens"]["cells"]
    lines = out.splitlines()
    assert lines[0].startswith(f"build v1 complete: {paths.soma} (") and lines[0].endswith(" on disk)")
    assert (
        lines[1]
        == f"  homo_sapiens: {cells:,} cells, {summary['organisms']['homo_sapiens']['genes']:,} genes, 1 dataset(s)"
    )
    assert lines[2] == "  datasets: 1 of 1 included"
    assert re.fullmatch(
        r"  time: stage_and_inspect [\d.]+s, plan_axes [\d.]+s, write_matrices [\d.]+s, write_tables [\d.]+s, "
        r"finalize_release [\d.]+s; total [\d.]+s",
        lines[3],
    )
    assert lines[4:] == [
        f"  validation: not run; run python -m census_builder validate --version v1 --workdir {paths.root.parent}",
        f"  build report: {paths.report}",
        f"  log: {paths.log}",
    ]
    assert "host check: needs " in err


def test_validate_shows_progress_and_logs_to_a_file(
    release_copy: BuildPaths, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["validate", "--version", "example", "--workdir", str(release_copy.root.parent), "--workers", "1"]
    assert main.main(argv) == 0
    err = capsys.readouterr().err
    total = sum(o["cells"] for o in read_json(release_copy.report)["summary"]["organisms"].values())
    # like the build stages: tasks done / total, cells, cells/s, elapsed
    progress = re.compile(
        rf"\[check_contents\] (\d+)/\1 tasks, {total:,}/{total:,} cells, [\d,]+ cells/s, elapsed \d:\d\d:\d\d"
    )
    assert any(progress.search(line) for line in err.splitlines()), err
    log = (release_copy.root / "validate.log").read_text()
    assert "[check_contents]" in log and "validation passed" in log
    assert read_json(release_copy.report)["summary"]["validation"]["passed"] is True


def test_publish_and_notes_log_to_files(release_copy: BuildPaths, tmp_path: Path, restore_logging: None) -> None:
    workdir = str(release_copy.root.parent)
    # not validated: publish refuses, and says so in publish.log as on stderr
    assert main.main(["publish", "--version", "example", "--workdir", workdir, "--to", str(tmp_path / "dest")]) == 1
    log = (release_copy.root / "publish.log").read_text()
    assert " ERROR census_builder: " in log and "valid" in log
    assert main.main(["notes", "--version", "example", "--workdir", workdir, "--out", str(tmp_path / "notes")]) == 0
    assert "notes: " in (release_copy.root / "notes.log").read_text()
    # a version that was never built gets no directory just for its log
    assert main.main(["publish", "--version", "nope", "--workdir", workdir, "--to", str(tmp_path / "dest")]) == 1
    assert not (release_copy.root.parent / "nope").exists()

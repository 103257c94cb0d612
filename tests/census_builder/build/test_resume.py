"""The CLI end to end: build, refuse a complete version, resume after a SIGKILL with an identical release."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.census_builder.release_content import assert_same_content
from tests.conftest import BuiltRelease


def _cli(*args: str, kill_at: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CENSUS_BUILDER_KILL_AT"}
    if kill_at:
        env["CENSUS_BUILDER_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "census_builder", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _build_args(manifest: Path, workdir: Path) -> list[str]:
    return [
        "build",
        "--version",
        "example",
        "--manifest",
        str(manifest),
        "--workdir",
        str(workdir),
        "--workers",
        "1",
        "--build-date",
        "2026-11-22",
        "--chunk-nnz",
        "4000",
        "--no-validate",
    ]


@pytest.mark.parametrize(
    "kill_at", ["after:stage_and_inspect", "matrix:after_chunks:3", "after:write_tables", "before:move_release"]
)
def test_resume_after_sigkill_gives_identical_release(
    tmp_path: Path, example_release: BuiltRelease, kill_at: str
) -> None:
    args = _build_args(example_release.manifest, tmp_path)
    first = _cli(*args, kill_at=kill_at)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    root = tmp_path / "example"
    assert not (root / "soma").exists(), "an interrupted build must not leave a release that looks complete"
    assert json.loads((root / "build_report.json").read_text())["status"] == "running"

    second = _cli(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "already done; skipping" in second.stderr
    assert json.loads((root / "build_report.json").read_text())["status"] == "complete"
    assert_same_content(str(root / "soma"), example_release.soma_uri)


def test_complete_release_is_refused(example_release: BuiltRelease, tmp_path: Path) -> None:
    args = _build_args(example_release.manifest, example_release.paths.root.parent)
    out = _cli(*args)
    assert out.returncode == 1
    assert "complete and immutable" in out.stderr


def test_example_command_writes_a_buildable_corpus(tmp_path: Path) -> None:
    out = _cli("example", "--out", str(tmp_path / "corpus"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "corpus" / "manifest.csv").is_file()
    assert len(list((tmp_path / "corpus").glob("*.h5ad"))) == 7


def test_cli_build_validates_by_default(tmp_path: Path, example_release: BuiltRelease) -> None:
    args = [a for a in _build_args(example_release.manifest, tmp_path) if a != "--no-validate"]
    out = _cli(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "PASS x_raw:" in out.stdout and "validation PASSED" in out.stdout
    report = json.loads((tmp_path / "example" / "validation_report.json").read_text())
    assert report["passed"] is True


def test_force_rebuild_builds_into_a_new_directory(tmp_path: Path, example_release: BuiltRelease) -> None:
    import shutil

    shutil.copytree(example_release.paths.root, tmp_path / "example")
    finished = (tmp_path / "example" / ".build" / "stages" / "finalize_release.json").read_bytes()
    out = _cli(*_build_args(example_release.manifest, tmp_path), "--force-rebuild")
    assert out.returncode == 0, out.stderr[-3000:]
    rebuilt = [p for p in tmp_path.iterdir() if p.name.startswith("example.rebuild-")]
    assert len(rebuilt) == 1 and (rebuilt[0] / "soma").is_dir()
    assert (tmp_path / "example" / ".build" / "stages" / "finalize_release.json").read_bytes() == finished
    assert_same_content(str(rebuilt[0] / "soma"), str(tmp_path / "example" / "soma"))

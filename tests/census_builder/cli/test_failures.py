"""Every failure ends with a command that works: restart after a preflight failure or with --restart,
Ctrl-C / SIGTERM (one line, report ``interrupted``, lock released, exit 130 / 143), an interrupted final
validation, ``--max-excluded``, ``-v`` after the subcommand, ``--about``, and ``validate`` after the
corpus moved."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths
from census_builder.cli import build as cli_build
from census_builder.cli import main
from census_builder.errors import BuildLockedError, BuildStateError, PreflightError, ReleaseExistsError
from census_builder.runtime import faults
from census_builder.testing.synthetic import DatasetSpec, write_corpus

MOUSE = "NCBITaxon:10090"


def _small_corpus(root: Path) -> Path:
    """Two contributing datasets (human, mouse) and one that contributes no cells."""
    return write_corpus(
        root,
        [
            DatasetSpec("human", n_cells=60, seed=11),
            DatasetSpec("mouse", n_cells=40, cell_organisms=(MOUSE,), gene_organisms=(MOUSE,), seed=12),
            DatasetSpec("filtered", n_cells=10, assays=("EFO:0008992",), seed=13),  # no cell passes the filters
        ],
    )


def _with_invalid(tmp_path: Path) -> Path:
    """The small corpus plus an unreadable file and a missing one: 2 of 5 datasets invalid."""
    manifest = _small_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "bad.h5ad").write_bytes(b"not an h5ad")
    with manifest.open("a") as f:
        f.write("bad,bad.h5ad,,,,\ngone,missing.h5ad,,,,\n")
    return manifest


def _build_argv(manifest: Path, workdir: Path, *extra: str) -> list[str]:
    return [
        "build", "--version", "v", "--manifest", str(manifest), "--workdir", str(workdir), "--workers", "1",
        "--chunk-nnz", "2000", "--build-date", "2026-11-22", *extra,
    ]  # fmt: skip


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_BUILDER_")}
    return {**env, **extra}


def _cli(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "census_builder", *argv],
        env=_cli_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()


@pytest.fixture
def logs() -> Iterator[_Records]:
    """census_builder's log records (main.main replaces the root logger's handlers, pytest's among them)."""
    ours = logging.getLogger("census_builder")
    handler, level = _Records(), ours.level
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    yield handler
    ours.removeHandler(handler)
    ours.setLevel(level)


def _messages(logs: _Records, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in logs.records if r.levelno >= level]


# -- 1. restart ---------------------------------------------------------------------------------------------


def test_preflight_failure_then_exclude_invalid_restarts_and_max_excluded(
    tmp_path: Path, logs: _Records, restore_logging: None
) -> None:
    manifest = _with_invalid(tmp_path)
    workdir = tmp_path / "w"
    paths = BuildPaths.for_version(workdir, "v")
    with pytest.raises(PreflightError, match="re-run with --exclude-invalid"):
        build(BuildConfig(version="v", manifest=manifest, workdir=workdir, workers=1, chunk_nnz=2000))

    # The advice works: the build never wrote a release object, so it restarts with the new option; 2 of 5
    # invalid is more than the default --max-excluded 0.1: exit 3 before anything of the release is written.
    assert main.main(_build_argv(manifest, workdir, "--exclude-invalid", "--no-validate")) == 3
    msgs = _messages(logs)
    assert any(
        m.startswith(f"{paths.root}: the unfinished build wrote no release object yet; restarting it with the new")
        and "--exclude-invalid (False -> True)" in m
        for m in msgs
    ), msgs
    assert msgs[-1] == (
        "--exclude-invalid would leave out 2 of 5 datasets (40%), more than --max-excluded 0.1 allows: bad, gone. "
        "Nothing of the release was written. Fix those sources or the manifest, or re-run with --max-excluded 0.4 "
        "to build without them"
    )
    assert not paths.partial.exists() and not paths.soma.exists()
    report = json.loads(paths.report.read_text())
    assert report["status"] == "failed" and report["error"].startswith("TooManyExcludedError: ")
    assert report["excluded"]["count"] == 2 and report["excluded"]["of"] == 5
    assert [d["dataset_id"] for d in report["excluded"]["datasets"]] == ["bad", "gone"]

    # The suggested command builds without them and ends with the loud summary.
    logs.clear()
    assert main.main(_build_argv(manifest, workdir, "--exclude-invalid", "--max-excluded", "0.4", "--no-validate")) == 0
    warnings = _messages(logs, logging.WARNING)
    summary = "--exclude-invalid left out 2 of 5 dataset(s) (40%); the release does not contain them:"
    i = max(i for i, m in enumerate(warnings) if m == summary)  # at the end of the build, too
    assert warnings[i + 1].startswith(f"  excluded bad ({tmp_path / 'corpus' / 'bad.h5ad'}): not a readable HDF5")
    assert warnings[i + 2] == f"  excluded gone ({tmp_path / 'corpus' / 'missing.h5ad'}): file not found"
    report = json.loads(paths.report.read_text())
    assert report["status"] == "complete" and report["excluded"]["max_excluded"] == 0.4
    assert [p["dataset_id"] for p in report["inputs"]["invalid"]] == ["bad", "gone"]


def test_fixed_manifest_restarts_without_restart_flag(tmp_path: Path, logs: _Records) -> None:
    manifest = _with_invalid(tmp_path)
    workdir = tmp_path / "w"
    with pytest.raises(PreflightError):
        build(BuildConfig(version="v", manifest=manifest, workdir=workdir, workers=1))
    fixed = tmp_path / "corpus" / "fixed.csv"
    fixed.write_text("".join(manifest.read_text().splitlines(keepends=True)[:4]))  # header + the 3 good rows
    paths = build(BuildConfig(version="v", manifest=fixed, workdir=workdir, workers=1))
    assert paths.is_complete()
    said = [m for m in _messages(logs, logging.WARNING) if "restart" in m or "discard" in m]
    assert len(said) == 1 and "restarting it with the new inputs (manifest (" in said[0], said


def test_discard_run_state_deletes_only_the_builds_run_state(tmp_path: Path) -> None:
    from census_builder.build.restart import discard_run_state

    paths = BuildPaths(tmp_path / "w" / "v")
    outside = tmp_path / "outside"
    (outside / "data").mkdir(parents=True)
    (outside / "data" / "keep.txt").write_text("mine")
    for d in (paths.plans, paths.partial / "census_data", paths.chunks / "human", paths.h5ads):
        d.mkdir(parents=True)
    (paths.chunks / "human" / "000000.npz").write_bytes(b"x")
    (paths.state / "link").symlink_to(outside / "data")  # followed by nothing: the link goes, its target stays
    paths.lock.write_text("{}")
    paths.h5ad("human").write_bytes(b"staged")
    for f in (paths.report, paths.manifest, paths.log):
        f.write_text("x")
    removed = discard_run_state(paths, reason="test")
    assert sorted(removed) == [
        ".build/chunks", ".build/link", ".build/plan", ".build/soma.partial", "build_report.json", "manifest.csv"
    ]  # fmt: skip
    assert [p.name for p in paths.state.iterdir()] == ["lock"]
    assert (outside / "data" / "keep.txt").read_text() == "mine"
    assert paths.h5ad("human").read_bytes() == b"staged" and paths.log.is_file()

    paths.soma.mkdir()  # moved into place by an interrupted run, final stage not recorded: not discarded
    with pytest.raises(BuildStateError, match="without --restart to record it complete"):
        discard_run_state(paths, reason="test")
    assert paths.soma.is_dir()


def test_changed_inputs_after_release_objects_need_restart(tmp_path: Path) -> None:
    manifest = _small_corpus(tmp_path / "corpus")
    workdir = tmp_path / "w"
    (tmp_path / "w").mkdir()
    outside = tmp_path / "w" / "keep.txt"  # beside the version's directory: --restart never touches it
    outside.write_text("mine")
    first = _cli(_build_argv(manifest, workdir, "--no-validate"), CENSUS_BUILDER_KILL_AT="after:plan_axes")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    paths = BuildPaths.for_version(workdir, "v")
    assert paths.partial.is_dir()

    with pytest.raises(BuildStateError) as info:
        build(BuildConfig(version="v", manifest=manifest, workdir=workdir, workers=1, chunk_nnz=3000))
    assert str(info.value) == (
        f"{paths.root} holds an unfinished build that already wrote release objects, with other inputs: "
        "--chunk-nnz (2000 -> 3000). Resume it with its recorded manifest and options, or discard it and build "
        "from scratch with these inputs: add --restart to this command (or build another --version)"
    )
    assert paths.partial.is_dir()

    # --restart refuses while a live build holds the lock, and deletes nothing then.
    paths.lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(BuildLockedError, match="locked by a running build"):
        build(BuildConfig(version="v", manifest=manifest, workdir=workdir, workers=1, chunk_nnz=3000, restart=True))
    assert paths.partial.is_dir() and (paths.stages / "plan_axes.json").is_file()
    paths.lock.unlink()

    out = build(BuildConfig(version="v", manifest=manifest, workdir=workdir, workers=1, chunk_nnz=3000, restart=True))
    assert out.is_complete() and not paths.partial.exists()
    assert json.loads((paths.state / "inputs.json").read_text())["chunk_nnz"] == 3000
    assert outside.read_text() == "mine"
    assert json.loads(paths.report.read_text())["status"] == "complete"

    finished = (paths.stages / "finalize_release.json").read_bytes()
    with pytest.raises(ReleaseExistsError) as refused:
        build(BuildConfig(version="v", manifest=manifest, workdir=workdir, workers=1, restart=True))
    assert "complete and immutable: --restart discards only unfinished builds" in str(refused.value)
    assert "--force-rebuild" in str(refused.value)
    assert paths.is_complete() and (paths.stages / "finalize_release.json").read_bytes() == finished


# -- 2, 3. signals --------------------------------------------------------------------------------------------


def _signal_midway(
    argv: list[str], pause_at: str, signum: int, *, group: bool, tmp_path: Path
) -> tuple[int, list[str]]:
    """Run the CLI in its own process group, wait until it pauses at ``pause_at``, signal it (the whole group,
    as a terminal's Ctrl-C does, or the driver alone, as ``kill`` does); return exit status and stderr lines."""
    pause_dir = tmp_path / "pause"
    env = _cli_env(CENSUS_BUILDER_PAUSE_AT=pause_at, CENSUS_BUILDER_PAUSE_DIR=str(pause_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "census_builder", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        paused = False
        while not paused and proc.poll() is None and time.monotonic() < deadline:
            try:
                faults.wait_reached(pause_dir, pause_at, paused=True, timeout=0.5)
                paused = True
            except TimeoutError:
                pass
        assert paused, proc.communicate(timeout=60)[1][-3000:]
        time.sleep(0.3)
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err.splitlines()


@pytest.mark.parametrize(
    ("signum", "group", "code", "name"),
    [(signal.SIGINT, True, 130, "Ctrl-C (SIGINT)"), (signal.SIGTERM, False, 143, "SIGTERM")],
)
def test_ctrl_c_and_sigterm_end_with_one_clean_line(
    tmp_path: Path, signum: int, group: bool, code: int, name: str
) -> None:
    manifest = _small_corpus(tmp_path / "corpus")
    argv = _build_argv(manifest, tmp_path / "w", "--no-validate")
    # Paused inside a worker's chunk task: the worker is busy when the signal comes.
    rc, lines = _signal_midway(argv, "chunk:human#0", signum, group=group, tmp_path=tmp_path)
    text = "\n".join(lines)
    assert rc == code, text[-3000:]
    assert "Traceback" not in text and "WARNING" not in text, text
    assert lines[-1].endswith(
        f"ERROR   build interrupted by {name}; continue with: python -m census_builder {' '.join(argv)}"
    ), text
    after = [ln for ln in lines if "[write_matrices]" not in ln and "[stage_and_inspect]" not in ln]
    assert len(after) <= 8, text  # startup lines and the one line; no worker noise
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    report = json.loads(paths.report.read_text())
    assert report["status"] == "interrupted" and report["error"] == f"interrupted by {signal.Signals(signum).name}"
    assert not paths.lock.exists()


def test_ctrl_c_during_final_validation_says_validate(tmp_path: Path) -> None:
    manifest = _small_corpus(tmp_path / "corpus")
    argv = _build_argv(manifest, tmp_path / "w")
    rc, lines = _signal_midway(argv, "validate:start", signal.SIGINT, group=True, tmp_path=tmp_path)
    validate = f"python -m census_builder validate --version v --workdir {tmp_path / 'w'}"
    assert rc == 130, "\n".join(lines)
    assert lines[-1].endswith(
        f"ERROR   validation of the complete release v interrupted by Ctrl-C (SIGINT); continue with: {validate}"
    ), "\n".join(lines)
    assert "Traceback" not in "\n".join(lines)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    assert paths.is_complete() and not paths.lock.exists()
    assert json.loads(paths.report.read_text())["status"] == "complete"  # the build itself had finished
    # That validate command passing is shown by test_validate_after_the_corpus_moved_reads_the_staged_copies.


def test_failed_validation_points_to_the_way_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: _Records
) -> None:
    class Failed:
        passed = False
        failed = ("x_raw",)

        def lines(self) -> list[str]:
            return ["FAIL x_raw: ..."]

    import validation

    paths = BuildPaths(tmp_path / "v")
    monkeypatch.setattr(validation, "validate_release", lambda *a, **k: Failed())
    monkeypatch.setattr("census_builder.sources.staged.validation_manifest", lambda p: p.manifest)
    monkeypatch.setattr("census_builder.runtime.cluster.dask_client", lambda **k: contextlib.nullcontext())
    assert cli_build._run_validation(paths, workers=1, scheduler=None) == 1
    assert _messages(logs, logging.ERROR)[-1] == (
        f"validation FAILED (x_raw); see {paths.validation_report}. The release stays unpublishable; what to do: "
        "README, 'When validation fails' (fix the cause, then python -m census_builder validate --version v "
        f"--workdir {tmp_path}; or build again with --force-rebuild or a new --version)"
    )
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert "### When validation fails" in readme


# -- 4. -v after the subcommand, --about ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "--version", "v", "--manifest", "m.csv"],
        ["validate", "--version", "v"],
        ["example"],
        ["publish", "--version", "v", "--to", "d"],
        ["release", "alias", "latest", "v", "--to", "d"],
        ["release", "list", "--to", "d"],
        ["notes", "--version", "v"],
    ],
)
def test_verbose_before_or_after_the_subcommand(argv: list[str]) -> None:
    parser = main._parser()
    assert parser.parse_args(argv).verbose is False
    assert parser.parse_args(["-v", *argv]).verbose is True
    assert parser.parse_args([*argv, "-v"]).verbose is True
    assert parser.parse_args([*argv, "--verbose"]).verbose is True


def test_about(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import version

    from census_builder import __version__

    monkeypatch.setenv("CENSUS_BUILDER_GIT_COMMIT", "0123abc")
    with pytest.raises(SystemExit) as info:
        main.main(["--about"])
    assert info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        f"census-builder {__version__}",
        "git commit: 0123abc",
        "Census schema versions it builds: 1.3.0, 2.4.0",
    ]
    for lib in ("tiledbsoma", "anndata", "dask"):
        assert f"{lib} {version(lib)}" in lines
    build_version = main._parser().parse_args(["build", "--version", "2026-11-22", "--manifest", "m.csv"]).version
    assert build_version == "2026-11-22"  # --version stays the release version


# -- 5. validate after the corpus moved ---------------------------------------------------------------------


def _rows(manifest: Path) -> dict[str, str]:
    with manifest.open(newline="") as f:
        return {r["dataset_id"]: r["h5ad_uri"] for r in csv.DictReader(f)}


def test_validate_after_the_corpus_moved_reads_the_staged_copies(
    tmp_path: Path, logs: _Records, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _small_corpus(tmp_path / "corpus")
    workdir = tmp_path / "w"
    paths = build(BuildConfig(version="v", manifest=manifest, workdir=workdir, workers=1))
    assert _rows(paths.manifest) == {
        "human": "h5ads/human.h5ad",
        "mouse": "h5ads/mouse.h5ad",
        "filtered": ".build/no_cells/filtered.h5ad",
    }
    assert sorted(p.name for p in paths.h5ads.iterdir()) == ["human.h5ad", "mouse.h5ad"]
    shutil.rmtree(tmp_path / "corpus")

    assert main.main(["validate", "--version", "v", "--workdir", str(workdir), "--workers", "1"]) == 0
    assert f"validation reads the build's own copies of its sources, as {paths.manifest} names them" in _messages(logs)
    assert "validation PASSED" in capsys.readouterr().out

    # A build whose manifest.csv names the original corpus (as builds before this change wrote it), gone now.
    with paths.manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with paths.manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "h5ad_uri": str(tmp_path / "corpus" / f"{r['dataset_id']}.h5ad")} for r in rows)
    logs.clear()
    assert main.main(["validate", "--version", "v", "--workdir", str(workdir), "--workers", "1"]) == 0
    assert (
        f"3 source(s) named in {paths.manifest} are gone or differ from the build's copies (filtered, human, mouse); "
        f"validation reads the staged copies under {paths.root} instead (manifest: "
        f"{paths.state / 'validation_manifest.csv'})"
    ) in _messages(logs)


def test_an_interrupted_force_rebuild_is_continued_by_the_same_command(tmp_path: Path) -> None:
    from census_builder.build.pipeline import _unfinished_rebuild

    paths = BuildPaths(tmp_path / "v")
    assert _unfinished_rebuild(paths) is None
    done, older, latest = (tmp_path / f"v.rebuild-2026112{i}T000000Z" for i in (1, 2, 3))
    for d in (done, older, latest):
        d.mkdir()
    (done / "soma").mkdir()
    (done / ".build" / "stages").mkdir(parents=True)
    (done / ".build" / "stages" / "finalize_release.json").write_text("{}")
    (tmp_path / "v2.rebuild-20261124T000000Z").mkdir()  # another version's
    assert _unfinished_rebuild(paths) == BuildPaths(latest)

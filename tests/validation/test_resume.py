"""An interrupted validation resumes from the checkpoint beside its report; a changed release, source or
validator starts afresh; the report records a checksum of every source; ``python -m validation`` checks its
inputs before touching anything, and a Ctrl-C prints one line, leaves no temp files and is resumed by the
same command."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BuiltRelease
from tests.validation import corruptions as c
from validation import ValidationReport, validate_release
from validation.__main__ import Terminated, main
from validation.checkpoint import MISSING, Checkpoint, checkpoint_dir, fingerprint
from validation.errors import CheckpointBusyError
from validation.inputs.manifest import fetch_sources, read_manifest


class Interrupted(Exception):  # noqa: N818 - stands for a KeyboardInterrupt
    """Stands for a Ctrl-C or a kill at a chosen point."""


class Counting:
    """A dask client that counts the tasks submitted through it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return self.client.submit(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _copy(release: BuiltRelease, tmp_path: Path) -> Path:
    dest = tmp_path / "example"
    shutil.copytree(release.paths.root, dest, ignore=shutil.ignore_patterns(".build"))
    return dest / "soma"


def _stop_after_saving(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Checkpoint.save records ``n`` results, then the validation stops."""
    real = Checkpoint.save
    saved = [0]

    def save(self: Checkpoint, key: str, result: Any) -> None:
        if saved[0] >= n:
            raise Interrupted
        real(self, key, result)
        saved[0] += 1

    monkeypatch.setattr(Checkpoint, "save", save)


def _verdict(report: ValidationReport) -> dict[str, Any]:
    doc = report.to_json()
    del doc["seconds"]
    return doc


def test_an_interrupted_validation_resumes_where_it_stopped(
    example_release: BuiltRelease,
    validation_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="validation")
    soma = _copy(example_release, tmp_path)
    tasks = soma.parent / ".validation" / "tasks"
    n_plan = 2 * len(read_manifest(example_release.manifest).sources)  # a plan and a checksum task per dataset
    _stop_after_saving(monkeypatch, n_plan + 3)  # in check_contents, after 3 of its tasks
    with pytest.raises(Interrupted):
        validate_release(str(soma), example_release.manifest, client=validation_client)
    assert len(list(tasks.glob("*.pkl"))) == n_plan + 3
    assert not (soma.parent / "validation_report.json").exists()
    monkeypatch.undo()

    resumed = Counting(validation_client)
    report = validate_release(str(soma), example_release.manifest, client=resumed)
    assert report.passed, report.failed
    assert f"plan_datasets: resuming: {n_plan} of {n_plan} tasks already checked" in caplog.text
    # the first 3 tasks of check_contents are its cell-set tasks (they run before the chunk tasks)
    assert re.search(r"check_contents \(cells\): resuming: 3 of \d+ tasks already checked", caplog.text)
    assert not (soma.parent / ".validation").exists()  # complete: the checkpoint is gone

    fresh = Counting(validation_client)
    again = validate_release(str(soma), example_release.manifest, client=fresh)
    assert resumed.submitted == fresh.submitted - n_plan - 3
    assert _verdict(again) == _verdict(report)
    assert json.loads((soma.parent / "validation_report.json").read_text(encoding="utf-8")) == again.to_json()


def test_a_changed_release_is_checked_afresh(
    example_release: BuiltRelease,
    validation_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every task of the untouched release is recorded; then one value changes: nothing recorded is reused."""
    caplog.set_level("INFO", logger="validation")
    soma = _copy(example_release, tmp_path)

    def stop(self: ValidationReport, path: Path) -> None:
        raise Interrupted

    monkeypatch.setattr(ValidationReport, "write", stop)
    with pytest.raises(Interrupted):
        validate_release(str(soma), example_release.manifest, client=validation_client)
    monkeypatch.undo()
    assert len(list((soma.parent / ".validation" / "tasks").glob("*.pkl"))) > 10
    changed = c.perturb_raw(soma)
    report = validate_release(str(soma), example_release.manifest, client=validation_client)
    assert "is for another release, manifest, source or validator version: starting afresh" in caplog.text
    assert "resuming" not in caplog.text
    assert report.failed == ["x_raw"]
    [finding] = report.check("x_raw").findings
    assert (finding.dataset_id, finding.observation_joinid, finding.feature_id) == (
        changed.dataset_id,
        changed.observation_joinid,
        changed.feature_id,
    )


def test_the_fingerprint_follows_release_sources_options_and_manifest(
    example_release: BuiltRelease, tmp_path: Path
) -> None:
    soma = _copy(example_release, tmp_path)
    corpus = tmp_path / "corpus"
    shutil.copytree(example_release.corpus, corpus)
    manifest = read_manifest(corpus / "manifest.csv")
    options = {"chunk_entries": 4_000_000, "task_rows": 16_384, "schema": "1.3.0"}
    first = fingerprint(str(soma), manifest, options)
    assert fingerprint(str(soma), manifest, options) == first
    assert fingerprint(f"file://{soma}", manifest, options) == first
    assert fingerprint(str(soma), manifest, {**options, "chunk_entries": 2000}) != first
    release_file = next(p for p in (soma / "census_info").rglob("*") if p.is_file())
    st = release_file.stat()
    os.utime(release_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = fingerprint(str(soma), manifest, options)
    assert second != first
    source = corpus / "human-smartseq.h5ad"
    shutil.copy(source, corpus / "tmp.h5ad")
    os.replace(corpus / "tmp.h5ad", source)  # the same bytes under a new inode, as rsync and re-uploads do
    third = fingerprint(str(soma), manifest, options)
    assert third != second
    (corpus / "manifest.csv").write_text((corpus / "manifest.csv").read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert fingerprint(str(soma), manifest, options) != third
    assert fingerprint("s3://bucket/release/soma", manifest, options) != fingerprint(
        "s3://bucket/release/soma", manifest, options
    )  # a remote release is never resumed


def test_a_second_validation_beside_the_same_report_is_refused(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    soma = _copy(example_release, tmp_path)
    report = soma.parent / "validation_report.json"
    report.write_text('{"passed": true}\n', encoding="utf-8")
    running = Checkpoint.open(checkpoint_dir(report), "another run")
    try:
        with pytest.raises(CheckpointBusyError, match=rf"another validation \(pid {os.getpid()}\) is running"):
            validate_release(str(soma), example_release.manifest, client=validation_client)
    finally:
        running.close()
    assert report.read_text(encoding="utf-8") == '{"passed": true}\n'


def test_the_report_records_a_checksum_of_every_source(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    soma = _copy(example_release, tmp_path)
    report = validate_release(str(soma), example_release.manifest, client=validation_client)
    doc = json.loads((soma.parent / "validation_report.json").read_text(encoding="utf-8"))
    manifest = read_manifest(example_release.manifest)
    expected = {}
    for s in manifest.sources:
        path = manifest.local_path(s)
        expected[s.dataset_id] = {
            "path": str(path),
            "size": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    assert doc["source_checksums"] == expected
    assert report.source_checksums == expected


def test_cli_checks_its_inputs_before_touching_anything(
    example_release: BuiltRelease, tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    soma = _copy(example_release, tmp_path)
    report = soma.parent / "validation_report.json"
    report.write_text('{"passed": true}\n', encoding="utf-8")
    assert main([str(soma), "--manifest", str(tmp_path / "absent.csv")]) == 2
    assert f"error: cannot read manifest {tmp_path / 'absent.csv'}" in capsys.readouterr().err
    assert report.read_text(encoding="utf-8") == '{"passed": true}\n'  # the earlier verdict is kept
    assert not (soma.parent / ".validation").exists()

    nowhere = tmp_path / "nowhere" / "v1" / "soma"
    assert main([str(nowhere), "--manifest", str(example_release.manifest)]) == 2
    assert f"error: no release at {nowhere}: {nowhere} is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("interrupt", "status", "what"), [(KeyboardInterrupt, 130, "interrupted"), (Terminated, 143, "terminated")]
)
def test_cli_interrupted_prints_how_to_resume(
    example_release: BuiltRelease,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    interrupt: type[BaseException],
    status: int,
    what: str,
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise interrupt

    monkeypatch.setattr("validation.core.validate_release", interrupted)
    soma = _copy(example_release, tmp_path)
    argv = [str(soma), "--manifest", str(example_release.manifest), "--workers", "1"]
    assert main(argv) == status
    assert capsys.readouterr().err == (
        f"validation {what}; finished checks are kept: run the same command to "
        f"resume: python -m validation {soma} --manifest {example_release.manifest} "
        "--workers 1\n"
    )


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


@pytest.mark.slow  # two runs of python -m validation with their own clusters: ~15-30 s
def test_ctrl_c_prints_one_line_leaves_no_temp_files_and_the_same_command_resumes(
    example_release: BuiltRelease, tmp_path: Path
) -> None:
    soma = _copy(example_release, tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    command = [
        sys.executable,
        "-m",
        "validation",
        str(soma),
        "--manifest",
        str(example_release.manifest),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    tasks = soma.parent / ".validation" / "tasks"
    deadline = time.monotonic() + 180
    while not (tasks.is_dir() and any(tasks.glob("*.pkl"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground process group
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Error" not in err, err
    [line] = [ln for ln in err.splitlines() if not LOG_LINE.match(ln)]
    assert line.startswith(
        "validation interrupted; finished checks are kept: run the same command to resume: "
        f"python -m validation {soma} --manifest"
    )
    assert list(tmp.iterdir()) == []
    assert not (soma.parent / "validation_report.json").exists()

    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\w+: resuming: \d+ of \d+ tasks already checked", done.stderr), done.stderr
    assert "validation PASSED" in done.stdout
    assert not (soma.parent / ".validation").exists()
    assert list(tmp.iterdir()) == []


def test_checkpoint_records_reopen_tear_and_expire(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / ".validation"
    cp = Checkpoint.open(root, "fp-1")
    cp.save("a", {"findings": [1, 2]})
    cp.save("b", 2)
    (cp.tasks / ".c.pkl.tmp").write_bytes(b"half a rec")  # a record being written when the run was killed
    cp.close()
    cp = Checkpoint.open(root, "fp-1")
    assert cp.recorded == 2 and not (cp.tasks / ".c.pkl.tmp").exists()
    assert cp.load("a") == {"findings": [1, 2]} and cp.load("c") is MISSING
    (cp.tasks / "b.pkl").write_bytes(b"torn")
    assert cp.load("b") is MISSING
    assert "ignoring unreadable checkpoint record" in caplog.text
    cp.close()
    cp = Checkpoint.open(root, "fp-2")  # another release, manifest, source or validator: nothing is reused
    assert cp.recorded == 0 and cp.load("a") is MISSING
    cp.remove()
    assert not root.exists()


def test_s3_sources_are_downloaded_into_the_checkpoint_once(tmp_path: Path) -> None:
    manifest_path = tmp_path / "manifest.csv"
    manifest_path.write_text("dataset_id,h5ad_uri\nd1,s3://bucket/corpus/d1.h5ad\n", encoding="utf-8")
    manifest = read_manifest(manifest_path)

    class FakeS3:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, str]] = []

        def download_file(self, bucket: str, key: str, dest: str) -> None:
            self.calls.append((bucket, key, dest))
            Path(dest).write_bytes(b"h5ad")

    s3 = FakeS3()
    sources = tmp_path / ".validation" / "sources"
    sources.mkdir(parents=True)
    assert fetch_sources(manifest, sources, client=s3) == {"d1": (sources / "d1.h5ad", "")}
    assert fetch_sources(manifest, sources, client=s3) == {"d1": (sources / "d1.h5ad", "")}  # a resumed run
    assert s3.calls == [("bucket", "corpus/d1.h5ad", str(sources / "d1.h5ad"))]

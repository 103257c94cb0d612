"""The build lock: atomic take-over of a dead holder's lock (one winner, forced interleaving through the
``lock:takeover`` fault point), with and without flock; who holds a lock; a wedged version's message."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from census_builder.build.state import BuildPaths, build_lock, live_holder
from census_builder.errors import BuildLockedError, BuildStateError
from census_builder.runtime import faults


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _stale_lock(paths: BuildPaths) -> dict[str, Any]:
    paths.state.mkdir(parents=True, exist_ok=True)
    holder = {"pid": _dead_pid(), "host": socket.gethostname(), "run_id": "dead-run", "workers": []}
    paths.lock.write_text(json.dumps(holder))
    return holder


class _Contender(threading.Thread):
    """Takes the lock and holds it until ``release`` is set; records its run_id or its error."""

    def __init__(self, paths: BuildPaths) -> None:
        super().__init__(daemon=True)
        self.paths = paths
        self.release = threading.Event()
        self.holding = threading.Event()
        self.run_id: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with build_lock(self.paths) as lock:
                self.run_id = lock.run_id
                self.holding.set()
                self.release.wait(60)
        except BaseException as e:
            self.error = e


@pytest.fixture
def pause_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "pause"
    monkeypatch.setenv(faults.PAUSE_DIR_ENV, str(d))
    monkeypatch.setenv(faults.PAUSE_ENV, "lock:takeover")
    return d


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "exclusive-create"])
def test_two_builders_taking_over_a_stale_lock_have_one_winner(
    tmp_path: Path, pause_dir: Path, monkeypatch: pytest.MonkeyPatch, flock: bool
) -> None:
    """A sees the dead holder and stops in the middle of its take-over; B, arriving then, also sees the dead
    holder but must wait for A's guard and then be refused: exactly one winner, A's lock in place."""
    if not flock:

        def no_flock(fd: int, op: int) -> None:
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(fcntl, "flock", no_flock)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    _stale_lock(paths)
    a, b = _Contender(paths), _Contender(paths)
    a.start()
    faults.wait_reached(pause_dir, "lock:takeover", paused=True)  # A decided the holder is dead
    b.start()
    faults.wait_reached(pause_dir, "lock:guard_busy")  # B decided so too and now waits for A's take-over
    assert b.is_alive() and b.run_id is None
    faults.resume(pause_dir, "lock:takeover")
    b.join(30)
    assert a.holding.wait(30) and a.error is None
    assert isinstance(b.error, BuildLockedError) and "is locked by a running build" in str(b.error)
    assert json.loads(paths.lock.read_text())["run_id"] == a.run_id
    a.release.set()
    a.join(30)
    assert not paths.lock.exists()
    assert not (paths.state / "lock.takeover.owner").exists()


def test_a_crashed_takeover_without_flock_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    _stale_lock(paths)
    owner = paths.state / "lock.takeover.owner"
    owner.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    message = r"crashed; no build runs there\. Remove .*lock\.takeover\.owner"
    with pytest.raises(BuildLockedError, match=message), build_lock(paths):
        pass
    owner.unlink()
    with build_lock(paths) as lock:
        assert json.loads(paths.lock.read_text())["run_id"] == lock.run_id


def test_live_holder(tmp_path: Path) -> None:
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    assert live_holder(paths) is None  # no lock
    _stale_lock(paths)
    assert live_holder(paths) is None  # a dead holder of this host
    paths.lock.write_text(json.dumps({"pid": 1, "host": "another-host", "run_id": "x"}))
    assert live_holder(paths) == {"pid": 1, "host": "another-host", "run_id": "x"}  # cannot tell: alive
    with build_lock(BuildPaths.for_version(tmp_path / "w", "u")) as lock:
        holder = live_holder(BuildPaths.for_version(tmp_path / "w", "u"))
        assert holder is not None and holder["run_id"] == lock.run_id


def test_a_superseded_run_leaves_its_successors_lock(tmp_path: Path) -> None:
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    with build_lock(paths):
        paths.lock.write_text(json.dumps({"pid": 1, "host": "h", "run_id": "successor"}))
    assert json.loads(paths.lock.read_text())["run_id"] == "successor"


def test_a_build_whose_partial_release_is_gone_says_how_to_start_over(tmp_path: Path) -> None:
    from census_builder.build.pipeline import BuildConfig, build
    from census_builder.testing.synthetic import DatasetSpec, write_corpus

    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("good", n_cells=20)])
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    paths.stages.mkdir(parents=True)
    (paths.stages / "plan_axes.json").write_text("{}")
    with pytest.raises(BuildStateError, match=r"soma\.partial\) is gone .* --restart"):
        build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", workers=1))


_CONTENDER = """
import sys
from pathlib import Path
from census_builder.errors import BuildLockedError
from census_builder.build.state import BuildPaths, build_lock
try:
    with build_lock(BuildPaths(Path(sys.argv[1]))) as lock:
        print("won", lock.run_id, flush=True)
        sys.stdin.read()  # hold the lock until the test closes stdin
except BuildLockedError as e:
    print("refused:", e, flush=True)
    sys.exit(3)
"""


def test_two_builder_processes_taking_over_a_stale_lock_have_one_winner(tmp_path: Path) -> None:
    """The same race between two processes: A paused inside its take-over, B waiting for A's guard."""
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    _stale_lock(paths)
    pause = tmp_path / "pause"
    env = {**os.environ, faults.PAUSE_DIR_ENV: str(pause), faults.PAUSE_ENV: "lock:takeover"}

    def contender() -> subprocess.Popen[str]:
        cmd = [sys.executable, "-c", _CONTENDER, str(paths.root)]
        return subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    a = contender()
    try:
        faults.wait_reached(pause, "lock:takeover", paused=True)
        b = contender()
        faults.wait_reached(pause, "lock:guard_busy")
        faults.resume(pause, "lock:takeover")
        out_b, _ = b.communicate(timeout=60)
        assert b.returncode == 3 and f"is locked by a running build (pid {a.pid} on" in out_b, out_b
        assert a.stdout is not None
        won = a.stdout.readline().split()
        assert won[0] == "won" and json.loads(paths.lock.read_text())["run_id"] == won[1]
        a.communicate("", timeout=60)
        assert a.returncode == 0 and not paths.lock.exists()
    finally:
        a.kill()
        a.wait()

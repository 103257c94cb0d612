"""Named fault-injection points for the reliability tests.

A test sets environment variables naming a point (e.g. ``after:plan_axes``, ``chunk:<dataset>#<i>``,
``before:move_release``, ``stage:<dataset>``, ``lock:takeover``, ``publish:object:<n>``):

- ``CENSUS_BUILDER_KILL_AT=<point>``: the process that reaches the point SIGKILLs itself, as a crash would.
- ``CENSUS_BUILDER_FAIL_AT=<point>`` (or ``<point>=tiledb``): the point raises the error a full disk gives,
  an ``OSError(ENOSPC)`` (or an exception carrying TileDB's "No space left on device" text).
- ``CENSUS_BUILDER_PAUSE_AT=<point>`` with ``CENSUS_BUILDER_PAUSE_DIR=<dir>``: the first thread or process
  to reach the point waits there until the test calls :func:`resume` (a race forced, not left to luck).
  With the directory set, every point also leaves ``<dir>/<point>.reached`` (see :func:`wait_reached`).

Nothing else reads these variables; unset, every point is a no-op.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from pathlib import Path

ENV = "CENSUS_BUILDER_KILL_AT"
FAIL_ENV = "CENSUS_BUILDER_FAIL_AT"
PAUSE_ENV = "CENSUS_BUILDER_PAUSE_AT"
PAUSE_DIR_ENV = "CENSUS_BUILDER_PAUSE_DIR"
PAUSE_TIMEOUT = 120.0  # a paused point gives up waiting after this long (a test that forgot to resume)


class InjectedStorageError(RuntimeError):
    """Stands in for a TileDB/tiledbsoma error whose only clue is its message."""


def point(name: str, path: str | os.PathLike[str] | None = None) -> None:
    """Mark a fault-injection point; ``path`` is the file an injected full-disk error names."""
    target = os.environ.get(ENV)
    if target and target == name:
        os.kill(os.getpid(), signal.SIGKILL)
    fail = os.environ.get(FAIL_ENV)
    if fail:
        where, _, kind = fail.partition("=")
        if where == name:
            where_text = os.fspath(path) if path is not None else ""
            if kind == "tiledb":
                raise InjectedStorageError(
                    f"[TileDB::VFS] Error: Cannot write to file '{where_text}'; No space left on device"
                )
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), where_text or None)
    pause_dir = os.environ.get(PAUSE_DIR_ENV)
    if pause_dir:
        _pause_point(Path(pause_dir), name, os.environ.get(PAUSE_ENV) == name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _pause_point(directory: Path, name: str, pause: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{_safe(name)}.reached").touch()
    if not pause:
        return
    try:  # one-shot: only the first to arrive pauses; later arrivals pass through
        os.close(os.open(directory / f"{_safe(name)}.paused", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    deadline = time.monotonic() + PAUSE_TIMEOUT
    while not (directory / f"{_safe(name)}.resume").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def wait_reached(directory: Path, name: str, *, paused: bool = False, timeout: float = 60.0) -> None:
    """Wait until some thread or process reached point ``name`` (``paused``: and is paused there)."""
    marker = directory / f"{_safe(name)}.{'paused' if paused else 'reached'}"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody reached fault point {name!r} within {timeout} s")
        time.sleep(0.01)


def resume(directory: Path, name: str) -> None:
    """Let the thread or process paused at point ``name`` go on."""
    (directory / f"{_safe(name)}.resume").touch()

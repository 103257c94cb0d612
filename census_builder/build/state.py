"""The build directory: where a version's release, sources, state and report live, and the build lock.

DIR/VERSION/
  soma/                the release (root SOMACollection); appears only when the build is complete
  h5ads/<id>.h5ad      the source files, as the datasets table names them
  build_report.json    machine-readable report (status, stages, datasets, warnings, figures)
  build.log            the build's debug log
  manifest.csv         the manifest's valid entries, local URIs absolute: what was built, what validation reads
  validation_report.json  written by validation
  .build/              run state: stage records, per-dataset plans, per-chunk results, the lock,
                       and soma.partial/ (the release while it is written)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from census_builder.errors import BuildLockedError
from census_builder.runtime import faults

logger = logging.getLogger(__name__)

FINAL_STAGE = "finalize_release"


@dataclass(frozen=True)
class BuildPaths:
    """Every path of one build directory, ``DIR/VERSION``."""

    root: Path  # DIR/VERSION

    @classmethod
    def for_version(cls, workdir: str | Path, version: str) -> BuildPaths:
        """Return the paths of ``version``'s build under ``workdir``."""
        return cls(Path(workdir).resolve() / version)

    @property
    def soma(self) -> Path:
        """The complete release (``DIR/VERSION/soma``)."""
        return self.root / "soma"

    @property
    def h5ads(self) -> Path:
        """The staged copies of the sources."""
        return self.root / "h5ads"

    @property
    def report(self) -> Path:
        """build_report.json."""
        return self.root / "build_report.json"

    @property
    def log(self) -> Path:
        """build.log."""
        return self.root / "build.log"

    @property
    def manifest(self) -> Path:
        """The valid entries of the build's manifest, local URIs made absolute (validation reads it)."""
        return self.root / "manifest.csv"

    @property
    def validation_report(self) -> Path:
        """validation_report.json."""
        return self.root / "validation_report.json"

    @property
    def state(self) -> Path:
        """The run state (``.build``): stage records, plans, chunk results, the lock."""
        return self.root / ".build"

    @property
    def partial(self) -> Path:
        """The release under construction."""
        return self.state / "soma.partial"

    @property
    def stages(self) -> Path:
        """One JSON record per finished stage."""
        return self.state / "stages"

    @property
    def plans(self) -> Path:
        """Per-dataset plans written by stage_and_inspect."""
        return self.state / "plan"

    @property
    def chunks(self) -> Path:
        """Per-chunk result files written by the matrix tasks."""
        return self.state / "chunks"

    @property
    def lock(self) -> Path:
        """The build lock."""
        return self.state / "lock"

    def h5ad(self, dataset_id: str) -> Path:
        """Return the staged copy of ``dataset_id``."""
        return self.h5ads / f"{dataset_id}.h5ad"

    def h5ad_relative(self, dataset_id: str) -> str:
        """Return the staged copy's path relative to ``DIR/VERSION`` (census_info's dataset_h5ad_path)."""
        return f"h5ads/{dataset_id}.h5ad"

    def is_complete(self) -> bool:
        """Tell whether the release is in place and its last step is recorded."""
        return self.soma.is_dir() and (self.stages / f"{FINAL_STAGE}.json").is_file()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """Return the JSON document at ``path``."""
    with path.open(encoding="utf-8") as f:
        return json.load(f)


class StageRecord:
    """Which stages finished, with their outputs, so that a re-run continues instead of starting over."""

    def __init__(self, paths: BuildPaths) -> None:
        self.dir = paths.stages

    def done(self, stage: str) -> bool:
        """Tell whether ``stage`` finished."""
        return (self.dir / f"{stage}.json").is_file()

    def get(self, stage: str) -> Any:
        """Return ``stage``'s record (its outputs under ``"outputs"``; build/outputs.py types them)."""
        return read_json(self.dir / f"{stage}.json")

    def mark(self, stage: str, outputs: Any) -> None:
        """Record that ``stage`` finished with ``outputs`` (JSON)."""
        write_json_atomic(self.dir / f"{stage}.json", {"stage": stage, "finished": time.time(), "outputs": outputs})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock_holder(paths: BuildPaths) -> dict[str, Any] | None:
    """Return what the build lock says about its holder: None if there is no lock, {} if it cannot be read."""
    try:
        holder = read_json(paths.lock)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def holder_is_dead(holder: dict[str, Any]) -> bool:
    """Tell whether the holder is known to be gone: a process of this host that no longer exists.

    A holder on another host (or an unreadable lock) may be alive: this host cannot tell.
    """
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)


def live_holder(paths: BuildPaths) -> dict[str, Any] | None:
    """Return the holder of the version's build lock if it may still be running, else None.

    None: no lock, or a dead holder's lock, which the next :func:`build_lock` takes over. For commands
    that must not run beside a build (e.g. discarding an unfinished build); to act on the version, hold
    :func:`build_lock` instead.
    """
    holder = read_lock_holder(paths)
    if holder is None or holder_is_dead(holder):
        return None
    return holder


@contextlib.contextmanager
def build_lock(paths: BuildPaths) -> Iterator[BuildLock]:
    """Hold the version's build lock; refuse if a live build holds it, take over a dead one's.

    The lock is ``.build/lock`` (JSON: pid, host, run_id, workers), created atomically (hard link of a
    complete file, or ``O_EXCL``). Taking over a dead holder's lock happens under a take-over guard (an
    exclusive ``flock`` of ``.build/lock.takeover``, or, where the filesystem has no flock, an exclusive
    create of ``.build/lock.takeover.owner``): the winner checks the lock still names the dead holder,
    kills the local dask workers it recorded (they outlive a SIGKILLed driver and would go on writing
    chunks) and replaces the lock with its own in one rename, so that the lock never disappears; a
    contender that waited for the guard then finds a live holder and is refused. Only a holder on this
    host can be judged dead, so the guard only has to exclude processes of one host, which ``flock``
    does on every filesystem that has it (NFS included).
    """
    paths.state.mkdir(parents=True, exist_ok=True)
    me: dict[str, Any] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "run_id": uuid.uuid4().hex,
    }
    _acquire(paths, me)
    try:
        yield BuildLock(paths.lock, me)
    finally:
        current = read_lock_holder(paths)
        if current is not None and current.get("run_id") == me["run_id"]:  # never remove a successor's lock
            with contextlib.suppress(FileNotFoundError):
                paths.lock.unlink()


def _create_exclusive(path: Path, content: dict[str, Any]) -> bool:
    """Create ``path`` holding ``content`` unless it exists; readers never see it empty."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(content, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as e:  # no hard links on this filesystem: an exclusive create instead
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(content, f)
        return True
    finally:
        tmp.unlink(missing_ok=True)


LOCK_ATTEMPTS = 5  # times the lock may change hands under us before giving up
UNREADABLE_LOCK_WAIT = 0.2  # seconds given to a writer of a lock that cannot be read yet
POLL_INTERVAL = 0.05  # seconds between looks at a guard or at workers being killed
ORPHAN_KILL_WAIT = 10.0  # seconds a take-over waits for a dead build's workers to be gone


def _acquire(paths: BuildPaths, me: dict[str, Any]) -> None:
    for _ in range(LOCK_ATTEMPTS):
        if _create_exclusive(paths.lock, me):
            return
        holder = read_lock_holder(paths)
        if holder is None:  # released in the meantime
            continue
        if holder_is_dead(holder):
            with _takeover_guard(paths, me):
                current = read_lock_holder(paths)
                if current != holder:  # released or taken over while we waited for the guard: look again
                    continue
                faults.point("lock:takeover")
                logger.warning("taking over stale build lock of dead process %s", holder["pid"])
                _kill_orphans(holder.get("workers", []))
                write_json_atomic(paths.lock, me)  # one rename: the lock is never absent
                return
        if not holder:  # a lock written by an older version right now, or garbage: give the writer a moment
            time.sleep(UNREADABLE_LOCK_WAIT)
            holder = read_lock_holder(paths) or {}
        raise BuildLockedError(
            f"{paths.root} is locked by a running build (pid {holder.get('pid')} on {holder.get('host')}); "
            f"wait for it to finish. If that process is gone for good, remove {paths.lock}."
        )
    raise BuildLockedError(
        f"could not take the build lock {paths.lock}: it changed hands {LOCK_ATTEMPTS} times; re-run the command"
    )


_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL, errno.EBADF)
TAKEOVER_WAIT = 30.0  # seconds a contender waits for another's take-over (which waits up to 10 s for workers)


@contextlib.contextmanager
def _takeover_guard(paths: BuildPaths, me: dict[str, Any]) -> Iterator[None]:
    guard = paths.state / "lock.takeover"
    fd = os.open(guard, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        has_flock = True
        deadline = time.monotonic() + TAKEOVER_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                faults.point("lock:guard_busy")
                if time.monotonic() > deadline:
                    raise BuildLockedError(  # noqa: B904 - waiting is the expected path, not a cause
                        f"another build is taking over the lock of {paths.root} (guard {guard}); re-run the command"
                    )
                time.sleep(POLL_INTERVAL)
            except OSError as e:
                if e.errno not in _NO_FLOCK:
                    raise
                logger.debug("no flock on %s (%s): guarding the take-over with an exclusive create", guard, e)
                has_flock = False
                break
        if not has_flock:
            with _exclusive_guard(paths, me):
                yield
            return
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive_guard(paths: BuildPaths, me: dict[str, Any]) -> Iterator[None]:
    """Guard a take-over where the filesystem has no flock: ``lock.takeover.owner``, created exclusively.

    One left by a take-over that crashed is not removed automatically (that would race): the message
    names it.
    """
    owner = paths.state / "lock.takeover.owner"
    deadline = time.monotonic() + TAKEOVER_WAIT
    while not _create_exclusive(owner, me):
        other = read_json_or_empty(owner)
        if other and holder_is_dead(other):
            raise BuildLockedError(
                f"a take-over of the build lock of {paths.root} by process {other.get('pid')} crashed; no build "
                f"runs there. Remove {owner} and re-run the command"
            )
        faults.point("lock:guard_busy")
        if time.monotonic() > deadline:
            raise BuildLockedError(
                f"another build is taking over the lock of {paths.root} ({owner}); re-run the command"
            )
        time.sleep(POLL_INTERVAL)
    try:
        yield
    finally:
        owner.unlink(missing_ok=True)


def read_json_or_empty(path: Path) -> dict[str, Any]:
    """Return the JSON object at ``path``, or {} when it is missing, unreadable or not an object."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class BuildLock:
    """The build lock this run holds: its file and what it says (run id, host, pid, workers)."""

    path: Path
    content: dict[str, Any]

    @property
    def run_id(self) -> str:
        """This run's token: tasks of a run that lost the lock refuse to write."""
        return str(self.content["run_id"])

    def record_workers(self, pids: list[int]) -> None:
        """Remember this run's local worker processes, for whoever takes over if this driver dies."""
        self.content["workers"] = sorted(pids)
        write_json_atomic(self.path, self.content)


def _kill_orphans(pids: list[int]) -> None:
    for pid in pids:
        if isinstance(pid, int) and _pid_alive(pid):
            logger.warning("killing dask worker %d left behind by the dead build", pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + ORPHAN_KILL_WAIT
    while any(isinstance(p, int) and _pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)


def check_owner(lock_path: str, run_id: str) -> None:
    """Raise unless the build lock still belongs to run ``run_id`` (a worker of a superseded run must not write)."""
    try:
        owner = read_json(Path(lock_path)).get("run_id")
    except (OSError, ValueError):
        owner = None
    if owner != run_id:
        raise BuildLockedError(f"build run {run_id} no longer holds {lock_path}; this task belongs to a dead run")

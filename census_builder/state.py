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

logger = logging.getLogger(__name__)

FINAL_STAGE = "finalize_release"


@dataclass(frozen=True)
class BuildPaths:
    root: Path  # DIR/VERSION

    @classmethod
    def for_version(cls, workdir: str | Path, version: str) -> BuildPaths:
        return cls(Path(workdir).resolve() / version)

    @property
    def soma(self) -> Path:
        return self.root / "soma"

    @property
    def h5ads(self) -> Path:
        return self.root / "h5ads"

    @property
    def report(self) -> Path:
        return self.root / "build_report.json"

    @property
    def log(self) -> Path:
        return self.root / "build.log"

    @property
    def manifest(self) -> Path:
        """The valid entries of the build's manifest, local URIs made absolute (validation reads it)."""
        return self.root / "manifest.csv"

    @property
    def validation_report(self) -> Path:
        return self.root / "validation_report.json"

    @property
    def state(self) -> Path:
        return self.root / ".build"

    @property
    def partial(self) -> Path:
        return self.state / "soma.partial"

    @property
    def stages(self) -> Path:
        return self.state / "stages"

    @property
    def plans(self) -> Path:
        return self.state / "plan"

    @property
    def chunks(self) -> Path:
        return self.state / "chunks"

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    def h5ad(self, dataset_id: str) -> Path:
        return self.h5ads / f"{dataset_id}.h5ad"

    def h5ad_relative(self, dataset_id: str) -> str:
        return f"h5ads/{dataset_id}.h5ad"

    def is_complete(self) -> bool:
        """The release is in place and its last step is recorded."""
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
    with path.open(encoding="utf-8") as f:
        return json.load(f)


class StageRecord:
    """Which stages finished, with their outputs, so that a re-run continues instead of starting over."""

    def __init__(self, paths: BuildPaths) -> None:
        self.dir = paths.stages

    def done(self, stage: str) -> bool:
        return (self.dir / f"{stage}.json").is_file()

    def get(self, stage: str) -> Any:
        return read_json(self.dir / f"{stage}.json")

    def mark(self, stage: str, outputs: Any) -> None:
        write_json_atomic(self.dir / f"{stage}.json", {"stage": stage, "finished": time.time(), "outputs": outputs})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def build_lock(paths: BuildPaths) -> Iterator[BuildLock]:
    """Hold the version's build lock; refuse if a live build holds it, take over a dead one's.

    Taking over a dead build's lock also kills the local dask worker processes it recorded: a worker
    outlives a SIGKILLed driver and would otherwise go on writing chunks into the release.
    """
    paths.state.mkdir(parents=True, exist_ok=True)
    me: dict[str, Any] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "run_id": uuid.uuid4().hex,
    }
    for _ in range(3):
        try:
            fd = os.open(paths.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = read_json(paths.lock)
            except (OSError, ValueError):
                holder = {}
            if (
                holder.get("host") == me["host"]
                and isinstance(holder.get("pid"), int)
                and not _pid_alive(holder["pid"])
            ):
                logger.warning("taking over stale build lock of dead process %s", holder["pid"])
                _kill_orphans(holder.get("workers", []))
                with contextlib.suppress(FileNotFoundError):
                    paths.lock.unlink()
                continue
            if not holder:  # a lock being written right now, or garbage: give the writer a moment
                time.sleep(0.2)
                with contextlib.suppress(OSError, ValueError):
                    holder = read_json(paths.lock)
            raise BuildLockedError(  # noqa: B904 - the FileExistsError is the expected signal, not a cause
                f"{paths.root} is locked by a running build (pid {holder.get('pid')} on {holder.get('host')}); "
                f"wait for it to finish. If that process is gone for good, remove {paths.lock}."
            )
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise BuildLockedError(f"could not take the build lock {paths.lock}")
    try:
        yield BuildLock(paths.lock, me)
    finally:
        with contextlib.suppress(FileNotFoundError):
            paths.lock.unlink()


@dataclass
class BuildLock:
    path: Path
    content: dict[str, Any]

    @property
    def run_id(self) -> str:
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
    deadline = time.monotonic() + 10
    while any(isinstance(p, int) and _pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def check_owner(lock_path: str, run_id: str) -> None:
    """Raise unless the build lock still belongs to run ``run_id`` (a worker of a superseded run must not write)."""
    try:
        owner = read_json(Path(lock_path)).get("run_id")
    except (OSError, ValueError):
        owner = None
    if owner != run_id:
        raise BuildLockedError(f"build run {run_id} no longer holds {lock_path}; this task belongs to a dead run")

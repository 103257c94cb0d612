"""Resuming an interrupted validation: each finished task's result, kept beside the report.

    DIR/VERSION/.validation/      (beside validation_report.json; removed when a validation completes)
        lock                      flock'ed by the running validation (its pid inside)
        fingerprint               what the records below are valid for
        tasks/<key>.pkl           one finished task's result (findings and figures), written atomically
        sources/                  S3 sources, downloaded once (a resumed run checks the same bytes)
        scratch/                  the local dask cluster's scratch space

The fingerprint covers the release (every file's path, size and mtime), the manifest (its bytes and each
local source's size, mtime and inode), the validator (its code and schema data) and the options that shape
the tasks; a checkpoint with another fingerprint is discarded, so a changed release or source never reuses
a stale result. A task's key is a hash of its function and a canonical description of its argument.
Records are pickles: the checkpoint is trusted like the release folder it lives in. Nothing is written
anywhere else, so a killed validation leaves its files here only, and the next run reuses or removes them.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import os
import pickle
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import census_schema
import numpy as np

from validation.errors import CheckpointBusyError
from validation.inputs.manifest import Manifest

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = ".validation"
VALIDATOR_DIR = Path(__file__).resolve().parent
MISSING: Any = object()  # load(): no record of that task
LOCK_PID_BYTES = 64  # read of the lock file naming its holder's pid


def checkpoint_dir(report_path: Path) -> Path:
    """Return ``.validation/`` beside the report (with the report's own name when it is not the default one)."""
    name = report_path.name
    suffix = "" if name == "validation_report.json" else f"-{name}"
    return report_path.parent / f"{CHECKPOINT_DIR}{suffix}"


def local_path(uri: str) -> Path | None:
    """Return the local path of a release URI (``file://`` or a plain path), None for remote ones."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    return None if "://" in uri else Path(uri)


def _files(root: Path) -> Iterable[str]:
    """'relative path, size, mtime_ns' of every file under ``root``, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath, name)
            st = p.stat()
            out.append(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}")
    return sorted(out)


def validator_digest() -> str:
    """Hash the validator's code and the schema data it reads: its version, as far as results go."""
    h = hashlib.sha256()
    code = [(f.relative_to(VALIDATOR_DIR).as_posix(), f) for f in sorted(VALIDATOR_DIR.rglob("*.py"))]
    for name, f in code + [(f.name, f) for f in sorted(Path(census_schema.SCHEMA_DIR).glob("*.yaml"))]:
        h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def fingerprint(release_uri: str, manifest: Manifest, options: dict[str, Any]) -> str:
    """Return what a checkpoint's records are valid for (see the module docstring)."""
    h = hashlib.sha256()

    def add(*parts: object) -> None:
        h.update("\0".join(str(p) for p in parts).encode() + b"\n")

    add("validator", validator_digest())
    add("options", sorted(options.items()))
    release = local_path(release_uri)
    if release is None:  # a remote release cannot be listed cheaply: never resume it
        add("release", release_uri, uuid.uuid4())
    else:
        add("release", release.resolve())
        for line in _files(release):
            add(line)
    add("manifest", manifest.path, hashlib.sha256(manifest.path.read_bytes()).hexdigest())
    for s in manifest.sources:
        if s.is_s3:
            add("source", s.dataset_id, s.uri)  # downloaded into the checkpoint: a resumed run reads that copy
            continue
        p = manifest.local_path(s)
        try:
            st = p.stat()
        except OSError:
            add("source", s.dataset_id, p, "missing")
            continue
        add("source", s.dataset_id, p.resolve(), st.st_size, st.st_mtime_ns, st.st_ino)
    return h.hexdigest()


def _canonical(x: Any) -> Any:
    """Describe a task argument plainly, order-independently, so that its repr identifies it exactly.

    numpy arrays by dtype, shape and a hash of their bytes; anything unknown by its pickle.
    """
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (
            type(x).__module__,
            type(x).__qualname__,
            tuple((f.name, _canonical(getattr(x, f.name))) for f in dataclasses.fields(x)),
        )
    if isinstance(x, np.ndarray):
        return ("ndarray", x.dtype.str, x.shape, hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest())
    if isinstance(x, list | tuple):
        return (type(x).__name__, tuple(_canonical(v) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple(sorted((repr(_canonical(k)), repr(_canonical(v))) for k, v in x.items())))
    if isinstance(x, set | frozenset):
        return ("set", tuple(sorted(repr(_canonical(v)) for v in x)))
    if x is None or isinstance(x, str | int | float | bytes | np.generic):
        return (type(x).__name__, x)
    return ("pickle", pickle.dumps(x, protocol=5))


def task_key(fn: Callable[..., Any], item: Any) -> str:
    """Return a task's identity: a hash of its function and its argument (see _canonical)."""
    text = repr((fn.__module__, fn.__qualname__, _canonical(item)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Checkpoint:
    """The records of one validation (see the module docstring); ``open`` locks it, ``close`` unlocks it."""

    def __init__(self, root: Path, fingerprint: str) -> None:
        self.root = root
        self.fingerprint = fingerprint
        self.recorded = 0  # records found when opened
        self._lock: int | None = None

    @property
    def tasks(self) -> Path:
        """The folder of task records."""
        return self.root / "tasks"

    @property
    def sources(self) -> Path:
        """The folder S3 sources are downloaded into."""
        return self.root / "sources"

    @property
    def scratch(self) -> Path:
        """The local dask cluster's scratch space."""
        return self.root / "scratch"

    @classmethod
    def open(cls, root: Path, fingerprint: str) -> Checkpoint:
        """Lock the checkpoint in ``root``; keep its records if they are for ``fingerprint``, else start afresh.

        CheckpointBusyError if another validation holds it.
        """
        cp = cls(root, fingerprint)
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, LOCK_PID_BYTES, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CheckpointBusyError(
                f"another validation (pid {holder}) is running with its checkpoint in {root}; wait for it to "
                "finish, or pass another --report path"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        cp._lock = fd
        stamp = root / "fingerprint"
        previous = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else None
        if previous == fingerprint:
            for tmp in cp.tasks.glob(".*.tmp"):
                tmp.unlink()  # a record being written when the last run died
            cp.recorded = sum(1 for _ in cp.tasks.glob("*.pkl"))
            logger.info("resuming from the checkpoint in %s: %d task result(s) recorded", root, cp.recorded)
        else:
            if previous is not None:
                logger.info(
                    "the checkpoint in %s is for another release, manifest, source or validator version: "
                    "starting afresh",
                    root,
                )
            for sub in (cp.tasks, cp.sources, cp.scratch):
                shutil.rmtree(sub, ignore_errors=True)
            stamp.write_text(fingerprint + "\n", encoding="utf-8")
        for sub in (cp.tasks, cp.sources, cp.scratch):
            sub.mkdir(exist_ok=True)
        return cp

    def _record(self, key: str) -> Path:
        return self.tasks / f"{key}.pkl"

    def load(self, key: str) -> Any:
        """Return the recorded result of task ``key``, or ``MISSING``."""
        path = self._record(key)
        try:
            with path.open("rb") as f:
                stored_key, result = pickle.load(f)
        except FileNotFoundError:
            return MISSING
        except Exception as e:  # a torn or foreign record: recompute the task
            logger.warning("ignoring unreadable checkpoint record %s: %s", path, e)
            return MISSING
        return result if stored_key == key else MISSING

    def save(self, key: str, result: Any) -> None:
        """Record a finished task's result (atomically: a reader sees all of it or nothing)."""
        path = self._record(key)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            pickle.dump((key, result), f, protocol=5)
        tmp.replace(path)

    def close(self) -> None:
        """Unlock the checkpoint (its records stay)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def remove(self) -> None:
        """Delete the checkpoint (the validation completed)."""
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)

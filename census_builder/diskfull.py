"""A full disk (or an exhausted quota) as one clear StorageError: what is full, how much was needed if known,
and "free space and re-run the same command" (finished work is kept).

The error arrives in many forms: an ``OSError`` with errno ENOSPC / EDQUOT (also re-raised in the driver
from a dask worker, which keeps its errno), or a TileDB / tiledbsoma / pyarrow error whose only clue is the
text "No space left on device"; possibly as the cause or context of another exception. :func:`disk_full_error`
recognises each and returns the StorageError to raise instead (None for any other error).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

from census_builder.errors import StorageError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_TEXTS = ("no space left on device", "disk quota exceeded")
_QUOTED_PATH = re.compile(r"'(/[^']+)'")


def disk_full_cause(exc: BaseException) -> BaseException | None:
    """Return the exception in ``exc``'s chain (itself, its causes and contexts) that says the disk is full."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return e
        if any(t in str(e).lower() for t in _TEXTS):
            return e
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def _mount_point(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def disk_full_error(
    exc: BaseException, *, where: str | os.PathLike[str], needed: int | None = None, what: str = ""
) -> StorageError | None:
    """Return the StorageError for ``exc`` if it (or its cause) says the disk is full, else None.

    ``where``: the path written when the error names none; ``needed``: bytes the failed step needed, if
    known; ``what``: that step, e.g. "staging dataset X".
    """
    if isinstance(exc, StorageError) and str(exc).startswith("disk full"):
        return exc
    cause = disk_full_cause(exc)
    if cause is None:
        return None
    path = None
    if isinstance(cause, OSError):  # a copy's error names the source first, the file written second
        path = cause.filename2 or cause.filename
    if not path:
        m = _QUOTED_PATH.search(str(cause))
        path = m.group(1) if m else os.fspath(where)
    quota = (isinstance(cause, OSError) and cause.errno == errno.EDQUOT) or "quota" in str(cause).lower()
    mount = _mount_point(Path(path))
    try:
        free = f"{_size(shutil.disk_usage(mount).free)} free"
    except OSError:
        free = "free space unknown"
    full = "the disk quota is exhausted" if quota else "no space left on device"
    message = f"disk full: {full} writing {path} (file system mounted at {mount}, {free})"
    if needed is not None:
        message += f"; {what or 'this step'} needs {_size(needed)}"
    return StorageError(message + ". Free space and re-run the same command: finished work is kept")

"""The small JSON documents at a destination (``release.json``, ``mirrors.json``): read, change, write atomically.

- local DEST: read, change and write under an exclusive ``flock`` on ``DEST/.release.json.lock``, a file the
  holder deletes before it unlocks (see :func:`locked`: nothing stays behind); the new file is written beside
  the old one and moved over it with ``os.replace`` (:func:`write_atomic`).
- S3 DEST: compare-and-swap with conditional PUTs (``If-Match: <ETag read>``, or ``If-None-Match: *`` when the
  document does not exist yet); on a 412/409 conflict the change is re-applied to the fresh document and
  retried (:class:`S3Document`).

What the documents hold is their modules' business (:mod:`census_builder.release.directory`,
:mod:`census_builder.release.mirrors`); this module moves bytes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from census_builder.errors import StorageError

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_NAME = ".release.json.lock"
CAS_MAX_ATTEMPTS = 40  # conflicting concurrent updates before a compare-and-swap gives up
CAS_FIRST_DELAY = 0.05  # seconds before the first retry (doubled each time, with jitter)
CAS_MAX_DELAY = 2.0  # seconds, the longest wait between retries
CONDITION_FAILED_STATUSES = (409, 412)  # a conditional PUT refused because of the condition
CONDITION_FAILED_CODES = ("PreconditionFailed", "ConditionalRequestConflict")
RETRY_STATUSES = (404, *CONDITION_FAILED_STATUSES)  # 404: the document was deleted between read and write


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the exclusive lock on the local destination ``root`` (for every read-change-write of its JSON files).

    The lock is an ``flock`` on ``root/.release.json.lock``, which the holder deletes before releasing it, so
    no lock file stays behind. A waiter may thus get the lock of a file that was deleted meanwhile: after
    locking it checks that the path still names the file it locked, and otherwise starts again. (Only a
    process killed while holding the lock leaves the file; the next update removes it.)
    """
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # per open file: threads exclude each other too
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)  # the holder before us deleted it: lock the new one
    try:
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # still holding the lock: nobody else can hold this file's lock
        finally:
            os.close(fd)  # releases the flock


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: written beside it, synced, renamed over it (readers see old or new)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def update_local(path: Path, read: Callable[[], T], change: Callable[[T], T], dumps: Callable[[T], bytes]) -> T:
    """Apply ``change`` to the local document ``path`` under the destination's lock; returns what is there now.

    ``read`` reads the current document, ``dumps`` serializes a changed one; an unchanged document is not
    written.
    """
    with locked(path.parent):
        current = read()
        new = change(current)
        if new != current:
            write_atomic(path, dumps(new))
        return new


def error_code(e: Exception) -> tuple[str, int]:
    """Return the S3 error code and HTTP status of a botocore ``ClientError`` (``("", 0)`` when it has none)."""
    response = getattr(e, "response", None) or {}
    return (
        str(response.get("Error", {}).get("Code", "")),
        int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0),
    )


def condition_failed(e: Exception) -> bool:
    """Tell whether a conditional S3 request was refused because its condition did not hold."""
    code, status = error_code(e)
    return status in CONDITION_FAILED_STATUSES or code in CONDITION_FAILED_CODES


class S3Document:
    """One JSON document in S3, updated by compare-and-swap on its ETag."""

    def __init__(self, client: Any, bucket: str, key: str, *, max_attempts: int = CAS_MAX_ATTEMPTS) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.max_attempts = max_attempts
        self._probed = False

    @property
    def uri(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The document's file name, e.g. ``release.json``."""
        return self.key.rsplit("/", 1)[-1]

    def get(self) -> tuple[bytes | None, str | None]:
        """Return the document's bytes and ETag; ``(None, None)`` if there is no such key (a missing bucket raises)."""
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as e:
            if error_code(e)[0] == "NoSuchKey":  # not NoSuchBucket: a wrong bucket is an error
                return None, None
            raise StorageError(f"reading {self.uri} failed: {e}") from e
        return bytes(obj["Body"].read()), str(obj["ETag"])

    def require_conditional_writes(self) -> None:
        """Raise StorageError unless the endpoint honours ``If-None-Match`` (probed once per document)."""
        if not self._probed:
            self._probe_conditional_writes()

    def _probe_conditional_writes(self) -> None:
        """Refuse endpoints that ignore ``If-None-Match`` (they would let concurrent publishers lose entries)."""
        from botocore.exceptions import ClientError

        probe = f"{self.key}.cas-probe-{uuid.uuid4().hex}"
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"probe", IfNoneMatch="*")
            try:
                self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"probe", IfNoneMatch="*")
            except ClientError as e:
                if condition_failed(e):
                    self._probed = True
                    return
                raise
        except ClientError as e:
            raise StorageError(f"writing to s3://{self.bucket}/{probe} failed: {e}") from e
        finally:
            with contextlib.suppress(ClientError):
                self.client.delete_object(Bucket=self.bucket, Key=probe)
        raise StorageError(
            f"the S3 endpoint for s3://{self.bucket} ignores conditional writes (If-None-Match); {self.name} "
            "cannot be updated safely there. Use an endpoint that supports them (AWS S3, MinIO, recent moto)."
        )

    def update(
        self,
        read: Callable[[bytes | None], T],
        change: Callable[[T], T],
        dumps: Callable[[T], bytes],
        *,
        probe: bool = True,
    ) -> T:
        """Apply ``change`` to the document atomically; returns what was written (or the unchanged document).

        ``read`` parses the stored bytes (None: no document yet) and ``dumps`` serializes the changed document.
        On a conflict with a concurrent writer the change is re-applied to the fresh document, at most
        ``max_attempts`` times. ``probe``: first check that the endpoint honours conditional writes.
        """
        from botocore.exceptions import ClientError

        if probe:
            self.require_conditional_writes()
        delay = CAS_FIRST_DELAY
        for attempt in range(1, self.max_attempts + 1):
            raw, etag = self.get()
            current = read(raw)
            new = change(current)
            if new == current:
                return current
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=dumps(new),
                    ContentType="application/json",
                    CacheControl="no-cache",
                    **condition,
                )
            except ClientError as e:
                code, status = error_code(e)
                if status in RETRY_STATUSES or code in (*CONDITION_FAILED_CODES, "NoSuchKey"):
                    logger.info(
                        "%s changed under us (%s, attempt %d); re-applying the change",
                        self.name,
                        code or status,
                        attempt,
                    )
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, CAS_MAX_DELAY)
                    continue
                raise StorageError(f"writing {self.uri} failed: {e}") from e
            return new
        raise StorageError(
            f"gave up updating {self.uri} after {self.max_attempts} conflicting concurrent updates; re-run the command"
        )

"""The publish claim: ``DEST/.publish/VERSION/claim.json`` says which build is publishing VERSION.

It is created atomically (local: hard link or O_EXCL; S3: PUT with If-None-Match: *) and holds the build's
fingerprint (:func:`build_fingerprint`): another build's claim refuses at once, this build's own (an
interrupted run) resumes. The staging copy lives beside it (``DEST/.publish/VERSION/staging/``); both are
deleted once release.json names VERSION.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Protocol

from census_builder.build.state import BuildPaths
from census_builder.errors import ReleaseExistsError
from census_builder.release.destination import Destination
from census_builder.release.directory import RELEASE_JSON
from census_builder.release.documents import S3Document, condition_failed
from census_builder.release.stores import SourceObject

logger = logging.getLogger(__name__)

DIGEST_SHOWN = 16  # hex digits of a checksum or fingerprint shown in messages
# link() errors of file systems without hard links: fall back to O_EXCL
NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS)

STAGING_DIR = ".publish"  # DEST/.publish/VERSION/{claim.json, staging/}: gone once VERSION is registered


def build_fingerprint(sources: list[SourceObject], expected: dict[str, str]) -> str:
    """Return what identifies the build being published: the SHA-256 of every object's path, size and checksum."""
    h = hashlib.sha256()
    for s in sources:
        h.update(f"{s.relative}\0{s.size}\0{expected[s.relative]}\n".encode())
    return h.hexdigest()


class ClaimStore(Protocol):
    """The claim of one version at one destination."""

    uri: str

    def create(self, data: bytes) -> bytes | None:
        """Create the claim atomically; None if created, else the existing claim's content."""
        ...

    def delete(self) -> None:
        """Delete the claim (once release.json names the version)."""
        ...


class LocalClaim:
    """``DEST/.publish/VERSION/claim.json`` on a file system, created by hard link (O_EXCL where there are none)."""

    def __init__(self, dest: Path, version: str) -> None:
        self.path = dest / STAGING_DIR / version / "claim.json"
        self.uri = str(self.path)

    def create(self, data: bytes) -> bytes | None:
        """Create the claim atomically; None if created, else the existing claim's content."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".claim.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.path)  # atomic, complete when it appears, fails if the claim exists (NFS too)
                return None
            except FileExistsError:
                return self.path.read_bytes()
            except OSError as e:
                if e.errno not in NO_HARD_LINKS:
                    raise
            try:  # no hard links on this file system
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return self.path.read_bytes()
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return None
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self) -> None:
        """Delete the claim and the directories it leaves empty."""
        self.path.unlink(missing_ok=True)
        for d in (self.path.parent, self.path.parent.parent):  # DEST/.publish/V, DEST/.publish if empty
            with contextlib.suppress(OSError):
                d.rmdir()


class S3Claim:
    """``DEST/.publish/VERSION/claim.json`` on S3, created by a PUT with ``If-None-Match: *``."""

    def __init__(self, dest: Destination, version: str, client: Any) -> None:
        self.client = client
        self.bucket = dest.bucket
        self.key = dest.key(f"{STAGING_DIR}/{version}/claim.json")
        self.uri = f"s3://{self.bucket}/{self.key}"
        self.dest = dest

    def create(self, data: bytes) -> bytes | None:
        """Create the claim atomically; None if created, else the existing claim's content."""
        from botocore.exceptions import ClientError

        # An endpoint that ignores If-None-Match would let two publishers both "create" the claim: refuse it.
        S3Document(self.client, self.bucket, self.dest.key(RELEASE_JSON)).require_conditional_writes()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, IfNoneMatch="*")
            return None
        except ClientError as e:
            if not condition_failed(e):
                raise
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())

    def delete(self) -> None:
        """Delete the claim."""
        self.client.delete_object(Bucket=self.bucket, Key=self.key)


def claim_version(claims: ClaimStore, paths: BuildPaths, fingerprint: str, staging_uri: str) -> bool:
    """Claim the version at the destination for this build.

    Returns True if this call created the claim, False if it resumes this build's own interrupted publish.
    Another build's claim refuses at once.
    """
    version = paths.root.name
    mine = {
        "version": version,
        "fingerprint": fingerprint,
        "build": str(paths.root),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "claimed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    existing = claims.create(json.dumps(mine, indent=2).encode())
    if existing is None:
        logger.info("claimed %s at %s", version, claims.uri)
        return True
    try:
        other = json.loads(existing.decode("utf-8"))
        other_fingerprint = other["fingerprint"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        other, other_fingerprint = {}, None
    if other_fingerprint == fingerprint:
        logger.info("resuming the interrupted publish of this build (claim %s of %s)", claims.uri, other.get("claimed"))
        return False
    raise ReleaseExistsError(
        f"release {version} is being published by another build (claim {claims.uri}: build {other.get('build')} "
        f"on {other.get('host')}, pid {other.get('pid')}, since {other.get('claimed')}, fingerprint "
        f"{str(other_fingerprint)[:DIGEST_SHOWN]}; this build's is {fingerprint[:DIGEST_SHOWN]}). "
        "Publish this build under another "
        f"version; if that publish was abandoned, delete {claims.uri} and {staging_uri} and re-run"
    )

"""The release directory: ``DEST/release.json``, where consumers discover published releases.

The file has the format the ``cellxgene_census`` package reads (``cellxgene_census/_release_directory.py``):
one key per release build, whose value describes it, and alias keys (``latest``, ``stable``, ``V2``) whose
value is a build name::

    {
      "latest": "2026-11-22",
      "2026-11-22": {
        "release_date": "2026-11-23",            # the day it was published (the client calls it deprecated)
        "release_build": "2026-11-22",           # the build name; the client tells users to pin this
        "soma":  {"uri": "s3://bucket/prefix/2026-11-22/soma/",  "relative_uri": "2026-11-22/soma/",
                  "s3_region": "us-west-2"},
        "h5ads": {"uri": "s3://bucket/prefix/2026-11-22/", "relative_uri": "2026-11-22/",   # + dataset_h5ad_path
                  "s3_region": "us-west-2"},
        "flags": {"lts": false, "retracted": false},
        "retraction": {"date": ..., "reason": ..., "info_url": ..., "replaced_by": ...}   # only if retracted
      }
    }

``relative_uri`` is relative to DEST: a ``mirrors.json`` entry whose ``base_uri`` is DEST with a trailing slash
(``file:///srv/census/`` or ``s3://bucket/prefix/``) resolves it; publish writes that entry
(:mod:`census_builder.release.mirrors`). ``uri`` is the absolute location, used by
clients that predate mirrors and by ``get_source_h5ad_uri``.

Rules kept on every change: names are plain (letters, digits, ``._-``), a name is either a build or an
alias, aliases point at an existing, non-retracted build, and a published build is never replaced.

Updates are atomic and never lose a concurrent writer's change:

- local DEST: read, change and write under an exclusive ``flock`` on ``DEST/.release.json.lock``, a file the
  holder deletes before it unlocks (see :func:`locked`: nothing stays behind); the new file is written beside
  the old one and moved over it with ``os.replace``. (``flock`` is not reliable on some network file
  systems; publish to such a DEST from one host at a time.)
- S3 DEST: compare-and-swap with conditional PUTs (``If-Match: <ETag read>``, or ``If-None-Match: *`` when the
  file does not exist yet); on a 412/409 conflict the change is re-applied to the fresh file and retried. The
  first update through a store probes that the endpoint honours ``If-None-Match`` and refuses to write if it
  silently ignores it. Atomicity is the server's: AWS S3 checks the condition atomically; moto's server
  checks it and stores the object without a lock, so two truly simultaneous PUTs can both pass there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from census_builder.errors import ReleaseDirectoryError, ReleaseExistsError, StorageError

logger = logging.getLogger(__name__)

RELEASE_JSON = "release.json"
LOCK_NAME = ".release.json.lock"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise ReleaseDirectoryError(
            f"{what} {name!r} is not a valid name: use letters, digits, '.', '_' or '-' (at most 128), "
            "starting with a letter or digit"
        )


# -- where releases go -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """A release destination: a local directory or ``s3://bucket/prefix`` (with an optional S3 endpoint)."""

    kind: Literal["local", "s3"]
    path: Path | None = None  # local
    bucket: str = ""  # s3
    prefix: str = ""  # s3: "" or "a/b" (no leading or trailing slash)
    endpoint_url: str | None = None

    @classmethod
    def parse(cls, dest: str | Path, *, endpoint_url: str | None = None) -> Destination:
        text = str(dest)
        if text.startswith("s3://"):
            bucket, _, prefix = text[len("s3://") :].partition("/")
            if not bucket:
                raise ReleaseDirectoryError(f"{text!r}: an S3 destination needs a bucket, e.g. s3://bucket/prefix")
            return cls("s3", bucket=bucket, prefix=prefix.strip("/"), endpoint_url=endpoint_url)
        if "://" in text and not text.startswith("file://"):
            raise ReleaseDirectoryError(f"{text!r}: a destination is a local directory or s3://bucket/prefix")
        if text.startswith("file://"):
            text = text[len("file://") :]
        return cls("local", path=Path(text).resolve())

    @property
    def local_path(self) -> Path:
        if self.path is None:
            raise ReleaseDirectoryError(f"{self} is not a local destination")
        return self.path

    def __str__(self) -> str:
        return str(self.path) if self.kind == "local" else f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def base_uri(self) -> str:
        """DEST as a URI with a trailing slash: what a mirror's ``base_uri`` must be."""
        if self.kind == "local":
            return self.local_path.as_uri().rstrip("/") + "/"
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    def key(self, relative: str) -> str:
        """The S3 key of ``relative`` (a path below DEST)."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def s3_client(self) -> Any:
        """A boto3 S3 client: the usual AWS environment (credentials, region, ``AWS_ENDPOINT_URL``) plus
        ``endpoint_url``. Path-style addressing for custom endpoints (MinIO, moto, on-premises stores)."""
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 8, "mode": "standard"},
            max_pool_connections=32,
            s3={"addressing_style": "path"} if self.endpoint_url else None,
        )
        session = boto3.session.Session()
        region = session.region_name or "us-east-1"
        return session.client("s3", endpoint_url=self.endpoint_url, region_name=region, config=config)


# -- the model ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Locator:
    uri: str
    relative_uri: str
    s3_region: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "relative_uri": self.relative_uri, "s3_region": self.s3_region}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Locator:
        if not isinstance(data, dict) or not isinstance(data.get("uri", ""), str):
            raise ReleaseDirectoryError(f"{where}: a locator must be an object with 'uri' and 'relative_uri'")
        uri, rel = data.get("uri", ""), data.get("relative_uri", "")
        if not (uri or rel):
            raise ReleaseDirectoryError(f"{where}: the locator has neither 'uri' nor 'relative_uri'")
        return cls(uri=str(uri), relative_uri=str(rel or ""), s3_region=data.get("s3_region"))


@dataclass(frozen=True)
class Retraction:
    date: str
    reason: str | None = None
    info_url: str | None = None
    replaced_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date, "reason": self.reason, "info_url": self.info_url, "replaced_by": self.replaced_by}


@dataclass(frozen=True)
class ReleaseEntry:
    """One published release build, as ``cellxgene_census.CensusVersionDescription`` describes it."""

    release_build: str
    soma: Locator
    h5ads: Locator
    release_date: str | None = None
    lts: bool = False
    retracted: bool = False
    retraction: Retraction | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys other tools wrote: kept as they are

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "release_date": self.release_date,
            "release_build": self.release_build,
            "soma": self.soma.to_json(),
            "h5ads": self.h5ads.to_json(),
            "flags": {"lts": self.lts, "retracted": self.retracted},
        }
        if self.retraction is not None:
            out["retraction"] = self.retraction.to_json()
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> ReleaseEntry:
        where = f"release.json entry {name!r}"
        flags = data.get("flags") or {}
        retraction = data.get("retraction")
        if not isinstance(flags, dict) or (retraction is not None and not isinstance(retraction, dict)):
            raise ReleaseDirectoryError(f"{where}: 'flags' and 'retraction' must be objects")
        known = {"release_date", "release_build", "soma", "h5ads", "flags", "retraction"}
        return cls(
            release_build=str(data.get("release_build") or name),
            soma=Locator.from_json(data.get("soma"), f"{where}, 'soma'"),
            h5ads=Locator.from_json(data.get("h5ads"), f"{where}, 'h5ads'"),
            release_date=data.get("release_date"),
            lts=bool(flags.get("lts", False)),
            retracted=bool(flags.get("retracted", False)),
            retraction=Retraction(
                date=str(retraction.get("date", "")),
                reason=retraction.get("reason"),
                info_url=retraction.get("info_url"),
                replaced_by=retraction.get("replaced_by"),
            )
            if retraction
            else None,
            extra={k: v for k, v in data.items() if k not in known},
        )


def entry_for(
    dest: Destination, version: str, *, release_date: str | None = None, lts: bool = False, s3_region: str | None = None
) -> ReleaseEntry:
    """The entry describing ``version`` published at ``DEST/version/{soma,h5ads}/``."""

    def loc(rel: str) -> Locator:
        return Locator(uri=dest.base_uri + rel, relative_uri=rel, s3_region=s3_region if dest.kind == "s3" else None)

    # The datasets table's dataset_h5ad_path is relative to the version directory ("h5ads/<id>.h5ad"), and
    # the client joins it onto the h5ads locator: so that locator names the version directory itself.
    return ReleaseEntry(
        release_build=version,
        soma=loc(f"{version}/soma/"),
        h5ads=loc(f"{version}/"),
        release_date=release_date or today(),
        lts=lts,
    )


@dataclass(frozen=True)
class ReleaseDirectory:
    """The content of release.json: builds by name and aliases (name -> build name). Changes return a new
    directory, so that a store can re-apply a change to a fresher file after a conflict."""

    releases: Mapping[str, ReleaseEntry] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    # reading and writing
    @classmethod
    def from_json(cls, data: Any) -> ReleaseDirectory:
        if not isinstance(data, dict):
            raise ReleaseDirectoryError("release.json must hold a JSON object (name -> build or alias)")
        releases: dict[str, ReleaseEntry] = {}
        aliases: dict[str, str] = {}
        for name, value in data.items():
            if isinstance(value, str):
                aliases[name] = value
            elif isinstance(value, dict):
                releases[name] = ReleaseEntry.from_json(name, value)
            else:
                raise ReleaseDirectoryError(f"release.json entry {name!r} is neither a build name nor an object")
        return cls(releases, aliases)

    def to_json(self) -> dict[str, Any]:
        """Aliases first, then builds, newest name first (the order the client presents them in)."""
        out: dict[str, Any] = {a: self.aliases[a] for a in sorted(self.aliases, reverse=True)}
        out.update({r: self.releases[r].to_json() for r in sorted(self.releases, reverse=True)})
        return out

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")

    # questions
    def resolve(self, name: str) -> str:
        """The build a name (build or alias) refers to."""
        seen: set[str] = set()
        while name in self.aliases:
            if name in seen:
                raise ReleaseDirectoryError(f"alias cycle through {name!r} in release.json")
            seen.add(name)
            name = self.aliases[name]
        if name not in self.releases:
            raise ReleaseDirectoryError(
                f"{name!r} is not a published release; published: {', '.join(sorted(self.releases)) or 'none'}"
            )
        return name

    def aliases_of(self, build: str) -> list[str]:
        return sorted(a for a, target in self.aliases.items() if target == build)

    def problems(self) -> list[str]:
        """Rule violations in a file someone edited by hand (changes made here never introduce any)."""
        out = []
        for a, target in sorted(self.aliases.items()):
            if target not in self.releases:
                out.append(f"alias {a!r} points at {target!r}, which is not a published build")
            elif self.releases[target].retracted:
                out.append(f"alias {a!r} points at the retracted build {target!r}")
        return out

    # changes
    def with_release(self, name: str, entry: ReleaseEntry) -> ReleaseDirectory:
        check_name(name, "release")
        if name in self.releases:
            raise ReleaseExistsError(
                f"release {name!r} is already published in release.json; published releases "
                "are immutable: publish the build under a new version"
            )
        if name in self.aliases:
            raise ReleaseDirectoryError(
                f"{name!r} is an alias in release.json (-> {self.aliases[name]!r}); "
                "a release cannot have an alias's name"
            )
        return replace(self, releases={**self.releases, name: entry})

    def with_alias(self, alias: str, target: str) -> ReleaseDirectory:
        check_name(alias, "alias")
        if alias in self.releases:
            raise ReleaseDirectoryError(f"{alias!r} is a published build; an alias cannot take a build's name")
        build = self.resolve(target)
        if self.releases[build].retracted:
            raise ReleaseDirectoryError(f"cannot point alias {alias!r} at {build!r}: that release is retracted")
        return replace(self, aliases={**self.aliases, alias: build})

    def with_retraction(
        self,
        build: str,
        *,
        reason: str,
        replaced_by: str | None = None,
        info_url: str | None = None,
        date: str | None = None,
    ) -> ReleaseDirectory:
        if build in self.aliases:
            raise ReleaseDirectoryError(
                f"{build!r} is an alias (-> {self.aliases[build]!r}); retract the build by its own name"
            )
        self.resolve(build)
        entry = self.releases[build]
        if entry.retracted:
            raise ReleaseDirectoryError(f"release {build!r} is already retracted")
        if not reason.strip():
            raise ReleaseDirectoryError("a retraction needs a reason")
        aliases = dict(self.aliases)
        pointing = self.aliases_of(build)
        if replaced_by is not None:
            replacement = self.resolve(replaced_by)
            if replacement == build or self.releases[replacement].retracted:
                raise ReleaseDirectoryError(
                    f"--replaced-by {replaced_by!r} must name another release that is not retracted"
                )
            for a in pointing:
                logger.info("alias %r moves from retracted %r to its replacement %r", a, build, replacement)
                aliases[a] = replacement
        elif pointing:
            raise ReleaseDirectoryError(
                f"aliases {pointing} point at {build!r}: pass --replaced-by to move them to the replacing release, "
                "or point them elsewhere first (release alias NAME VERSION)"
            )
        retracted = replace(
            entry,
            retracted=True,
            retraction=Retraction(date=date or today(), reason=reason, info_url=info_url, replaced_by=replaced_by),
        )
        return ReleaseDirectory({**self.releases, build: retracted}, aliases)

    def without_alias(self, alias: str) -> ReleaseDirectory:
        """Remove alias ``alias`` (the build it names stays published)."""
        if alias in self.releases:
            raise ReleaseDirectoryError(
                f"{alias!r} is a published build, not an alias; a build is never removed (retract it instead: "
                f"release retract {alias} --reason TEXT)"
            )
        if alias not in self.aliases:
            raise ReleaseDirectoryError(
                f"{alias!r} is not an alias in release.json; aliases: {', '.join(sorted(self.aliases)) or 'none'}"
            )
        return replace(self, aliases={a: t for a, t in self.aliases.items() if a != alias})

    def without_retraction(self, build: str) -> ReleaseDirectory:
        """Undo the retraction of ``build``: it is listed again. Aliases moved to its replacement stay there."""
        if build in self.aliases:
            raise ReleaseDirectoryError(
                f"{build!r} is an alias (-> {self.aliases[build]!r}); name the retracted build by its own name"
            )
        self.resolve(build)
        entry = self.releases[build]
        if not entry.retracted:
            raise ReleaseDirectoryError(f"release {build!r} is not retracted")
        return replace(self, releases={**self.releases, build: replace(entry, retracted=False, retraction=None)})

    def with_lts(self, build: str, lts: bool = True) -> ReleaseDirectory:
        """Set (or with ``lts=False`` clear) the long-term-stable flag of ``build``; no change if already so."""
        if build in self.aliases:
            raise ReleaseDirectoryError(
                f"{build!r} is an alias (-> {self.aliases[build]!r}); flag the build by its own name: "
                f"release lts {self.resolve(build)}"
            )
        self.resolve(build)
        entry = self.releases[build]
        if entry.lts == lts:
            return self
        if lts and entry.retracted:
            raise ReleaseDirectoryError(
                f"release {build!r} is retracted; a retracted release cannot be flagged long-term stable "
                f"(undo the retraction first: release unretract {build})"
            )
        return replace(self, releases={**self.releases, build: replace(entry, lts=lts)})


# -- stores ------------------------------------------------------------------------------------------------

Change = Callable[[ReleaseDirectory], ReleaseDirectory]


class DirectoryStore(Protocol):
    def read(self) -> ReleaseDirectory: ...

    def update(self, change: Change) -> ReleaseDirectory:
        """Apply ``change`` atomically to the current file; returns what was written (or the unchanged one)."""
        ...


def open_store(dest: Destination) -> DirectoryStore:
    if dest.kind == "local":
        return LocalDirectoryStore(dest.local_path)
    return S3DirectoryStore(dest.s3_client(), dest.bucket, dest.key(RELEASE_JSON))


def _parse(raw: bytes, where: str) -> ReleaseDirectory:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReleaseDirectoryError(f"{where} is not valid JSON ({e}); restore it from a backup") from e
    return ReleaseDirectory.from_json(data)


class LocalDirectoryStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / RELEASE_JSON

    def read(self) -> ReleaseDirectory:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return ReleaseDirectory()
        return _parse(raw, str(self.path))

    def update(self, change: Change) -> ReleaseDirectory:
        with locked(self.root):
            current = self.read()
            new = change(current)
            if new != current:
                write_atomic(self.path, new.dumps())
            return new


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


def _error_code(e: Exception) -> tuple[str, int]:
    response = getattr(e, "response", None) or {}
    return (
        str(response.get("Error", {}).get("Code", "")),
        int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0),
    )


class S3DirectoryStore:
    """release.json in S3, updated by compare-and-swap on its ETag."""

    def __init__(self, client: Any, bucket: str, key: str, *, max_attempts: int = 40) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.max_attempts = max_attempts
        self._probed = False

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _get(self) -> tuple[ReleaseDirectory, str | None]:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as e:
            if _error_code(e)[0] == "NoSuchKey":  # not NoSuchBucket: a wrong bucket is an error
                return ReleaseDirectory(), None
            raise StorageError(f"reading {self.uri} failed: {e}") from e
        return _parse(obj["Body"].read(), self.uri), str(obj["ETag"])

    def read(self) -> ReleaseDirectory:
        return self._get()[0]

    def require_conditional_writes(self) -> None:
        """Raise StorageError unless the endpoint honours ``If-None-Match`` (probed once per store)."""
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
                code, status = _error_code(e)
                if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    self._probed = True
                    return
                raise
        except ClientError as e:
            raise StorageError(f"writing to s3://{self.bucket}/{probe} failed: {e}") from e
        finally:
            with contextlib.suppress(ClientError):
                self.client.delete_object(Bucket=self.bucket, Key=probe)
        raise StorageError(
            f"the S3 endpoint for s3://{self.bucket} ignores conditional writes (If-None-Match); release.json "
            "cannot be updated safely there. Use an endpoint that supports them (AWS S3, MinIO, recent moto)."
        )

    def update(self, change: Change) -> ReleaseDirectory:
        from botocore.exceptions import ClientError

        if not self._probed:
            self._probe_conditional_writes()
        delay = 0.05
        for attempt in range(1, self.max_attempts + 1):
            current, etag = self._get()
            new = change(current)
            if new == current:
                return current
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=new.dumps(),
                    ContentType="application/json",
                    CacheControl="no-cache",
                    **condition,
                )
            except ClientError as e:
                code, status = _error_code(e)
                if status in (404, 409, 412) or code in (
                    "PreconditionFailed",
                    "ConditionalRequestConflict",
                    "NoSuchKey",
                ):
                    logger.info(
                        "release.json changed under us (%s, attempt %d); re-applying the change",
                        code or status,
                        attempt,
                    )
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 2.0)
                    continue
                raise StorageError(f"writing {self.uri} failed: {e}") from e
            return new
        raise StorageError(
            f"gave up updating {self.uri} after {self.max_attempts} conflicting concurrent updates; re-run the command"
        )

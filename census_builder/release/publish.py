"""The publish command: copy a validated build to ``DEST/VERSION/`` and add it to ``DEST/release.json``.

    check_publishable     build_report.json says complete and validation_report.json says passed
    list_sources          every file under DIR/VERSION/{soma,h5ads} (never .build/ or the reports)
    check_not_published   VERSION is not in DEST/release.json yet
    check_validated_sources  every h5ads/<id>.h5ad has the size and SHA-256 validation recorded for the
                          source it read (validation_report.json "source_checksums"): what is published
                          is what was validated, even if a (hard-linked) source was edited since
    claim_version         atomically create DEST/.publish/VERSION/claim.json holding the build's fingerprint
                          (local: hard link / O_EXCL; S3: PUT with If-None-Match: *); another build's claim
                          refuses at once, this build's own (an interrupted run) resumes
    upload_objects        copy each object into DEST/.publish/VERSION/staging/, skipping those already there
                          with the same size and checksum
    remove_strays         delete staged objects that the build does not have
    verify_objects        list the staging copy again: every object present with the right size and checksum
    move_into_place       staging -> DEST/VERSION/ (local: one directory rename; S3: server-side copies with
                          the same ETags), then verify DEST/VERSION/ and delete the staging copy
    write_mirror          add a mirror for DEST to DEST/mirrors.json if it has none (see census_builder.release.mirrors)
    register_release      add VERSION to release.json (atomic, conflict-safe; see release_directory), then
                          delete the claim: release.json now refuses every other publisher of VERSION
    record_publication    note DEST in DIR/VERSION/published.json (notes finds the previous release there)

release.json names a version only after every object is in place at DEST/VERSION/ and verified, so an
interrupted publish is invisible to consumers; re-running the command finishes it without re-sending
complete objects. Locally DEST/VERSION/ appears complete in one rename; on S3 a listing of DEST/VERSION/
during the copy shows part of it, but nothing names it before release.json does.

Checksums: local DEST compares SHA-256. S3 compares the ETag, which S3 computes from the bytes it stored:
the MD5 for a single PUT, the MD5 of the part MD5s plus ``-N`` for a multipart upload; publish uploads with
a fixed part size, so the expected ETag is known, and sends Content-MD5 with every request. (Buckets with
SSE-KMS encryption return ETags that are not MD5s; publishing there is not supported.) The build's
fingerprint is the SHA-256 of every object's path, size and checksum: a re-run of the same build (same part
size on S3) has the same fingerprint.

Two publishers of the same VERSION from different builds: the second is refused when it claims, before it
sends a byte. Two runs of the same build at once are not told apart: run one. Publishers of different
versions may run at once; release.json keeps both.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from census_builder.build.state import BuildPaths, read_json
from census_builder.errors import PublishRefusedError, ReleaseExistsError, StorageError
from census_builder.names import check_version_name
from census_builder.release.directory import (
    RELEASE_JSON,
    Destination,
    ReleaseEntry,
    S3DirectoryStore,
    entry_for,
    open_store,
)
from census_builder.release.published import record_publication
from census_builder.runtime import faults
from census_builder.runtime.progress import Progress

logger = logging.getLogger(__name__)

PARTS = ("soma", "h5ads")
MIN_PART_SIZE = 5 * 1024**2  # S3's minimum for all but the last part
DEFAULT_PART_SIZE = 64 * 1024**2
_READ = 1024**2


@dataclass(frozen=True)
class SourceObject:
    relative: str  # below DIR/VERSION, posix, e.g. "soma/census_data/__group/..."
    path: Path
    size: int


@dataclass(frozen=True)
class RemoteObject:
    size: int
    etag: str | None = None  # S3 only


@dataclass(frozen=True)
class PublishResult:
    version: str
    dest: str
    entry: ReleaseEntry
    objects: int
    uploaded: int
    skipped: int
    removed: int
    bytes_uploaded: int


ObjectCallback = Callable[[SourceObject, bool], None]  # (object, uploaded: False when skipped)


# -- steps -------------------------------------------------------------------------------------------------


def check_publishable(paths: BuildPaths) -> None:
    """Refuse a build that is not complete or has not passed validation."""
    version = paths.root.name
    if not paths.report.is_file():
        raise PublishRefusedError(f"{paths.report} does not exist: {version} has not been built in this --workdir")
    status = read_json(paths.report).get("status")
    if status != "complete" or not paths.is_complete():
        raise PublishRefusedError(
            f"build {version} is not complete (status {status!r} in {paths.report}); "
            "finish it with the build command first"
        )
    validation = paths.validation_report
    if not validation.is_file():
        raise PublishRefusedError(
            f"build {version} has not been validated ({validation} does not exist); run the validate command first"
        )
    try:
        passed = read_json(validation).get("passed")
    except (OSError, ValueError, AttributeError) as e:
        raise PublishRefusedError(f"{validation} is unreadable ({e}); re-run the validate command") from e
    if passed is not True:
        raise PublishRefusedError(f"build {version} failed validation (see {validation}); it cannot be published")


def validated_source_checksums(paths: BuildPaths) -> dict[str, dict[str, Any]]:
    """validation_report.json's ``source_checksums``: {dataset_id: {"path", "size", "sha256"}} of every source
    the validation read."""
    try:
        checksums = read_json(paths.validation_report).get("source_checksums")
    except (OSError, ValueError, AttributeError) as e:
        raise PublishRefusedError(f"{paths.validation_report} is unreadable ({e}); re-run the validate command") from e
    if not isinstance(checksums, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int)
        for v in checksums.values()
    ):
        raise PublishRefusedError(
            f"{paths.validation_report} records no checksums of the sources it validated (\"source_checksums\"), "
            f"so publish cannot tell that the h5ads are the validated ones; re-run the validate command "
            f"(python -m census_builder validate --version {paths.root.name} --workdir {paths.root.parent})"
        )
    return checksums


def check_validated_sources(
    paths: BuildPaths, sources: list[SourceObject], sha256: dict[str, str], validated: dict[str, dict[str, Any]]
) -> None:
    """Refuse unless every staged h5ad (``sha256``: relative path -> its SHA-256) is byte for byte a source
    that validation read (validation also reads the sources of datasets without cells, which are not shipped)."""
    problems: list[str] = []
    for src in sources:
        if not src.relative.startswith("h5ads/") or not src.relative.endswith(".h5ad"):
            continue
        ds = src.relative.removeprefix("h5ads/").removesuffix(".h5ad")
        want = validated.get(ds)
        if want is None:
            problems.append(f"dataset {ds!r}: {src.path} was not validated (no checksum in the validation report)")
        elif want["size"] != src.size or want["sha256"] != sha256[src.relative]:
            problems.append(
                f"dataset {ds!r}: {src.path} ({src.size} bytes, sha256 {sha256[src.relative][:16]}...) is not the "
                f"file validation read from {want.get('path', '?')} ({want['size']} bytes, sha256 "
                f"{want['sha256'][:16]}...)"
            )
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PublishRefusedError(
            f"build {paths.root.name}: {len(problems)} source file(s) differ from what was validated:\n{lines}\n"
            "A source changed after validation (edited in place? a hard-linked staged copy changes with it). "
            "Nothing was uploaded. Restore the validated file, or rebuild (build --restart, or another --version) "
            "and validate again."
        )


def list_sources(paths: BuildPaths) -> list[SourceObject]:
    out: list[SourceObject] = []
    for part in PARTS:
        base = paths.root / part
        if not base.is_dir():
            raise PublishRefusedError(f"{base} is missing; the build directory is incomplete")
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                p = Path(dirpath) / name
                out.append(SourceObject(p.relative_to(paths.root).as_posix(), p, p.stat().st_size))
    out.sort(key=lambda o: o.relative)
    return out


def check_not_published(dest: Destination, version: str) -> None:
    directory = open_store(dest).read()
    if version in directory.releases:
        raise ReleaseExistsError(
            f"release {version} is already published at {dest}; published releases are "
            "immutable: build and publish a new version"
        )
    if version in directory.aliases:
        raise ReleaseExistsError(f"{version!r} is an alias at {dest}; choose another version name")


# -- object stores -----------------------------------------------------------------------------------------


class ObjectStore(Protocol):
    def fingerprint(self, src: SourceObject) -> str: ...
    def list(self) -> dict[str, RemoteObject]: ...
    def remote_fingerprint(self, relative: str, obj: RemoteObject) -> str: ...
    def put(self, src: SourceObject) -> None: ...
    def delete(self, relative: str) -> None: ...
    def move_from(self, staging: Any, src: SourceObject) -> None: ...
    def clear(self) -> None: ...


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def s3_etag_and_sha256(path: Path, part_size: int) -> tuple[str, str]:
    """:func:`s3_etag` and the file's SHA-256 from one read."""
    sha = hashlib.sha256()
    digests: list[bytes] = []
    whole = hashlib.md5(usedforsecurity=False)
    size = 0
    for part in _parts(path, part_size):
        sha.update(part)
        whole.update(part)
        digests.append(hashlib.md5(part, usedforsecurity=False).digest())
        size += len(part)
    if size <= part_size:
        return whole.hexdigest(), sha.hexdigest()
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}", sha.hexdigest()


class LocalObjects:
    """DEST/VERSION/ on a local file system; files appear under their final name only when complete."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def fingerprint(self, src: SourceObject) -> str:
        return _sha256(src.path)

    def list(self) -> dict[str, RemoteObject]:
        out: dict[str, RemoteObject] = {}
        for part in PARTS:
            for dirpath, _dirs, files in os.walk(self.root / part):
                for name in files:
                    p = Path(dirpath) / name
                    out[p.relative_to(self.root).as_posix()] = RemoteObject(p.stat().st_size)
        return out

    def remote_fingerprint(self, relative: str, obj: RemoteObject) -> str:
        return _sha256(self.root / relative)

    def put(self, src: SourceObject) -> None:
        target = self.root / src.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            shutil.copyfile(src.path, tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # on disk before release.json can name it
            finally:
                os.close(fd)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)

    def move_from(self, staging: LocalObjects, src: SourceObject) -> None:
        """Move one verified object from the staging directory to its place here."""
        target = self.root / src.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging.root / src.relative, target)

    def clear(self) -> None:
        """Remove this directory (the staging directory, once everything is in place)."""
        shutil.rmtree(self.root, ignore_errors=True)


def _parts(path: Path, part_size: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(part_size):
            yield chunk


def s3_etag(path: Path, part_size: int) -> str:
    """The ETag S3 gives ``path`` uploaded by :class:`S3Objects` with ``part_size`` (quotes stripped)."""
    size = path.stat().st_size
    if size <= part_size:
        h = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            while chunk := f.read(_READ):
                h.update(chunk)
        return h.hexdigest()
    digests = [hashlib.md5(p, usedforsecurity=False).digest() for p in _parts(path, part_size)]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


class S3Objects:
    """s3://bucket/prefix/VERSION/ through boto3."""

    def __init__(
        self, dest: Destination, version: str, *, part_size: int = DEFAULT_PART_SIZE, client: Any = None
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.dest = dest
        self.bucket = dest.bucket
        self.base = dest.key(version) + "/"
        self.part_size = part_size
        self.client = client or dest.s3_client()

    def fingerprint(self, src: SourceObject) -> str:
        return s3_etag(src.path, self.part_size)

    def list(self) -> dict[str, RemoteObject]:
        out: dict[str, RemoteObject] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for part in PARTS:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.base}{part}/"):
                for o in page.get("Contents", []):
                    out[o["Key"][len(self.base) :]] = RemoteObject(int(o["Size"]), str(o["ETag"]).strip('"'))
        return out

    def remote_fingerprint(self, relative: str, obj: RemoteObject) -> str:
        return obj.etag or ""

    def abort_stale_uploads(self) -> int:
        """Abort multipart uploads an interrupted run left under DEST/VERSION/ (they cost storage)."""
        n = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.base):
            for u in page.get("Uploads", []):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"])
                n += 1
        return n

    def put(self, src: SourceObject) -> None:
        key = self.base + src.relative
        if src.size <= self.part_size:
            data = src.path.read_bytes()
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=_md5_b64(data))
            return

        def parts(upload_id: str) -> Iterator[dict[str, Any]]:
            for number, data in enumerate(_parts(src.path, self.part_size), start=1):
                r = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=_md5_b64(data),
                )
                yield {"PartNumber": number, "ETag": r["ETag"]}

        self._multipart(key, parts)

    def delete(self, relative: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.base + relative)

    def move_from(self, staging: S3Objects, src: SourceObject) -> None:
        """Copy one verified object from the staging prefix to its place here (server-side), with the same
        ETag: one CopyObject for a single-part object, the same part ranges for a multipart one."""
        key = self.base + src.relative
        source = {"Bucket": staging.bucket, "Key": staging.base + src.relative}
        if src.size <= self.part_size:
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source)
            return

        def parts(upload_id: str) -> Iterator[dict[str, Any]]:
            for number, start in enumerate(range(0, src.size, self.part_size), start=1):
                end = min(start + self.part_size, src.size) - 1
                r = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                yield {"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]}

        self._multipart(key, parts)

    def _multipart(self, key: str, parts: Callable[[str], Iterator[dict[str, Any]]]) -> None:
        """One multipart upload of ``key`` whose parts ``parts(upload_id)`` sends; aborted if anything fails."""
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            done = list(parts(upload_id))
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def clear(self) -> None:
        """Delete every object under this prefix (the staging prefix, once everything is in place)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.base):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})


# -- the claim ---------------------------------------------------------------------------------------------

STAGING_DIR = ".publish"  # DEST/.publish/VERSION/{claim.json, staging/}: gone once VERSION is registered


def build_fingerprint(sources: list[SourceObject], expected: dict[str, str]) -> str:
    """What identifies the build being published: every object's path, size and checksum."""
    h = hashlib.sha256()
    for s in sources:
        h.update(f"{s.relative}\0{s.size}\0{expected[s.relative]}\n".encode())
    return h.hexdigest()


class ClaimStore(Protocol):
    uri: str

    def create(self, data: bytes) -> bytes | None:
        """Create the claim atomically; None if created, else the existing claim's content."""
        ...

    def delete(self) -> None: ...


class LocalClaim:
    def __init__(self, dest: Path, version: str) -> None:
        self.path = dest / STAGING_DIR / version / "claim.json"
        self.uri = str(self.path)

    def create(self, data: bytes) -> bytes | None:
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
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
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
        self.path.unlink(missing_ok=True)
        for d in (self.path.parent, self.path.parent.parent):  # DEST/.publish/V, DEST/.publish if empty
            with contextlib.suppress(OSError):
                d.rmdir()


class S3Claim:
    def __init__(self, dest: Destination, version: str, client: Any) -> None:
        self.client = client
        self.bucket = dest.bucket
        self.key = dest.key(f"{STAGING_DIR}/{version}/claim.json")
        self.uri = f"s3://{self.bucket}/{self.key}"
        self.dest = dest

    def create(self, data: bytes) -> bytes | None:
        from botocore.exceptions import ClientError

        # An endpoint that ignores If-None-Match would let two publishers both "create" the claim: refuse it.
        S3DirectoryStore(self.client, self.bucket, self.dest.key(RELEASE_JSON)).require_conditional_writes()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, IfNoneMatch="*")
            return None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status not in (409, 412) and code not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())

    def delete(self) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key)


def claim_version(claims: ClaimStore, paths: BuildPaths, fingerprint: str, staging_uri: str) -> bool:
    """Claim the version at the destination for this build; True if this call created the claim, False if
    it resumes this build's own interrupted publish. Another build's claim refuses at once."""
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
        f"{str(other_fingerprint)[:16]}; this build's is {fingerprint[:16]}). Publish this build under another "
        f"version; if that publish was abandoned, delete {claims.uri} and {staging_uri} and re-run"
    )


# -- the command -------------------------------------------------------------------------------------------


def _fingerprints(store: ObjectStore, sources: list[SourceObject], workers: int) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-hash") as ex:
        return dict(zip((s.relative for s in sources), ex.map(store.fingerprint, sources), strict=True))


def _h5ad_sha256(
    store: ObjectStore, sources: list[SourceObject], expected: dict[str, str], workers: int
) -> dict[str, str]:
    """SHA-256 of each h5ad: the local store's fingerprints already are; for S3 the expected ETag is computed
    again from the same read as the SHA-256, so the bytes checked are the bytes whose ETag is verified."""
    h5ads = [s for s in sources if s.relative.startswith("h5ads/")]
    if isinstance(store, LocalObjects):
        return {s.relative: expected[s.relative] for s in h5ads}
    if not isinstance(store, S3Objects):
        return {s.relative: _sha256(s.path) for s in h5ads}
    part_size = store.part_size

    def both(s: SourceObject) -> tuple[str, str]:
        return s3_etag_and_sha256(s.path, part_size)

    out: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-sha256") as ex:
        for s, (etag, sha) in zip(h5ads, ex.map(both, h5ads), strict=True):
            expected[s.relative] = etag
            out[s.relative] = sha
    return out


def _already_there(
    store: ObjectStore, listed: dict[str, RemoteObject], src: SourceObject, expected: dict[str, str]
) -> bool:
    """``src`` is in ``store`` already, with its size and checksum (an interrupted run's object is kept)."""
    have = listed.get(src.relative)
    return (
        have is not None
        and have.size == src.size
        and store.remote_fingerprint(src.relative, have) == expected[src.relative]
    )


def upload_objects(
    store: ObjectStore,
    sources: list[SourceObject],
    expected: dict[str, str],
    existing: dict[str, RemoteObject],
    *,
    workers: int,
    on_object: ObjectCallback | None = None,
) -> tuple[int, int, int]:
    """Copy what is missing or different; returns (uploaded, skipped, bytes uploaded). An exception (from a
    transfer or from ``on_object``) cancels the transfers not yet started and propagates."""
    progress = Progress("publish", len(sources), "objects")
    uploaded = skipped = nbytes = 0

    def one(src: SourceObject) -> bool:
        if _already_there(store, existing, src, expected):
            return False
        store.put(src)
        return True

    ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish")
    try:
        pending: dict[Future[bool], SourceObject] = {ex.submit(one, s): s for s in sources}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                src = pending.pop(fut)
                sent = fut.result()
                if sent:
                    uploaded += 1
                    nbytes += src.size
                else:
                    skipped += 1
                progress.update(1, note=f"{nbytes / 1e6:,.1f} MB sent, {skipped} already there")
                faults.point(f"publish:object:{uploaded + skipped}")
                if on_object is not None:
                    on_object(src, sent)
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return uploaded, skipped, nbytes


def remove_strays(store: ObjectStore, sources: list[SourceObject], existing: dict[str, RemoteObject]) -> int:
    """Objects at DEST/VERSION/{soma,h5ads} that this build does not have (an earlier attempt's leftovers:
    stray TileDB fragments would change what readers see)."""
    wanted = {s.relative for s in sources}
    strays = sorted(set(existing) - wanted)
    for rel in strays:
        logger.warning("removing %s from the destination: not part of this build", rel)
        store.delete(rel)
    return len(strays)


def verify_objects(store: ObjectStore, sources: list[SourceObject], expected: dict[str, str], *, workers: int) -> None:
    remote = store.list()
    problems: list[str] = []

    def check(src: SourceObject) -> str | None:
        have = remote.get(src.relative)
        if have is None:
            return f"{src.relative}: missing"
        if have.size != src.size:
            return f"{src.relative}: {have.size} bytes, expected {src.size}"
        got = store.remote_fingerprint(src.relative, have)
        if got != expected[src.relative]:
            return f"{src.relative}: checksum {got}, expected {expected[src.relative]}"
        return None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-verify") as ex:
        problems = [p for p in ex.map(check, sources) if p]
    extra = sorted(set(remote) - {s.relative for s in sources})
    problems += [f"{rel}: not part of this build" for rel in extra]
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        raise StorageError(
            f"{len(problems)} object(s) at the destination do not match the build:\n{shown}\n"
            "Re-run publish to repair them."
        )


def register_release(dest: Destination, version: str, entry: ReleaseEntry) -> None:
    open_store(dest).update(lambda d: d.with_release(version, entry))


def write_mirror(dest: Destination, region: str | None) -> None:
    """Make sure DEST/mirrors.json has a mirror for DEST (see census_builder.release.mirrors); before registering, so
    that a release listed in release.json always has a mirror."""
    from census_builder.release.mirrors import ensure_mirror, mirror_for, update_mirrors

    name, mirror = mirror_for(dest, region=region)
    update_mirrors(dest, lambda m: ensure_mirror(m, name, mirror))


def publish(
    workdir: str | Path,
    version: str,
    dest: str | Path,
    *,
    endpoint_url: str | None = None,
    lts: bool = False,
    release_date: str | None = None,
    workers: int = 8,
    part_size: int = DEFAULT_PART_SIZE,
    on_object: ObjectCallback | None = None,
) -> PublishResult:
    """Publish build ``version`` of ``workdir`` to ``dest`` (a local directory or ``s3://bucket/prefix``)."""
    check_version_name(version)
    paths = BuildPaths.for_version(workdir, version)
    target = Destination.parse(dest, endpoint_url=endpoint_url)
    check_publishable(paths)
    validated = validated_source_checksums(paths)
    sources = list_sources(paths)
    storage_errors: tuple[type[Exception], ...] = (OSError,)
    if target.kind == "s3":
        from botocore.exceptions import BotoCoreError, ClientError

        storage_errors = (OSError, BotoCoreError, ClientError)
    try:
        return _publish(
            paths,
            target,
            sources,
            validated,
            lts=lts,
            release_date=release_date,
            workers=workers,
            part_size=part_size,
            on_object=on_object,
        )
    except storage_errors as e:
        raise StorageError(
            f"publishing {version} to {target} failed: {e}. Fix the cause and re-run publish: "
            "objects already sent are kept and not sent again"
        ) from e


def move_into_place(
    final: ObjectStore, staging: ObjectStore, sources: list[SourceObject], expected: dict[str, str], *, workers: int
) -> int:
    """Move the verified staging copy to DEST/VERSION/: locally one directory rename when DEST/VERSION does not
    exist yet, else (and on S3, where a move is a server-side copy) object by object, skipping objects an
    interrupted run already moved. Returns the number of objects moved."""
    if isinstance(final, LocalObjects) and isinstance(staging, LocalObjects) and not final.root.exists():
        os.rename(staging.root, final.root)
        return len(sources)
    placed = final.list()

    def move(src: SourceObject) -> bool:
        if _already_there(final, placed, src, expected):
            return False
        final.move_from(staging, src)
        return True

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-move") as ex:
        return sum(ex.map(move, sources))


def _stores(target: Destination, version: str, part_size: int) -> tuple[ObjectStore, ObjectStore, ClaimStore, str]:
    """DEST/VERSION/, its staging copy DEST/.publish/VERSION/staging/, the claim, and the staging location."""
    staging_dir = f"{STAGING_DIR}/{version}/staging"
    if target.kind == "local":
        dest = target.local_path
        staging = LocalObjects(dest / staging_dir)
        return LocalObjects(dest / version), staging, LocalClaim(dest, version), str(staging.root)
    final = S3Objects(target, version, part_size=part_size)
    s3_staging = S3Objects(target, staging_dir, part_size=part_size, client=final.client)
    claim = S3Claim(target, version, final.client)
    return final, s3_staging, claim, f"s3://{target.bucket}/{s3_staging.base}"


def _publish(
    paths: BuildPaths,
    target: Destination,
    sources: list[SourceObject],
    validated: dict[str, dict[str, Any]],
    *,
    lts: bool,
    release_date: str | None,
    workers: int,
    part_size: int,
    on_object: ObjectCallback | None,
) -> PublishResult:
    version = paths.root.name
    check_not_published(target, version)
    final, staging, claims, staging_uri = _stores(target, version, part_size)
    region = final.client.meta.region_name if isinstance(final, S3Objects) else None

    expected = _fingerprints(final, sources, workers)
    check_validated_sources(paths, sources, _h5ad_sha256(final, sources, expected, workers), validated)
    fresh = claim_version(claims, paths, build_fingerprint(sources, expected), staging_uri)
    try:  # a publisher that registered VERSION and dropped its claim before we claimed is seen here
        check_not_published(target, version)
    except ReleaseExistsError:
        if fresh:
            claims.delete()
        raise
    for store in (final, staging):  # only the claim's holder may touch uploads in progress
        if isinstance(store, S3Objects):
            aborted = store.abort_stale_uploads()
            if aborted:
                logger.info("aborted %d multipart upload(s) left by an interrupted run", aborted)
    logger.info(
        "publishing %s (%d objects, %.1f MB) to %s/%s/ through %s",
        version,
        len(sources),
        sum(s.size for s in sources) / 1e6,
        target,
        version,
        staging_uri,
    )

    staged, placed = staging.list(), final.list()
    if staged or not placed:
        uploaded, skipped, nbytes = upload_objects(
            staging, sources, expected, staged, workers=workers, on_object=on_object
        )
        removed = remove_strays(staging, sources, staged)
        verify_objects(staging, sources, expected, workers=workers)
        faults.point("publish:before_move")
        moved = move_into_place(final, staging, sources, expected, workers=workers)
        logger.info("moved %d verified object(s) into %s/%s/", moved, target, version)
        removed += remove_strays(final, sources, final.list())
    else:  # an interrupted run had moved the upload into place already: finish it there
        uploaded, skipped, nbytes = upload_objects(
            final, sources, expected, placed, workers=workers, on_object=on_object
        )
        removed = remove_strays(final, sources, placed)
    verify_objects(final, sources, expected, workers=workers)
    staging.clear()
    logger.info("all %d objects verified at %s/%s/", len(sources), target, version)

    faults.point("publish:before_register")
    write_mirror(target, region)
    entry = entry_for(target, version, release_date=release_date, lts=lts, s3_region=region)
    register_release(target, version, entry)
    record_publication(paths, target)
    claims.delete()  # release.json names VERSION now: it refuses any other publisher of it
    logger.info("release %s published: %s", version, entry.soma.uri)
    return PublishResult(
        version=version,
        dest=str(target),
        entry=entry,
        objects=len(sources),
        uploaded=uploaded,
        skipped=skipped,
        removed=removed,
        bytes_uploaded=nbytes,
    )

"""The publish command: copy a validated build to ``DEST/VERSION/`` and add it to ``DEST/release.json``.

    check_publishable     build_report.json says complete and validation_report.json says passed
    list_sources          every file under DIR/VERSION/{soma,h5ads} (never .build/ or the reports)
    check_not_published   VERSION is not in DEST/release.json yet
    upload_objects        copy each object, skipping those already at DEST with the same size and checksum
    remove_strays         delete objects under DEST/VERSION/{soma,h5ads} that the build does not have
    verify_objects        list DEST again: every object present with the right size and checksum
    register_release      add VERSION to release.json (atomic, conflict-safe; see release_directory)

release.json names a version only after every object is at DEST and verified, so an interrupted publish is
invisible to consumers; re-running the command finishes it without re-sending complete objects.

Checksums: local DEST compares SHA-256. S3 compares the ETag, which S3 computes from the bytes it stored:
the MD5 for a single PUT, the MD5 of the part MD5s plus ``-N`` for a multipart upload; publish uploads with
a fixed part size, so the expected ETag is known, and sends Content-MD5 with every request. (Buckets with
SSE-KMS encryption return ETags that are not MD5s; publishing there is not supported.)

Publish a given VERSION to a given DEST from one place at a time: two publishers of the same version are not
coordinated while they upload (the second to register gets ReleaseExistsError). Publishers of different
versions may run at once; release.json keeps both.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from census_builder import faults
from census_builder.errors import PublishRefusedError, ReleaseExistsError, StorageError
from census_builder.names import check_version_name
from census_builder.progress import Progress
from census_builder.release_directory import Destination, ReleaseEntry, entry_for, open_store
from census_builder.state import BuildPaths, read_json

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


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            done = []
            for number, data in enumerate(_parts(src.path, self.part_size), start=1):
                r = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=_md5_b64(data),
                )
                done.append({"PartNumber": number, "ETag": r["ETag"]})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def delete(self, relative: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.base + relative)


# -- the command -------------------------------------------------------------------------------------------


def _fingerprints(store: ObjectStore, sources: list[SourceObject], workers: int) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-hash") as ex:
        return dict(zip((s.relative for s in sources), ex.map(store.fingerprint, sources), strict=True))


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
        have = existing.get(src.relative)
        if (
            have is not None
            and have.size == src.size
            and store.remote_fingerprint(src.relative, have) == expected[src.relative]
        ):
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


def _publish(
    paths: BuildPaths,
    target: Destination,
    sources: list[SourceObject],
    *,
    lts: bool,
    release_date: str | None,
    workers: int,
    part_size: int,
    on_object: ObjectCallback | None,
) -> PublishResult:
    version = paths.root.name
    check_not_published(target, version)

    store: ObjectStore
    region: str | None = None
    if target.kind == "local":
        store = LocalObjects(target.local_path / version)
    else:
        s3 = S3Objects(target, version, part_size=part_size)
        region = s3.client.meta.region_name
        aborted = s3.abort_stale_uploads()
        if aborted:
            logger.info("aborted %d multipart upload(s) left by an interrupted run", aborted)
        store = s3
    logger.info(
        "publishing %s (%d objects, %.1f MB) to %s/%s/",
        version,
        len(sources),
        sum(s.size for s in sources) / 1e6,
        target,
        version,
    )

    expected = _fingerprints(store, sources, workers)
    existing = store.list()
    uploaded, skipped, nbytes = upload_objects(store, sources, expected, existing, workers=workers, on_object=on_object)
    removed = remove_strays(store, sources, existing)
    verify_objects(store, sources, expected, workers=workers)
    logger.info("all %d objects verified at %s/%s/", len(sources), target, version)

    faults.point("publish:before_register")
    entry = entry_for(target, version, release_date=release_date, lts=lts, s3_region=region)
    register_release(target, version, entry)
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

"""Object stores: where publish copies a build's files, a local directory or an S3 prefix, and the S3 client.

    LocalObjects   DEST/... on a file system: a file appears under its final name only when complete (copied
                   beside it, synced, renamed); moving is a rename
    S3Objects      s3://bucket/prefix/...: single PUTs up to ``part_size``, multipart uploads above it (one
                   path for upload and server-side copy, aborted on failure), with Content-MD5 on every request
    s3_client      the one factory of boto3 S3 clients in census_builder.release

Both list, fingerprint (local: SHA-256; S3: the ETag S3 computes, see :func:`s3_etag`), put, delete and move
objects below ``{soma,h5ads,gene_expression}/``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from census_builder.release.destination import Destination
from census_builder.runtime import s3 as runtime_s3

PARTS = ("soma", "h5ads", "gene_expression")  # the directories of a build that are published
OPTIONAL_PARTS = frozenset({"gene_expression"})  # published when present (the gene-expression command made it)
MIN_PART_SIZE = 5 * 1024**2  # S3's minimum for all but the last part
DEFAULT_PART_SIZE = 64 * 1024**2
READ_SIZE = 1024**2  # bytes read at a time when hashing a file whole
S3_MAX_POOL_CONNECTIONS = 32  # publish uploads and copies objects from many threads at once


def s3_client(endpoint_url: str | None = None) -> Any:
    """Make the S3 client every part of census_builder.release uses: runtime's policy, more connections."""
    return runtime_s3.s3_client(endpoint_url, max_pool_connections=S3_MAX_POOL_CONNECTIONS)


@dataclass(frozen=True)
class SourceObject:
    """A file of the build to publish."""

    relative: str  # below DIR/VERSION, posix, e.g. "soma/census_data/__group/..."
    path: Path
    size: int


@dataclass(frozen=True)
class RemoteObject:
    """An object as a store lists it."""

    size: int
    etag: str | None = None  # S3 only


class ObjectStore(Protocol):
    """A directory of published objects (DEST/VERSION/ or its staging copy), local or on S3."""

    def fingerprint(self, src: SourceObject) -> str:
        """Return the checksum ``src`` will have once stored here."""
        ...

    def list(self) -> dict[str, RemoteObject]:
        """List the objects below ``{soma,h5ads,gene_expression}/`` by relative path."""
        ...

    def remote_fingerprint(self, relative: str, obj: RemoteObject) -> str:
        """Return the checksum of the stored object ``relative`` (as listed: ``obj``)."""
        ...

    def put(self, src: SourceObject) -> None:
        """Store ``src``; it appears complete or not at all."""
        ...

    def delete(self, relative: str) -> None:
        """Delete the object ``relative`` (no error if it is gone)."""
        ...

    def move_from(self, staging: Any, src: SourceObject) -> None:
        """Move the verified object ``src`` from ``staging`` (a store of the same kind) to its place here."""
        ...

    def clear(self) -> None:
        """Delete everything here (the staging copy, once everything is in place)."""
        ...


def sha256_of(path: Path) -> str:
    """Return the SHA-256 of the file at ``path`` (hex)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def s3_etag_and_sha256(path: Path, part_size: int) -> tuple[str, str]:
    """Return :func:`s3_etag` and the file's SHA-256, from one read."""
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
        """Return the SHA-256 of ``src``."""
        return sha256_of(src.path)

    def list(self) -> dict[str, RemoteObject]:
        """List the files below ``{soma,h5ads,gene_expression}/`` with their sizes."""
        out: dict[str, RemoteObject] = {}
        for part in PARTS:
            for dirpath, _dirs, files in os.walk(self.root / part):
                for name in files:
                    p = Path(dirpath) / name
                    out[p.relative_to(self.root).as_posix()] = RemoteObject(p.stat().st_size)
        return out

    def remote_fingerprint(self, relative: str, obj: RemoteObject) -> str:
        """Return the SHA-256 of the stored file."""
        return sha256_of(self.root / relative)

    def put(self, src: SourceObject) -> None:
        """Copy ``src`` beside its target, sync it and rename it into place."""
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
        """Delete the file ``relative`` (no error if it is gone)."""
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
    """Return the ETag S3 gives ``path`` uploaded by :class:`S3Objects` with ``part_size`` (quotes stripped)."""
    size = path.stat().st_size
    if size <= part_size:
        h = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            while chunk := f.read(READ_SIZE):
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
        self.client = client or s3_client(dest.endpoint_url)

    def fingerprint(self, src: SourceObject) -> str:
        """Return the ETag S3 will give ``src`` uploaded with this store's part size."""
        return s3_etag(src.path, self.part_size)

    def list(self) -> dict[str, RemoteObject]:
        """List the objects below ``{soma,h5ads,gene_expression}/`` with their sizes and ETags."""
        out: dict[str, RemoteObject] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for part in PARTS:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.base}{part}/"):
                for o in page.get("Contents", []):
                    out[o["Key"][len(self.base) :]] = RemoteObject(int(o["Size"]), str(o["ETag"]).strip('"'))
        return out

    def remote_fingerprint(self, relative: str, obj: RemoteObject) -> str:
        """Return the listed ETag."""
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
        """Upload ``src``: one PUT up to the part size, else a multipart upload; Content-MD5 on every request."""
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
        """Delete the object ``relative``."""
        self.client.delete_object(Bucket=self.bucket, Key=self.base + relative)

    def move_from(self, staging: S3Objects, src: SourceObject) -> None:
        """Copy one verified object from the staging prefix to its place here (server-side), with the same ETag.

        One CopyObject for a single-part object, the same part ranges for a multipart one.
        """
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

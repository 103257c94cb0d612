"""Bring each manifest entry's H5AD into the release's ``h5ads/`` directory (S3 download, or for a local
source a hard link on the same filesystem, else a copy).

The build reads only these copies, so the release's ``dataset_h5ad_path`` names exactly what was built.
A hard link costs no I/O (copying a 1 M-cell corpus wrote 8.9 GB and took most of the first stage); the
build never writes to a source, and H5ADs of a corpus are not edited in place.
Copies and S3 downloads are written to ``h5ads/.<id>.h5ad.partial`` (in the workdir, never the system temp
directory) and renamed, so an interrupted copy is never mistaken for a finished one; a finished copy of the
right size is not fetched again on resume.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from census_builder.errors import InputError
from census_builder.manifest import Manifest, ManifestEntry

logger = logging.getLogger(__name__)


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client with standard retries; ``endpoint_url`` (or AWS_ENDPOINT_URL) for S3-compatible stores."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60),
    )


def source_size(manifest: Manifest, entry: ManifestEntry, client: Any = None) -> int:
    """Size of the source in bytes; InputError if it is missing or unreachable."""
    if entry.is_s3:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3_uri(entry.h5ad_uri)
        try:
            head = (client or s3_client()).head_object(Bucket=bucket, Key=key)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            reason = "file not found" if code in ("404", "NoSuchKey", "NotFound") else f"S3 error {code}: {e}"
            raise InputError(entry.dataset_id, reason, uri=entry.h5ad_uri) from e
        except BotoCoreError as e:
            raise InputError(entry.dataset_id, f"S3 unreachable after retries: {e}", uri=entry.h5ad_uri) from e
        return int(head["ContentLength"])
    path = manifest.local_path(entry)
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise InputError(entry.dataset_id, "file not found", uri=str(path)) from e
    except OSError as e:
        raise InputError(entry.dataset_id, f"cannot access file: {e.strerror}", uri=str(path)) from e
    if not path.is_file():
        raise InputError(entry.dataset_id, "not a regular file", uri=str(path))
    return st.st_size


def stage_source(manifest: Manifest, entry: ManifestEntry, dest: Path, client: Any = None) -> Path:
    """Link, copy or download ``entry`` to ``dest`` unless a complete copy is already there."""
    size = source_size(manifest, entry, client)
    if dest.is_file() and dest.stat().st_size == size:
        logger.debug("%s already staged at %s", entry.dataset_id, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        if entry.is_s3:
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, key = split_s3_uri(entry.h5ad_uri)
            try:
                # Straight into our own .partial beside the destination (in the workdir, never the system temp
                # directory). download_file also stays beside its target, but through a temporary file of its
                # own ('<name>.<random>'), which a killed run leaves behind and no re-run removes.
                with tmp.open("wb") as f:
                    (client or s3_client()).download_fileobj(bucket, key, f)
            except (BotoCoreError, ClientError) as e:
                raise InputError(entry.dataset_id, f"S3 download failed after retries: {e}", uri=entry.h5ad_uri) from e
        else:
            _link_or_copy(manifest.local_path(entry), tmp)
        if tmp.stat().st_size != size:
            raise InputError(
                entry.dataset_id, f"copy has {tmp.stat().st_size} bytes, source {size}", uri=entry.h5ad_uri
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("staged %s (%d bytes) at %s", entry.dataset_id, size, dest)
    return dest


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)  # a SIGKILLed run's leftover
    try:
        os.link(src, dest)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        shutil.copyfile(src, dest)  # another filesystem, or links not allowed here

"""Bring each manifest entry's H5AD into the release's ``h5ads/`` directory, and know exactly what was made.

Local sources are reflinked (a copy-on-write clone: an independent file at no cost, where the filesystem
supports it), else hard-linked (same filesystem: no bytes copied), else copied; S3 sources are downloaded
with a SHA-256 computed on the way. The build reads only these copies, so the release's
``dataset_h5ad_path`` names exactly what was built.

Every file staging creates is recorded in ``.build/staged/<dataset_id>.json`` (the staged path, how it
was made, its size, mtime_ns and inode, and the source's identity: size, mtime_ns and inode of a local
file; ETag, size and LastModified of an S3 object plus the SHA-256 of the bytes downloaded). The build
deletes or replaces a file under ``h5ads/`` only when such a record says it created that very file
(same inode); anything else there is refused, never touched. A staged copy is reused only while both the
source and the copy still match their records: a source replaced (``cp good .tmp && mv .tmp src.h5ad``)
or edited in place is staged again, and the log says so. Copies are written to a temporary name that
is recorded first (in ``h5ads/``, never the system temp directory), so an interrupted copy is never
mistaken for a finished one and is cleaned up on resume.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from census_builder.build.state import BuildPaths, read_json, write_json_atomic
from census_builder.errors import BuildStateError, InputError, ManifestError
from census_builder.runtime import s3 as runtime_s3
from census_builder.sources.manifest import STAGING_TMP_HEX, Manifest, ManifestEntry

logger = logging.getLogger(__name__)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Return (bucket, key) of ``s3://bucket/key``."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def s3_client(endpoint_url: str | None = None) -> Any:
    """Return a boto3 S3 client with census_builder.runtime.s3's retry, timeout and endpoint policy."""
    return runtime_s3.s3_client(endpoint_url)


def source_uri(manifest: Manifest, entry: ManifestEntry) -> str:
    """Return the user's file as errors should name it: the S3 URI, or the local path the manifest resolves to."""
    return entry.h5ad_uri if entry.is_s3 else str(manifest.local_path(entry))


def source_identity(manifest: Manifest, entry: ManifestEntry, client: Any = None) -> dict[str, Any]:
    """Return what identifies the source's content without reading it.

    Size, mtime_ns and inode of a local file (checked readable: its HDF5 signature is read); ETag, size and
    LastModified of an S3 object. InputError naming the user's file if it is missing, unreadable or
    unreachable.
    """
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
        return {
            "kind": "s3",
            "uri": entry.h5ad_uri,
            "size": int(head["ContentLength"]),
            "etag": str(head.get("ETag", "")),
            "last_modified": str(head.get("LastModified", "")),
        }
    path = manifest.local_path(entry)
    try:
        st = path.stat()
        if not path.is_file():
            raise InputError(entry.dataset_id, "not a regular file", uri=str(path))
        with path.open("rb") as f:
            hdf5 = _has_hdf5_signature(f, st.st_size)
    except FileNotFoundError as e:
        raise InputError(entry.dataset_id, "file not found", uri=str(path)) from e
    except OSError as e:
        raise InputError(entry.dataset_id, f"cannot read file: {e.strerror or e}", uri=str(path)) from e
    if not hdf5:
        raise InputError(entry.dataset_id, "not a readable HDF5/H5AD file (no HDF5 signature)", uri=str(path))
    return {
        "kind": "local",
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
    }


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_FIRST_USER_BLOCK = 512  # the smallest user block; larger ones double it
DOWNLOAD_ATTEMPTS = 3  # a transfer that breaks off mid-stream is started again this often in all
DOWNLOAD_CHUNK_BYTES = 8 * 1024**2  # read size while streaming an S3 object to disk


def _has_hdf5_signature(f: Any, size: int) -> bool:
    """HDF5 puts its signature at byte 0, 512, 1024, 2048, ... (after an optional user block)."""
    offset = 0
    while offset + len(_HDF5_SIGNATURE) <= size:
        f.seek(offset)
        if f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
            return True
        offset = _HDF5_FIRST_USER_BLOCK if offset == 0 else offset * 2
    return False


def source_size(manifest: Manifest, entry: ManifestEntry, client: Any = None) -> int:
    """Size of the source in bytes; InputError if it is missing, unreadable or unreachable."""
    return int(source_identity(manifest, entry, client)["size"])


def file_identity(path: Path) -> dict[str, int]:
    """Return size, mtime_ns and inode of the file at ``path``."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


_SOURCE_KEYS = {"local": ("size", "mtime_ns", "inode", "device"), "s3": ("size", "etag", "last_modified")}


def identity_changes(recorded: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """How ``now`` differs from ``recorded`` (empty: the same content, as far as identity tells)."""
    if not recorded or recorded.get("kind", "staged") != now.get("kind", "staged"):
        return ["not recorded"]
    keys = _SOURCE_KEYS.get(str(now.get("kind")), ("size", "mtime_ns", "inode"))
    return [f"{k} {recorded.get(k)!r} -> {now.get(k)!r}" for k in keys if recorded.get(k) != now.get(k)]


# -- layout --------------------------------------------------------------------------------------------------


def check_layout(manifest: Manifest, manifest_path: Path, paths: BuildPaths) -> None:
    """Refuse sources (or the manifest) inside the build's own folder DIR/VERSION/ (h5ads/, .build/, ...).

    The build writes and cleans up there, and must never delete, move or write a user's file.
    """
    root = paths.root.resolve()
    inside: list[str] = []
    for e in manifest.entries:
        if e.is_s3:
            continue
        src = manifest.local_path(e).resolve()
        if src.is_relative_to(root):
            inside.append(f"dataset {e.dataset_id!r}: {manifest.local_path(e)}")
    if Path(manifest_path).resolve().is_relative_to(root):
        inside.append(f"the manifest {manifest_path}")
    if inside:
        lines = "\n".join(f"  - {x}" for x in inside)
        raise ManifestError(
            f"{len(inside)} input(s) lie inside this build's own folder {root}/, which the build writes and "
            f"cleans up:\n{lines}\nMove them out first (e.g. `mv {root}/h5ads /data/corpus` and point the "
            "manifest there), or build into another --workdir or --version."
        )


# -- staging records -----------------------------------------------------------------------------------------


def records_dir(paths: BuildPaths) -> Path:
    """Where staging records live: ``.build/staged/``."""
    return paths.state / "staged"


def _record_path(records: Path, dataset_id: str) -> Path:
    return records / f"{dataset_id}.json"


def read_record(records: Path, dataset_id: str) -> dict[str, Any] | None:
    """Return the staging record of ``dataset_id``, or None if there is none."""
    path = _record_path(records, dataset_id)
    if not path.is_file():
        return None
    try:
        rec: dict[str, Any] = read_json(path)
    except (OSError, ValueError) as e:
        raise BuildStateError(f"staging record {path} is unreadable ({e}); re-run the build with --restart") from e
    return rec


def _write_record(records: Path, dataset_id: str, rec: dict[str, Any]) -> None:
    write_json_atomic(_record_path(records, dataset_id), rec)


def _ours(rec: dict[str, Any], dest: Path) -> bool:
    """Tell whether the file at ``dest`` is one this build created (its inode is recorded for that path)."""
    if rec.get("dest") != str(dest):
        return False
    try:
        inode = dest.stat().st_ino
    except FileNotFoundError:
        return False
    return any(isinstance(r, dict) and r.get("inode") == inode for r in (rec.get("staged"), rec.get("replaced")))


def _drop_partial(rec: dict[str, Any] | None) -> None:
    if rec and rec.get("partial"):
        Path(rec["partial"]).unlink(missing_ok=True)  # recorded before it was created: ours


def _not_ours(entry: ManifestEntry, dest: Path, records: Path) -> InputError:
    return InputError(
        entry.dataset_id,
        f"{dest} exists but this build did not create it (no matching record in {records}); the build never "
        "overwrites or deletes files it did not create: move it out of the build folder and re-run",
        uri=entry.h5ad_uri,
    )


def stage_source(manifest: Manifest, entry: ManifestEntry, dest: Path, records: Path, client: Any = None) -> Path:
    """Reflink, link, copy or download ``entry`` to ``dest`` unless the recorded copy is still current."""
    ident = source_identity(manifest, entry, client)
    ds = entry.dataset_id
    rec = read_record(records, ds)
    if dest.exists() or dest.is_symlink():
        if rec is None or not _ours(rec, dest):
            raise _not_ours(entry, dest, records)
        changes = identity_changes(rec.get("source"), ident)
        staged_changes = identity_changes(rec.get("staged"), file_identity(dest))
        if not changes and not staged_changes and not rec.get("partial"):
            logger.debug("%s already staged at %s", ds, dest)
            return dest
        if changes:
            logger.info(
                "dataset %s: source %s changed since it was staged (%s); staging it again",
                ds,
                source_uri(manifest, entry),
                ", ".join(changes),
            )
        else:
            logger.info("dataset %s: the staged copy %s is not the one recorded; staging it again", ds, dest)
    _drop_partial(rec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:STAGING_TMP_HEX]}.partial")
    previous = file_identity(dest) if rec is not None and _ours(rec, dest) else None  # ours, to be replaced
    base = {"dataset_id": ds, "dest": str(dest), "source": ident, "replaced": previous}
    _write_record(records, ds, {**base, "partial": str(tmp), "staged": None, "method": None})  # before creating
    try:
        if entry.is_s3:
            method, sha256 = "download", _download(entry, ident, tmp, client)
        else:
            method, sha256 = _link_or_copy(manifest.local_path(entry), tmp), None
        staged = file_identity(tmp)
        if staged["size"] != ident["size"]:
            raise InputError(ds, f"copy has {staged['size']} bytes, source {ident['size']}", uri=entry.h5ad_uri)
        full = {**base, "method": method, "staged": staged, "sha256": sha256}
        _write_record(records, ds, {**full, "partial": str(tmp)})  # the inode is known before the rename
        os.replace(tmp, dest)
        _write_record(records, ds, {**full, "partial": None, "replaced": None})
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("staged %s (%d bytes, %s) at %s", ds, ident["size"], method, dest)
    return dest


def move_staged(records: Path, dataset_id: str, src: Path, dest: Path) -> bool:
    """Move the staged copy of ``dataset_id`` from ``src`` to ``dest`` if (and only if) this build created it.

    Records its new place. Returns whether a file was moved.
    """
    rec = read_record(records, dataset_id)
    if not (src.exists() or src.is_symlink()):
        return False
    if rec is None or not _ours(rec, src):
        logger.warning("left %s in place: this build did not create it", src)
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    _write_record(records, dataset_id, {**rec, "dest": str(dest)})
    return True


def remove_staged(records: Path, dataset_id: str, dest: Path) -> bool:
    """Delete the staged copy of ``dataset_id`` if (and only if) this build created it.

    The record keeps the source identity (a resume still notices a changed source). Returns whether a
    file was deleted.
    """
    rec = read_record(records, dataset_id)
    _drop_partial(rec)
    if not (dest.exists() or dest.is_symlink()):
        return False
    if rec is None or not _ours(rec, dest):
        logger.warning("left %s in place: this build did not create it", dest)
        return False
    dest.unlink()
    _write_record(records, dataset_id, {**rec, "partial": None, "replaced": None, "staged": None, "removed": True})
    return True


def changed_sources(manifest: Manifest, dataset_ids: list[str], paths: BuildPaths, client: Any = None) -> list[str]:
    """Datasets whose source (or staged copy) no longer matches what was staged and planned, one line each."""
    records = records_dir(paths)
    entries = {e.dataset_id: e for e in manifest.entries}
    out: list[str] = []
    for ds in dataset_ids:
        rec = read_record(records, ds)
        e = entries.get(ds)
        if rec is None or e is None:
            continue
        try:
            now = source_identity(manifest, e, client)
        except InputError as err:
            out.append(f"dataset {ds!r}: source {source_uri(manifest, e)}: {err.reason}")
            continue
        changes = identity_changes(rec.get("source"), now)
        if changes:
            out.append(f"dataset {ds!r}: source {source_uri(manifest, e)} changed ({', '.join(changes)})")
            continue
        dest = Path(rec.get("dest") or paths.h5ad(ds))  # a no-cells copy was moved aside (sources.staged)
        if rec.get("staged") is not None:
            try:
                staged_changes = identity_changes(rec["staged"], file_identity(dest))
            except FileNotFoundError:
                staged_changes = ["deleted"]
            if staged_changes:
                out.append(f"dataset {ds!r}: staged copy {dest} changed ({', '.join(staged_changes)})")
    return out


# -- transfers -----------------------------------------------------------------------------------------------

_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.EPERM, errno.ENOSYS, errno.EBADF}
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


def _reflink(src: Path, dest: Path) -> bool:
    """Clone ``src`` to ``dest`` copy-on-write (btrfs, XFS, ...); return False where the filesystem cannot."""
    try:
        with src.open("rb") as s, dest.open("xb") as d:
            fcntl.ioctl(d.fileno(), _FICLONE, s.fileno())
    except OSError as e:
        dest.unlink(missing_ok=True)  # created just above under a fresh recorded name
        if e.errno in _NO_REFLINK:
            return False
        raise
    return True


def _link_or_copy(src: Path, dest: Path) -> str:
    """Make ``dest`` (a fresh name) hold ``src``: reflink, else hard link, else copy; returns which."""
    if _reflink(src, dest):
        return "reflink"
    try:
        os.link(src, dest)
        return "link"
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
    shutil.copyfile(src, dest)  # another filesystem, or links not allowed here
    return "copy"


def _download(
    entry: ManifestEntry, ident: dict[str, Any], dest: Path, client: Any, attempts: int = DOWNLOAD_ATTEMPTS
) -> str:
    """Stream the S3 object (the version whose ETag was recorded) to ``dest``; returns its SHA-256.

    A transfer that breaks off is started again (up to ``attempts`` times): the hash covers exactly the
    bytes written.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3_uri(entry.h5ad_uri)
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if ident.get("etag"):
        args["IfMatch"] = ident["etag"]
    for attempt in range(1, attempts + 1):
        h = hashlib.sha256()
        try:
            body = (client or s3_client()).get_object(**args)["Body"]
            with dest.open("wb") as f:
                for chunk in body.iter_chunks(DOWNLOAD_CHUNK_BYTES):
                    h.update(chunk)
                    f.write(chunk)
            return h.hexdigest()
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise InputError(
                    entry.dataset_id, "the object changed while it was being downloaded; re-run", uri=entry.h5ad_uri
                ) from e
            raise InputError(entry.dataset_id, f"S3 download failed after retries: {e}", uri=entry.h5ad_uri) from e
        except BotoCoreError as e:  # connection dropped mid-stream: botocore retries requests, not reads
            if attempt == attempts:
                raise InputError(
                    entry.dataset_id, f"S3 download failed after {attempts} attempts: {e}", uri=entry.h5ad_uri
                ) from e
            logger.warning("dataset %s: download of %s broke off (%s); starting again", entry.dataset_id, key, e)
    raise AssertionError("unreachable")  # pragma: no cover

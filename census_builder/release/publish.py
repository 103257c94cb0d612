"""The publish command: copy a validated build to ``DEST/VERSION/`` and add it to ``DEST/release.json``.

    check_publishable     build_report.json says complete and validation_report.json says passed
    list_sources          every file under DIR/VERSION/{soma,h5ads,gene_expression} (never .build/ or the reports)
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
    register_release      add VERSION to release.json (atomic, conflict-safe; see release.directory), then
                          delete the claim: release.json now refuses every other publisher of VERSION
    record_publication    note DEST in DIR/VERSION/published.json (notes finds the previous release there)

This module holds the steps in their order; the checks are in :mod:`census_builder.release.publish_checks`,
the objects are copied by :mod:`census_builder.release.stores` and the claim lives in
:mod:`census_builder.release.claim`.

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

import logging
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from census_builder.build.state import BuildPaths
from census_builder.config import DEFAULT_PUBLISH_JOBS
from census_builder.errors import PublishRefusedError, ReleaseExistsError, StorageError
from census_builder.names import check_version_name
from census_builder.release.claim import (
    STAGING_DIR,
    ClaimStore,
    LocalClaim,
    S3Claim,
    build_fingerprint,
    claim_version,
)
from census_builder.release.destination import Destination
from census_builder.release.directory import ReleaseEntry, entry_for, open_store
from census_builder.release.publish_checks import (
    check_not_published,
    check_publishable,
    check_validated_sources,
    schema_versions,
    validated_source_checksums,
)
from census_builder.release.published import record_publication
from census_builder.release.stores import (
    DEFAULT_PART_SIZE,
    OPTIONAL_PARTS,
    PARTS,
    LocalObjects,
    ObjectStore,
    RemoteObject,
    S3Objects,
    SourceObject,
    s3_etag_and_sha256,
    sha256_of,
)
from census_builder.runtime import faults
from census_builder.runtime.progress import Progress

logger = logging.getLogger(__name__)

PROBLEMS_SHOWN = 20  # mismatching objects listed in a verification failure


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: the entry it registered and the objects it sent, skipped and removed."""

    version: str
    dest: str
    entry: ReleaseEntry
    objects: int
    uploaded: int
    skipped: int
    removed: int
    bytes_uploaded: int


ObjectCallback = Callable[[SourceObject, bool], None]  # (object, uploaded: False when skipped)


def list_sources(paths: BuildPaths) -> list[SourceObject]:
    """List every file under DIR/VERSION/{soma,h5ads,gene_expression}, sorted by relative path.

    ``gene_expression/`` (the gene-expression command's output) is optional.
    """
    out: list[SourceObject] = []
    for part in PARTS:
        base = paths.root / part
        if not base.is_dir():
            if part in OPTIONAL_PARTS:
                continue
            raise PublishRefusedError(f"{base} is missing; the build directory is incomplete")
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                p = Path(dirpath) / name
                out.append(SourceObject(p.relative_to(paths.root).as_posix(), p, p.stat().st_size))
    out.sort(key=lambda o: o.relative)
    return out


# -- steps -------------------------------------------------------------------------------------------------


def _fingerprints(store: ObjectStore, sources: list[SourceObject], workers: int) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-hash") as ex:
        return dict(zip((s.relative for s in sources), ex.map(store.fingerprint, sources), strict=True))


def _h5ad_sha256(
    store: ObjectStore, sources: list[SourceObject], expected: dict[str, str], workers: int
) -> dict[str, str]:
    """Return the SHA-256 of each h5ad.

    The local store's fingerprints already are; for S3 the expected ETag is computed again from the same read
    as the SHA-256, so the bytes checked are the bytes whose ETag is verified.
    """
    h5ads = [s for s in sources if s.relative.startswith("h5ads/")]
    if isinstance(store, LocalObjects):
        return {s.relative: expected[s.relative] for s in h5ads}
    if not isinstance(store, S3Objects):
        return {s.relative: sha256_of(s.path) for s in h5ads}
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
    """Copy what is missing or different; returns (uploaded, skipped, bytes uploaded).

    An exception (from a transfer or from ``on_object``) cancels the transfers not yet started and propagates.
    """
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
    """Delete the objects of ``store`` that this build does not have; returns how many.

    They are an earlier attempt's leftovers: stray TileDB fragments would change what readers see.
    """
    wanted = {s.relative for s in sources}
    strays = sorted(set(existing) - wanted)
    for rel in strays:
        logger.warning("removing %s from the destination: not part of this build", rel)
        store.delete(rel)
    return len(strays)


def verify_objects(store: ObjectStore, sources: list[SourceObject], expected: dict[str, str], *, workers: int) -> None:
    """List ``store`` again: StorageError unless every object is there with its size and checksum, and no other."""
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
        shown = "\n".join(f"  - {p}" for p in problems[:PROBLEMS_SHOWN])
        raise StorageError(
            f"{len(problems)} object(s) at the destination do not match the build:\n{shown}\n"
            "Re-run publish to repair them."
        )


def register_release(dest: Destination, version: str, entry: ReleaseEntry) -> None:
    """Add ``version`` to DEST/release.json (atomic, conflict-safe)."""
    open_store(dest).update(lambda d: d.with_release(version, entry))


def write_mirror(dest: Destination, region: str | None) -> None:
    """Make sure DEST/mirrors.json has a mirror for DEST (see census_builder.release.mirrors).

    Done before registering, so that a release listed in release.json always has a mirror.
    """
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
    workers: int = DEFAULT_PUBLISH_JOBS,  # objects hashed, sent and checked at once
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
    """Move the verified staging copy to DEST/VERSION/; returns the number of objects moved.

    Locally one directory rename when DEST/VERSION does not exist yet, else (and on S3, where a move is a
    server-side copy) object by object, skipping objects an interrupted run already moved.
    """
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
    entry = entry_for(
        target, version, release_date=release_date, lts=lts, s3_region=region, extra=schema_versions(paths)
    )
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

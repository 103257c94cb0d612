"""The checks before publish sends a byte (the steps are in :mod:`census_builder.release.publish`).

check_publishable          build_report.json says complete and validation_report.json says passed
validated_source_checksums the checksums validation recorded of every source it read
check_validated_sources    every staged h5ad is byte for byte a source that validation read
check_not_published        VERSION is not in DEST/release.json yet
schema_versions            the Census and dataset schema versions the build report records (for release.json)
"""

from __future__ import annotations

from typing import Any

from census_builder.build.state import BuildPaths, read_json
from census_builder.errors import PublishRefusedError, ReleaseExistsError
from census_builder.release.claim import DIGEST_SHOWN
from census_builder.release.destination import Destination
from census_builder.release.directory import open_store
from census_builder.release.stores import SourceObject


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
    """Return validation_report.json's ``source_checksums``.

    That is ``{dataset_id: {"path", "size", "sha256"}}`` of every source the validation read.
    """
    try:
        checksums = read_json(paths.validation_report).get("source_checksums")
    except (OSError, ValueError, AttributeError) as e:
        raise PublishRefusedError(f"{paths.validation_report} is unreadable ({e}); re-run the validate command") from e
    if not isinstance(checksums, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("size"), int)
        for v in checksums.values()
    ):
        raise PublishRefusedError(
            f'{paths.validation_report} records no checksums of the sources it validated ("source_checksums"), '
            f"so publish cannot tell that the h5ads are the validated ones; re-run the validate command "
            f"(python -m census_builder validate --version {paths.root.name} --workdir {paths.root.parent})"
        )
    return checksums


def check_validated_sources(
    paths: BuildPaths, sources: list[SourceObject], sha256: dict[str, str], validated: dict[str, dict[str, Any]]
) -> None:
    """Refuse unless every staged h5ad is byte for byte a source that validation read.

    ``sha256`` maps each h5ad's relative path to its SHA-256. (Validation also reads the sources of datasets
    without cells, which are not shipped.)
    """
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
                f"dataset {ds!r}: {src.path} ({src.size} bytes, sha256 {sha256[src.relative][:DIGEST_SHOWN]}...) "
                f"is not the file validation read from {want.get('path', '?')} ({want['size']} bytes, sha256 "
                f"{want['sha256'][:DIGEST_SHOWN]}...)"
            )
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PublishRefusedError(
            f"build {paths.root.name}: {len(problems)} source file(s) differ from what was validated:\n{lines}\n"
            "A source changed after validation (edited in place? a hard-linked staged copy changes with it). "
            "Nothing was uploaded. Restore the validated file, or rebuild (build --restart, or another --version) "
            "and validate again."
        )


def check_not_published(dest: Destination, version: str) -> None:
    """Refuse a version that DEST/release.json already names (as a release or an alias)."""
    directory = open_store(dest).read()
    if version in directory.releases:
        raise ReleaseExistsError(
            f"release {version} is already published at {dest}; published releases are "
            "immutable: build and publish a new version"
        )
    if version in directory.aliases:
        raise ReleaseExistsError(f"{version!r} is an alias at {dest}; choose another version name")


SCHEMA_KEYS = ("census_schema_version", "dataset_schema_version")


def schema_versions(paths: BuildPaths) -> dict[str, str]:
    """Return the Census and dataset schema versions build_report.json records (those it has)."""
    report = read_json(paths.report)
    return {k: str(report[k]) for k in SCHEMA_KEYS if report.get(k)}

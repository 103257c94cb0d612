"""Which Census schema a release is validated against: the one it records, or the one asked for.

A release records its Census schema version in census_info['summary'] (the row ``census_schema_version``, which
the schema requires) and, when the tool that wrote it adds one, in its root collection's metadata
(``census_schema_version``; census-builder writes it, the reference builder does not). The root metadata's
``census_builder_version`` tells a release census-builder wrote from one another tool wrote. Without an explicit
version the validator takes the summary row's, else the metadata's, else the default schema's. A recorded
version the validator has no schema data for stops the validation before anything is touched
(:class:`SchemaVersionError`); a version asked for that differs from the recorded one is a finding of
``census_info_summary`` (see :func:`version_findings`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import census_schema

from validation.errors import InputError
from validation.report import Finding

logger = logging.getLogger(__name__)

LABEL = "census_schema_version"  # the summary row's label and the root metadata key


class SchemaVersionError(InputError):
    """The Census schema version asked for, or recorded by the release, is one the validator has no data for."""


@dataclass(frozen=True)
class Recorded:
    """The Census schema versions a release records (None: not recorded, or not readable)."""

    summary: str | None = None  # census_info['summary'] row census_schema_version
    metadata: str | None = None  # the root collection's metadata census_schema_version
    census_builder: str | None = None  # root metadata census_builder_version: a release census-builder wrote

    @property
    def writer(self) -> str:
        """Which tool wrote the release, for the report."""
        if self.census_builder is not None:
            return f"census-builder {self.census_builder} (root metadata census_builder_version)"
        return (
            "another tool (no census_builder_version in the root metadata): dataframe columns the schema "
            "does not define are allowed"
        )

    @property
    def version(self) -> str | None:
        """The release's own version: the summary row's (the schema's record), else the root metadata's."""
        return self.summary if self.summary is not None else self.metadata

    @property
    def where(self) -> str:
        """Where :attr:`version` was read."""
        return "census_info['summary']" if self.summary is not None else "the root collection's metadata"


def read_recorded(release_uri: str) -> Recorded:
    """Read the versions the release records; an unreadable release records none (check_structure reports it)."""
    import tiledbsoma as soma

    summary: str | None = None
    metadata: str | None = None
    builder: str | None = None
    try:
        root: Any
        with soma.open(release_uri) as root:
            value = root.metadata.get(LABEL)
            metadata = str(value) if value is not None else None
            value = root.metadata.get("census_builder_version")
            builder = str(value) if value is not None else None
            if "census_info" in root and "summary" in root["census_info"]:
                with root["census_info"]["summary"] as df:
                    table = df.read(column_names=["label", "value"]).concat().to_pydict()
                rows = dict(zip(table["label"], table["value"], strict=True))
                summary = str(rows[LABEL]) if rows.get(LABEL) is not None else None
    except Exception as e:  # a release that cannot be read is the structure check's finding
        logger.warning("cannot read the Census schema version %s records: %s: %s", release_uri, type(e).__name__, e)
    return Recorded(summary, metadata, builder)


def choose_version(release_uri: str, asked: str | None, recorded: Recorded) -> tuple[str, str]:
    """Return the Census schema version to validate against and how it was chosen (for the report).

    ``asked``: the caller's version (``--census-schema``), else the one the release records, else the default.
    SchemaVersionError if that version has no schema data here.
    """
    known = census_schema.available_versions()
    if asked is not None:
        if asked not in known:
            raise SchemaVersionError(
                f"no Census schema data for version {asked!r} (--census-schema); this validator knows "
                f"{', '.join(known)}"
            )
        return asked, f"{asked} (--census-schema)"
    version = recorded.version
    if version is None:
        default = census_schema.DEFAULT_VERSION
        return default, f"{default} (the default: the release records no census_schema_version)"
    if version not in known:
        raise SchemaVersionError(
            f"release {release_uri} records Census schema version {version!r} ({recorded.where}), which this "
            f"validator has no schema data for (it knows {', '.join(known)}); run it with --census-schema "
            "VERSION to validate against one of those"
        )
    return version, f"{version} (recorded in {recorded.where})"


def version_findings(version: str, how: str, recorded: Recorded) -> list[Finding]:
    """Return the ``census_info_summary`` findings: a recorded version that is not the one validated against.

    The summary row itself is compared by the summary check (validation.census_info); this names the root
    metadata's version when it differs, and says which version was asked for.
    """
    out: list[Finding] = []
    if recorded.metadata is not None and recorded.metadata != version:
        out.append(
            Finding(
                f"the release's root metadata records Census schema {recorded.metadata}; validated against {how}",
                column=LABEL,
                expected=version,
                found=recorded.metadata,
            )
        )
    return out

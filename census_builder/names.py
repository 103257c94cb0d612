"""Names the builder turns into paths and keys: release versions (one shared check for every command)."""

from __future__ import annotations

import re

from census_builder.errors import UsageError

# One path segment: letters, digits, '.', '_', '-', starting with a letter or digit (so never '', '.', '..',
# a hidden name, an absolute path or anything with a separator), at most 128 characters.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ALIAS_NAMES = ("latest", "stable")  # the aliases the cellxgene_census client knows
DESTINATION_FILES = ("release.json", "mirrors.json")  # files beside the versions at a publish destination


def check_version_name(name: str) -> str:
    """Return ``name`` if it can name a release version in ``DIR/VERSION`` and ``DEST/VERSION``, else raise
    UsageError saying why. Used by build, validate, publish, notes and release before any work."""
    if not isinstance(name, str) or not _SEGMENT.fullmatch(name):
        raise UsageError(
            f"version {name!r} is not a valid release version: use one path segment of letters, digits, '.', '_' "
            "or '-' (at most 128 characters) starting with a letter or digit, e.g. 2026-11-22"
        )
    low = name.lower()
    if low in ALIAS_NAMES:
        raise UsageError(
            f"version {name!r} is an alias name ({', '.join(ALIAS_NAMES)}); name the version itself "
            "(e.g. 2026-11-22) and point the alias at it with 'release alias'"
        )
    if low in DESTINATION_FILES or low.endswith(".json"):
        raise UsageError(
            f"version {name!r} would take the place of a file of the release directory "
            f"({', '.join(DESTINATION_FILES)}); choose a name that does not end in .json"
        )
    return name

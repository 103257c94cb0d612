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

Updates are atomic and never lose a concurrent writer's change (:mod:`census_builder.release.documents`):
locally under the destination's lock with an atomic rename; on S3 by compare-and-swap with conditional PUTs,
after probing once per store that the endpoint honours ``If-None-Match`` (it refuses to write if the endpoint
silently ignores it). Atomicity is the server's: AWS S3 checks the condition atomically; moto's server
checks it and stores the object without a lock, so two truly simultaneous PUTs can both pass there.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from census_builder.errors import ReleaseDirectoryError, ReleaseExistsError
from census_builder.release.destination import Destination
from census_builder.release.documents import CAS_MAX_ATTEMPTS, S3Document, update_local
from census_builder.release.stores import s3_client

logger = logging.getLogger(__name__)

RELEASE_JSON = "release.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def today() -> str:
    """Return today's date in UTC, ``YYYY-MM-DD``."""
    return dt.datetime.now(dt.UTC).date().isoformat()


def check_name(name: str, what: str) -> None:
    """Raise ReleaseDirectoryError unless ``name`` (a ``what``: release, alias, mirror) is a plain name."""
    if not _NAME.match(name):
        raise ReleaseDirectoryError(
            f"{what} {name!r} is not a valid name: use letters, digits, '.', '_' or '-' (at most 128), "
            "starting with a letter or digit"
        )


# -- the model ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Locator:
    """Where one part of a release is: its absolute ``uri`` and its ``relative_uri`` below DEST."""

    uri: str
    relative_uri: str
    s3_region: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the locator as release.json holds it."""
        return {"uri": self.uri, "relative_uri": self.relative_uri, "s3_region": self.s3_region}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Locator:
        """Read a locator of release.json (``where`` names it in messages)."""
        if not isinstance(data, dict) or not isinstance(data.get("uri", ""), str):
            raise ReleaseDirectoryError(f"{where}: a locator must be an object with 'uri' and 'relative_uri'")
        uri, rel = data.get("uri", ""), data.get("relative_uri", "")
        if not (uri or rel):
            raise ReleaseDirectoryError(f"{where}: the locator has neither 'uri' nor 'relative_uri'")
        return cls(uri=str(uri), relative_uri=str(rel or ""), s3_region=data.get("s3_region"))


@dataclass(frozen=True)
class Retraction:
    """Why and when a release was retracted, and what replaces it."""

    date: str
    reason: str | None = None
    info_url: str | None = None
    replaced_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the retraction as release.json holds it."""
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
        """Return the entry as release.json holds it (keys other tools wrote included)."""
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
        """Read the entry of build ``name``."""
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
    dest: Destination,
    version: str,
    *,
    release_date: str | None = None,
    lts: bool = False,
    s3_region: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ReleaseEntry:
    """Return the entry describing ``version`` published at ``DEST/version/{soma,h5ads}/``.

    ``extra``: keys beyond the client's format (publish adds the build's Census and dataset schema versions).
    """

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
        extra=dict(extra or {}),
    )


@dataclass(frozen=True)
class ReleaseDirectory:
    """The content of release.json: builds by name and aliases (name -> build name).

    Changes return a new directory, so that a store can re-apply a change to a fresher file after a conflict.
    """

    releases: Mapping[str, ReleaseEntry] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    # reading and writing
    @classmethod
    def from_json(cls, data: Any) -> ReleaseDirectory:
        """Read the parsed content of release.json."""
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
        """Return release.json's bytes (indented JSON, newline-terminated)."""
        return (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")

    # questions
    def resolve(self, name: str) -> str:
        """Return the build a name (build or alias) refers to."""
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
        """Return the aliases pointing at ``build``, sorted."""
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
        """Add the new build ``name``; a published build is never replaced."""
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
        """Point ``alias`` at the build ``target`` names (a build or an alias; not a retracted build)."""
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
        """Retract ``build``; ``replaced_by`` moves the aliases pointing at it to the replacement."""
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
    """Where release.json is read and atomically changed (a local directory or S3)."""

    def read(self) -> ReleaseDirectory:
        """Read the current release directory (empty when there is no release.json yet)."""
        ...

    def update(self, change: Change) -> ReleaseDirectory:
        """Apply ``change`` atomically to the current file; returns what was written (or the unchanged one)."""
        ...


def open_store(dest: Destination) -> DirectoryStore:
    """Return the release.json store of ``dest``."""
    if dest.kind == "local":
        return LocalDirectoryStore(dest.local_path)
    return S3DirectoryStore(s3_client(dest.endpoint_url), dest.bucket, dest.key(RELEASE_JSON))


def _parse(raw: bytes, where: str) -> ReleaseDirectory:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReleaseDirectoryError(f"{where} is not valid JSON ({e}); restore it from a backup") from e
    return ReleaseDirectory.from_json(data)


class LocalDirectoryStore:
    """``root/release.json``, changed under the destination's lock (see :func:`documents.locked`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / RELEASE_JSON

    def read(self) -> ReleaseDirectory:
        """Read the current release directory (empty when there is no release.json yet)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return ReleaseDirectory()
        return _parse(raw, str(self.path))

    def update(self, change: Change) -> ReleaseDirectory:
        """Apply ``change`` atomically to the current file; returns what was written (or the unchanged one)."""
        return update_local(self.path, self.read, change, ReleaseDirectory.dumps)


class S3DirectoryStore:
    """release.json in S3, updated by compare-and-swap on its ETag (see :class:`documents.S3Document`)."""

    def __init__(self, client: Any, bucket: str, key: str, *, max_attempts: int = CAS_MAX_ATTEMPTS) -> None:
        self.document = S3Document(client, bucket, key, max_attempts=max_attempts)

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` of release.json."""
        return self.document.uri

    def _parse(self, raw: bytes | None) -> ReleaseDirectory:
        return ReleaseDirectory() if raw is None else _parse(raw, self.uri)

    def read(self) -> ReleaseDirectory:
        """Read the current release directory (empty when there is no release.json yet)."""
        return self._parse(self.document.get()[0])

    def require_conditional_writes(self) -> None:
        """Raise StorageError unless the endpoint honours ``If-None-Match`` (probed once per store)."""
        self.document.require_conditional_writes()

    def update(self, change: Change) -> ReleaseDirectory:
        """Apply ``change`` by compare-and-swap; returns what was written (or the unchanged directory)."""
        return self.document.update(self._parse, change, ReleaseDirectory.dumps)

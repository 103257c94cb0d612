"""``DEST/mirrors.json``: where the ``cellxgene_census`` client reads a release's SOMA data from.

The client (``cellxgene_census`` 1.18) reads two JSON files over HTTP(S) with ``requests``: the release
directory (``release.json``, see :mod:`census_builder.release.directory`) and the mirrors file. It fetches
them from the URLs in ``cellxgene_census._release_directory.CELL_CENSUS_RELEASE_DIRECTORY_URL`` and
``CELL_CENSUS_MIRRORS_DIRECTORY_URL`` (module attributes; the client has no environment variable or argument
for them). ``open_soma(census_version=V, mirror=NAME)`` joins the mirror's ``base_uri`` with the release's
``soma.relative_uri`` and opens the result with TileDB, which reads ``file://`` and ``s3://`` URIs but not
``http(s)://``: a mirror's ``base_uri`` is therefore the destination itself (``file:///srv/census/`` or
``s3://bucket/prefix/``), while the two JSON files may be served from anywhere over HTTP(S)::

    {
      "default": "local",
      "local": {"provider": "file", "base_uri": "file:///srv/census/", "region": null,
                "embeddings_base_uri": "file:///srv/census/"}
    }

``provider`` is one the client accepts: ``"S3"`` (its ``region`` is given to TileDB) or ``"file"``.
``publish`` adds a mirror for DEST when mirrors.json has none with DEST's ``base_uri`` (named ``local`` for a
directory, ``s3-REGION`` for S3; it becomes the default when the file has none) and leaves other mirrors and
the default alone. ``release mirrors --set NAME`` adds or replaces one mirror. Updates use the same atomic
paths as release.json (the destination's lock locally, conditional PUTs on S3).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from census_builder.errors import ReleaseDirectoryError
from census_builder.release.destination import Destination
from census_builder.release.directory import RELEASE_JSON, check_name
from census_builder.release.documents import CAS_MAX_ATTEMPTS, S3Document, update_local
from census_builder.release.stores import s3_client

logger = logging.getLogger(__name__)

MIRRORS_JSON = "mirrors.json"
Provider = Literal["S3", "file"]


@dataclass(frozen=True)
class Mirror:
    """One mirror, as ``cellxgene_census.CensusMirror`` describes it."""

    provider: Provider
    base_uri: str  # with a trailing slash
    region: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the mirror as mirrors.json holds it."""
        return {
            "provider": self.provider,
            "base_uri": self.base_uri,
            "region": self.region,
            "embeddings_base_uri": self.base_uri,
        }

    @classmethod
    def for_uri(cls, base_uri: str, *, region: str | None = None) -> Mirror:
        """Return the mirror of data at ``base_uri``: ``s3://bucket/prefix``, ``file:///path`` or a local path."""
        scheme = urllib.parse.urlparse(base_uri).scheme
        if scheme in ("http", "https"):
            raise ReleaseDirectoryError(
                f"mirror base URI {base_uri!r}: the client opens SOMA data with TileDB, which cannot read "
                "http(s) URIs; give the s3:// or file:// location of the published directory (serve only "
                "release.json and mirrors.json over HTTP)"
            )
        dest = Destination.parse(base_uri)
        if dest.kind == "s3":
            return cls("S3", dest.base_uri, region)
        return cls("file", dest.base_uri, None)


def mirror_for(dest: Destination, *, region: str | None = None) -> tuple[str, Mirror]:
    """Return the name and mirror ``publish`` records for ``dest`` (``region``: the S3 bucket's region)."""
    if dest.kind == "s3":
        return (f"s3-{region}" if region else "s3"), Mirror("S3", dest.base_uri, region)
    return "local", Mirror("file", dest.base_uri, None)


def _check(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ReleaseDirectoryError(f"{where} must hold a JSON object (mirror name -> mirror, and 'default')")
    for name, value in data.items():
        if name == "default":
            if not isinstance(value, str):
                raise ReleaseDirectoryError(f"{where}: 'default' must be a mirror name")
        elif not isinstance(value, dict) or not isinstance(value.get("base_uri"), str):
            raise ReleaseDirectoryError(f"{where}: mirror {name!r} must be an object with a 'base_uri'")
    return data


MirrorsChange = Callable[[dict[str, Any]], dict[str, Any]]


def with_mirror(mirrors: dict[str, Any], name: str, mirror: Mirror, *, default: bool = False) -> dict[str, Any]:
    """Return ``mirrors`` with ``name`` set to ``mirror`` (the default when ``default`` or when there is none)."""
    check_name(name, "mirror")
    if name == "default":
        raise ReleaseDirectoryError("'default' names the default mirror; choose another mirror name")
    out = {**mirrors, name: {**mirrors.get(name, {}), **mirror.to_json()}}
    if default or not isinstance(mirrors.get("default"), str) or mirrors["default"] not in mirrors:
        out["default"] = name
    return {"default": out.pop("default"), **out}


def ensure_mirror(mirrors: dict[str, Any], name: str, mirror: Mirror) -> dict[str, Any]:
    """Add ``mirror`` unless some mirror already has its ``base_uri`` (what publish does).

    A different mirror already called ``name`` is kept, and then nothing is added (with a warning).
    """
    for key, value in mirrors.items():
        if key != "default" and isinstance(value, dict) and value.get("base_uri") == mirror.base_uri:
            return mirrors
    if name in mirrors:
        logger.warning(
            "%s already has a mirror %r with another base_uri (%s); not changed. Add one for %s with: "
            "release mirrors --set NAME --to DEST",
            MIRRORS_JSON,
            name,
            mirrors[name].get("base_uri"),
            mirror.base_uri,
        )
        return mirrors
    return with_mirror(mirrors, name, mirror)


# -- stores ------------------------------------------------------------------------------------------------


def read_mirrors(dest: Destination) -> dict[str, Any]:
    """DEST/mirrors.json ({} when there is none)."""
    if dest.kind == "local":
        path = dest.local_path / MIRRORS_JSON
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        return _parse(raw, str(path))
    document = _s3_document(dest)
    return _parse_s3(document, document.get()[0])


def update_mirrors(dest: Destination, change: MirrorsChange, *, max_attempts: int = CAS_MAX_ATTEMPTS) -> dict[str, Any]:
    """Apply ``change`` to DEST/mirrors.json atomically; returns what is there afterwards.

    On S3 by compare-and-swap on the ETag, as for release.json, without probing the endpoint (an endpoint that
    ignores the conditions could lose one of two simultaneous mirror changes; publish's change is the same
    every time, so a re-run restores it).
    """
    if dest.kind == "local":
        return update_local(dest.local_path / MIRRORS_JSON, lambda: read_mirrors(dest), change, _dumps)
    document = _s3_document(dest, max_attempts=max_attempts)
    return document.update(lambda raw: _parse_s3(document, raw), change, _dumps, probe=False)


def _s3_document(dest: Destination, *, max_attempts: int = CAS_MAX_ATTEMPTS) -> S3Document:
    return S3Document(s3_client(dest.endpoint_url), dest.bucket, dest.key(MIRRORS_JSON), max_attempts=max_attempts)


def _parse_s3(document: S3Document, raw: bytes | None) -> dict[str, Any]:
    return {} if raw is None else _parse(raw, document.uri)


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReleaseDirectoryError(f"{where} is not valid JSON ({e}); fix or delete it, then re-run") from e
    return _check(data, where)


def _dumps(mirrors: dict[str, Any]) -> bytes:
    return (json.dumps(mirrors, indent=2) + "\n").encode("utf-8")


# -- for consumers -----------------------------------------------------------------------------------------


def consumer_snippet(base_url: str, mirror: str, version: str = "latest") -> str:
    """Return the Python a consumer runs to open a release from DEST.

    ``base_url`` is where DEST's release.json and mirrors.json are served (the URL of DEST over HTTP(S), or
    of the S3 prefix).
    """
    base = base_url.rstrip("/")
    return "\n".join(
        [
            "import cellxgene_census",
            "from cellxgene_census import _release_directory as census_directory",
            f'census_directory.CELL_CENSUS_RELEASE_DIRECTORY_URL = "{base}/{RELEASE_JSON}"',
            f'census_directory.CELL_CENSUS_MIRRORS_DIRECTORY_URL = "{base}/{MIRRORS_JSON}"',
            f'with cellxgene_census.open_soma(census_version="{version}", mirror="{mirror}") as census:',
            '    print(census["census_info"]["summary"].read().concat().to_pandas())',
        ]
    )

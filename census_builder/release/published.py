"""Where a build was published: ``DIR/VERSION/published.json``.

It is written by ``publish`` after it registered the release, and read by ``notes`` (which finds the previous
release in that destination's release.json)::

    {"destinations": [{"dest": "s3://bucket/census", "endpoint_url": null, "published_at": "2026-11-23T10:00:00Z"}]}

Newest last; publishing the same build to another destination appends an entry.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from census_builder.build.state import BuildPaths, read_json, write_json_atomic
from census_builder.release.destination import Destination

logger = logging.getLogger(__name__)

PUBLISHED_JSON = "published.json"


@dataclass(frozen=True)
class Publication:
    """One publication of the build: where, and when."""

    dest: str
    endpoint_url: str | None
    published_at: str

    def destination(self) -> Destination:
        """Return the destination it was published to."""
        return Destination.parse(self.dest, endpoint_url=self.endpoint_url)


def _read(paths: BuildPaths) -> list[dict[str, Any]]:
    path = paths.root / PUBLISHED_JSON
    if not path.is_file():
        return []
    try:
        data = read_json(path)
        entries = data["destinations"] if isinstance(data, dict) else None
    except (OSError, ValueError, KeyError) as e:
        logger.warning("%s is unreadable (%s); ignoring it", path, e)
        return []
    if not isinstance(entries, list):
        logger.warning("%s has no 'destinations' list; ignoring it", path)
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("dest"), str)]


def record_publication(paths: BuildPaths, dest: Destination) -> None:
    """Append ``dest`` to the build's published.json."""
    entries = _read(paths)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries.append({"dest": str(dest), "endpoint_url": dest.endpoint_url, "published_at": now})
    write_json_atomic(paths.root / PUBLISHED_JSON, {"destinations": entries})


def publications(paths: BuildPaths) -> list[Publication]:
    """Where the build was published, oldest first."""
    return [Publication(str(e["dest"]), e.get("endpoint_url"), str(e.get("published_at", ""))) for e in _read(paths)]

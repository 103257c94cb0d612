"""The manifest the release was built from, and local access to its source files.

CSV with a header; required columns ``dataset_id`` and the URI column, ``h5ad_uri`` or the reference
builder's ``dataset_asset_h5ad_uri`` (exactly one of them); optional ``dataset_version_id, collection_id,
collection_name, collection_doi, dataset_title`` and the reference builder's ``citation,
collection_doi_label``. Other columns are not read. Relative paths are taken from the manifest's
directory; ``s3://`` sources are downloaded (with census_builder.runtime.s3's client) into the
validation's checkpoint folder.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from census_builder.runtime.s3 import s3_client
from validation.errors import InputError

logger = logging.getLogger(__name__)

REQUIRED = ("dataset_id", "h5ad_uri")
URI_COLUMNS = ("h5ad_uri", "dataset_asset_h5ad_uri")  # ours, the reference builder's: one of them
OPTIONAL = (
    "dataset_version_id",
    "collection_id",
    "collection_name",
    "collection_doi",
    "dataset_title",
    "citation",
    "collection_doi_label",
)


class ManifestError(InputError):
    """The manifest cannot be read at all (nothing can be validated against it)."""


@dataclass(frozen=True)
class Source:
    """One usable manifest row."""

    dataset_id: str
    uri: str
    line: int
    dataset_version_id: str = ""
    collection_id: str = ""
    collection_name: str = ""
    collection_doi: str = ""
    dataset_title: str = ""
    citation: str = ""
    collection_doi_label: str = ""

    @property
    def is_s3(self) -> bool:
        """The source is an ``s3://`` URI."""
        return self.uri.startswith("s3://")


@dataclass(frozen=True)
class Manifest:
    """The manifest's usable rows and the problems of the others."""

    path: Path
    sources: tuple[Source, ...]
    problems: tuple[str, ...]  # rows that could not be used, each naming its line

    def local_path(self, source: Source) -> Path:
        """Return the local path of a local source (relative paths from the manifest's directory)."""
        p = Path(source.uri.removeprefix("file://"))
        return p if p.is_absolute() else self.path.parent / p


def read_manifest(path: str | Path) -> Manifest:
    """Read the manifest CSV; ManifestError if it cannot be read at all or lists no datasets."""
    path = Path(path).resolve()
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read manifest {path}: {e}") from e
    kept = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    reader = csv.DictReader(io.StringIO("\n".join(ln for _, ln in kept)))
    header = [h.strip() for h in reader.fieldnames or []]
    uri_columns = [c for c in URI_COLUMNS if c in header]
    if len(uri_columns) > 1:
        raise ManifestError(f"manifest {path} has both URI columns {uri_columns} in its header; keep exactly one")
    missing = [c for c in ("dataset_id",) if c not in header] + ([] if uri_columns else ["h5ad_uri"])
    if missing:
        raise ManifestError(
            f"manifest {path} has no header with {list(REQUIRED)} (missing {missing}; the reference builder's "
            "'dataset_asset_h5ad_uri' may stand for 'h5ad_uri')"
        )
    uri_column = uri_columns[0]
    sources: list[Source] = []
    problems: list[str] = []
    seen: set[str] = set()
    for row in reader:
        lineno = kept[reader.line_num - 1][0]  # the file's own line number (blank lines count)
        values = {(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
        ds, uri = values.get("dataset_id", ""), values.get(uri_column, "")
        if not ds or not uri:
            problems.append(f"manifest line {lineno}: dataset_id and {uri_column} are required")
            continue
        if ds in seen:
            problems.append(f"manifest line {lineno}: duplicate dataset_id {ds!r}")
            continue
        seen.add(ds)
        sources.append(Source(ds, uri, lineno, **{c: values.get(c, "") for c in OPTIONAL}))
    if not sources:
        raise ManifestError(f"manifest {path} lists no datasets")
    return Manifest(path=path, sources=tuple(sources), problems=tuple(problems))


def fetch_sources(manifest: Manifest, tmp_dir: Path, client: Any = None) -> dict[str, tuple[Path | None, str]]:
    """Return dataset_id -> (local path or None, problem) for every source.

    S3 sources are downloaded into ``tmp_dir`` (the validation's checkpoint folder, never the system temp
    directory); a file already there is reused.
    """
    out: dict[str, tuple[Path | None, str]] = {}
    for s in manifest.sources:
        if s.is_s3:
            bucket, _, key = s.uri.removeprefix("s3://").partition("/")
            dest = tmp_dir / f"{s.dataset_id}.h5ad"
            if dest.is_file():  # downloaded by an interrupted run of the same validation (boto3 renames when done)
                out[s.dataset_id] = (dest, "")
                continue
            try:
                client = client or s3_client()
                client.download_file(bucket, key, str(dest))
            except Exception as e:  # botocore raises many types
                out[s.dataset_id] = (None, f"cannot download {s.uri}: {type(e).__name__}: {e}")
                continue
            logger.info("downloaded %s to %s", s.uri, dest)
            out[s.dataset_id] = (dest, "")
            continue
        p = manifest.local_path(s)
        out[s.dataset_id] = (p, "") if p.is_file() else (None, f"source file not found: {p}")
    return out

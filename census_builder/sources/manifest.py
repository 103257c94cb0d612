"""The build manifest: a CSV with header ``dataset_id,h5ad_uri`` and optional dataset metadata columns.

A manifest written for the reference builder (chanzuckerberg/cellxgene-census,
``tools/cellxgene_census_builder``) is read unchanged: its URI column ``dataset_asset_h5ad_uri`` stands for
``h5ad_uri`` (a header holds exactly one of the two), and the metadata columns of its dataset records are
read too (:data:`REFERENCE_COLUMNS`); the columns the reference builder computes itself
(:data:`COMPUTED_COLUMNS`) are accepted and ignored. Any other column is refused, naming the allowed ones.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from census_builder.errors import ManifestError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("dataset_id", "h5ad_uri")
OPTIONAL_COLUMNS = ("dataset_version_id", "collection_id", "collection_name", "collection_doi", "dataset_title")
REFERENCE_URI_COLUMN = "dataset_asset_h5ad_uri"  # the reference builder's name of the h5ad_uri column
URI_COLUMNS = ("h5ad_uri", REFERENCE_URI_COLUMN)
# Metadata columns of the reference builder's manifest beyond OPTIONAL_COLUMNS (text, then numbers; in a
# number column an empty value or -1, the reference's "unknown", is read as unknown: None).
REFERENCE_TEXT_COLUMNS = ("citation", "collection_doi_label", "schema_version")
REFERENCE_INT_COLUMNS = ("asset_h5ad_filesize", "cell_count")
REFERENCE_FLOAT_COLUMNS = ("mean_genes_per_cell",)
REFERENCE_COLUMNS = REFERENCE_TEXT_COLUMNS + REFERENCE_INT_COLUMNS + REFERENCE_FLOAT_COLUMNS
# Columns of the reference builder's dataset records that the build computes itself: accepted, ignored.
COMPUTED_COLUMNS = ("dataset_h5ad_path", "dataset_total_cell_count", "soma_joinid")
ALLOWED_COLUMNS = ("dataset_id", *URI_COLUMNS, *OPTIONAL_COLUMNS, *REFERENCE_COLUMNS, *COMPUTED_COLUMNS)
_DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_MAX = 255  # bytes in one file name on Linux file systems (ext4, xfs, NFS, tmpfs...)
STAGING_TMP_HEX = 12  # hex digits of the random part of a staging copy's temporary name
PUBLISH_TMP_HEX = 32  # hex digits of the random part (a whole uuid4) of publish's temporary name
# File names derived from a dataset id by the build and by publish; the longest sets the limit on ids.
DERIVED_NAMES = (
    "{id}.h5ad",  # h5ads/
    ".{id}.h5ad." + "0" * STAGING_TMP_HEX + ".partial",  # a copy or download in progress (sources/staging.py)
    "{id}.genes.parquet",  # .build/plan/
    ".{id}.h5ad." + "0" * PUBLISH_TMP_HEX + ".partial",  # publish's temporary name at a local destination
)
MAX_DATASET_ID_BYTES = NAME_MAX - max(len(t.format(id="")) for t in DERIVED_NAMES)


@dataclass(frozen=True)
class ManifestEntry:
    """One row of the manifest: a dataset id, its H5AD's URI and optional metadata."""

    dataset_id: str
    h5ad_uri: str
    dataset_version_id: str = ""
    collection_id: str = ""
    collection_name: str = ""
    collection_doi: str = ""
    dataset_title: str = ""  # "" means: fall back to uns["title"]
    # Read from a reference builder's manifest (REFERENCE_COLUMNS); "" / None: not given.
    citation: str = ""  # "" means: fall back to uns["citation"]
    collection_doi_label: str = ""
    schema_version: str = ""  # as the manifest states it; the build checks the file's own uns["schema_version"]
    asset_h5ad_filesize: int | None = None
    cell_count: int | None = None
    mean_genes_per_cell: float | None = None

    @property
    def is_s3(self) -> bool:
        """Whether the H5AD is an S3 object."""
        return self.h5ad_uri.startswith("s3://")


@dataclass(frozen=True)
class Manifest:
    """A checked manifest: its rows, the checksum of its bytes and the directory of relative URIs."""

    entries: tuple[ManifestEntry, ...]
    sha256: str  # checksum of the manifest file's bytes, recorded in the release
    base_dir: str = "."  # relative local h5ad_uri values are taken from here (the manifest's directory)
    uri_column: str = "h5ad_uri"  # the header's name of the URI column (h5ad_uri or dataset_asset_h5ad_uri)

    def __len__(self) -> int:
        return len(self.entries)

    def local_path(self, entry: ManifestEntry) -> Path:
        """Return a local h5ad_uri as a path; relative paths are taken from the manifest's directory."""
        p = Path(entry.h5ad_uri.removeprefix("file://"))
        return p if p.is_absolute() else Path(self.base_dir) / p


def load_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest. Every problem in the file is reported at once in one ManifestError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"cannot read manifest {path}: {e.strerror or e}") from e
    return parse_manifest(raw, source=str(path), base_dir=str(path.resolve().parent))


def parse_manifest(raw: bytes, *, source: str = "<manifest>", base_dir: str = ".") -> Manifest:
    """Parse and check the manifest bytes ``raw`` (named ``source`` in errors)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"manifest {source} is not UTF-8 text: {e}") from e
    kept = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    lines = [ln for _, ln in kept]  # blank lines dropped; problems still name the file's own line numbers
    if not lines:
        raise ManifestError(f"manifest {source} is empty; expected a header 'dataset_id,h5ad_uri'")
    reader = csv.DictReader(lines)
    header = [h.strip() for h in (reader.fieldnames or [])]
    uri_columns = [c for c in URI_COLUMNS if c in header]
    if len(uri_columns) > 1:
        raise ManifestError(
            f"manifest {source} has both URI columns {uri_columns} in its header (line {kept[0][0]}); keep exactly "
            f"one: 'h5ad_uri' or the reference builder's '{REFERENCE_URI_COLUMN}'"
        )
    missing = [c for c in ("dataset_id",) if c not in header] + ([] if uri_columns else ["h5ad_uri"])
    if missing:
        raise ManifestError(
            f"manifest {source} has no header with columns {list(REQUIRED_COLUMNS)} (missing {missing}; "
            f"first line is {lines[0]!r}). The first line must be a header, e.g. 'dataset_id,h5ad_uri' "
            f"(or the reference builder's 'dataset_id,{REFERENCE_URI_COLUMN}')."
        )
    uri_column = uri_columns[0]
    unknown = [c for c in header if c not in ALLOWED_COLUMNS]
    problems: list[str] = []
    if unknown:
        problems.append(f"unknown column(s) {unknown}; allowed: {list(ALLOWED_COLUMNS)}")
    ignored = [c for c in header if c in COMPUTED_COLUMNS]
    if ignored:
        logger.info("manifest %s: column(s) %s are computed by the build; their values are ignored", source, ignored)
    entries: list[ManifestEntry] = []
    seen: dict[str, int] = {}
    for row in reader:
        lineno = kept[reader.line_num - 1][0]  # the line the row ends on
        values = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if None in row:
            problems.append(f"line {lineno}: more fields than header columns")
            continue
        dataset_id, uri = values.get("dataset_id", ""), values.get(uri_column, "")
        if not dataset_id or not _DATASET_ID.fullmatch(dataset_id):
            problems.append(
                f"line {lineno}: invalid dataset_id {dataset_id!r} (letters, digits, '.', '_', '-', "
                "starting with a letter or digit)"
            )
            continue
        if len(dataset_id.encode()) > MAX_DATASET_ID_BYTES:
            problems.append(
                f"line {lineno}: dataset_id {dataset_id[:32]!r}... is {len(dataset_id.encode())} bytes long: file "
                "names made from it (the longest is '.<id>.h5ad.<32 hex digits>.partial') would not fit the "
                f"{NAME_MAX}-byte limit of a file name; use at most {MAX_DATASET_ID_BYTES} bytes"
            )
            continue
        if dataset_id in seen:
            problems.append(f"line {lineno}: duplicate dataset_id {dataset_id!r} (first on line {seen[dataset_id]})")
            continue
        seen[dataset_id] = lineno
        where = f"line {lineno}: dataset {dataset_id!r}"
        if not uri:
            problems.append(f"{where} has no {uri_column}")
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in uri):
            problems.append(f"{where} {uri_column} {uri!r} contains a control character")
            continue
        if not uri.lower().endswith(".h5ad"):
            problems.append(f"{where} {uri_column} {uri!r} does not name an .h5ad file")
            continue
        if "://" in uri and not uri.startswith(("s3://", "file://")):
            problems.append(f"{where} {uri_column} {uri!r}: only local paths and s3://")
            continue
        numbers, bad = _numbers(values)
        if bad:
            problems.extend(f"{where} {b}" for b in bad)
            continue
        metadata: dict[str, Any] = {c: values.get(c, "") for c in OPTIONAL_COLUMNS + REFERENCE_TEXT_COLUMNS}
        entries.append(ManifestEntry(dataset_id=dataset_id, h5ad_uri=uri, **metadata, **numbers))
    if problems:
        raise ManifestError(
            f"manifest {source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    if not entries:
        raise ManifestError(f"manifest {source} lists no datasets")
    return Manifest(
        entries=tuple(entries), sha256=hashlib.sha256(raw).hexdigest(), base_dir=base_dir, uri_column=uri_column
    )


def _numbers(values: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Read the reference's number columns of one row: (values, problems); empty or -1 is None (unknown)."""
    out: dict[str, Any] = {}
    bad: list[str] = []
    for c in REFERENCE_INT_COLUMNS + REFERENCE_FLOAT_COLUMNS:
        v = values.get(c, "")
        if v in ("", "-1", "-1.0"):
            out[c] = None
            continue
        number: float | None
        if c in REFERENCE_INT_COLUMNS:
            number = int(v) if re.fullmatch(r"\+?[0-9]+", v) else None
        else:
            try:
                number = float(v)
            except ValueError:
                number = None
            number = number if number is not None and math.isfinite(number) and number >= 0 else None
        if number is None:
            kind = "a whole number" if c in REFERENCE_INT_COLUMNS else "a number"
            bad.append(f"column {c}: {v!r} is not {kind} >= 0 (leave it empty, or -1, when unknown)")
        out[c] = number
    return out, bad


def write_manifest(
    path: Path, manifest: Manifest, dataset_ids: set[str], uris: Mapping[str, str] | None = None
) -> None:
    """Write the entries of ``dataset_ids`` as a manifest whose local URIs are absolute (usable anywhere).

    ``uris`` replaces some (dataset_id -> URI, relative ones taken from ``path``'s directory). The header
    is ``dataset_id,h5ad_uri``, the optional columns and the reference builder's metadata columns that any
    written entry has a value in.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    chosen = [e for e in manifest.entries if e.dataset_id in dataset_ids]
    extra = [c for c in REFERENCE_COLUMNS if any(getattr(e, c) not in ("", None) for e in chosen)]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *extra])
        for e in chosen:
            uri = e.h5ad_uri if e.is_s3 else str(manifest.local_path(e).resolve())
            uri = (uris or {}).get(e.dataset_id, uri)
            meta = ["" if getattr(e, c) is None else str(getattr(e, c)) for c in (*OPTIONAL_COLUMNS, *extra)]
            w.writerow([e.dataset_id, uri, *meta])
    tmp.replace(path)

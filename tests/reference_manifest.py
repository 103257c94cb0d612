"""A manifest of a corpus written the way the reference builder (cellxgene-census) reads it.

Header ``dataset_id,dataset_asset_h5ad_uri`` and the metadata columns of the reference's dataset records,
in the reference's field order, with absolute paths; the metadata is the one our manifest of the corpus holds.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

COLUMNS = (
    "dataset_id",
    "dataset_asset_h5ad_uri",
    "dataset_version_id",
    "dataset_title",
    "citation",
    "collection_id",
    "collection_name",
    "collection_doi",
    "collection_doi_label",
    "asset_h5ad_filesize",
    "schema_version",
)


def write_reference_manifest(ours: Path, dest: Path, citations: Mapping[str, str] | None = None) -> Path:
    """Rewrite our manifest ``ours`` as a reference-builder manifest at ``dest``; returns ``dest``.

    ``citations`` gives some datasets a citation (the others leave it empty: the file's own applies).
    """
    with ours.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows:
            path = (ours.parent / row["h5ad_uri"]).resolve()
            w.writerow(
                {
                    **{c: row.get(c, "") for c in COLUMNS if c in row},
                    "dataset_id": row["dataset_id"],
                    "dataset_asset_h5ad_uri": str(path),
                    "citation": (citations or {}).get(row["dataset_id"], ""),
                    "collection_doi_label": f"Label of {row.get('collection_id', '')}",
                    "asset_h5ad_filesize": path.stat().st_size,
                    "schema_version": "4.0.0",
                }
            )
    return dest

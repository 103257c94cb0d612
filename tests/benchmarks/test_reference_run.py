"""benchmarks.reference.run: our manifest in the reference builder's form, and its command line."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py

from benchmarks.reference.run import command, reference_manifest, write_inputs


def _h5ad(path: Path, title: str | None) -> None:
    with h5py.File(path, "w") as f:
        uns = f.create_group("uns")
        if title is not None:
            uns["title"] = title


def test_rows_take_absolute_uris_and_titles_from_uns(tmp_path: Path) -> None:
    _h5ad(tmp_path / "a.h5ad", "Title A")
    _h5ad(tmp_path / "b.h5ad", "Title B")
    rows = [
        {"dataset_id": "a", "h5ad_uri": "a.h5ad", "collection_id": "c1", "collection_doi": "10.1/x"},
        {"dataset_id": "b", "h5ad_uri": f"file://{tmp_path}/b.h5ad", "collection_id": "c2", "collection_doi": ""},
    ]
    out, dropped = reference_manifest(rows, tmp_path)
    assert out == [
        {
            "dataset_id": "a",
            "dataset_asset_h5ad_uri": str(tmp_path / "a.h5ad"),
            "dataset_title": "Title A",
            "collection_id": "c1",
        },
        {
            "dataset_id": "b",
            "dataset_asset_h5ad_uri": str(tmp_path / "b.h5ad"),
            "dataset_title": "Title B",
            "collection_id": "c2",
        },
    ]
    # empty somewhere: pandas would read NaN there and the reference's Dataset type check would fail
    assert dropped == [
        "dataset_version_id",
        "citation",
        "collection_name",
        "collection_doi",
        "collection_doi_label",
    ]


def test_inputs_are_a_manifest_and_an_empty_blocklist(tmp_path: Path) -> None:
    _h5ad(tmp_path / "a.h5ad", None)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("dataset_id,h5ad_uri,dataset_title\na,a.h5ad,Given title\n", encoding="utf-8")
    ref_manifest, blocklist = write_inputs(manifest, tmp_path / "out")
    with ref_manifest.open(newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == [
            {"dataset_id": "a", "dataset_asset_h5ad_uri": str(tmp_path / "a.h5ad"), "dataset_title": "Given title"}
        ]
    assert [ln for ln in blocklist.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")] == []
    assert command("py", Path("/w"), ref_manifest, blocklist, "2026-11-22", 2) == [
        "py",
        "-m",
        "cellxgene_census_builder.build_soma",
        "--build-tag",
        "2026-11-22",
        "--max_worker_processes",
        "2",
        "/w",
        "build",
        "--manifest",
        str(ref_manifest),
        "--dataset_id_blocklist_uri",
        str(blocklist),
    ]

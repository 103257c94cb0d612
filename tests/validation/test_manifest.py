"""The validator's own manifest reader: our header and the reference builder's, and what it reads from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BuiltRelease
from tests.reference_manifest import write_reference_manifest
from validation import validate_release
from validation.inputs.manifest import ManifestError, Source, read_manifest


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("uri_column", ["h5ad_uri", "dataset_asset_h5ad_uri"])
def test_either_uri_column(tmp_path: Path, uri_column: str) -> None:
    m = read_manifest(_write(tmp_path, f"dataset_id,{uri_column}\n\na,a.h5ad\nb,s3://bucket/b.h5ad\n\nc,\n"))
    assert m.sources == (Source("a", "a.h5ad", 3), Source("b", "s3://bucket/b.h5ad", 4))
    assert m.local_path(m.sources[0]) == tmp_path / "a.h5ad" and m.sources[1].is_s3
    assert m.problems == (f"manifest line 6: dataset_id and {uri_column} are required",)  # the file's line


def test_reference_metadata_is_read_and_other_columns_are_not(tmp_path: Path) -> None:
    text = (
        "dataset_id,dataset_asset_h5ad_uri,dataset_title,citation,collection_id,collection_name,collection_doi,"
        "collection_doi_label,dataset_version_id,asset_h5ad_filesize,cell_count,colour\n"
        "a,/x/a.h5ad,Title A,Cite A,c1,Coll 1,10.1/x,Label 1,a-v1,123,4,red\n"
    )
    m = read_manifest(_write(tmp_path, text))
    assert m.sources == (
        Source(
            "a",
            "/x/a.h5ad",
            2,
            dataset_version_id="a-v1",
            collection_id="c1",
            collection_name="Coll 1",
            collection_doi="10.1/x",
            dataset_title="Title A",
            citation="Cite A",
            collection_doi_label="Label 1",
        ),
    )


def test_both_uri_columns_are_an_error_naming_both(tmp_path: Path) -> None:
    path = _write(tmp_path, "dataset_id,h5ad_uri,dataset_asset_h5ad_uri\na,a.h5ad,a.h5ad\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(info.value) == (
        f"manifest {path} has both URI columns ['h5ad_uri', 'dataset_asset_h5ad_uri'] in its header; keep exactly one"
    )


def test_no_uri_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "dataset_id,uri\na,a.h5ad\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(info.value) == (
        f"manifest {path} has no header with ['dataset_id', 'h5ad_uri'] (missing ['h5ad_uri']; the reference "
        "builder's 'dataset_asset_h5ad_uri' may stand for 'h5ad_uri')"
    )


def test_a_citation_the_manifest_supplies_is_expected_in_the_datasets_table(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    """The release took each citation from its file; a reference manifest that names another one disagrees."""
    manifest = write_reference_manifest(
        example_release.manifest, tmp_path / "manifest.csv", citations={"human-smartseq": "Manifest citation"}
    )
    report = validate_release(
        example_release.soma_uri, manifest, client=validation_client, report_path=tmp_path / "r.json"
    )
    assert report.failed == ["census_info_datasets"]
    findings = [f.to_json() for f in report.check("census_info_datasets").findings]
    assert [(f["dataset_id"], f["column"], f["expected"]) for f in findings] == [
        ("human-smartseq", "citation", "Manifest citation")
    ]

from __future__ import annotations

from pathlib import Path

import pytest

from census_builder.errors import ManifestError
from census_builder.manifest import load_manifest, parse_manifest


def test_parses_required_and_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("dataset_id,h5ad_uri,collection_name\n\na,a.h5ad,Coll A\n\nb,s3://bucket/b.h5ad,\n\n")
    m = load_manifest(path)
    assert [e.dataset_id for e in m.entries] == ["a", "b"]
    assert m.entries[0].collection_name == "Coll A" and m.entries[1].collection_name == ""
    assert m.local_path(m.entries[0]) == tmp_path / "a.h5ad"
    assert m.entries[1].is_s3
    assert len(m.sha256) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,a.h5ad\n", "no header"),
        ("", "empty"),
        ("dataset_id,h5ad_uri\n", "lists no datasets"),
        ("dataset_id,h5ad_uri\na,a.h5ad\na,b.h5ad\n", "duplicate dataset_id 'a'"),
        ("dataset_id,h5ad_uri\na,a.csv\n", "does not name an .h5ad file"),
        ("dataset_id,h5ad_uri\na,http://x/a.h5ad\n", "only local paths and s3://"),
        ("dataset_id,h5ad_uri,colour\na,a.h5ad,red\n", "unknown column"),
        ("dataset_id,h5ad_uri\na b,a.h5ad\n", "invalid dataset_id"),
        ("dataset_id,h5ad_uri\na,\n", "has no h5ad_uri"),
    ],
)
def test_malformed_manifests(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text.encode())


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(b"dataset_id,h5ad_uri\na,a.h5ad\na,a2.h5ad\nb,b.txt\n")
    assert "2 problem(s)" in str(info.value)
    assert "line 3" in str(info.value) and "line 4" in str(info.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "nope.csv")

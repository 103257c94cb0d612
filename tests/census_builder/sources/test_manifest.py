from __future__ import annotations

from pathlib import Path

import pytest

from census_builder.errors import ManifestError
from census_builder.sources.manifest import DERIVED_NAMES, MAX_DATASET_ID_BYTES, load_manifest, parse_manifest


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


@pytest.mark.parametrize(
    ("dataset_id", "message"),
    [
        ("a/b", "line 3: invalid dataset_id 'a/b'"),
        ("a\x00b", "line 3: invalid dataset_id 'a\\x00b'"),
        ("a\x01b", "line 3: invalid dataset_id 'a\\x01b'"),
        ("é", "line 3: invalid dataset_id 'é'"),
        ("..", "line 3: invalid dataset_id '..'"),
        ("x" * (MAX_DATASET_ID_BYTES + 1), f"line 3: dataset_id '{'x' * 32}'... is 209 bytes long"),
    ],
)
def test_dataset_ids_that_cannot_name_a_file_are_refused_with_their_line(dataset_id: str, message: str) -> None:
    text = f"dataset_id,h5ad_uri\nok,ok.h5ad\n{dataset_id},x.h5ad\n"
    with pytest.raises(ManifestError) as info:
        parse_manifest(text.encode())
    assert message in str(info.value)


def test_the_longest_allowed_dataset_id_fits_every_derived_file_name(tmp_path: Path) -> None:
    longest = "x" * MAX_DATASET_ID_BYTES
    m = parse_manifest(f"dataset_id,h5ad_uri\n{longest},a.h5ad\n".encode())
    assert m.entries[0].dataset_id == longest
    for template in DERIVED_NAMES:  # each can be created on this file system
        (tmp_path / template.format(id=longest)).touch()
    assert MAX_DATASET_ID_BYTES == 208


def test_line_numbers_count_blank_lines() -> None:
    with pytest.raises(ManifestError, match=r"line 5: duplicate dataset_id 'a' \(first on line 3\)"):
        parse_manifest(b"dataset_id,h5ad_uri\n\na,a.h5ad\n\na,b.h5ad\n")


def test_h5ad_uri_with_a_control_character_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"line 2: dataset 'a' h5ad_uri 'a\\x00b.h5ad' contains a control"):
        parse_manifest(b"dataset_id,h5ad_uri\na,a\x00b.h5ad\n")

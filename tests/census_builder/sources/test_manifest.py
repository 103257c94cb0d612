from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from census_builder.errors import ManifestError
from census_builder.sources.manifest import (
    DERIVED_NAMES,
    MAX_DATASET_ID_BYTES,
    ManifestEntry,
    load_manifest,
    parse_manifest,
    write_manifest,
)


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


# A manifest written for the reference builder (cellxgene-census tools/cellxgene_census_builder): its URI
# column is dataset_asset_h5ad_uri, its other columns are the fields of its dataset records.
REFERENCE_HEADER = (
    "dataset_id,dataset_asset_h5ad_uri,dataset_version_id,dataset_h5ad_path,dataset_title,citation,collection_id,"
    "collection_name,collection_doi,collection_doi_label,asset_h5ad_filesize,cell_count,mean_genes_per_cell,"
    "schema_version,dataset_total_cell_count,soma_joinid"
)


def test_reference_header_with_only_the_uri_column(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"dataset_id,dataset_asset_h5ad_uri\na,a.h5ad\nb,s3://bucket/b.h5ad\n")
    m = load_manifest(path)
    assert m.uri_column == "dataset_asset_h5ad_uri"
    assert [(e.dataset_id, e.h5ad_uri) for e in m.entries] == [("a", "a.h5ad"), ("b", "s3://bucket/b.h5ad")]
    assert m.local_path(m.entries[0]) == tmp_path / "a.h5ad" and m.entries[1].is_s3
    assert m.entries[0] == ManifestEntry("a", "a.h5ad")  # no metadata: every field at its default
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # of the file's bytes, as for our header


def test_our_header_names_its_uri_column() -> None:
    assert parse_manifest(b"dataset_id,h5ad_uri\na,a.h5ad\n").uri_column == "h5ad_uri"


def test_reference_metadata_columns_are_read(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        f"{REFERENCE_HEADER}\n"
        'a,a.h5ad,a-v2,/x/a.h5ad,Title A,"Publication: x; Dataset Version: a-v2",c1,Coll 1,10.1/x,'
        '"Smith et al. (2024)",1234,100,12.5,7.0.0,100,0\n'
        "b,b.h5ad,,,,,,,,,-1,-1,-1.0,,0,-1\n"
    )
    with caplog.at_level(logging.INFO, logger="census_builder.sources.manifest"):
        m = parse_manifest(text.encode(), source="ref.csv")
    assert m.entries[0] == ManifestEntry(
        dataset_id="a",
        h5ad_uri="a.h5ad",
        dataset_version_id="a-v2",
        collection_id="c1",
        collection_name="Coll 1",
        collection_doi="10.1/x",
        dataset_title="Title A",
        citation="Publication: x; Dataset Version: a-v2",
        collection_doi_label="Smith et al. (2024)",
        schema_version="7.0.0",
        asset_h5ad_filesize=1234,
        cell_count=100,
        mean_genes_per_cell=12.5,
    )
    assert m.entries[1] == ManifestEntry("b", "b.h5ad")  # empty and the reference's -1 ("unknown") read as unset
    assert (
        "manifest ref.csv: column(s) ['dataset_h5ad_path', 'dataset_total_cell_count', 'soma_joinid'] are computed "
        "by the build; their values are ignored" in caplog.text
    )


def test_both_uri_columns_are_refused_naming_both() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(b"\ndataset_id,h5ad_uri,dataset_asset_h5ad_uri\na,a.h5ad,a.h5ad\n", source="m.csv")
    assert str(info.value) == (
        "manifest m.csv has both URI columns ['h5ad_uri', 'dataset_asset_h5ad_uri'] in its header (line 2); keep "
        "exactly one: 'h5ad_uri' or the reference builder's 'dataset_asset_h5ad_uri'"
    )


def test_no_uri_column_names_both_forms() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(b"dataset_id,uri\na,a.h5ad\n", source="m.csv")
    assert str(info.value) == (
        "manifest m.csv has no header with columns ['dataset_id', 'h5ad_uri'] (missing ['h5ad_uri']; first line is "
        "'dataset_id,uri'). The first line must be a header, e.g. 'dataset_id,h5ad_uri' (or the reference "
        "builder's 'dataset_id,dataset_asset_h5ad_uri')."
    )


def test_reference_header_problems_name_file_line_and_column() -> None:
    text = (
        "dataset_id,dataset_asset_h5ad_uri,asset_h5ad_filesize,cell_count,mean_genes_per_cell\n"
        "a,,,,\n"
        "\n"
        "b,b.txt,,,\n"
        "c,c.h5ad,12x,-2,nan\n"
        "d,d.h5ad,1.5,3,-0.5\n"
    )
    with pytest.raises(ManifestError) as info:
        parse_manifest(text.encode(), source="ref.csv")
    assert str(info.value) == (
        "manifest ref.csv has 7 problem(s):\n"
        "  - line 2: dataset 'a' has no dataset_asset_h5ad_uri\n"
        "  - line 4: dataset 'b' dataset_asset_h5ad_uri 'b.txt' does not name an .h5ad file\n"
        "  - line 5: dataset 'c' column asset_h5ad_filesize: '12x' is not a whole number >= 0 (leave it empty, or "
        "-1, when unknown)\n"
        "  - line 5: dataset 'c' column cell_count: '-2' is not a whole number >= 0 (leave it empty, or -1, when "
        "unknown)\n"
        "  - line 5: dataset 'c' column mean_genes_per_cell: 'nan' is not a number >= 0 (leave it empty, or -1, "
        "when unknown)\n"
        "  - line 6: dataset 'd' column asset_h5ad_filesize: '1.5' is not a whole number >= 0 (leave it empty, or "
        "-1, when unknown)\n"
        "  - line 6: dataset 'd' column mean_genes_per_cell: '-0.5' is not a number >= 0 (leave it empty, or -1, "
        "when unknown)"
    )


def test_unknown_columns_stay_refused_with_the_reference_header() -> None:
    with pytest.raises(ManifestError, match=r"unknown column\(s\) \['colour'\]; allowed: \['dataset_id', 'h5ad_uri'"):
        parse_manifest(b"dataset_id,dataset_asset_h5ad_uri,colour\na,a.h5ad,red\n")


def test_written_manifest_keeps_our_header_and_the_reference_metadata(tmp_path: Path) -> None:
    text = f"{REFERENCE_HEADER}\na,a.h5ad,a-v2,,Title A,Cite A,c1,Coll 1,10.1/x,Label A,1234,100,12.5,7.0.0,0,0\n"
    (tmp_path / "ref.csv").write_text(text + "b,s3://bucket/b.h5ad,,,,,,,,,,,,,,\n")
    m = load_manifest(tmp_path / "ref.csv")
    out = tmp_path / "out" / "manifest.csv"
    write_manifest(out, m, {"a", "b"})
    lines = out.read_text().splitlines()
    assert lines[0] == (
        "dataset_id,h5ad_uri,dataset_version_id,collection_id,collection_name,collection_doi,dataset_title,"
        "citation,collection_doi_label,schema_version,asset_h5ad_filesize,cell_count,mean_genes_per_cell"
    )
    assert lines[2] == "b,s3://bucket/b.h5ad,,,,,,,,,,,"
    again = load_manifest(out)
    assert again.uri_column == "h5ad_uri"
    assert again.entries == (replace(m.entries[0], h5ad_uri=str(tmp_path / "a.h5ad")), m.entries[1])


def test_written_manifest_of_our_header_is_as_before(tmp_path: Path) -> None:
    """Without reference metadata the build's manifest.csv has exactly the columns it always had."""
    (tmp_path / "m.csv").write_text("dataset_id,h5ad_uri,collection_name\na,a.h5ad,Coll A\n")
    write_manifest(tmp_path / "out.csv", load_manifest(tmp_path / "m.csv"), {"a"})
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        "dataset_id,h5ad_uri,dataset_version_id,collection_id,collection_name,collection_doi,dataset_title",
        f"a,{tmp_path / 'a.h5ad'},,,Coll A,,",
    ]

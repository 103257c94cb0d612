"""A manifest written for the reference builder builds the same release as our manifest of the same corpus."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import tiledbsoma as soma

from census_builder.build.pipeline import BuildConfig, build
from tests.conftest import BuiltRelease
from tests.content_digest import release_digest
from tests.reference_manifest import write_reference_manifest
from validation import validate_release


def _datasets(uri: str) -> pd.DataFrame:
    with soma.DataFrame.open(f"{uri}/census_info/datasets") as df:
        table: pd.DataFrame = df.read().concat().to_pandas()
    return table.sort_values("soma_joinid").reset_index(drop=True)


def test_build_from_a_reference_manifest_equals_the_build_from_ours(
    example_release: BuiltRelease, tmp_path: Path
) -> None:
    """Same content digest, except what the manifest itself supplies: its checksum and one dataset's citation."""
    manifest = write_reference_manifest(
        example_release.manifest, tmp_path / "ref" / "manifest.csv", citations={"human-smartseq": "Manifest citation"}
    )
    paths = build(
        BuildConfig(
            version="example", manifest=manifest, workdir=tmp_path / "build", workers=1, build_date="2026-11-22"
        )
    )
    ours, theirs = release_digest(example_release.soma_uri), release_digest(str(paths.soma))
    assert sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)) == [
        "/",
        "/census_info/datasets",
    ]
    with soma.open(example_release.soma_uri) as a, soma.open(str(paths.soma)) as b:
        meta_a, meta_b = dict(a.metadata), dict(b.metadata)  # (the same members: their digests' keys are equal)
    assert {k for k in meta_a.keys() | meta_b.keys() if meta_a.get(k) != meta_b.get(k)} == {"manifest_sha256"}
    assert meta_b["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()

    expected = _datasets(example_release.soma_uri)
    assert "Manifest citation" not in set(expected["citation"])
    expected.loc[expected["dataset_id"] == "human-smartseq", "citation"] = "Manifest citation"
    pd.testing.assert_frame_equal(_datasets(str(paths.soma)), expected)

    # The build's own manifest.csv (our header) keeps the metadata the manifest supplied.
    header = paths.manifest.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("dataset_id,h5ad_uri,") and ",citation,collection_doi_label," in header
    report = validate_release(str(paths.soma), manifest, workers=1, report_path=tmp_path / "validation.json")
    assert report.passed, report.failed

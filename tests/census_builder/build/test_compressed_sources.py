"""A build from gzip-compressed H5ADs (as CELLxGENE writes them) equals the build from the same files uncompressed."""

from __future__ import annotations

from pathlib import Path

import h5py

from census_builder.build.pipeline import BuildConfig, build
from census_builder.testing.synthetic import example_specs, write_corpus
from tests.conftest import BuiltRelease
from tests.content_digest import release_digest


def test_build_from_gzip_sources_equals_the_build_from_uncompressed_ones(
    example_release: BuiltRelease, tmp_path: Path
) -> None:
    manifest = write_corpus(tmp_path / "gzip", [s.with_(compression="gzip") for s in example_specs()])
    assert manifest.read_bytes() == example_release.manifest.read_bytes()  # same names: same manifest checksum
    with h5py.File(manifest.parent / "mouse-blood-raw.h5ad", "r") as f:
        assert f["raw/X/data"].compression == "gzip"
    paths = build(
        BuildConfig(version="example", manifest=manifest, workdir=tmp_path / "b", workers=1, build_date="2026-11-22")
    )
    ours, plain = release_digest(str(paths.soma)), release_digest(example_release.soma_uri)
    assert sorted(k for k in ours.keys() | plain.keys() if ours.get(k) != plain.get(k)) == []

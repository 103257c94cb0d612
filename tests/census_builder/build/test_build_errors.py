"""Bad input is reported together, before any release object is written; --exclude-invalid builds without it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths
from census_builder.errors import BuildLockedError, PreflightError
from census_builder.testing.synthetic import DatasetSpec, write_corpus


def _corpus(tmp_path: Path) -> Path:
    manifest = write_corpus(
        tmp_path / "corpus",
        [
            DatasetSpec("good", n_cells=30),
            DatasetSpec("bad", n_cells=10),
            DatasetSpec(
                "good-mouse",
                n_cells=20,
                cell_organisms=("NCBITaxon:10090",),
                gene_organisms=("NCBITaxon:10090",),
                tissues=(("UBERON:9999999", "new tissue"),),  # unknown to the shipped ontology: a warning
            ),
        ],
    )
    (tmp_path / "corpus" / "bad.h5ad").write_bytes(b"not an h5ad")
    with manifest.open("a") as f:
        f.write("gone,missing.h5ad,,,,\n")
    return manifest


def test_preflight_reports_every_problem_before_writing(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path)
    with pytest.raises(PreflightError) as info:
        build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", workers=1))
    ids = [p.dataset_id for p in info.value.problems]
    assert ids == ["bad", "gone"]
    text = str(info.value)
    assert "'bad'" in text and "not a readable HDF5" in text
    assert "'gone'" in text and "file not found" in text and "missing.h5ad" in text
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    assert not paths.soma.exists() and not paths.partial.exists()
    assert json.loads(paths.report.read_text())["status"] == "failed"


def test_exclude_invalid_builds_without_bad_datasets(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path)
    paths = build(
        BuildConfig(
            version="v", manifest=manifest, workdir=tmp_path / "w", workers=1, exclude_invalid=True, max_excluded=0.5
        )
    )
    assert paths.is_complete()
    report = json.loads(paths.report.read_text())
    assert report["status"] == "complete"
    assert [p["dataset_id"] for p in report["inputs"]["invalid"]] == ["bad", "gone"]
    assert "not a readable HDF5" in report["inputs"]["invalid"][0]["reason"]
    assert report["inputs"]["warnings"] == {
        "good-mouse": ["tissue 'UBERON:9999999' is not in the shipped UBERON; tissue_general maps it to itself"]
    }
    assert sorted(p.name for p in paths.h5ads.iterdir()) == ["good-mouse.h5ad", "good.h5ad"]

    from census_builder.release.notes import make_notes

    notes = make_notes(tmp_path / "w", "v", out_dir=tmp_path / "notes").read_text()
    assert "## Datasets left out" in notes and "| bad | invalid input |" in notes and "| gone |" in notes
    assert "UBERON:9999999" in notes


def test_live_lock_refuses_and_stale_lock_is_taken_over(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("good", n_cells=20)])
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    paths.state.mkdir(parents=True)
    import socket

    paths.lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(BuildLockedError, match="locked by a running build"):
        build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", workers=1))
    paths.lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))  # no such process
    build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", workers=1))
    assert paths.is_complete() and not paths.lock.exists()
    shutil.rmtree(tmp_path / "w")

"""Issue #12, builder side: the build never deletes, moves or writes a file it did not create; a changed
source is staged again (or, once planned, refused on resume); what is published is what was validated;
missing sources are reported at once, naming the manifest's file."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import pytest

from census_builder.build import pipeline as build_module
from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths
from census_builder.errors import BuildStateError, InputError, ManifestError, PreflightError, PublishRefusedError
from census_builder.release.publish import publish
from census_builder.sources.manifest import load_manifest
from census_builder.sources.staging import read_record, records_dir, remove_staged, stage_source
from census_builder.testing.synthetic import DatasetSpec, write_corpus, write_h5ad
from tests.census_builder.build.test_reliability import s3_endpoint  # noqa: F401 - fixture
from tests.census_builder.release.test_publish import _validated_copy, write_validation_report
from tests.conftest import BuiltRelease

MERFISH = "EFO:0008992"  # excluded from the Census: a dataset of only MERFISH cells contributes none


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _break_counts(path: Path) -> None:
    """Make one count non-integer, in place (same size)."""
    with h5py.File(path, "r+") as f:
        f["X"]["data"][3] = 1.5


def _replace(path: Path, new_content_from: Path) -> None:
    """``cp good .tmp && mv .tmp src.h5ad``: a new inode under the old name, as rsync and S3 re-uploads do."""
    tmp = path.with_name(".tmp")
    shutil.copyfile(new_content_from, tmp)
    tmp.replace(path)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One local dask cluster for this module's builds (each would otherwise spawn and import its own)."""
    from census_builder.runtime.cluster import dask_client

    with dask_client(workers=1) as client:
        yield str(client.scheduler.address)


@pytest.fixture
def stop_after_staging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The build's run stops right after stage_and_inspect (as a crash would), in this process."""

    def crash(run: Any) -> dict[str, Any]:
        raise RuntimeError("simulated crash after stage_and_inspect")

    steps = build_module.STEPS
    monkeypatch.setattr(build_module, "STEPS", (steps[0], ("plan_axes", crash), *steps[2:]))
    yield
    monkeypatch.setattr(build_module, "STEPS", steps)


# -- 1. a source inside the build's folders ---------------------------------------------------------------


@pytest.mark.parametrize("exclude_invalid", [False, True])
def test_sources_inside_the_build_folder_are_refused_and_untouched(
    tmp_path: Path, exclude_invalid: bool, scheduler: str
) -> None:
    """The reported case: a corpus kept at DIR/VERSION/h5ads/ (a build's staged folder re-used); one dataset
    contributes no cells, another is invalid. The build used to unlink both."""
    work = tmp_path / "w"
    h5ads = BuildPaths.for_version(work, "v").h5ads
    manifest = write_corpus(
        h5ads,
        [DatasetSpec("good", n_cells=20), DatasetSpec("merfish", n_cells=10, assays=(MERFISH,))],
        manifest_name="../corpus.csv",
    )
    bad = write_h5ad(h5ads / "bad.h5ad", DatasetSpec("bad", n_cells=10))
    _break_counts(bad)
    with manifest.open("a") as f:
        f.write("bad,h5ads/bad.h5ad,,,,\n")
    manifest.write_text(manifest.read_text().replace(",good.h5ad,", ",h5ads/good.h5ad,"))
    manifest.write_text(manifest.read_text().replace(",merfish.h5ad,", ",h5ads/merfish.h5ad,"))
    before = {p.name: _sha(p) for p in h5ads.iterdir()}
    with pytest.raises(ManifestError) as info:
        build(
            BuildConfig(
                version="v", manifest=manifest, workdir=work, scheduler=scheduler, exclude_invalid=exclude_invalid
            )
        )
    text = str(info.value)
    assert "4 input(s) lie inside this build's own folder" in text
    for ds in ("good", "merfish", "bad"):
        assert f"dataset {ds!r}: {h5ads.parent}" in text
    assert "the manifest" in text and "Move them out first" in text
    assert {p.name: _sha(p) for p in h5ads.iterdir()} == before  # nothing deleted, moved or written
    assert not (h5ads.parent / ".build").exists() and not (h5ads.parent / "build_report.json").exists()


def test_staging_never_replaces_or_deletes_a_file_it_did_not_create(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("a", n_cells=10)])
    m = load_manifest(manifest)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    dest = paths.h5ad("a")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"somebody's file")
    with pytest.raises(InputError, match="exists but this build did not create it"):
        stage_source(m, m.entries[0], dest, records_dir(paths))
    assert not remove_staged(records_dir(paths), "a", dest)
    assert dest.read_bytes() == b"somebody's file"
    dest.unlink()
    stage_source(m, m.entries[0], dest, records_dir(paths))
    rec = read_record(records_dir(paths), "a")
    assert rec is not None
    assert rec["method"] == "link" and rec["partial"] is None and rec["dest"] == str(dest)
    assert rec["staged"]["inode"] == dest.stat().st_ino == (tmp_path / "corpus" / "a.h5ad").stat().st_ino
    assert rec["source"]["path"] == str(tmp_path / "corpus" / "a.h5ad")
    assert set(rec["staged"]) == {"size", "mtime_ns", "inode"}
    # Someone swaps in another file under the staged name: it is not ours, so it stays.
    dest.unlink()
    dest.write_bytes(b"another file")
    assert not remove_staged(records_dir(paths), "a", dest)
    assert dest.read_bytes() == b"another file"


def test_excluded_datasets_lose_only_their_staged_links(tmp_path: Path, scheduler: str) -> None:
    corpus = tmp_path / "corpus"
    manifest = write_corpus(
        corpus,
        [DatasetSpec("good", n_cells=20), DatasetSpec("merfish", n_cells=10, assays=(MERFISH,)), DatasetSpec("bad")],
    )
    _break_counts(corpus / "bad.h5ad")
    before = {p.name: _sha(p) for p in corpus.glob("*.h5ad")}
    paths = build(
        BuildConfig(
            version="v",
            manifest=manifest,
            workdir=tmp_path / "w",
            scheduler=scheduler,
            exclude_invalid=True,
            max_excluded=0.5,
        )
    )
    assert sorted(p.name for p in paths.h5ads.iterdir()) == ["good.h5ad"]
    assert {p.name: _sha(p) for p in corpus.glob("*.h5ad")} == before
    bad = read_record(records_dir(paths), "bad")
    assert bad is not None and bad["removed"] is True and bad["staged"] is None
    # a dataset without cells keeps its copy beside the release (validation reads it), recorded there
    merfish = read_record(records_dir(paths), "merfish")
    aside = paths.state / "no_cells" / "merfish.h5ad"
    assert merfish is not None and merfish["dest"] == str(aside)
    assert aside.is_file() and aside.stat().st_ino == merfish["staged"]["inode"]


# -- 3. a fixed source is staged again; a source changed after planning is refused -------------------------


def test_a_fixed_source_is_staged_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    manifest = write_corpus(corpus, [DatasetSpec("a", n_cells=20), DatasetSpec("b", n_cells=10, seed=3)])
    src = corpus / "a.h5ad"
    good = tmp_path / "good-a.h5ad"
    shutil.copyfile(src, good)
    _break_counts(src)
    config = BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", scheduler=scheduler)
    with pytest.raises(PreflightError) as info:
        build(config)
    (problem,) = info.value.problems
    assert problem.uri == str(src)  # the user's file, not the staged copy
    assert "h5ads" not in str(info.value)
    assert src.stat().st_size == good.stat().st_size  # the fix does not change the size
    _replace(src, good)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    m = load_manifest(manifest)
    with caplog.at_level(logging.INFO, logger="census_builder"):
        stage_source(m, m.entries[0], paths.h5ad("a"), records_dir(paths))
    assert f"dataset a: source {src} changed since it was staged (mtime_ns " in caplog.text
    assert ", inode " in caplog.text and "; staging it again" in caplog.text
    assert paths.h5ad("a").stat().st_ino == src.stat().st_ino
    monkeypatch.setattr(build_module, "STEPS", build_module.STEPS[:1])  # preflight is what failed before
    build(config)
    assert json.loads(paths.report.read_text())["stages_done"] == ["stage_and_inspect"]


def test_a_source_edited_in_place_is_staged_again(tmp_path: Path) -> None:
    """Same inode, same size, new content: the hard link sees it, its mtime says so."""
    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("a", n_cells=10)])
    m = load_manifest(manifest)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    stage_source(m, m.entries[0], paths.h5ad("a"), records_dir(paths))
    first = read_record(records_dir(paths), "a")
    _break_counts(tmp_path / "corpus" / "a.h5ad")
    stage_source(m, m.entries[0], paths.h5ad("a"), records_dir(paths))
    second = read_record(records_dir(paths), "a")
    assert first is not None and second is not None
    assert second["source"]["mtime_ns"] != first["source"]["mtime_ns"]
    assert second["staged"]["mtime_ns"] == second["source"]["mtime_ns"]


def test_a_source_changed_after_planning_fails_the_resume(
    tmp_path: Path, stop_after_staging: None, scheduler: str
) -> None:
    corpus = tmp_path / "corpus"
    manifest = write_corpus(corpus, [DatasetSpec("a", n_cells=20), DatasetSpec("b", n_cells=10, seed=3)])
    config = BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", scheduler=scheduler)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(config)
    other = write_h5ad(tmp_path / "other.h5ad", DatasetSpec("b", n_cells=12, seed=4))
    _replace(corpus / "b.h5ad", other)
    with pytest.raises(BuildStateError) as info:
        build(config)
    text = str(info.value)
    assert f"dataset 'b': source {corpus / 'b.h5ad'} changed (mtime_ns " in text and ", inode " in text
    assert "'a'" not in text
    assert "--restart" in text


# -- 4. publish ships only what was validated --------------------------------------------------------------


def test_publish_refuses_a_source_edited_after_validation(example_release: BuiltRelease, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    paths = _validated_copy(example_release, workdir, "v1")
    staged = paths.h5ad("human-lung-10x")
    with h5py.File(staged, "r+") as f:  # in place: a hard-linked staged copy changes with its source
        f["X"]["data"][0] = f["X"]["data"][0] + 1
    dest = tmp_path / "dest"
    with pytest.raises(PublishRefusedError) as info:
        publish(workdir, "v1", dest)
    text = str(info.value)
    assert "1 source file(s) differ from what was validated" in text
    assert f"dataset 'human-lung-10x': {staged} (" in text and "is not the file validation read from" in text
    assert "Nothing was uploaded" in text
    assert not (dest / "release.json").exists() and not (dest / "v1").exists()


def test_publish_refuses_a_validation_report_without_source_checksums(
    example_release: BuiltRelease, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    paths = _validated_copy(example_release, workdir, "v1")
    (paths.validation_report).write_text(json.dumps({"passed": True, "findings": []}))
    with pytest.raises(PublishRefusedError, match="records no checksums of the sources it validated"):
        publish(workdir, "v1", tmp_path / "dest")
    write_validation_report(paths)
    extra = paths.h5ads / "unvalidated.h5ad"
    shutil.copyfile(paths.h5ad("human-smartseq"), extra)
    with pytest.raises(PublishRefusedError, match=r"'unvalidated': .* was not validated"):
        publish(workdir, "v1", tmp_path / "dest")
    extra.unlink()
    assert publish(workdir, "v1", tmp_path / "dest").objects > 0


# -- 5. missing and unreadable sources: at once, naming the manifest's file --------------------------------


def test_missing_and_unreadable_sources_are_reported_before_anything_is_staged(tmp_path: Path, scheduler: str) -> None:
    corpus = tmp_path / "corpus"
    manifest = write_corpus(corpus, [DatasetSpec("good", n_cells=10)])
    (corpus / "dir.h5ad").mkdir()
    (corpus / "text.h5ad").write_text("not HDF5 at all")
    with manifest.open("a") as f:
        f.write("gone,missing.h5ad,,,,\ndir,dir.h5ad,,,,\ntext,text.h5ad,,,,\n")
    with pytest.raises(PreflightError) as info:
        build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", scheduler=scheduler))
    got = [(p.dataset_id, p.uri, p.reason) for p in info.value.problems]
    assert got == [
        ("gone", str(corpus / "missing.h5ad"), "file not found"),
        ("dir", str(corpus / "dir.h5ad"), "not a regular file"),
        ("text", str(corpus / "text.h5ad"), "not a readable HDF5/H5AD file (no HDF5 signature)"),
    ]
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    assert not paths.h5ads.exists()  # "good" was not staged either
    assert not records_dir(paths).exists()


# -- 6. S3: identity by ETag / size / LastModified, SHA-256 computed while downloading ---------------------


def test_s3_source_is_downloaded_with_its_sha256_and_staged_again_when_replaced(
    tmp_path: Path,
    s3_endpoint: str,  # noqa: F811 - fixture
    caplog: pytest.LogCaptureFixture,
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="corpus")
    one = write_h5ad(tmp_path / "one.h5ad", DatasetSpec("a", n_cells=10))
    two = write_h5ad(tmp_path / "two.h5ad", DatasetSpec("a", n_cells=10, seed=9))
    s3.upload_file(str(one), "corpus", "a.h5ad")
    manifest = tmp_path / "m.csv"
    manifest.write_text("dataset_id,h5ad_uri\na,s3://corpus/a.h5ad\n")
    m = load_manifest(manifest)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    dest = paths.h5ad("a")
    stage_source(m, m.entries[0], dest, records_dir(paths))
    rec = read_record(records_dir(paths), "a")
    assert rec is not None and rec["method"] == "download" and rec["sha256"] == _sha(one)
    assert rec["source"]["etag"] and rec["source"]["size"] == one.stat().st_size
    inode = dest.stat().st_ino
    stage_source(m, m.entries[0], dest, records_dir(paths))  # unchanged: not fetched again
    assert dest.stat().st_ino == inode
    s3.upload_file(str(two), "corpus", "a.h5ad")
    with caplog.at_level(logging.INFO, logger="census_builder"):
        stage_source(m, m.entries[0], dest, records_dir(paths))
    assert "source s3://corpus/a.h5ad changed since it was staged" in caplog.text
    rec = read_record(records_dir(paths), "a")
    assert rec is not None and rec["sha256"] == _sha(two) == _sha(dest)


# -- 6. smaller holes --------------------------------------------------------------------------------------


def test_datasets_without_cells_or_genes_are_named(tmp_path: Path, scheduler: str) -> None:
    import anndata

    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("no-cells", n_cells=10), DatasetSpec("no-genes")])
    for ds, cut in (("no-cells", (slice(0, 0), slice(None))), ("no-genes", (slice(None), slice(0, 0)))):
        path = tmp_path / "corpus" / f"{ds}.h5ad"
        anndata.read_h5ad(path)[cut].copy().write_h5ad(path)
    with pytest.raises(PreflightError) as info:
        build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", scheduler=scheduler))
    assert [(p.dataset_id, p.reason) for p in info.value.problems] == [
        ("no-cells", "contributes no cells: the file has no cells (obs is empty)"),
        ("no-genes", "contributes no cells: the file has no genes (var is empty)"),
    ]
    assert "'*'" not in str(info.value)
    assert "No dataset contributes any cell to the Census; nothing to build" in str(info.value)


def test_resuming_with_another_build_date_is_refused(tmp_path: Path, stop_after_staging: None, scheduler: str) -> None:
    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("a", n_cells=10)])

    def config(date: str | None) -> BuildConfig:
        return BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", scheduler=scheduler, build_date=date)

    with pytest.raises(RuntimeError, match="simulated crash"):
        build(config("2026-11-22"))
    with pytest.raises(BuildStateError) as info:
        build(config("2026-12-01"))
    assert "--build-date 2026-11-22, not 2026-12-01" in str(info.value)
    assert "resume it with --build-date 2026-11-22 (or without --build-date)" in str(info.value)


def test_staging_copies_where_it_can_neither_reflink_nor_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("a", n_cells=10)])
    m = load_manifest(manifest)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    monkeypatch.setattr(os, "link", no_link)
    dest = stage_source(m, m.entries[0], paths.h5ad("a"), records_dir(paths))
    rec = read_record(records_dir(paths), "a")
    assert rec is not None and rec["method"] == "copy"
    assert dest.stat().st_ino != (tmp_path / "corpus" / "a.h5ad").stat().st_ino
    assert _sha(dest) == _sha(tmp_path / "corpus" / "a.h5ad")
    assert [p.name for p in paths.h5ads.iterdir()] == ["a.h5ad"]  # no partial left behind


def test_staging_interrupted_before_the_rename_is_finished_on_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("a", n_cells=10)])
    m = load_manifest(manifest)
    paths = BuildPaths.for_version(tmp_path / "w", "v")
    dest = paths.h5ad("a")
    stage_source(m, m.entries[0], dest, records_dir(paths))
    old_inode = dest.stat().st_ino
    _replace(tmp_path / "corpus" / "a.h5ad", write_h5ad(tmp_path / "new.h5ad", DatasetSpec("a", n_cells=10, seed=5)))

    real_replace = os.replace

    def killed(src: str | Path, dst: str | Path) -> None:  # killed right before the staged copy's rename
        if Path(dst) == dest:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        stage_source(m, m.entries[0], dest, records_dir(paths))
    rec = read_record(records_dir(paths), "a")
    assert rec is not None and rec["partial"] and rec["replaced"]["inode"] == old_inode == dest.stat().st_ino
    monkeypatch.setattr(os, "replace", real_replace)
    stage_source(m, m.entries[0], dest, records_dir(paths))  # the old copy is recognised as ours and replaced
    assert dest.stat().st_ino == (tmp_path / "corpus" / "a.h5ad").stat().st_ino != old_inode
    assert [p.name for p in paths.h5ads.iterdir()] == ["a.h5ad"]

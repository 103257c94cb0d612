"""Failures that are not the data's fault: S3 sources (real S3-API server on 127.0.0.1), an unreachable
S3 endpoint, a full disk, and (slow) a SIGKILL at every stage boundary."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths
from census_builder.errors import PreflightError
from census_builder.runtime import s3 as runtime_s3
from census_builder.testing.synthetic import DatasetSpec, example_specs, write_corpus
from tests.census_builder.build.test_resume import _build_args, _cli
from tests.census_builder.release_content import assert_same_content
from tests.conftest import BuiltRelease

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3-API server (moto's server mode) on 127.0.0.1; boto3 reaches it over HTTP."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for k, v in {**AWS_ENV, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    yield endpoint
    server.stop()


def test_build_from_s3_sources(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    specs = [
        DatasetSpec("s3-human", n_cells=40),
        DatasetSpec("s3-mouse", n_cells=30, cell_organisms=("NCBITaxon:10090",), gene_organisms=("NCBITaxon:10090",)),
    ]
    local = write_corpus(tmp_path / "corpus", specs)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="corpus")
    for s in specs:
        s3.upload_file(str(local.parent / f"{s.dataset_id}.h5ad"), "corpus", f"h5ad/{s.dataset_id}.h5ad")
    manifest = tmp_path / "s3-manifest.csv"  # the local manifest, with s3:// URIs
    text = local.read_text()
    for s in specs:
        text = text.replace(f",{s.dataset_id}.h5ad,", f",s3://corpus/h5ad/{s.dataset_id}.h5ad,")
    manifest.write_text(text)
    paths = build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", workers=1))
    assert paths.is_complete()
    for s in specs:  # the staged copy is byte-identical to the object
        assert paths.h5ad(s.dataset_id).read_bytes() == (local.parent / f"{s.dataset_id}.h5ad").read_bytes()
    # Same sources from local disk give the same release.
    local_paths = build(BuildConfig(version="v", manifest=local, workdir=tmp_path / "w-local", workers=1))
    assert_same_content(str(paths.soma), str(local_paths.soma))


def test_missing_s3_object_and_unreachable_endpoint(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="corpus")
    manifest = tmp_path / "m.csv"
    manifest.write_text("dataset_id,h5ad_uri\nabsent,s3://corpus/absent.h5ad\n")
    with pytest.raises(PreflightError) as info:
        build(BuildConfig(version="v", manifest=manifest, workdir=tmp_path / "w", workers=1))
    assert "'absent'" in str(info.value) and "file not found" in str(info.value)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    # Two retries, not the policy's 8 (test_s3.py checks that every client gets 8): botocore's backoff sleeps
    # between the refused connections (up to 1 + 2 + 4 + ... s, 20 s at most each) would take ~45 s here.
    monkeypatch.setattr(runtime_s3, "S3_MAX_ATTEMPTS", 2)
    with pytest.raises(PreflightError) as info:
        build(BuildConfig(version="v2", manifest=manifest, workdir=tmp_path / "w", workers=1))
    assert "S3 unreachable after retries" in str(info.value) and "s3://corpus/absent.h5ad" in str(info.value)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs (needs root and mount rights; skipped where the machine refuses)."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_cleanly_and_resumes(tmp_path: Path, small_disk: Path, example_release: BuiltRelease) -> None:
    args = _build_args(example_release.manifest, small_disk)
    first = _cli(*args)
    assert first.returncode != 0
    assert "No space left on device" in first.stderr or "ENOSPC" in first.stderr or "space" in first.stderr.lower(), (
        first.stderr[-3000:]
    )
    root = small_disk / "example"
    assert not (root / "soma").exists()
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], check=True)
    second = _cli(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((root / "build_report.json").read_text())["status"] == "complete"
    assert_same_content(str(root / "soma"), example_release.soma_uri)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at",
    [
        "after:plan_axes",
        "matrix:after_chunks:1",
        "matrix:after_chunks:7",
        "after:write_matrices",
        "after:finalize_release",
    ],
)
def test_kill_at_every_boundary(tmp_path: Path, example_release: BuiltRelease, kill_at: str) -> None:
    args = _build_args(example_release.manifest, tmp_path)
    first = _cli(*args, kill_at=kill_at)
    assert first.returncode == -signal.SIGKILL
    root = tmp_path / "example"
    if kill_at == "after:finalize_release":  # the release was complete before the kill
        assert BuildPaths(root).is_complete()
    else:
        assert not (root / "soma").exists()
        second = _cli(*args)
        assert second.returncode == 0, second.stderr[-3000:]
    assert_same_content(str(root / "soma"), example_release.soma_uri)
    shutil.rmtree(root)


def test_example_specs_are_distinct() -> None:
    ids = [s.dataset_id for s in example_specs()]
    assert len(ids) == len(set(ids))

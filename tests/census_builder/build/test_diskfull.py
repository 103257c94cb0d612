"""A full disk at each stage ends with one clear line (what is full, what was needed, "free space and re-run"),
never a traceback: ENOSPC injected through fault points in staging (a dask worker), the matrix stage (a
worker, as TileDB reports it: only the text) and finalize (the driver). S3 sources download beside their
destination in the workdir, never into the system temp directory."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from census_builder.cli import main
from census_builder.diskfull import disk_full_error
from census_builder.errors import StorageError
from census_builder.runtime import faults
from census_builder.sources.manifest import load_manifest
from census_builder.sources.staging import stage_source
from census_builder.testing.synthetic import DatasetSpec, write_corpus
from tests.census_builder.build.test_reliability import s3_endpoint  # noqa: F401 - a fixture

FREE_AND_RERUN = "Free space and re-run the same command: finished work is kept"


def test_disk_full_errors_in_every_form_become_one_storage_error(tmp_path: Path) -> None:
    target = tmp_path / "w" / "v" / "h5ads" / ".a.h5ad.partial"
    plain = OSError(errno.ENOSPC, "No space left on device", str(target))
    full = disk_full_error(plain, where=tmp_path, needed=3 * 1024**3, what="staging dataset a")
    assert isinstance(full, StorageError)
    message = str(full)
    assert message.startswith(f"disk full: no space left on device writing {target} (file system mounted at /")
    assert " free); staging dataset a needs 3.0 GiB. " + FREE_AND_RERUN in message
    assert "\n" not in message

    quota = disk_full_error(OSError(errno.EDQUOT, "Disk quota exceeded"), where=tmp_path / "w")
    assert quota is not None and str(quota).startswith(f"disk full: the disk quota is exhausted writing {tmp_path}/w")

    tiledb = faults.InjectedStorageError(
        "[TileDB::VFS] Error: Cannot write to file '/x/y/__fragments/f.tdb'; No space left on device"
    )
    assert str(disk_full_error(tiledb, where=tmp_path)).startswith("disk full: no space left on device writing /x/y/")

    try:  # wrapped: the disk-full error is the cause of another
        try:
            raise plain
        except OSError as e:
            raise RuntimeError("write failed") from e
    except RuntimeError as wrapped:
        found = str(disk_full_error(wrapped, where=tmp_path))
        assert found.startswith(f"disk full: no space left on device writing {target}")

    copy = OSError(errno.ENOSPC, "No space left on device", "/corpus/a.h5ad", None, str(target))  # as shutil's
    assert str(disk_full_error(copy, where=tmp_path)).startswith(f"disk full: no space left on device writing {target}")

    assert disk_full_error(OSError(errno.EACCES, "Permission denied"), where=tmp_path) is None
    assert disk_full_error(ValueError("bad value"), where=tmp_path) is None


@pytest.mark.parametrize(
    ("fail_at", "expected"),
    [
        ("stage:good", "writing {root}/h5ads/good.h5ad (file system mounted at"),
        ("chunk:good#0=tiledb", "writing {root}/.build/soma.partial/census_data/homo_sapiens/ms/RNA/X/raw'"),
        ("before:move_release", "writing {root}/.build/soma.partial (file system mounted at"),
    ],
    ids=["staging", "matrix", "finalize"],
)
def test_a_full_disk_at_each_stage_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    restore_logging: None,
    fail_at: str,
    expected: str,
) -> None:
    manifest = write_corpus(tmp_path / "corpus", [DatasetSpec("good", n_cells=20)])
    monkeypatch.setenv(faults.FAIL_ENV, fail_at)
    argv = ["build", "--version", "v", "--manifest", str(manifest), "--workdir", str(tmp_path / "w")]
    code = main.main([*argv, "--workers", "1", "--no-validate"])
    err = capfd.readouterr().err
    root = tmp_path / "w" / "v"
    assert code == 1
    assert "Traceback (most recent call last)" not in err, err  # (dask workers log a task's failure above)
    last = err.strip().splitlines()[-1]
    assert "ERROR   disk full: no space left on device " in last and last.endswith(FREE_AND_RERUN), err
    assert expected.format(root=root).rstrip("'") in last, last
    if fail_at.startswith("stage:"):  # what the staged copy needs is known
        size = (manifest.parent / "good.h5ad").stat().st_size
        assert f"; staging dataset good needs {size / 1024**2:.1f} MiB. " in last
    report = json.loads((root / "build_report.json").read_text())
    assert report["status"] == "failed" and report["error"].startswith("StorageError: disk full: ")
    assert not (root / "soma").exists()


class _DownloadRecorder:
    """A boto3 client that notes, as the download starts, where the staging record says it writes."""

    def __init__(self, real: Any, record: Path) -> None:
        self.real = real
        self.record = record
        self.partials: list[str] = []

    def head_object(self, **kw: Any) -> Any:
        return self.real.head_object(**kw)

    def get_object(self, **kw: Any) -> Any:
        self.partials.append(json.loads(self.record.read_text())["partial"])
        return self.real.get_object(**kw)


def test_s3_sources_download_into_the_workdir_not_the_system_temp_dir(
    tmp_path: Path,
    s3_endpoint: str,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    import boto3

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    data = os.urandom(3 * 1024 * 1024)
    real = boto3.client("s3", endpoint_url=s3_endpoint)
    real.create_bucket(Bucket="corpus")
    real.put_object(Bucket="corpus", Key="a.h5ad", Body=data)
    manifest_path = tmp_path / "m.csv"
    manifest_path.write_text("dataset_id,h5ad_uri\na,s3://corpus/a.h5ad\n")
    manifest = load_manifest(manifest_path)
    dest = tmp_path / "w" / "v" / "h5ads" / "a.h5ad"
    records = tmp_path / "w" / "v" / ".build" / "staged"
    client = _DownloadRecorder(real, records / "a.json")
    assert stage_source(manifest, manifest.entries[0], dest, records, client=client) == dest
    # the download goes to a recorded temporary file beside the destination
    [partial] = client.partials
    assert Path(partial).parent == dest.parent and Path(partial).name.startswith(".a.h5ad.")
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.h5ad"]
    assert list(system_tmp.iterdir()) == []

"""publish: to a local directory and to a real S3-API server (moto, in its own process, over HTTP on
127.0.0.1, through boto3); refusal of unvalidated builds; interrupted uploads that stay invisible and resume;
conflict-safe release.json on S3; the real cellxgene_census client resolving our aliases and locators over HTTP.

The moto server runs in a child process, not in a thread of the test process: TileDB's S3 client makes some
requests while holding the GIL, so an in-process server thread could not answer them (the read times out)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cellxgene_census
import pytest
import tiledbsoma as soma
from cellxgene_census import _release_directory as client_directory

from census_builder.build.state import BuildPaths
from census_builder.cli import main
from census_builder.errors import (
    PublishRefusedError,
    ReleaseExistsError,
    StorageError,
    UsageError,
)
from census_builder.release.destination import Destination
from census_builder.release.directory import LocalDirectoryStore, S3DirectoryStore, entry_for
from census_builder.release.notes import make_notes
from census_builder.release.publish import publish
from census_builder.release.stores import MIN_PART_SIZE, SourceObject, s3_etag
from census_builder.runtime import faults
from tests.conftest import BuiltRelease

CELLS = {"homo_sapiens": 720, "mus_musculus": 350}  # the example release


# -- helpers -----------------------------------------------------------------------------------------------


def _validated_copy(release: BuiltRelease, workdir: Path, version: str, *, passed: bool = True) -> BuildPaths:
    """A copy of the example build under ``workdir/version`` with a validation report."""
    paths = BuildPaths.for_version(workdir, version)
    shutil.copytree(release.paths.root, paths.root)
    write_validation_report(paths, passed=passed)
    return paths


def write_validation_report(paths: BuildPaths, *, passed: bool = True) -> None:
    """A validation report as the validator writes it, with the checksums of the sources it read (here: the
    staged copies, byte-identical to the sources)."""
    checksums = {
        p.stem: {"path": str(p), "size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in sorted(paths.h5ads.glob("*.h5ad"))
    }
    report = {"passed": passed, "findings": [], "source_checksums": checksums}
    (paths.root / "validation_report.json").write_text(json.dumps(report))


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _published_tree(paths: BuildPaths) -> dict[str, bytes]:
    return {f"{part}/{k}": v for part in ("soma", "h5ads") for k, v in _tree(paths.root / part).items()}


def _obs_counts(uri: str, context: soma.SOMATileDBContext | None = None) -> dict[str, int]:
    c: Any
    with soma.Collection.open(uri, context=context) as c:
        return {org: int(c["census_data"][org].obs.count) for org in c["census_data"]}


class _StopAfter:
    """An ``on_object`` callback that interrupts the upload after ``n`` objects, like a crash or Ctrl-C."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    def __call__(self, obj: SourceObject, uploaded: bool) -> None:
        self.seen += 1
        if self.seen >= self.n:
            raise KeyboardInterrupt(f"interrupted after {self.seen} objects")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"


# -- refusal -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_validation", "has not been validated"),
        ("failed_validation", "failed validation"),
        ("incomplete", "is not complete"),
        ("no_report", "has not been built"),
    ],
)
def test_refuses_a_build_that_is_incomplete_or_not_validated(
    example_release: BuiltRelease, workdir: Path, tmp_path: Path, change: str, message: str
) -> None:
    paths = _validated_copy(example_release, workdir, "v1", passed=change != "failed_validation")
    if change == "no_validation":
        (paths.root / "validation_report.json").unlink()
    elif change == "incomplete":
        report = json.loads(paths.report.read_text())
        paths.report.write_text(json.dumps({**report, "status": "running"}))
    elif change == "no_report":
        paths.report.unlink()
    with pytest.raises(PublishRefusedError, match=message):
        publish(workdir, "v1", tmp_path / "dest")
    assert not (tmp_path / "dest" / "release.json").exists()


def test_refuses_a_version_name_that_is_not_plain(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a valid release version"):
        publish(tmp_path, "../v1", tmp_path / "dest")


# -- local -------------------------------------------------------------------------------------------------


def test_publish_to_a_local_directory(example_release: BuiltRelease, workdir: Path, tmp_path: Path) -> None:
    paths = _validated_copy(example_release, workdir, "2026-11-22")
    dest = tmp_path / "dest"
    result = publish(workdir, "2026-11-22", dest, lts=True, release_date="2026-11-23")
    expected = _published_tree(paths)
    assert result.objects == result.uploaded == len(expected) and result.skipped == 0
    assert _tree(dest / "2026-11-22") == expected  # soma/ and h5ads/ byte for byte; no .build/, no reports
    assert sorted(p.name for p in (dest / "2026-11-22").iterdir()) == ["h5ads", "soma"]
    assert sorted(p.name for p in dest.iterdir()) == ["2026-11-22", "mirrors.json", "release.json"]  # no lock file
    assert json.loads((dest / "mirrors.json").read_text()) == {
        "default": "local",
        "local": {
            "provider": "file",
            "base_uri": dest.resolve().as_uri() + "/",
            "region": None,
            "embeddings_base_uri": dest.resolve().as_uri() + "/",
        },
    }
    assert json.loads((paths.root / "published.json").read_text())["destinations"][0]["dest"] == str(dest.resolve())

    entry = json.loads((dest / "release.json").read_text())["2026-11-22"]
    assert entry == {
        "release_date": "2026-11-23",
        "release_build": "2026-11-22",
        "soma": {
            "uri": dest.resolve().as_uri() + "/2026-11-22/soma/",
            "relative_uri": "2026-11-22/soma/",
            "s3_region": None,
        },
        "h5ads": {  # the version directory: the client joins it with dataset_h5ad_path "h5ads/<id>.h5ad"
            "uri": dest.resolve().as_uri() + "/2026-11-22/",
            "relative_uri": "2026-11-22/",
            "s3_region": None,
        },
        "flags": {"lts": True, "retracted": False},
        "census_schema_version": "1.3.0",  # from the build report: beyond the client's format, which ignores them
        "dataset_schema_version": "4.0.0",
    }
    # The published copy stands alone: nothing in it points back into the build directory.
    workdir.rename(tmp_path / "gone")
    assert _obs_counts(entry["soma"]["uri"]) == CELLS
    with cellxgene_census.open_soma(uri=entry["soma"]["uri"]) as census:
        assert len(census["census_info"]["datasets"].read().concat()) == 5
    (tmp_path / "gone").rename(workdir)
    with pytest.raises(ReleaseExistsError, match="already published"):
        publish(workdir, "2026-11-22", dest)


def test_interrupted_local_publish_is_invisible_then_resumes(
    example_release: BuiltRelease, workdir: Path, tmp_path: Path
) -> None:
    paths = _validated_copy(example_release, workdir, "v1")
    dest = tmp_path / "dest"
    LocalDirectoryStore(dest).update(lambda d: d.with_release("v0", entry_for(Destination.parse(dest), "v0")))
    with pytest.raises(KeyboardInterrupt):
        publish(workdir, "v1", dest, workers=2, on_object=_StopAfter(60))
    assert set(json.loads((dest / "release.json").read_text())) == {"v0"}
    staging = dest / ".publish" / "v1" / "staging"
    assert not (dest / "v1").exists()  # the upload goes to the staging directory first
    partial = _tree(staging)
    total = len(_published_tree(paths))
    assert 60 <= len(partial) < total
    # Damage one finished object (same size, other bytes) and leave a stray file, as a bad disk or an
    # earlier attempt might: the re-run must repair the first and remove the second.
    damaged = sorted(partial)[0]
    (staging / damaged).write_bytes(b"\0" * len(partial[damaged]))
    stray = staging / "soma" / "census_data" / "stray-fragment.tdb"
    stray.write_bytes(b"junk")

    result = publish(workdir, "v1", dest, workers=2)
    assert result.skipped == len(partial) - 1
    assert result.uploaded == total - len(partial) + 1
    assert result.removed == 1 and not stray.exists()
    assert _tree(dest / "v1") == _published_tree(paths)
    assert not (dest / ".publish").exists()  # no claim, no staging copy left
    assert set(json.loads((dest / "release.json").read_text())) == {"v0", "v1"}
    assert _obs_counts(str(dest / "v1" / "soma")) == CELLS


def test_killed_cli_publish_resumes(example_release: BuiltRelease, workdir: Path, tmp_path: Path) -> None:
    """A publish process SIGKILLed mid-upload (fault point publish:object:N) leaves release.json without the
    version; the same command run again finishes the job."""
    _validated_copy(example_release, workdir, "v1")
    dest = tmp_path / "dest"
    cmd = [
        sys.executable,
        "-m",
        "census_builder",
        "publish",
        "--version",
        "v1",
        "--workdir",
        str(workdir),
        "--to",
        str(dest),
        "--jobs",
        "2",
    ]
    killed = subprocess.run(
        cmd,
        env={**os.environ, "CENSUS_BUILDER_KILL_AT": "publish:object:40"},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    assert not (dest / "release.json").exists()
    assert len(_tree(dest / ".publish" / "v1" / "staging")) >= 40
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "already there" in done.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "census_builder", "release", "list", "--to", str(dest)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0 and "v1" in listing.stdout


def test_release_commands_on_a_local_destination(
    example_release: BuiltRelease,
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    dest = tmp_path / "dest"
    for v in ("2026-11-01", "2026-11-22"):
        _validated_copy(example_release, workdir, v)
        assert main.main(["publish", "--version", v, "--workdir", str(workdir), "--to", str(dest)]) == 0
    assert main.main(["release", "alias", "latest", "2026-11-22", "--to", str(dest)]) == 0
    assert main.main(["release", "alias", "stable", "2026-11-01", "--to", str(dest)]) == 0
    assert main.main(["release", "alias", "stable", "nope", "--to", str(dest)]) == 1
    assert main.main(["release", "retract", "2026-11-01", "--reason", "wrong counts", "--to", str(dest)]) == 1
    assert (
        main.main(
            [
                "release",
                "retract",
                "2026-11-01",
                "--reason",
                "wrong counts",
                "--replaced-by",
                "latest",
                "--to",
                str(dest),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main.main(["release", "list", "--to", str(dest)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["NAME", "BUILD", "RELEASED", "FLAGS", "ALIASES"]
    assert out[1].split()[0] == "2026-11-22" and out[1].split()[4] == "latest,stable"
    assert out[2].split()[0] == "2026-11-01" and out[2].split()[3] == "retracted"
    assert "2026-11-01 retracted" in out[3] and "wrong counts (replaced by latest)" in out[3]
    data = json.loads((dest / "release.json").read_text())
    assert data["stable"] == data["latest"] == "2026-11-22"

    # unalias, unretract, lts: through the same atomic path, with their rules; no lock file is left behind.
    def run(*argv: str) -> int:
        code = main.main([*argv, "--to", str(dest)])
        assert sorted(p.name for p in dest.iterdir()) == ["2026-11-01", "2026-11-22", "mirrors.json", "release.json"]
        return code

    assert run("release", "unalias", "stable") == 0
    assert run("release", "unalias", "stable") == 1  # no longer an alias
    assert run("release", "unalias", "2026-11-22") == 1  # a build, not an alias
    assert run("release", "lts", "2026-11-01") == 1  # retracted
    assert run("release", "unretract", "2026-11-01") == 0
    assert run("release", "unretract", "2026-11-01") == 1  # not retracted any more
    assert run("release", "lts", "2026-11-01") == 0
    assert run("release", "lts", "2026-11-22") == 0
    assert run("release", "lts", "2026-11-22", "--clear") == 0
    with pytest.raises(SystemExit) as usage:  # an alias name, not a version: flag the build by its name
        run("release", "lts", "latest")
    assert usage.value.code == 2
    data = json.loads((dest / "release.json").read_text())
    assert data["latest"] == "2026-11-22" and "stable" not in data
    assert data["2026-11-01"]["flags"] == {"lts": True, "retracted": False} and "retraction" not in data["2026-11-01"]
    assert data["2026-11-22"]["flags"] == {"lts": False, "retracted": False}
    capsys.readouterr()
    assert run("release", "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[0] == "2026-11-01" and out[2].split()[3] == "lts"


# -- the real client over HTTP -----------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1; yields (directory, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_release_mirrors_command_prints_a_snippet_that_opens_the_release_over_http(
    example_release: BuiltRelease,
    workdir: Path,
    http_root: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    dest, base_url = http_root
    _validated_copy(example_release, workdir, "2026-11-22")
    assert main.main(["publish", "--version", "2026-11-22", "--workdir", str(workdir), "--to", str(dest)]) == 0
    assert main.main(["release", "alias", "latest", "2026-11-22", "--to", str(dest)]) == 0
    capsys.readouterr()
    assert main.main(["release", "mirrors", "--to", str(dest), "--url", base_url + "/"]) == 0
    out = capsys.readouterr().out
    shown, _, snippet = out.partition("\n# A consumer opens")
    assert json.loads(shown) == json.loads((dest / "mirrors.json").read_text())
    code = snippet.split("\n", 1)[1]
    assert f'CELL_CENSUS_MIRRORS_DIRECTORY_URL = "{base_url}/mirrors.json"' in code
    assert 'open_soma(census_version="latest", mirror="local")' in code
    # Run it as a consumer would (the attributes it sets are put back after the test).
    monkeypatch.setattr(client_directory, "CELL_CENSUS_RELEASE_DIRECTORY_URL", "unset")
    monkeypatch.setattr(client_directory, "CELL_CENSUS_MIRRORS_DIRECTORY_URL", "unset")
    exec(compile(code, "snippet", "exec"), {})  # the command's own output
    assert "total_cell_count" in capsys.readouterr().out

    # --set adds (or replaces) a mirror; a later publish keeps it and the chosen default.
    other = dest.parent / "nfs-copy"
    mirrors_cmd = ["release", "mirrors", "--to", str(dest)]
    assert main.main([*mirrors_cmd, "--set", "nfs", "--base-uri", str(other), "--default"]) == 0
    assert main.main([*mirrors_cmd, "--set", "web", "--base-uri", base_url]) == 1  # TileDB reads no http
    assert main.main([*mirrors_cmd, "--default"]) == 1  # --default goes with --set
    _validated_copy(example_release, workdir, "2026-11-23")
    assert main.main(["publish", "--version", "2026-11-23", "--workdir", str(workdir), "--to", str(dest)]) == 0
    mirrors = json.loads((dest / "mirrors.json").read_text())
    assert mirrors["default"] == "nfs" and set(mirrors) == {"default", "local", "nfs"}
    assert mirrors["nfs"]["base_uri"] == other.resolve().as_uri() + "/" and mirrors["nfs"]["provider"] == "file"
    assert mirrors["local"]["base_uri"] == Destination.parse(dest).base_uri
    assert sorted(p.name for p in dest.iterdir()) == ["2026-11-22", "2026-11-23", "mirrors.json", "release.json"]


def test_cellxgene_census_resolves_our_aliases_and_locators_over_http(
    example_release: BuiltRelease, workdir: Path, http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, base_url = http_root
    for v in ("2026-11-01", "2026-11-22"):
        _validated_copy(example_release, workdir, v)
        publish(workdir, v, dest)
    store = LocalDirectoryStore(dest)
    store.update(lambda d: d.with_alias("latest", "2026-11-22").with_alias("stable", "2026-11-01"))
    base_uri = Destination.parse(dest).base_uri
    # publish wrote DEST/mirrors.json; the client reads it and release.json over HTTP, the SOMA data (TileDB
    # reads no http) from the mirror's file:// base_uri.
    monkeypatch.setattr(client_directory, "CELL_CENSUS_RELEASE_DIRECTORY_URL", f"{base_url}/release.json")
    monkeypatch.setattr(client_directory, "CELL_CENSUS_MIRRORS_DIRECTORY_URL", f"{base_url}/mirrors.json")
    assert cellxgene_census.get_census_mirror_directory() == {
        "local": {"provider": "file", "base_uri": base_uri, "region": None, "embeddings_base_uri": base_uri}
    }
    with cellxgene_census.open_soma(census_version="latest", mirror="local") as census:
        assert census.uri.rstrip("/") == f"{base_uri}2026-11-22/soma"
        obs = cellxgene_census.get_obs(
            census, "Mus musculus", value_filter="soma_joinid < 10", column_names=["soma_joinid", "dataset_id"]
        )
    with soma.DataFrame.open(str(example_release.paths.soma / "census_data/mus_musculus/obs")) as built:
        expected = built.read(coords=[slice(0, 9)], column_names=["soma_joinid", "dataset_id"]).concat().to_pandas()
    assert len(obs) == 10 and obs.to_dict("list") == expected.to_dict("list")
    with pytest.raises(ValueError, match="Mirror not found"):
        cellxgene_census.open_soma(census_version="latest", mirror="elsewhere")

    directory = cellxgene_census.get_census_version_directory()
    assert list(directory) == ["stable", "latest", "2026-11-22", "2026-11-01"]
    assert directory["latest"]["release_build"] == "2026-11-22"
    assert directory["stable"]["soma"]["relative_uri"] == "2026-11-01/soma/"
    with cellxgene_census.open_soma(census_version="latest") as census:
        assert census.uri.rstrip("/") == f"{base_uri}2026-11-22/soma"
        assert {k: int(census["census_data"][k].obs.count) for k in census["census_data"]} == CELLS
    # The client finds each source H5AD from the h5ads locator and the datasets table's dataset_h5ad_path.
    located = cellxgene_census.get_source_h5ad_uri("human-lung-10x", census_version="latest")["uri"]
    assert located == f"{base_uri}2026-11-22/h5ads/human-lung-10x.h5ad"
    assert Path(located.removeprefix("file://")).is_file()
    with cellxgene_census.open_soma(census_version="2026-11-01") as census:
        assert census.uri.rstrip("/") == f"{base_uri}2026-11-01/soma"
        summary = census["census_info"]["summary"].read().concat().to_pandas()
        assert dict(zip(summary["label"], summary["value"], strict=True))["total_cell_count"] == "1070"

    # A retraction is what the client sees too: hidden by default, listed with its reason on request.
    store.update(lambda d: d.with_retraction("2026-11-01", reason="wrong counts", replaced_by="latest"))
    assert set(cellxgene_census.get_census_version_directory()) == {"latest", "stable", "2026-11-22"}
    retracted = cellxgene_census.get_census_version_directory(retracted=True)
    assert set(retracted) == {"2026-11-01"}
    assert retracted["2026-11-01"]["retraction"]["reason"] == "wrong counts"
    with pytest.raises(ValueError, match="not valid"):
        cellxgene_census.open_soma(census_version="2026-11-01")


# -- S3 (moto server in a child process) -------------------------------------------------------------------

_MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # runs until the test closes our stdin
server.stop()
"""


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    host_port: str
    region: str = "us-east-1"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region)

    def tiledb_config(self) -> dict[str, str | float]:
        return {
            "vfs.s3.endpoint_override": self.host_port,
            "vfs.s3.scheme": "http",
            "vfs.s3.use_virtual_addressing": "false",
            "vfs.s3.region": self.region,
            "vfs.s3.aws_access_key_id": "testing",
            "vfs.s3.aws_secret_access_key": "testing",
            "vfs.s3.no_sign_request": "false",
        }


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with pytest.MonkeyPatch.context() as mp:
            for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
                mp.delenv(k, raising=False)
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            yield S3Server(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


@pytest.fixture
def bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    name = "census-" + str(request.node.name).lower().replace("_", "-")[:40].strip("-")
    s3_server.client().create_bucket(Bucket=name)
    return name


def _keys(client: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"][len(prefix) :]: (o["Size"], o["ETag"].strip('"')) for o in page.get("Contents", [])})
    return out


def test_publish_to_s3_then_open_with_tiledbsoma_and_cellxgene_census(
    example_release: BuiltRelease, workdir: Path, s3_server: S3Server, bucket: str
) -> None:
    paths = _validated_copy(example_release, workdir, "2026-11-22")
    big = paths.h5ads / "zz-large-test-object.bin"  # larger than a part: exercises multipart uploads
    big.write_bytes(os.urandom(2 * MIN_PART_SIZE + 12345))
    dest = f"s3://{bucket}/cell-census"
    result = publish(workdir, "2026-11-22", dest, endpoint_url=s3_server.endpoint, part_size=MIN_PART_SIZE)
    client = s3_server.client()
    remote = _keys(client, bucket, "cell-census/2026-11-22/")
    expected = _published_tree(paths)
    assert set(remote) == set(expected) and result.uploaded == len(expected)
    for rel, data in expected.items():
        assert remote[rel] == (len(data), s3_etag(paths.root / rel, MIN_PART_SIZE))
    assert remote["h5ads/zz-large-test-object.bin"][1].endswith("-3")
    assert (
        client.get_object(Bucket=bucket, Key="cell-census/2026-11-22/h5ads/zz-large-test-object.bin")["Body"].read()
        == big.read_bytes()
    )

    directory = json.loads(client.get_object(Bucket=bucket, Key="cell-census/release.json")["Body"].read())
    entry = directory["2026-11-22"]
    assert entry["soma"] == {
        "uri": f"s3://{bucket}/cell-census/2026-11-22/soma/",
        "relative_uri": "2026-11-22/soma/",
        "s3_region": "us-east-1",
    }
    assert entry["h5ads"]["uri"] == f"s3://{bucket}/cell-census/2026-11-22/"  # + dataset_h5ad_path "h5ads/<id>.h5ad"
    assert not [k for k in _keys(client, bucket, "cell-census/") if "cas-probe" in k]

    ctx = soma.SOMATileDBContext(tiledb_config=s3_server.tiledb_config())
    assert _obs_counts(entry["soma"]["uri"], ctx) == CELLS
    with cellxgene_census.open_soma(uri=entry["soma"]["uri"], tiledb_config=s3_server.tiledb_config()) as census:
        x = census["census_data"]["homo_sapiens"].ms["RNA"].X["raw"]
        with soma.SparseNDArray.open(
            str(example_release.paths.soma / "census_data/homo_sapiens/ms/RNA/X/raw")
        ) as local:
            assert x.nnz == local.nnz > 0
        obs = cellxgene_census.get_obs(census, "Mus musculus", column_names=["dataset_id"])
        assert len(obs) == CELLS["mus_musculus"]

    # publish wrote cell-census/mirrors.json with an S3 mirror; the client reads both JSON files over HTTP
    # (here moto's object URLs) and the SOMA data through TileDB's S3 client.
    mirrors = json.loads(client.get_object(Bucket=bucket, Key="cell-census/mirrors.json")["Body"].read())
    assert mirrors == {
        "default": "s3-us-east-1",
        "s3-us-east-1": {
            "provider": "S3",
            "base_uri": f"s3://{bucket}/cell-census/",
            "region": "us-east-1",
            "embeddings_base_uri": f"s3://{bucket}/cell-census/",
        },
    }
    for key in ("cell-census/release.json", "cell-census/mirrors.json"):  # readable without credentials
        client.put_object_acl(Bucket=bucket, Key=key, ACL="public-read")
    with pytest.MonkeyPatch.context() as mp:
        served = f"{s3_server.endpoint}/{bucket}/cell-census"
        mp.setattr(client_directory, "CELL_CENSUS_RELEASE_DIRECTORY_URL", f"{served}/release.json")
        mp.setattr(client_directory, "CELL_CENSUS_MIRRORS_DIRECTORY_URL", f"{served}/mirrors.json")
        with cellxgene_census.open_soma(
            census_version="2026-11-22", mirror="s3-us-east-1", tiledb_config=s3_server.tiledb_config()
        ) as census:
            assert census.uri.rstrip("/") == f"s3://{bucket}/cell-census/2026-11-22/soma"
            assert int(census["census_data"]["homo_sapiens"].obs.count) == CELLS["homo_sapiens"]
    with pytest.raises(ReleaseExistsError):
        publish(workdir, "2026-11-22", dest, endpoint_url=s3_server.endpoint)


def test_interrupted_s3_publish_is_invisible_then_resumes(
    example_release: BuiltRelease, workdir: Path, s3_server: S3Server, bucket: str
) -> None:
    paths = _validated_copy(example_release, workdir, "v1")
    dest = f"s3://{bucket}/census"
    with pytest.raises(KeyboardInterrupt):
        publish(workdir, "v1", dest, endpoint_url=s3_server.endpoint, workers=2, on_object=_StopAfter(50))
    client = s3_server.client()
    partial = _keys(client, bucket, "census/.publish/v1/staging/")
    total = len(_published_tree(paths))
    assert 50 <= len(partial) < total
    assert not _keys(client, bucket, "census/v1/")  # nothing under DEST/V/ before the upload is verified
    assert set(_keys(client, bucket, "census/.publish/v1/")) == {"claim.json", *(f"staging/{k}" for k in partial)}
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="census/release.json")
    # A multipart upload an interrupted run left open is aborted by the next run.
    client.create_multipart_upload(Bucket=bucket, Key="census/v1/h5ads/half-sent.h5ad")

    result = publish(workdir, "v1", dest, endpoint_url=s3_server.endpoint, workers=2)
    assert result.skipped == len(partial) and result.uploaded == total - len(partial)
    assert "Uploads" not in client.list_multipart_uploads(Bucket=bucket)
    assert set(_keys(client, bucket, "census/v1/")) == set(_published_tree(paths))
    assert not _keys(client, bucket, "census/.publish/")  # staging copy and claim are gone
    directory = json.loads(client.get_object(Bucket=bucket, Key="census/release.json")["Body"].read())
    assert set(directory) == {"v1"}
    ctx = soma.SOMATileDBContext(tiledb_config=s3_server.tiledb_config())
    assert _obs_counts(directory["v1"]["soma"]["uri"], ctx) == CELLS


def test_s3_release_json_writers_that_conflict_both_land(s3_server: S3Server, bucket: str) -> None:
    """Writer A reads release.json; writer B updates it before A writes; A's conditional PUT is refused (412)
    and A re-applies its change to B's file: both entries survive."""
    dest = Destination.parse(f"s3://{bucket}/census", endpoint_url=s3_server.endpoint)
    a = S3DirectoryStore(s3_server.client(), bucket, "census/release.json")
    b = S3DirectoryStore(s3_server.client(), bucket, "census/release.json")
    for store in (a, b):
        store.update(lambda d: d if "base" in d.releases else d.with_release("base", entry_for(dest, "base")))
    calls = 0

    def change_a(d: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # B slips in between A's read and A's write
            b.update(lambda d2: d2.with_release("from-b", entry_for(dest, "from-b")).with_alias("latest", "from-b"))
        return d.with_release("from-a", entry_for(dest, "from-a"))

    a.update(change_a)
    assert calls == 2
    final = b.read()
    assert set(final.releases) == {"base", "from-a", "from-b"} and final.aliases == {"latest": "from-b"}


def test_notes_compare_with_the_previous_release_published_to_s3(
    example_release: BuiltRelease, workdir: Path, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    """notes --from s3://...: the previous release is found in the bucket's release.json and read from S3."""
    _validated_copy(example_release, workdir, "2026-11-01")
    dest = f"s3://{bucket}/census"
    publish(workdir, "2026-11-01", dest, endpoint_url=s3_server.endpoint)
    shutil.rmtree(workdir / "2026-11-01")  # only the published copy is left
    _validated_copy(example_release, workdir, "2026-11-22")
    md = make_notes(workdir, "2026-11-22", dest=dest, endpoint_url=s3_server.endpoint, out_dir=tmp_path / "notes")
    text = md.read_text()
    assert "Compared with release 2026-11-01." in text
    assert "Versus 2026-11-01: 0 added, 0 removed, 0 changed, 5 unchanged; cells +0 (1,070 -> 1,070)." in text


def test_publish_to_a_missing_bucket_fails_before_uploading(
    s3_server: S3Server, workdir: Path, example_release: BuiltRelease
) -> None:
    _validated_copy(example_release, workdir, "v1")
    with pytest.raises(StorageError, match=r"s3://no-such-bucket/census/release\.json.*NoSuchBucket"):
        publish(workdir, "v1", "s3://no-such-bucket/census", endpoint_url=s3_server.endpoint)


# -- two publishers of one version (forced interleaving) ---------------------------------------------------


def _other_build(release: BuiltRelease, workdir: Path, version: str) -> BuildPaths:
    """Another build under the same version name (one more object: another fingerprint)."""
    paths = _validated_copy(release, workdir, version)
    (paths.h5ads / "zz-other-build.bin").write_bytes(b"a different build")
    return paths


class _Publisher(threading.Thread):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.args, self.kwargs = args, kwargs
        self.result: Any = None

    def run(self) -> None:
        try:
            self.result = publish(*self.args, **self.kwargs)
        except BaseException as e:
            self.result = e


def _race(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, first: tuple[Any, ...], second: tuple[Any, ...], **kw: Any
) -> tuple[Any, Exception]:
    """Publisher 1 stops after its 5th object (fault point publish:object:5); publisher 2 then starts and must
    be refused at once; publisher 1 then finishes."""
    pause = tmp_path / "pause"
    monkeypatch.setenv(faults.PAUSE_DIR_ENV, str(pause))
    monkeypatch.setenv(faults.PAUSE_ENV, "publish:object:5")
    one = _Publisher(*first, **kw)
    one.start()
    faults.wait_reached(pause, "publish:object:5", paused=True)
    with pytest.raises(ReleaseExistsError) as refused:
        publish(*second, **kw)
    faults.resume(pause, "publish:object:5")
    one.join(180)
    assert not one.is_alive()
    return one.result, refused.value


def test_a_second_build_publishing_the_same_local_version_is_refused_at_once(
    example_release: BuiltRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _validated_copy(example_release, tmp_path / "work-1", "v1")
    _other_build(example_release, tmp_path / "work-2", "v1")
    dest = tmp_path / "dest"
    done, refused = _race(monkeypatch, tmp_path, (tmp_path / "work-1", "v1", dest), (tmp_path / "work-2", "v1", dest))
    message = str(refused)
    assert "release v1 is being published by another build (claim " in message
    assert f"build {first.root} on {socket.gethostname()}" in message
    assert f"delete {dest / '.publish/v1/claim.json'} and {dest / '.publish/v1/staging'} and re-run" in message
    assert done.objects == done.uploaded == len(_published_tree(first))
    assert _tree(dest / "v1") == _published_tree(first)  # the first build only: no object of the second
    assert set(json.loads((dest / "release.json").read_text())) == {"v1"}
    assert not (dest / ".publish").exists()
    with pytest.raises(ReleaseExistsError, match="already published"):  # later: release.json refuses it
        publish(tmp_path / "work-2", "v1", dest)


def test_an_interrupted_publish_keeps_its_claim_and_resumes(example_release: BuiltRelease, tmp_path: Path) -> None:
    first = _validated_copy(example_release, tmp_path / "work-1", "v1")
    _other_build(example_release, tmp_path / "work-2", "v1")
    dest = tmp_path / "dest"
    with pytest.raises(KeyboardInterrupt):
        publish(tmp_path / "work-1", "v1", dest, workers=2, on_object=_StopAfter(20))
    claim = json.loads((dest / ".publish" / "v1" / "claim.json").read_text())
    assert claim["build"] == str(first.root) and len(claim["fingerprint"]) == 64
    with pytest.raises(ReleaseExistsError, match="being published by another build"):
        publish(tmp_path / "work-2", "v1", dest)
    result = publish(tmp_path / "work-1", "v1", dest, workers=2)  # same build: same fingerprint, resumes
    assert result.skipped >= 20 and _tree(dest / "v1") == _published_tree(first)
    assert not (dest / ".publish").exists()


def test_a_second_build_publishing_the_same_s3_version_is_refused_at_once(
    example_release: BuiltRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server, bucket: str
) -> None:
    first = _validated_copy(example_release, tmp_path / "work-1", "v1")
    _other_build(example_release, tmp_path / "work-2", "v1")
    dest = f"s3://{bucket}/census"
    done, refused = _race(
        monkeypatch,
        tmp_path,
        (tmp_path / "work-1", "v1", dest),
        (tmp_path / "work-2", "v1", dest),
        endpoint_url=s3_server.endpoint,
        workers=2,
    )
    assert f"claim s3://{bucket}/census/.publish/v1/claim.json: build {first.root}" in str(refused)
    client = s3_server.client()
    assert done.uploaded == len(_published_tree(first))
    remote = _keys(client, bucket, "census/v1/")
    assert set(remote) == set(_published_tree(first))
    for rel in remote:
        assert remote[rel][1] == s3_etag(first.root / rel, 64 * 1024**2)
    assert not _keys(client, bucket, "census/.publish/")
    directory = json.loads(client.get_object(Bucket=bucket, Key="census/release.json")["Body"].read())
    assert set(directory) == {"v1"}

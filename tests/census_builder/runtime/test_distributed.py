"""A build on a dask cluster started as separate processes (as separate hosts would be) gives the same
release as the local cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from census_builder.build.pipeline import BuildConfig, build
from tests.census_builder.release_content import assert_same_content
from tests.conftest import BuiltRelease


@pytest.fixture
def scheduler_address(tmp_path: Path) -> Iterator[str]:
    sched_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [
        subprocess.Popen(
            [
                *dask,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--scheduler-file",
                str(sched_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--dashboard-address",
                        ":0",
                        "--name",
                        f"host-{i}",
                        "--local-directory",
                        str(tmp_path / f"w{i}"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=tmp_path,
                )
            )
        from distributed import Client

        with Client(address) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_external_scheduler_gives_identical_release(
    tmp_path: Path, scheduler_address: str, example_release: BuiltRelease
) -> None:
    paths = build(
        BuildConfig(
            version="example",
            manifest=example_release.manifest,
            workdir=tmp_path / "w",
            scheduler=scheduler_address,
            build_date="2026-11-22",
        )
    )
    assert paths.is_complete()
    assert_same_content(str(paths.soma), example_release.soma_uri)

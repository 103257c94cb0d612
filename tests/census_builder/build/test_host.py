"""Host preflight: the disk estimate, the refusal with its figures, the memory warning (fake free space and
memory: no real disk is filled)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h5py
import pytest

from census_builder.build import host_check
from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths, read_json
from census_builder.cli import main
from census_builder.errors import HostCheckError
from census_builder.sources.manifest import load_manifest
from census_builder.testing.synthetic import DatasetSpec, write_corpus

GiB = 2**30


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    specs = [
        DatasetSpec("csr", n_cells=120, n_genes=200),
        DatasetSpec("dense", n_cells=50, n_genes=100, layout="dense"),
        DatasetSpec("raw", n_cells=80, n_genes=150, use_raw=True, layout="csc"),
    ]
    return write_corpus(tmp_path_factory.mktemp("host-corpus"), specs)


def _counts_entries(path: Path) -> int:
    with h5py.File(path) as f:
        node = f["raw/X"] if "raw" in f else f["X"]
        if isinstance(node, h5py.Dataset):
            return int(node.shape[0] * node.shape[1])
        return int(node["data"].shape[0])


def test_counts_shape_reads_metadata_of_every_layout(corpus: Path) -> None:
    d = corpus.parent
    assert host_check.counts_shape(d / "csr.h5ad", "csr")[0] == _counts_entries(d / "csr.h5ad")
    entries, n_obs, n_var = host_check.counts_shape(d / "dense.h5ad", "dense")
    assert (entries, n_obs) == (n_obs * n_var, 50)
    with h5py.File(d / "raw.h5ad") as f:  # raw/X, not X
        assert host_check.counts_shape(d / "raw.h5ad", "raw") == (
            int(f["raw/X/data"].shape[0]),
            80,
            int(f["raw/X"].attrs["shape"][1]),
        )


def test_estimate_per_part(corpus: Path, tmp_path: Path) -> None:
    manifest = load_manifest(corpus)
    dev = corpus.parent.stat().st_dev
    same_fs = [host_check.source_facts(manifest, e, dev) for e in manifest.entries]
    assert all(f.linked for f in same_fs)
    need = host_check.estimate(same_fs, chunk_nnz=1000)
    entries = sum(f.entries or 0 for f in same_fs)
    assert need.staged == 0  # hard links
    assert need.release == sum(int((f.entries or 0) * host_check.RELEASE_BYTES_PER_ENTRY) for f in same_fs)
    assert need.release >= entries * 5.8
    chunks = {f.dataset_id: -(-(f.entries or 0) // 1000) for f in same_fs}
    assert need.scratch == sum(
        f.n_obs * host_check.SCRATCH_BYTES_PER_CELL
        + chunks[f.dataset_id] * f.n_var * host_check.SCRATCH_BYTES_PER_CHUNK_GENE
        + host_check.SCRATCH_BYTES_PER_DATASET
        for f in same_fs
    )
    other_fs = [host_check.source_facts(manifest, e, -1) for e in manifest.entries]  # no device is -1: a copy
    assert host_check.estimate(other_fs, chunk_nnz=1000).staged == sum(
        (corpus.parent / f"{e.dataset_id}.h5ad").stat().st_size for e in manifest.entries
    )
    s3 = host_check.SourceFacts("s3", size=10_000, entries=None, n_obs=0, n_var=0, linked=False)
    assert host_check.estimate([s3], 1000) == host_check.DiskNeed(10_000, 6_500, 650)


def test_refuses_with_the_figures_before_staging(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_check, "disk_free", lambda path: 1000)
    config = BuildConfig(version="v1", manifest=corpus, workdir=tmp_path / "wd", workers=1)
    with pytest.raises(HostCheckError) as err:
        build(config)
    msg = str(err.value)
    paths = BuildPaths.for_version(tmp_path / "wd", "v1")
    assert msg.startswith(f"not enough disk space for build v1 in the filesystem of {paths.root} (mounted at ")
    assert ", 1000 B free\n" in msg
    assert "\n  staged copies (h5ads/): 0 B\n" in msg
    assert "\n  release (soma/):" in msg and "\n  scratch (.build/):" in msg
    assert "(3 local source(s) on this filesystem are hard-linked, not copied)" in msg
    assert msg.endswith(
        "Free some space or choose a --workdir on a larger filesystem, then re-run the same command; "
        "--skip-host-check builds anyway."
    )
    report = read_json(paths.report)
    assert report["status"] == "failed" and report["error"].startswith("HostCheckError: not enough disk space")
    assert not paths.h5ads.exists() and not paths.partial.exists() and not paths.stages.exists()


def test_cli_refuses_and_passes_skip(
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(host_check, "disk_free", lambda path: 1000)
    argv = ["build", "--version", "v1", "--manifest", str(corpus), "--workdir", str(tmp_path), "--workers", "1"]
    assert main.main(argv) == 1
    assert "not enough disk space for build v1" in capsys.readouterr().err
    seen: list[BuildConfig] = []

    def fake_build(config: BuildConfig) -> BuildPaths:
        seen.append(config)
        raise HostCheckError("stop here")

    monkeypatch.setattr("census_builder.build.pipeline.build", fake_build)
    assert main.main([*argv, "--skip-host-check"]) == 1
    assert main.main(argv) == 1
    assert [c.skip_host_check for c in seen] == [True, False]


def test_skip_host_check_warns(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(host_check, "disk_free", lambda path: 1000)
    paths = BuildPaths.for_version(tmp_path, "v1")
    config = BuildConfig(version="v1", manifest=corpus, workdir=tmp_path, skip_host_check=True)
    with caplog.at_level(logging.WARNING, logger="census_builder"):
        check = host_check.preflight(config, load_manifest(corpus), paths)
    assert not check.disk_ok
    assert any(
        r.getMessage().startswith("--skip-host-check: building anyway; not enough disk space") for r in caplog.records
    )


def test_earlier_run_counts_as_done(corpus: Path, tmp_path: Path) -> None:
    manifest = load_manifest(corpus)
    paths = BuildPaths.for_version(tmp_path, "v1")
    kw: dict[str, Any] = {"chunk_nnz": 1000, "workers": 1, "memory_limit": None, "free_bytes": lambda p: 10**12}
    before = host_check.check_host(manifest, paths, **kw)
    paths.partial.mkdir(parents=True)
    (paths.partial / "fragment").write_bytes(b"x" * 5000)
    (paths.chunks).mkdir(parents=True)
    (paths.chunks / "r.npz").write_bytes(b"x" * 700)
    after = host_check.check_host(manifest, paths, **kw)
    assert after.need.release == before.need.release - 5000
    assert after.need.scratch == before.need.scratch - 700
    assert "5.6 KiB already written by an earlier run counted as done" in after.notes


@pytest.mark.parametrize(
    ("memory_limit", "workers", "per_worker"),
    [(None, 2, GiB), (None, 3, 2 * GiB // 3), ("3GiB", 4, 3 * GiB), ("0.25", 1, GiB // 2), ("600MiB", 1, 600 * 2**20)],
)
def test_memory_per_worker(
    corpus: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    memory_limit: str | None,
    workers: int,
    per_worker: int,
) -> None:
    paths = BuildPaths.for_version(tmp_path, "v1")
    config = BuildConfig(
        version="v1", manifest=corpus, workdir=tmp_path, workers=workers, memory_limit=memory_limit, chunk_nnz=4_000_000
    )
    with caplog.at_level(logging.WARNING, logger="census_builder"):
        check = host_check.preflight(
            config, load_manifest(corpus), paths, memory_total=lambda: 2 * GiB, free_bytes=lambda p: 10**12
        )
    assert check.memory_needed == 512 * 2**20 + 4_000_000 * 80
    assert check.memory_per_worker == per_worker
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ([check.memory_message(4_000_000)] if per_worker < check.memory_needed else [])


def test_memory_message_suggests_a_chunk_size() -> None:
    check = host_check.HostCheck(
        "fs",
        free=0,
        need=host_check.DiskNeed(0, 0, 0),
        memory_per_worker=700 * 2**20,
        memory_needed=512 * 2**20 + 4_000_000 * 80,
    )
    assert not check.memory_ok
    assert check.memory_message(4_000_000) == (
        "memory per worker 700.0 MiB is below the 817.2 MiB a matrix task of --chunk-nnz 4,000,000 needs "
        "(512.0 MiB + 80 B per entry), so workers may run out of memory and be restarted; use --chunk-nnz "
        "2,400,000 or less, fewer --workers, or a larger --memory-limit"
    )
    remote = host_check.HostCheck(
        "fs", free=0, need=host_check.DiskNeed(0, 0, 0), memory_per_worker=None, memory_needed=1
    )
    assert remote.memory_ok  # --scheduler: the workers' memory is not this machine's

"""Host preflight: before any work, check that this build fits on this machine.

Disk, in the filesystem that holds ``DIR/VERSION``:

    staged copies  h5ads/    nothing for a local source on the same filesystem (a hard link), else its size
    release        soma/     the sources' stored count entries x RELEASE_BYTES_PER_ENTRY
    scratch        .build/   per-cell plans and chunk statistics, per-chunk gene counts

Stored entries come from each source's counts matrix metadata (``raw/X`` or ``X``: the length of its
``data`` array, or rows x columns when dense), read with h5py without loading anything; a source that
cannot be opened here (S3, unreadable: preflight reports those later) is estimated from its file size.
What a resumed build already wrote counts as done. The build is refused, with the figures, when the
filesystem's free space is below the need; ``--skip-host-check`` turns the refusal into a warning.

Memory: a warning when a local worker's memory (``--memory-limit``, else total memory / workers, as dask
divides it) is below what one matrix task of ``--chunk-nnz`` entries needs.

The free-space and total-memory functions are parameters, so tests can pretend a disk is full.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from census_builder.build.state import BuildPaths
from census_builder.errors import HostCheckError, InputError
from census_builder.sources.manifest import Manifest, ManifestEntry

logger = logging.getLogger(__name__)

# Release bytes per stored source entry (X["raw"] float32 + X["normalized"] float32 + their int64
# coordinates, compressed, plus obs/var/census_info). benchmarks/RESULTS.md, release GiB / non-zeros:
# 1.20 GiB / 220.6 M = 5.84 B, 4.79 GiB / 882.7 M = 5.83 B, 9.57 GiB / 1,765 M = 5.82 B. A source stores at
# least as many entries as the release keeps (filters only drop), so 6.0 is a slight overestimate.
RELEASE_BYTES_PER_ENTRY = 6.0
# When the entries cannot be read (an S3 source): release bytes / corpus bytes in the same runs are
# 1.29 / 2.05 = 0.63, 5.15 / 8.90 = 0.58, 10.27 / 18.26 = 0.56 (benchmarks/results/*.json).
RELEASE_BYTES_PER_SOURCE_BYTE = 0.65
# .build/ per source cell: chunk statistics (4 x 8 B), plan and axes arrays (~19 B) and the plan's obs
# parquet; measured 76 B per cell on a 60,000-cell synthetic dataset, doubled for real obs metadata.
SCRATCH_BYTES_PER_CELL = 128
# ... and per (chunk, gene of the dataset): the chunk result's gene ids and counts (2 x int64).
SCRATCH_BYTES_PER_CHUNK_GENE = 16
# ... and, for a source estimated from its size, per release byte (.build/ was 8% of the release there).
SCRATCH_PER_RELEASE_BYTE = 0.1
SCRATCH_BYTES_PER_DATASET = 64 * 1024  # plan json, genes parquet, obs marker (~40 KiB measured)
# Peak RSS of one matrix-stage worker, measured (not derived): a build of one 60,000-cell, 12 M-entry
# synthetic dataset on a single local worker, peak RSS read with getrusage in the worker, at --chunk-nnz
# 1 M / 4 M / 8 M / 12 M: 0.56 / 0.63 / 1.00 / 1.16 GB. 512 MiB + 80 B per entry bounds all four (a
# chunk's counts, int64 sort keys and coordinates, float64 values and statistics, float32 layers and the
# TileDB write buffers are alive together), and the benchmark's 2-worker tree (1.73 GiB at 4 M) agrees.
WORKER_BASE_BYTES = 512 * 2**20
WORKER_BYTES_PER_ENTRY = 80


def fmt_bytes(n: float) -> str:
    """Format a byte count for people (B, KiB, MiB, GiB, TiB)."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} TiB"


@dataclass(frozen=True)
class SourceFacts:
    """What the host check learns about one source without reading its data."""

    dataset_id: str
    size: int  # bytes of the file (0 if it cannot be reached: preflight reports that)
    entries: int | None  # stored entries of the counts matrix; None if not read
    n_obs: int
    n_var: int
    linked: bool  # a local source on the workdir's filesystem: staged as a hard link, no bytes


@dataclass(frozen=True)
class DiskNeed:
    """Bytes the build needs on disk: staged copies, the release, scratch."""

    staged: int
    release: int
    scratch: int

    @property
    def total(self) -> int:
        """All bytes needed."""
        return self.staged + self.release + self.scratch


@dataclass(frozen=True)
class HostCheck:
    """The host check's figures: free and needed disk, memory per worker."""

    filesystem: str  # "the filesystem of /data/census-build/V (mounted at /data)"
    free: int
    need: DiskNeed
    memory_per_worker: int | None  # None: workers are not local (--scheduler)
    memory_needed: int
    notes: tuple[str, ...] = ()

    @property
    def disk_ok(self) -> bool:
        """The disk has room for the build."""
        return self.need.total <= self.free

    @property
    def memory_ok(self) -> bool:
        """Local workers have the memory a matrix task needs (always true for a remote scheduler)."""
        return self.memory_per_worker is None or self.memory_per_worker >= self.memory_needed

    def to_json(self) -> dict[str, Any]:
        """Return the figures as build_report.json keeps them."""
        return {
            "filesystem": self.filesystem,
            "free_bytes": self.free,
            "needed_bytes": {
                "staged": self.need.staged,
                "release": self.need.release,
                "scratch": self.need.scratch,
                "total": self.need.total,
            },
            "memory_per_worker_bytes": self.memory_per_worker,
            "memory_needed_per_worker_bytes": self.memory_needed,
        }

    def disk_message(self, version: str) -> str:
        """Return the message for a disk too small for ``version``."""
        n = self.need
        return (
            f"not enough disk space for build {version} in {self.filesystem}: "
            f"needs {fmt_bytes(n.total)}, {fmt_bytes(self.free)} free\n"
            f"  staged copies (h5ads/): {fmt_bytes(n.staged)}\n"
            f"  release (soma/):        {fmt_bytes(n.release)}\n"
            f"  scratch (.build/):      {fmt_bytes(n.scratch)}\n"
            + "".join(f"  ({note})\n" for note in self.notes)
            + "Free some space or choose a --workdir on a larger filesystem, then re-run the same command; "
            "--skip-host-check builds anyway."
        )

    def memory_message(self, chunk_nnz: int) -> str:
        """Return the warning for workers with too little memory at ``chunk_nnz``."""
        per = self.memory_per_worker or 0
        fits = max((per - WORKER_BASE_BYTES) // WORKER_BYTES_PER_ENTRY, 0)
        lower = f"--chunk-nnz {fits // 100_000 * 100_000:,} or less, " if fits >= 100_000 else ""
        return (
            f"memory per worker {fmt_bytes(per)} is below the {fmt_bytes(self.memory_needed)} a matrix task of "
            f"--chunk-nnz {chunk_nnz:,} needs ({fmt_bytes(WORKER_BASE_BYTES)} + {WORKER_BYTES_PER_ENTRY} B per "
            f"entry), so workers may run out of memory and be restarted; use {lower}fewer --workers, or a "
            "larger --memory-limit"
        )


# -- the machine ------------------------------------------------------------------------------------------


def existing_dir(path: Path) -> Path:
    """``path`` or its nearest existing ancestor."""
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def disk_free(path: Path) -> int:
    """Return the free bytes of the filesystem holding ``path`` (or its nearest existing ancestor)."""
    return shutil.disk_usage(existing_dir(path)).free


def mount_point(path: Path) -> Path:
    """Return the mount point of the filesystem holding ``path``."""
    p = existing_dir(path)
    dev = p.stat().st_dev
    while p != p.parent and p.parent.stat().st_dev == dev:
        p = p.parent
    return p


def total_memory(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Physical memory, capped by a cgroup v2 memory limit (containers)."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        with open(os.path.join(cgroup_root, "memory.max"), encoding="ascii") as f:
            limit = f.read().strip()
    except OSError:
        return int(total)
    return int(min(total, int(limit))) if limit.isdigit() else int(total)


def memory_per_worker(memory_limit: str | None, workers: int, total: int) -> int:
    """Return a local worker's memory as dask sizes it.

    ``--memory-limit`` (bytes, "3GiB", or a fraction of total memory), else ("auto") total memory / workers.
    """
    if memory_limit and memory_limit != "auto":
        from dask.utils import parse_bytes

        try:
            frac = float(memory_limit)
        except ValueError:
            return int(parse_bytes(memory_limit))
        return int(frac * total) if frac <= 1 else int(frac)
    return total // max(workers, 1)


# -- the sources ------------------------------------------------------------------------------------------


def source_facts(manifest: Manifest, entry: ManifestEntry, workdir_dev: int) -> SourceFacts:
    """Size, stored entries and shape of one source, from file metadata only."""
    from census_builder.sources.staging import source_size

    try:
        size = source_size(manifest, entry)
    except InputError:  # missing or unreachable: preflight reports it, with the others
        return SourceFacts(entry.dataset_id, 0, 0, 0, 0, linked=True)
    if entry.is_s3:
        return SourceFacts(entry.dataset_id, size, None, 0, 0, linked=False)
    path = manifest.local_path(entry)
    linked = path.stat().st_dev == workdir_dev
    try:
        entries, n_obs, n_var = counts_shape(path, entry.dataset_id)
    except Exception as e:  # a malformed file: preflight names the problem; here only the size is used
        logger.debug("host check: %s: counts metadata not readable (%s); estimating from its size", path, e)
        return SourceFacts(entry.dataset_id, size, None, 0, 0, linked=linked)
    return SourceFacts(entry.dataset_id, size, entries, n_obs, n_var, linked=linked)


def counts_shape(path: Path, dataset_id: str) -> tuple[int, int, int]:
    """Return (stored entries, rows, columns) of the counts matrix (``raw/X`` if present, else ``X``)."""
    from census_builder.sources.h5ad import H5AD

    with H5AD(path, dataset_id) as h5:
        m = h5.counts()
        n_obs, n_var = m.shape
        entries = n_obs * n_var if m.format == "dense" else int(m.node["data"].shape[0])
    return entries, n_obs, n_var


# -- the estimate -----------------------------------------------------------------------------------------


def estimate(sources: Sequence[SourceFacts], chunk_nnz: int) -> DiskNeed:
    """Disk a build of ``sources`` needs from scratch."""
    staged = release = scratch = 0
    for s in sources:
        staged += 0 if s.linked else s.size
        if s.entries is None:
            release += int(s.size * RELEASE_BYTES_PER_SOURCE_BYTE)
            scratch += int(s.size * RELEASE_BYTES_PER_SOURCE_BYTE * SCRATCH_PER_RELEASE_BYTE)
            continue
        release += int(s.entries * RELEASE_BYTES_PER_ENTRY)
        chunks = -(-s.entries // max(chunk_nnz, 1)) if s.entries else 0
        scratch += (
            s.n_obs * SCRATCH_BYTES_PER_CELL
            + chunks * s.n_var * SCRATCH_BYTES_PER_CHUNK_GENE
            + SCRATCH_BYTES_PER_DATASET
        )
    return DiskNeed(staged, release, scratch)


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 if it does not exist)."""
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


def already_written(paths: BuildPaths, sources: Sequence[SourceFacts]) -> DiskNeed:
    """Return what an earlier run of this build already put on disk (it needs no new space)."""
    staged = 0
    for s in sources:
        dest = paths.h5ad(s.dataset_id)
        if not s.linked and dest.is_file() and dest.stat().st_size == s.size:
            staged += s.size
    release = tree_bytes(paths.partial) + tree_bytes(paths.soma)
    scratch = max(tree_bytes(paths.state) - tree_bytes(paths.partial), 0)
    return DiskNeed(staged, release, scratch)


def check_host(
    manifest: Manifest,
    paths: BuildPaths,
    *,
    chunk_nnz: int,
    workers: int | None,
    memory_limit: str | None,
    local_workers: bool = True,
    free_bytes: Callable[[Path], int] | None = None,
    memory_total: Callable[[], int] | None = None,
) -> HostCheck:
    """Estimate what the build of ``manifest`` into ``paths`` needs and what the host has (no side effects)."""
    from census_builder.runtime.cluster import available_cpus

    root = existing_dir(paths.root)
    facts = [source_facts(manifest, e, root.stat().st_dev) for e in manifest.entries]
    full = estimate(facts, chunk_nnz)
    done = already_written(paths, facts)
    need = DiskNeed(
        max(full.staged - done.staged, 0), max(full.release - done.release, 0), max(full.scratch - done.scratch, 0)
    )
    notes = []
    n_linked = sum(1 for f in facts if f.linked and f.size)
    if n_linked:
        notes.append(f"{n_linked} local source(s) on this filesystem are hard-linked, not copied")
    n_sized = sum(1 for f in facts if f.entries is None and f.size)
    if n_sized:
        notes.append(f"{n_sized} source(s) estimated from file size (S3 or unreadable here)")
    if done.total:
        notes.append(f"{fmt_bytes(done.total)} already written by an earlier run counted as done")
    mount = mount_point(root)
    per_worker = (
        memory_per_worker(memory_limit, workers or available_cpus(), (memory_total or total_memory)())
        if local_workers
        else None
    )
    return HostCheck(
        filesystem=f"the filesystem of {paths.root} (mounted at {mount})",
        free=(free_bytes or disk_free)(root),
        need=need,
        memory_per_worker=per_worker,
        memory_needed=WORKER_BASE_BYTES + chunk_nnz * WORKER_BYTES_PER_ENTRY,
        notes=tuple(notes),
    )


def preflight(
    config: Any,
    manifest: Manifest,
    paths: BuildPaths,
    *,
    free_bytes: Callable[[Path], int] | None = None,
    memory_total: Callable[[], int] | None = None,
) -> HostCheck:
    """Run the build's host check (``config`` is a BuildConfig); return the figures.

    Raises HostCheckError when the disk is short (a warning with ``config.skip_host_check``); warns when
    worker memory is short.
    """
    check = check_host(
        manifest,
        paths,
        chunk_nnz=config.chunk_nnz,
        workers=config.workers,
        memory_limit=config.memory_limit,
        local_workers=not config.scheduler,
        free_bytes=free_bytes,
        memory_total=memory_total,
    )
    logger.info(
        "host check: needs %s (staged %s, release %s, scratch %s), %s free in %s",
        fmt_bytes(check.need.total),
        fmt_bytes(check.need.staged),
        fmt_bytes(check.need.release),
        fmt_bytes(check.need.scratch),
        fmt_bytes(check.free),
        check.filesystem,
    )
    if not check.memory_ok:
        logger.warning("%s", check.memory_message(config.chunk_nnz))
    if not check.disk_ok:
        if not getattr(config, "skip_host_check", False):
            raise HostCheckError(check.disk_message(config.version))
        logger.warning("--skip-host-check: building anyway; %s", check.disk_message(config.version))
    return check

"""The Gene Expression stage: the cube of a complete release, into ``DIR/VERSION/gene_expression/``.

    plan          per organism (census_data experiments; spatial data is out of scope): read obs columns,
                  give each obs-eligible cell its group codes, cut the eligible cells into row chunks of
                  about ``chunk_nnz`` X raw entries (obs ``nnz`` sizes them)
    aggregate     one dask task per chunk reads its rows of X raw and returns its sums (method.aggregate_chunk)
    reduce        the driver adds the chunk sums as they arrive (method.Reducer)
    roll up       Cell Ontology descendants within each tissue, over the aggregated sums (method.rollup)
    markers       markers.marker_genes on each organism's rolled-up stats (organism_stats)
    write         SOMA collection + Parquet + gene_expression.json into DIR/VERSION/.gene_expression.partial/,
                  then renamed to DIR/VERSION/gene_expression/ (a previous complete output is replaced only then)

The release (``soma/``, ``h5ads/``) is only read. ``build_report.json`` gets a ``gene_expression`` entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from census_builder.build.state import BuildPaths, read_json, write_json_atomic
from census_builder.errors import GeneExpressionError
from census_builder.gene_expression import method as gm
from census_builder.gene_expression.ontology import CellOntology
from census_builder.gene_expression.store import (
    CELL_TYPE,
    SOMA_DIR,
    SUMMARY_FILE,
    TISSUE,
    GroupTable,
    category_column,
    file_list,
    markers_name,
    parquet_name,
    stats_frame,
    write_markers,
    write_parquet,
    write_soma_organism,
    write_summary,
)
from census_builder.runtime import faults

logger = logging.getLogger(__name__)

OUTPUT_DIR = "gene_expression"
PARTIAL_DIR = ".gene_expression.partial"
LOCK_FILE = "gene_expression.lock"  # in DIR/VERSION/.build
DEFAULT_CHUNK_NNZ = 4_000_000
# TileDB-SOMA's read buffer per column (its default is far larger): a 4 M-entry chunk's int64 column is 32 MiB;
# a larger chunk is read in several parts.
READ_BUFFER_BYTES = 64 * 2**20
MEASUREMENT = "RNA"


@dataclass(frozen=True)
class ChunkTask:
    """One row chunk of an organism's X raw: the eligible cells' joinids (sorted) and their group codes."""

    x_uri: str
    joinids: npt.NDArray[np.int64]
    codes: tuple[npt.NDArray[np.int64], ...]
    n_groups: tuple[int, ...]
    n_genes: int
    method: gm.Method


def aggregate_task(task: ChunkTask) -> gm.Sums:
    """Read the chunk's rows of X raw and aggregate them (runs on a dask worker)."""
    import tiledbsoma as soma

    from census_builder.runtime.tiledb_config import NO_MALLOC_TRIM

    lo, hi = int(task.joinids[0]), int(task.joinids[-1])
    config: dict[str, str | float] = {**NO_MALLOC_TRIM, "soma.init_buffer_bytes": str(READ_BUFFER_BYTES)}
    with soma.SparseNDArray.open(task.x_uri, context=soma.SOMATileDBContext(tiledb_config=config)) as arr:
        table = arr.read(coords=(slice(lo, hi),)).tables().concat()
    dim0 = table.column("soma_dim_0").to_numpy()
    # each entry's local cell position by a lookup over the chunk's joinid range (a searchsorted per entry cost
    # as much as the aggregation, issue 18); -1: a row between the chunk's eligible cells, skipped
    local = np.full(hi - lo + 1, -1, np.int64)
    local[task.joinids - lo] = np.arange(task.joinids.size, dtype=np.int64)
    pos = local[dim0 - lo]
    ok = pos >= 0
    cols = table.column("soma_dim_1").to_numpy()[ok]
    counts = table.column("soma_data").to_numpy()[ok]
    del table, dim0
    return gm.aggregate_chunk(pos[ok], cols, counts, task.codes, task.n_groups, task.n_genes, task.method)


@dataclass(frozen=True)
class OrganismPlan:
    """An organism's groups and chunks."""

    organism: str
    feature_ids: npt.NDArray[Any]
    tables: dict[str, pd.DataFrame]  # "" and each category -> the labels of each group code
    n_values: dict[str, int]  # "" -> 1, category -> number of its values
    chunks: list[ChunkTask]


def _codes(frame: pd.DataFrame) -> tuple[npt.NDArray[np.int64], pd.DataFrame]:
    """Group code per row (by all columns' values) and the labels per code, sorted by label."""
    if frame.empty:
        return np.zeros(0, np.int64), frame.iloc[:0].astype(str)
    keys = frame.astype(str)
    labels = keys.drop_duplicates().sort_values(list(keys.columns)).reset_index(drop=True)
    index = pd.MultiIndex.from_frame(labels) if len(labels.columns) > 1 else pd.Index(labels.iloc[:, 0])
    look = pd.MultiIndex.from_frame(keys) if len(keys.columns) > 1 else pd.Index(keys.iloc[:, 0])
    return index.get_indexer(look).astype(np.int64), labels


def plan_organism(exp: Any, organism: str, method: gm.Method, chunk_nnz: int) -> OrganismPlan:
    """Read ``organism``'s obs columns and cut its eligible cells into chunks."""
    cats = [category_column(c) for c in method.group_by]
    columns = ["soma_joinid", "is_primary_data", "assay_ontology_term_id", TISSUE, CELL_TYPE, "nnz", *cats]
    obs = exp.obs.read(column_names=columns).concat().to_pandas()
    obs = obs.sort_values("soma_joinid").reset_index(drop=True)
    var = exp.ms[MEASUREMENT].var.read(column_names=["soma_joinid", "feature_id"]).concat().to_pandas()
    var = var.sort_values("soma_joinid")
    if not np.array_equal(var["soma_joinid"].to_numpy(), np.arange(len(var))):
        raise GeneExpressionError(f"{organism}: var soma_joinids are not 0..{len(var) - 1}; is the release complete?")
    feature_ids = var["feature_id"].astype(str).to_numpy()
    ok = gm.obs_eligible(
        obs["is_primary_data"].to_numpy(), obs["assay_ontology_term_id"].astype(str).to_numpy(), method
    )
    elig = obs[ok]
    base, base_labels = _codes(elig[[TISSUE, CELL_TYPE]])
    tables = {"": base_labels}
    n_values = {"": 1}
    all_codes = [base]
    for cat, col in zip(method.group_by, cats, strict=True):
        v, v_labels = _codes(elig[[col]])
        n_v = max(len(v_labels), 1)
        rep = base_labels.loc[base_labels.index.repeat(n_v)].reset_index(drop=True)
        rep[col] = np.tile(v_labels[col].to_numpy() if len(v_labels) else np.array([""]), len(base_labels))
        tables[cat] = rep
        n_values[cat] = n_v
        all_codes.append(base * n_v + v)
    n_groups = tuple(len(t) for t in tables.values())
    joinids = elig["soma_joinid"].to_numpy().astype(np.int64)
    nnz = elig["nnz"].to_numpy().astype(np.int64)
    chunks: list[ChunkTask] = []
    x_uri = exp.ms[MEASUREMENT].X["raw"].uri
    start = 0
    cum = np.cumsum(nnz)
    while start < joinids.size:
        before = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, before + chunk_nnz, side="right"))
        stop = max(stop, start + 1)
        chunks.append(
            ChunkTask(
                x_uri,
                joinids[start:stop],
                tuple(c[start:stop] for c in all_codes),
                n_groups,
                len(feature_ids),
                method,
            )
        )
        start = stop
    logger.info(
        "%s: %d of %d cells primary with a Table-1 assay, %d tissue x cell type groups, %d chunk(s)",
        organism,
        joinids.size,
        len(obs),
        len(base_labels),
        len(chunks),
    )
    return OrganismPlan(organism, feature_ids, tables, n_values, chunks)


@dataclass(frozen=True)
class OrganismCube:
    """An organism's rolled-up tables and its eligible cells."""

    organism: str
    feature_ids: npt.NDArray[Any]
    tables: dict[str, GroupTable]
    n_eligible: int


def cube_from_sums(plan: OrganismPlan, sums: gm.Sums, ontology: CellOntology) -> OrganismCube:
    """Roll the reduced sums up the Cell Ontology."""
    base_labels = plan.tables[""]
    groups = list(zip(base_labels[TISSUE], base_labels[CELL_TYPE], strict=True))
    present = sums.tables[0].n_cells > 0
    r = gm.rollup_matrix(groups, present, ontology.descendants)
    tables = {
        name: GroupTable(labels, gm.rollup(ts, r, plan.n_values[name], len(plan.feature_ids)))
        for (name, labels), ts in zip(plan.tables.items(), sums.tables, strict=True)
    }
    return OrganismCube(plan.organism, plan.feature_ids, tables, sums.n_eligible)


def organism_stats(cube: OrganismCube) -> pd.DataFrame:
    """Return ONE organism's rolled-up cube as the markers' input frame.

    Columns tissue_general_ontology_term_id, cell_type_ontology_term_id, feature_id, n_cells (int64, the group's
    cells), n_expressing (int64), sum, sumsq (float64); only rows with n_expressing > 0.
    """
    return stats_frame(cube.tables[""], cube.feature_ids)


@dataclass(frozen=True)
class Result:
    """What a run wrote."""

    path: Path
    seconds: float
    organisms: dict[str, dict[str, Any]]


def run(
    workdir: str | Path,
    version: str,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    memory_limit: str | None = None,
    chunk_nnz: int = DEFAULT_CHUNK_NNZ,
    client: Any = None,
) -> Result:
    """Compute the cube of complete release ``version`` under ``workdir``; returns where it went."""
    paths = BuildPaths.for_version(workdir, version)
    if not paths.is_complete():
        raise GeneExpressionError(
            f"no complete release at {paths.root}; build it first "
            f"(python -m census_builder build --version {version} --manifest MANIFEST --workdir {paths.root.parent})"
        )
    t0 = time.perf_counter()
    with _lock(paths):
        partial = paths.root / PARTIAL_DIR
        if partial.exists():
            logger.info("removing the unfinished output of an earlier run: %s", partial)
            shutil.rmtree(partial)
        partial.mkdir()
        try:
            with contextlib.ExitStack() as stack:
                if client is None:
                    from census_builder.runtime.cluster import dask_client

                    client = stack.enter_context(
                        dask_client(workers=workers, scheduler=scheduler, memory_limit=memory_limit)
                    )
                organisms, summary = _compute(paths, partial, client, chunk_nnz)
            faults.point("gene_expression:before_move", partial)
            out = _move_into_place(paths, partial)
        except BaseException:
            with contextlib.suppress(OSError):
                shutil.rmtree(partial)
            raise
    seconds = time.perf_counter() - t0
    _record(paths, out, seconds, summary)
    logger.info("Gene Expression of %s written to %s in %.1f s", version, out, seconds)
    return Result(out, seconds, organisms)


def _compute(paths: BuildPaths, partial: Path, client: Any, chunk_nnz: int) -> tuple[dict[str, Any], dict[str, Any]]:
    import tiledbsoma as soma

    from census_builder.runtime.cluster import TaskCall, run_calls

    method = gm.load_method()
    ontology = CellOntology()
    organisms: dict[str, dict[str, Any]] = {}
    release: Any
    with soma.Collection.open(str(paths.soma)) as release:
        schema_version = str(release.metadata.get("census_schema_version", ""))
        census_version = str(release.metadata.get("census_version", paths.root.name))
        data = release["census_data"]
        if "census_spatial_sequencing" in release:
            logger.info("census_spatial_sequencing is out of the Gene Expression's scope: not read")
        root: Any
        with soma.Collection.create(str(partial / SOMA_DIR)) as root:
            root.metadata["census_version"] = census_version
            root.metadata["census_schema_version"] = schema_version
            root.metadata["method_version"] = method.version
            root.metadata["method"] = json.dumps(method.to_json(), sort_keys=True)
            root.metadata["cell_ontology_version"] = ontology.version
            for organism in sorted(data):
                plan = plan_organism(data[organism], organism, method, chunk_nnz)
                reducer = gm.Reducer([len(t) for t in plan.tables.values()], len(plan.feature_ids))
                run_calls(client, [TaskCall(aggregate_task, (c,)) for c in plan.chunks], reducer.take)
                cube = cube_from_sums(plan, reducer.result(), ontology)
                faults.point(f"gene_expression:write:{organism}", partial)
                organisms[organism] = _write_organism(partial, root, cube, method, ontology)
    summary = {
        "census_version": census_version,
        "census_schema_version": schema_version,
        "organisms": organisms,
        "method": method.to_json(),
        "cell_ontology_version": ontology.version,
    }
    write_summary(partial / SUMMARY_FILE, summary)
    return organisms, summary


def _write_organism(
    partial: Path, root: Any, cube: OrganismCube, method: gm.Method, ontology: CellOntology
) -> dict[str, Any]:
    """Write an organism's SOMA collection, Parquet files and marker genes; returns its gene_expression.json entry."""
    from census_builder.gene_expression.markers import marker_genes

    base = cube.tables[""]
    n_groups = int(base.present().size)
    if cube.n_eligible == 0:
        logger.warning("%s: no eligible cells; no Gene Expression files for it", cube.organism)
        return {"n_cells": 0, "n_groups": 0, "files": []}
    write_soma_organism(root, cube.organism, cube.feature_ids, cube.tables)
    write_parquet(cube.tables[""], cube.feature_ids, partial / parquet_name(cube.organism))
    for category in method.group_by:
        write_parquet(cube.tables[category], cube.feature_ids, partial / parquet_name(cube.organism, category))
    markers = marker_genes(organism_stats(cube), **marker_options(method, ontology))
    write_markers(markers, partial / markers_name(cube.organism))
    files = file_list(cube.organism, method.group_by, markers=True)
    return {"n_cells": cube.n_eligible, "n_groups": n_groups, "files": files}


def marker_options(method: gm.Method, ontology: CellOntology) -> dict[str, Any]:
    """Return the arguments of ``markers.marker_genes`` from the method file (ancestor/descendant pairs skipped)."""
    return {
        "n_top": method.marker_top_n,
        "seed": 0,
        "related": ontology.is_related,
        "n_replicates": method.bootstrap_replicates,
        "percentile": method.marker_percentile,
    }


def _move_into_place(paths: BuildPaths, partial: Path) -> Path:
    """Rename the finished output to DIR/VERSION/gene_expression, replacing a previous complete one."""
    out = paths.root / OUTPUT_DIR
    old = paths.root / f".{OUTPUT_DIR}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.rename(out, old)
    os.rename(partial, out)
    _fsync_dir(paths.root)
    if old.exists():
        shutil.rmtree(old)
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _lock(paths: BuildPaths) -> Iterator[None]:
    """One gene-expression run per release at a time."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with (paths.state / LOCK_FILE).open("a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GeneExpressionError(
                f"another gene-expression run of {paths.root.name} holds {paths.state / LOCK_FILE}; "
                "wait for it to finish, then run the command again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _record(paths: BuildPaths, out: Path, seconds: float, summary: dict[str, Any]) -> None:
    """Add the ``gene_expression`` entry to build_report.json (a failure to do so only warns)."""
    try:
        report = read_json(paths.report)
        report["gene_expression"] = {
            "path": str(out),
            "completed": time.time(),
            "seconds": round(seconds, 3),
            "method_version": summary["method"]["version"],
            "cell_ontology_version": summary["cell_ontology_version"],
            "organisms": {o: {k: v[k] for k in ("n_cells", "n_groups")} for o, v in summary["organisms"].items()},
        }
        write_json_atomic(paths.report, report)
    except (OSError, ValueError, KeyError) as e:
        logger.warning("could not record the Gene Expression run in %s: %s", paths.report, e)

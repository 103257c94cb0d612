"""Stage 2, plan_axes: assign soma_joinids (datasets, cells, genes) and create the empty release structure.

Cells are numbered per organism in manifest order; each organism's genes are the union over its datasets,
sorted by feature_id. Per-dataset arrays (kept rows, Smart-seq rows, source column -> gene joinid, gene
lengths) go to ``.build/axes`` for the matrix tasks; the write timestamps' base is taken right after the
structure is created (build/timestamps.py).
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from census_builder.build.inspect import CENSUS_DATA, DatasetPlan, PlanFiles
from census_builder.build.outputs import AxesPlan, DatasetAxes, NoCells, OrganismAxes
from census_builder.build.timestamps import Timestamps
from census_builder.errors import InputError, PreflightError
from census_builder.soma import writers

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger(__name__)


def plan_axes(run: BuildRun) -> AxesPlan:
    """Assign soma_joinids to datasets, cells and genes, write the per-dataset axes files, create the empty release."""
    plans = run.plans()
    contributing = [p for p in plans if p.organism is not None and p.experiment == CENSUS_DATA]
    for p in plans:
        if p.organism is not None and p.experiment != CENSUS_DATA:
            logger.warning(
                "%s: %d cell(s) planned for %s[%s], which this build does not write yet",
                p.dataset_id,
                p.n_cells,
                p.experiment,
                p.organism,
            )
    datasets: list[DatasetAxes] = []
    organisms: dict[str, OrganismAxes] = {}
    offsets: dict[str, int] = {}
    for joinid, p in enumerate(contributing):
        org_name = str(p.organism)
        off = offsets.get(org_name, 0)
        datasets.append(DatasetAxes(p.dataset_id, org_name, joinid, off, p.n_cells))
        offsets[org_name] = off + p.n_cells
    axes_dir = run.paths.state / "axes"
    axes_dir.mkdir(parents=True, exist_ok=True)
    for org in run.schema.organisms:
        members = [p for p in contributing if p.organism == org.name]
        if not members:
            logger.warning("no cells for %s: its experiment is left out of the release", org.name)
            continue
        var = _union_var(run, members)
        var.to_parquet(axes_dir / f"{org.name}.var.parquet", index=False)
        organisms[org.name] = OrganismAxes(n_obs=offsets[org.name], n_var=len(var))
        position = pd.Series(np.arange(len(var), dtype=np.int64), index=var["feature_id"].to_numpy())
        col_length = var["feature_length"].to_numpy(dtype=np.float64)
        for p in members:
            files = PlanFiles(run.paths.plans, p.dataset_id)
            arrays = files.load_arrays()
            genes = pd.read_parquet(files.genes)
            col_map = np.full(p.n_source_var, -1, dtype=np.int64)
            col_map[arrays["gene_cols"]] = position.loc[genes["feature_id"].to_numpy()].to_numpy()
            np.savez(
                axes_dir / f"{p.dataset_id}.npz",
                kept_rows=arrays["kept_rows"],
                smart=arrays["smart"],
                col_map=col_map,
                col_length=col_length,
            )
    if not organisms:
        raise PreflightError(
            [InputError(p.dataset_id, f"contributes no cells: {p.excluded_reason}") for p in plans],
            hint="No dataset contributes any cell to the Census; nothing to build. Check the manifest.",
        )
    if run.paths.partial.exists():
        shutil.rmtree(run.paths.partial)  # a structure half-created by an interrupted run
    shapes = {k: writers.ExperimentShape(v.n_obs, v.n_var) for k, v in organisms.items()}
    writers.create_release(run.layout, shapes, n_datasets=len(contributing))
    return AxesPlan(
        timestamp_base=Timestamps.new_base(),  # resumable writes are named from here on (build/timestamps.py)
        datasets=tuple(datasets),
        organisms=organisms,
        excluded=tuple(NoCells(p.dataset_id, str(p.excluded_reason)) for p in plans if p.organism is None),
    )


def _union_var(run: BuildRun, members: list[DatasetPlan]) -> pd.DataFrame:
    """Return the organism's genes: the union over its datasets, sorted by feature_id (not manifest order)."""
    frames = [pd.read_parquet(PlanFiles(run.paths.plans, p.dataset_id).genes) for p in members]
    allg = pd.concat(frames, ignore_index=True)
    first = allg.drop_duplicates("feature_id", keep="first")
    lengths = allg[allg["feature_length"] > 0].groupby("feature_id")["feature_length"].agg(["min", "max"])
    conflicting = lengths.index[lengths["min"] != lengths["max"]]
    if len(conflicting):
        logger.warning(
            "%d genes have different feature_length across datasets (e.g. %s); the first seen is used",
            len(conflicting),
            conflicting[0],
        )
    known = allg[allg["feature_length"] > 0].drop_duplicates("feature_id", keep="first").set_index("feature_id")
    var = first.set_index("feature_id")
    var["feature_length"] = known["feature_length"].reindex(var.index).fillna(0).astype(np.int64)
    return var.sort_index().reset_index()[["feature_id", "feature_name", "feature_length"]]

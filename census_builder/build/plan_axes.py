"""Stage 2, plan_axes: assign soma_joinids (datasets, cells, genes) and create the empty release structure.

Cells are numbered per organism in manifest order; each organism's genes are the union over its datasets,
sorted by feature_id. Per-dataset arrays (kept rows, Smart-seq rows, source column -> gene joinid, gene
lengths) go to ``.build/axes`` for the matrix tasks; the write timestamps' base is taken right after the
structure is created (build/timestamps.py).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from census_builder.build.inspect import DatasetPlan, PlanFiles
from census_builder.build.outputs import AxesPlan, DatasetAxes, NoCells, OrganismAxes
from census_builder.build.timestamps import Timestamps
from census_builder.errors import InputError, PreflightError
from census_builder.soma import writers
from census_builder.soma.layout import CENSUS_DATA, CENSUS_SPATIAL
from census_builder.soma.platform import obs_field_type

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger(__name__)


def plan_axes(run: BuildRun) -> AxesPlan:
    """Assign soma_joinids to datasets, cells and genes, write the per-dataset axes files, create the empty release.

    Datasets are numbered over both experiments (census_info/datasets lists them all); cells and genes per
    experiment (census_data or census_spatial_sequencing) and organism.
    """
    plans = run.plans()
    contributing = [p for p in plans if p.organism is not None]
    datasets: list[DatasetAxes] = []
    axes: dict[str, dict[str, OrganismAxes]] = {CENSUS_DATA: {}, CENSUS_SPATIAL: {}}
    offsets: dict[tuple[str, str], int] = {}
    for joinid, p in enumerate(contributing):
        key = (p.experiment, str(p.organism))
        off = offsets.get(key, 0)
        datasets.append(DatasetAxes(p.dataset_id, key[1], joinid, off, p.n_cells, experiment=p.experiment))
        offsets[key] = off + p.n_cells
    axes_dir = run.paths.state / "axes"
    axes_dir.mkdir(parents=True, exist_ok=True)
    for experiment, organisms in axes.items():
        for org in run.schema.organisms:
            members = [p for p in contributing if p.organism == org.name and p.experiment == experiment]
            if not members:
                if experiment == CENSUS_DATA:
                    spatial_only = any(p.organism == org.name for p in contributing)
                    what = "no census_data cells (spatial cells only)" if spatial_only else "no cells"
                    logger.warning("%s for %s: its census_data experiment is left out of the release", what, org.name)
                continue
            var = _union_var(run, members)
            var.to_parquet(var_path(run, experiment, org.name), index=False)
            organisms[org.name] = OrganismAxes(n_obs=offsets[(experiment, org.name)], n_var=len(var))
            _write_dataset_axes(run, members, var)
    if not contributing:
        raise PreflightError(
            [InputError(p.dataset_id, f"contributes no cells: {p.excluded_reason}") for p in plans],
            hint="No dataset contributes any cell to the Census; nothing to build. Check the manifest.",
        )
    if run.paths.partial.exists():
        shutil.rmtree(run.paths.partial)  # a structure half-created by an interrupted run
    shapes = {k: writers.ExperimentShape(v.n_obs, v.n_var) for k, v in axes[CENSUS_DATA].items()}
    spatial = {k: writers.ExperimentShape(v.n_obs, v.n_var) for k, v in axes[CENSUS_SPATIAL].items()}
    obs_values = {
        (kind, org): _obs_values(run, [p for p in contributing if (p.experiment, p.organism) == (kind, org)])
        for kind, organisms in axes.items()
        for org in organisms
    }
    writers.create_release(run.layout, shapes, n_datasets=len(contributing), spatial=spatial, obs_values=obs_values)
    return AxesPlan(
        timestamp_base=Timestamps.new_base(),  # resumable writes are named from here on (build/timestamps.py)
        datasets=tuple(datasets),
        organisms=axes[CENSUS_DATA],
        excluded=tuple(NoCells(p.dataset_id, str(p.excluded_reason)) for p in plans if p.organism is None),
        spatial=axes[CENSUS_SPATIAL],
    )


def _obs_values(run: BuildRun, members: list[DatasetPlan]) -> dict[str, list[str]]:
    """Every value of each dictionary-encoded obs column (soma/platform.py) over ``members``, sorted: the
    enumerations the obs dataframe is created with. dataset_id is the members' ids; the other columns are
    read from the plans' obs parquet (dictionary-encoded there: only the distinct values are decoded)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = [c.name for c in run.schema.obs if obs_field_type(c.name, c.arrow_type, 0) != c.arrow_type]
    values: dict[str, set[str]] = {name: set() for name in names}
    values["dataset_id"] = {p.dataset_id for p in members}
    for p in members:
        path = PlanFiles(run.paths.plans, p.dataset_id).obs
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[n for n in names if n in present and n != "dataset_id"])
        for name in table.column_names:
            unique = pc.unique(table.column(name))
            if pa.types.is_dictionary(unique.type):
                unique = unique.dictionary_decode()
            values[name].update(str(v) for v in unique.to_pylist())
    return {name: sorted(v) for name, v in values.items() if v}


def var_path(run: BuildRun, experiment: str, organism: str) -> Path:
    """Return where plan_axes stores an experiment's genes (census_data: ``<organism>.var.parquet`` as before)."""
    prefix = "" if experiment == CENSUS_DATA else f"{experiment}."
    return run.paths.state / "axes" / f"{prefix}{organism}.var.parquet"


def _write_dataset_axes(run: BuildRun, members: list[DatasetPlan], var: pd.DataFrame) -> None:
    """Write each member's arrays for the matrix tasks: kept rows, Smart-seq rows, column -> gene joinid, lengths."""
    position = pd.Series(np.arange(len(var), dtype=np.int64), index=var["feature_id"].to_numpy())
    col_length = var["feature_length"].to_numpy(dtype=np.float64)
    for p in members:
        files = PlanFiles(run.paths.plans, p.dataset_id)
        arrays = files.load_arrays()
        genes = pd.read_parquet(files.genes)
        col_map = np.full(p.n_source_var, -1, dtype=np.int64)
        col_map[arrays["gene_cols"]] = position.loc[genes["feature_id"].to_numpy()].to_numpy()
        np.savez(
            run.paths.state / "axes" / f"{p.dataset_id}.npz",
            kept_rows=arrays["kept_rows"],
            smart=arrays["smart"],
            col_map=col_map,
            col_length=col_length,
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

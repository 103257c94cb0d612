"""Stage 2, plan_axes: assign soma_joinids (datasets, cells, genes) and create the empty release structure.

Cells are numbered per organism in manifest order; each organism's genes are the union over its datasets,
sorted by feature_id. Per-dataset arrays (kept rows, Smart-seq rows, source column -> gene joinid, gene
lengths) go to ``.build/axes`` for the matrix tasks; the write timestamps' base is taken right after the
structure is created (build/timestamps.py).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from census_builder.build.inspect import DatasetPlan, PlanFiles
from census_builder.build.outputs import AxesPlan, DatasetAxes, NoCells, OrganismAxes
from census_builder.build.timestamps import Timestamps
from census_builder.errors import BuildStateError, InputError, PreflightError
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
    datasets, offsets = number_datasets(contributing)
    axes: dict[str, dict[str, OrganismAxes]] = {CENSUS_DATA: {}, CENSUS_SPATIAL: {}}
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


def number_datasets(contributing: list[DatasetPlan]) -> tuple[list[DatasetAxes], dict[tuple[str, str], int]]:
    """Return each contributing dataset's axes (joinids in manifest order; cells numbered per experiment and
    organism) and each (experiment, organism)'s cell count."""
    datasets: list[DatasetAxes] = []
    offsets: dict[tuple[str, str], int] = {}
    for joinid, p in enumerate(contributing):
        key = (p.experiment, str(p.organism))
        off = offsets.get(key, 0)
        datasets.append(DatasetAxes(p.dataset_id, key[1], joinid, off, p.n_cells, experiment=p.experiment))
        offsets[key] = off + p.n_cells
    return datasets, offsets


def _obs_values(run: BuildRun, members: list[DatasetPlan]) -> dict[str, list[str]]:
    """Every value of each dictionary-encoded obs column (soma/platform.py) over ``members``, sorted: the
    enumerations the obs dataframe is created with. dataset_id is the members' ids; the other columns are
    read from the plans' obs parquet (dictionary-encoded there: only the distinct values are decoded)."""
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
    var_ids = pa.array(var["feature_id"].to_numpy(), type=pa.string())  # hashed per dataset by index_in (C++)
    col_length = var["feature_length"].to_numpy(dtype=np.float64)
    for p in members:
        files = PlanFiles(run.paths.plans, p.dataset_id)
        arrays = files.load_arrays()
        ids = pq.read_table(files.genes, columns=["feature_id"]).column(0).cast(pa.string())
        joinids = pc.index_in(ids, value_set=var_ids)
        if joinids.null_count:
            raise BuildStateError(
                f"dataset {p.dataset_id}: {joinids.null_count} gene(s) of {files.genes} are not in the organism's "
                "var union; this is a bug in census_builder: please report it"
            )
        col_map = np.full(p.n_source_var, -1, dtype=np.int64)
        col_map[arrays["gene_cols"]] = joinids.to_numpy().astype(np.int64)
        np.savez(
            run.paths.state / "axes" / f"{p.dataset_id}.npz",
            kept_rows=arrays["kept_rows"],
            smart=arrays["smart"],
            col_map=col_map,
            col_length=col_length,
        )


def _union_var(run: BuildRun, members: list[DatasetPlan]) -> pd.DataFrame:
    """Return the organism's genes: the union over its datasets, sorted by feature_id (not manifest order)."""
    return union_var(pq.read_table(PlanFiles(run.paths.plans, p.dataset_id).genes) for p in members)


def union_var(genes: Iterable[pa.Table | pd.DataFrame]) -> pd.DataFrame:
    """Return the union of the datasets' kept genes (manifest order), sorted by feature_id.

    Each gene takes its first seen feature_name and its first positive feature_length (0 if none). The
    datasets are folded in one at a time: memory is the union's (~60 k genes), not the sum over datasets.
    """
    union = VarUnion()
    for g in genes:
        union.add(g if isinstance(g, pa.Table) else pa.Table.from_pandas(g, preserve_index=False))
    return union.var()


class VarUnion:
    """The union of datasets' genes (feature_id, feature_name, feature_length), one dataset at a time."""

    def __init__(self) -> None:
        self._ids = pa.array([], type=pa.string())  # every gene seen, first-seen order
        self._names: list[pa.Array] = []  # feature_name of the genes each dataset added
        self._first = np.zeros(0, dtype=np.int64)  # first positive feature_length (0: none yet)
        self._min = np.zeros(0, dtype=np.int64)  # smallest and largest positive feature_length
        self._max = np.zeros(0, dtype=np.int64)

    def add(self, genes: pa.Table) -> None:
        """Fold in one dataset's genes (feature_id unique within the dataset)."""
        ids = genes.column("feature_id").combine_chunks().cast(pa.string())
        new = pc.invert(pc.is_in(ids, value_set=self._ids))
        n_new = pc.sum(new).as_py() or 0
        if n_new:
            names = genes.column("feature_name").combine_chunks().cast(pa.string()).filter(new)
            self._ids = pa.concat_arrays([self._ids, ids.filter(new)])
            self._names.append(names)
            self._first = np.concatenate([self._first, np.zeros(n_new, np.int64)])
            self._min = np.concatenate([self._min, np.full(n_new, np.iinfo(np.int64).max, np.int64)])
            self._max = np.concatenate([self._max, np.zeros(n_new, np.int64)])
        pos = pc.index_in(ids, value_set=self._ids).to_numpy().astype(np.int64)
        lengths = genes.column("feature_length").combine_chunks().fill_null(0).to_numpy().astype(np.int64)
        known = lengths > 0
        p, n = pos[known], lengths[known]
        unset = self._first[p] == 0
        self._first[p[unset]] = n[unset]
        self._min[p] = np.minimum(self._min[p], n)
        self._max[p] = np.maximum(self._max[p], n)

    def var(self) -> pd.DataFrame:
        """Return the union, sorted by feature_id; warn about genes with different lengths across datasets."""
        names = pa.concat_arrays(self._names) if self._names else pa.array([], type=pa.string())
        var = pd.DataFrame(
            {
                "feature_id": self._ids.to_numpy(zero_copy_only=False),
                "feature_name": names.to_numpy(zero_copy_only=False),
                "feature_length": self._first,
            }
        )
        conflicting = (self._first > 0) & (self._min != self._max)
        var = var.sort_values("feature_id", ignore_index=True)
        if conflicting.any():
            logger.warning(
                "%d genes have different feature_length across datasets (e.g. %s); the first seen is used",
                int(conflicting.sum()),
                min(self._ids.filter(pa.array(conflicting)).to_pylist()),
            )
        return var

"""What each build stage returns: frozen, typed records, stored as JSON under ``.build/stages``.

Each record's ``to_json()`` gives the JSON its stage records (the same keys as before they were typed, so
a build started by an older census_builder resumes), ``from_json()`` reads it back; later stages, the
build summary and benchmarks read these records, never the JSON by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from census_builder.build.state import StageRecord
from census_builder.soma.layout import CENSUS_DATA


class StageOutput(Protocol):
    """What a stage returns: named by the stage, and stored as JSON."""

    stage: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """Return the JSON stored under ``.build/stages/<stage>.json``."""
        ...


OutputT = TypeVar("OutputT", "Inspected", "AxesPlan", "MatricesWritten", "TablesWritten", "ReleaseFinalized")


def read_output(stages: StageRecord, kind: type[OutputT]) -> OutputT:
    """Return the recorded output of a finished stage (``kind`` names the stage)."""
    outputs: dict[str, Any] = stages.get(kind.stage)["outputs"]
    return kind.from_json(outputs)


@dataclass(frozen=True)
class Inspected:
    """stage_and_inspect: the datasets planned (manifest order) and the invalid ones left out."""

    stage: ClassVar[str] = "stage_and_inspect"
    datasets: tuple[str, ...]  # every dataset with a plan, including those that contribute no cells
    invalid: tuple[Mapping[str, str], ...] = ()  # InputError.to_json() of each invalid dataset

    @property
    def invalid_ids(self) -> list[str]:
        """The dataset ids of the invalid datasets."""
        return [p["dataset_id"] for p in self.invalid]

    def to_json(self) -> dict[str, Any]:
        """Return the stage's JSON record."""
        return {"datasets": list(self.datasets), "invalid": [dict(p) for p in self.invalid]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Inspected:
        """Read a recorded output back."""
        return cls(tuple(data["datasets"]), tuple(dict(p) for p in data.get("invalid", [])))


@dataclass(frozen=True)
class DatasetAxes:
    """A contributing dataset's place in the release: its joinid and its first cell's soma_joinid."""

    dataset_id: str
    organism: str
    joinid: int
    obs_offset: int
    n_cells: int
    experiment: str = CENSUS_DATA  # census_data or census_spatial_sequencing

    def to_json(self) -> dict[str, Any]:
        """Return the JSON record."""
        return {
            "dataset_id": self.dataset_id,
            "organism": self.organism,
            "joinid": self.joinid,
            "obs_offset": self.obs_offset,
            "n_cells": self.n_cells,
            **({} if self.experiment == CENSUS_DATA else {"experiment": self.experiment}),  # as records before #16
        }


@dataclass(frozen=True)
class OrganismAxes:
    """The obs and var lengths of an organism's experiment."""

    n_obs: int
    n_var: int


def _axes_json(axes: Mapping[str, OrganismAxes]) -> dict[str, dict[str, int]]:
    return {k: {"n_obs": v.n_obs, "n_var": v.n_var} for k, v in axes.items()}


@dataclass(frozen=True)
class NoCells:
    """A dataset that contributes no cells, and why."""

    dataset_id: str
    reason: str


@dataclass(frozen=True)
class AxesPlan:
    """plan_axes: soma_joinids of datasets and cells, each organism's axes, and the write timestamps' base."""

    stage: ClassVar[str] = "plan_axes"
    timestamp_base: int  # ms; see build/timestamps.py
    datasets: tuple[DatasetAxes, ...]  # contributing datasets, in joinid order
    organisms: Mapping[str, OrganismAxes]  # organisms with cells, in the schema's order
    excluded: tuple[NoCells, ...]  # datasets without Census cells
    spatial: Mapping[str, OrganismAxes] = field(default_factory=dict)  # census_spatial_sequencing's organisms

    def members(self, organism: str, experiment: str = CENSUS_DATA) -> list[DatasetAxes]:
        """Return the organism's datasets in ``experiment``, in joinid order."""
        return [d for d in self.datasets if d.organism == organism and d.experiment == experiment]

    def experiment_axes(self, experiment: str) -> Mapping[str, OrganismAxes]:
        """Return the organisms' axes of ``experiment`` (census_data or census_spatial_sequencing)."""
        return self.organisms if experiment == CENSUS_DATA else self.spatial

    def shape(self, d: DatasetAxes) -> OrganismAxes:
        """Return the axes of the experiment ``d`` belongs to."""
        return self.experiment_axes(d.experiment)[d.organism]

    def to_json(self) -> dict[str, Any]:
        """Return the stage's JSON record."""
        return {
            "timestamp_base": self.timestamp_base,
            "datasets": [d.to_json() for d in self.datasets],
            "organisms": _axes_json(self.organisms),
            "excluded": [{"dataset_id": e.dataset_id, "reason": e.reason} for e in self.excluded],
            **({"spatial": _axes_json(self.spatial)} if self.spatial else {}),  # as records before #16
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AxesPlan:
        """Read a recorded output back."""
        return cls(
            timestamp_base=int(data["timestamp_base"]),
            datasets=tuple(
                DatasetAxes(
                    str(d["dataset_id"]),
                    str(d["organism"]),
                    int(d["joinid"]),
                    int(d["obs_offset"]),
                    int(d["n_cells"]),
                    str(d.get("experiment", CENSUS_DATA)),
                )
                for d in data["datasets"]
            ),
            organisms={k: OrganismAxes(int(v["n_obs"]), int(v["n_var"])) for k, v in data["organisms"].items()},
            excluded=tuple(NoCells(str(e["dataset_id"]), str(e["reason"])) for e in data["excluded"]),
            spatial={k: OrganismAxes(int(v["n_obs"]), int(v["n_var"])) for k, v in data.get("spatial", {}).items()},
        )


@dataclass(frozen=True)
class MatricesWritten:
    """write_matrices: how many chunk tasks the release has, and how many this run wrote."""

    stage: ClassVar[str] = "write_matrices"
    chunks: int
    written_this_run: int

    def to_json(self) -> dict[str, Any]:
        """Return the stage's JSON record."""
        return {"chunks": self.chunks, "written_this_run": self.written_this_run}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MatricesWritten:
        """Read a recorded output back."""
        return cls(int(data["chunks"]), int(data["written_this_run"]))


@dataclass(frozen=True)
class OrganismFigures:
    """An organism's figures once its tables are written."""

    cells: int
    genes: int
    nnz: int  # stored values of each X layer
    presence_true: int
    datasets: int

    def to_json(self) -> dict[str, int]:
        """Return the JSON record."""
        return {
            "cells": self.cells,
            "genes": self.genes,
            "nnz": self.nnz,
            "presence_true": self.presence_true,
            "datasets": self.datasets,
        }

    @classmethod
    def from_json(cls, v: Mapping[str, Any]) -> OrganismFigures:
        """Read a JSON record back."""
        return cls(int(v["cells"]), int(v["genes"]), int(v["nnz"]), int(v["presence_true"]), int(v["datasets"]))


@dataclass(frozen=True)
class TablesWritten:
    """write_tables: per-organism figures, cell totals and donors per organism."""

    stage: ClassVar[str] = "write_tables"
    organisms: Mapping[str, OrganismFigures]
    total_cell_count: int
    unique_cell_count: int
    donors: Mapping[str, int]
    spatial: Mapping[str, OrganismFigures] = field(default_factory=dict)  # census_spatial_sequencing's organisms

    @property
    def nnz(self) -> int:
        """Stored values of each X layer, over all organisms."""
        return sum(f.nnz for f in self.organisms.values())

    def to_json(self) -> dict[str, Any]:
        """Return the stage's JSON record."""
        return {
            "organisms": {k: v.to_json() for k, v in self.organisms.items()},
            "total_cell_count": self.total_cell_count,
            "unique_cell_count": self.unique_cell_count,
            "donors": dict(self.donors),
            **({"spatial": {k: v.to_json() for k, v in self.spatial.items()}} if self.spatial else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TablesWritten:
        """Read a recorded output back."""
        return cls(
            organisms={k: OrganismFigures.from_json(v) for k, v in data["organisms"].items()},
            total_cell_count=int(data["total_cell_count"]),
            unique_cell_count=int(data["unique_cell_count"]),
            donors={k: int(v) for k, v in data["donors"].items()},
            spatial={k: OrganismFigures.from_json(v) for k, v in data.get("spatial", {}).items()},
        )


@dataclass(frozen=True)
class ReleaseFinalized:
    """finalize_release: the root metadata written and the totals.

    Only a note, when an interrupted run had already moved the release into place.
    """

    stage: ClassVar[str] = "finalize_release"
    metadata: Mapping[str, str] | None = None
    totals: TablesWritten | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the stage's JSON record."""
        if self.note is not None:
            return {"note": self.note}
        return {
            "metadata": dict(self.metadata or {}),
            "totals": self.totals.to_json() if self.totals is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReleaseFinalized:
        """Read a recorded output back."""
        if "note" in data:
            return cls(note=str(data["note"]))
        totals = data.get("totals")
        return cls(dict(data.get("metadata") or {}), TablesWritten.from_json(totals) if totals else None)

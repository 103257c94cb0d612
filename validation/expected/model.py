"""The expected release, assembled from the per-dataset plans (phase 1) and the chunk results (phase 2).

Pure bookkeeping: which datasets contribute, in manifest order; their datasets-table joinids and obs
offsets as our builder would number them (only a default: the release's own numbering is read and used,
see validation.checks.numbering and ``Model.number_datasets``); each organism's expected genes (the union of kept
genes, indexed in feature_id order); per-gene nnz and per-dataset presence accumulated from the chunk
results, by expected gene index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from validation.expected.dataset import DatasetPlan
from validation.expected.spec import Organism, Spec
from validation.inputs.manifest import Source


@dataclass
class ExpectedVar:
    """An organism's expected genes, in feature_id order."""

    feature_ids: list[str]
    names: list[str]
    lengths: npt.NDArray[np.int64]
    index: dict[str, int]

    def __len__(self) -> int:
        return len(self.feature_ids)


@dataclass
class OrganismModel:
    """What one organism's experiment must hold: its datasets, cells, genes, and the figures phase 2 adds up."""

    organism: Organism
    datasets: list[DatasetPlan]
    offsets: dict[str, int]
    n_obs: int
    var: ExpectedVar
    var_nnz: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    presence: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)  # dataset -> expected presence row
    presence_rule: str = "nonzero"  # the schema data's presence_matrix.rule

    def __post_init__(self) -> None:
        self.var_nnz = np.zeros(len(self.var), dtype=np.int64)
        self.presence = {p.dataset_id: np.zeros(len(self.var), dtype=bool) for p in self.datasets}
        if self.presence_rule == "listed":  # every kept gene of the dataset's var, counts or not
            for p in self.datasets:
                self.presence[p.dataset_id][[self.var.index[g] for g in p.gene_ids]] = True
        # "nonzero": the chunk results mark the genes with a count > 0 in the dataset's kept cells

    def n_measured_vars(self, dataset_id: str) -> int:
        """Return the dataset's expected presence count (its True presence bits)."""
        return int(self.presence[dataset_id].sum())

    def n_measured_obs(self) -> npt.NDArray[np.int64]:
        """Return each gene's expected n_measured_obs (cells of the datasets that measure it)."""
        out = np.zeros(len(self.var), dtype=np.int64)
        for p in self.datasets:
            out[self.presence[p.dataset_id]] += p.n_cells
        return out

    def col_map(self, plan: DatasetPlan) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Source column -> var soma_joinid (-1 for non-Census genes), and -> the var feature_length."""
        col_map = np.full(plan.n_source_var, -1, dtype=np.int64)
        joinids = np.array([self.var.index[g] for g in plan.gene_ids], dtype=np.int64)
        col_map[plan.gene_cols] = joinids
        col_length = np.zeros(plan.n_source_var, dtype=np.float64)
        col_length[plan.gene_cols] = self.var.lengths[joinids]
        return col_map, col_length


@dataclass
class Model:
    """The expected release: the plans in manifest order, the contributing datasets, one model per organism."""

    sources: dict[str, Source]
    plans: list[DatasetPlan]  # manifest order, readable or not
    contributing: list[DatasetPlan]
    dataset_joinid: dict[str, int]  # contributing dataset -> its datasets-table soma_joinid (-1: no row)
    organisms: dict[str, OrganismModel]
    dataset_rows: dict[int, str] = field(default_factory=dict)  # datasets-table soma_joinid -> dataset_id
    spatial: list[DatasetPlan] = field(default_factory=list)  # datasets with census_spatial_sequencing cells

    @property
    def listed(self) -> list[DatasetPlan]:
        """The plans census_info counts: census_data's and census_spatial_sequencing's ("cells or spatial spots")."""
        return self.contributing + self.spatial

    def cells_of(self, dataset_id: str) -> int:
        """Return the cells (and spatial spots) of a dataset in the release, census_data and spatial together."""
        return sum(p.n_cells for p in self.listed if p.dataset_id == dataset_id)

    def number_datasets(self, dataset_ids: list[Any], joinids: list[Any]) -> None:
        """Use the release's datasets table numbering.

        The schema matches datasets by dataset_id, whatever their soma_joinid; a dataset listed twice takes
        its lowest joinid (census_info_datasets reports it).
        """
        self.dataset_rows = {int(j): str(d) for j, d in zip(joinids, dataset_ids, strict=True) if j is not None}
        first: dict[str, int] = {}
        for j, d in sorted(self.dataset_rows.items()):
            first.setdefault(d, j)
        self.dataset_joinid = {p.dataset_id: first.get(p.dataset_id, -1) for p in self.contributing}

    def dataset_at(self, joinid: int) -> str | None:
        """Return the dataset_id at a datasets-table soma_joinid (None: no such row)."""
        if self.dataset_rows:
            return self.dataset_rows.get(joinid)
        return self.contributing[joinid].dataset_id if 0 <= joinid < len(self.contributing) else None


def _union_var(datasets: list[DatasetPlan]) -> ExpectedVar:
    names: dict[str, str] = {}
    lengths: dict[str, int] = {}
    for p in datasets:
        for fid, name, length in zip(p.gene_ids, p.gene_names, p.gene_lengths.tolist(), strict=True):
            names.setdefault(fid, name)
            if length > 0:
                lengths.setdefault(fid, length)
    ids = sorted(names)
    return ExpectedVar(
        ids,
        [names[i] for i in ids],
        np.array([lengths.get(i, 0) for i in ids], dtype=np.int64),
        {fid: j for j, fid in enumerate(ids)},
    )


def build_model(spec: Spec, sources: dict[str, Source], plans: list[DatasetPlan]) -> Model:
    """Assemble the expected release from the per-dataset plans (manifest order)."""
    contributing = [p for p in plans if p.contributes]
    organisms: dict[str, OrganismModel] = {}
    for org in spec.organisms:
        members = [p for p in contributing if p.organism == org.name]
        if not members:
            continue
        offsets: dict[str, int] = {}
        n = 0
        for p in members:
            offsets[p.dataset_id] = n
            n += p.n_cells
        organisms[org.name] = OrganismModel(
            org, members, offsets, n, _union_var(members), presence_rule=spec.presence_rule
        )
    return Model(sources, plans, contributing, {p.dataset_id: i for i, p in enumerate(contributing)}, organisms)

"""The expected release, assembled from the per-dataset plans (phase 1) and the chunk results (phase 2).

Pure bookkeeping: which datasets contribute, in manifest order; their datasets-table joinids and obs
offsets; each organism's var (the union of kept genes, sorted by feature_id); per-gene nnz and per-dataset
presence accumulated from the chunk results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from validation.expected import DatasetPlan
from validation.manifest import Source
from validation.spec import Organism, Spec


@dataclass
class ExpectedVar:
    feature_ids: list[str]
    names: list[str]
    lengths: npt.NDArray[np.int64]
    index: dict[str, int]

    def __len__(self) -> int:
        return len(self.feature_ids)


@dataclass
class OrganismModel:
    organism: Organism
    datasets: list[DatasetPlan]
    offsets: dict[str, int]
    n_obs: int
    var: ExpectedVar
    var_nnz: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    presence: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)  # dataset -> expected presence row

    def __post_init__(self) -> None:
        self.var_nnz = np.zeros(len(self.var), dtype=np.int64)
        self.presence = {p.dataset_id: np.zeros(len(self.var), dtype=bool) for p in self.datasets}

    def n_measured_vars(self, dataset_id: str) -> int:
        return int(self.presence[dataset_id].sum())

    def n_measured_obs(self) -> npt.NDArray[np.int64]:
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
    sources: dict[str, Source]
    plans: list[DatasetPlan]  # manifest order, readable or not
    contributing: list[DatasetPlan]
    dataset_joinid: dict[str, int]
    organisms: dict[str, OrganismModel]


def _union_var(datasets: list[DatasetPlan]) -> ExpectedVar:
    names: dict[str, str] = {}
    lengths: dict[str, int] = {}
    for p in datasets:
        for fid, name, length in zip(p.gene_ids, p.gene_names, p.gene_lengths, strict=True):
            names.setdefault(fid, name)
            if length > 0:
                lengths.setdefault(fid, length)
    ids = sorted(names)
    return ExpectedVar(ids, [names[i] for i in ids], np.array([lengths.get(i, 0) for i in ids], dtype=np.int64),
                       {fid: j for j, fid in enumerate(ids)})


def build_model(spec: Spec, sources: dict[str, Source], plans: list[DatasetPlan]) -> Model:
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
        organisms[org.name] = OrganismModel(org, members, offsets, n, _union_var(members))
    return Model(sources, plans, contributing, {p.dataset_id: i for i, p in enumerate(contributing)}, organisms)

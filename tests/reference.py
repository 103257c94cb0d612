"""A deliberately plain, in-memory re-derivation of what a release must hold, for the builder's tests.

Reads each tiny source H5AD whole with anndata (fine for test data; the builder never does this) and
applies the Census rules written out longhand, so that a bug in the builder cannot hide in both places.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

HUMAN, MOUSE = "NCBITaxon:9606", "NCBITaxon:10090"
ORGANISMS = {HUMAN: "homo_sapiens", MOUSE: "mus_musculus"}
ASSAYS = {
    "EFO:0030003",
    "EFO:0009901",
    "EFO:0009899",
    "EFO:0009922",
    "EFO:0030004",
    "EFO:0011025",
    "EFO:0009900",
    "EFO:0700004",
    "EFO:0700003",
    "EFO:0010010",
    "EFO:0008720",
    "EFO:0008722",
    "EFO:0700011",
    "EFO:0008780",
    "EFO:0008796",
    "EFO:0030002",
    "EFO:0010550",
    "EFO:0008919",
    "EFO:0030019",
    "EFO:0008930",
    "EFO:0700016",
    "EFO:0008931",
    "EFO:0008953",
    "EFO:0700010",
}
SMART_SEQ = {"EFO:0008930", "EFO:0008931", "EFO:0700016"}


@dataclass
class ExpectedDataset:
    dataset_id: str
    organism: str | None
    obs: pd.DataFrame  # kept cells, source order
    genes: pd.DataFrame  # kept genes: feature_id, feature_name, feature_length (source order)
    counts: npt.NDArray[np.float64]  # kept cells x kept genes, duplicates summed


def expected_dataset(path: Path, dataset_id: str) -> ExpectedDataset:
    a = ad.read_h5ad(path)
    if a.raw is not None:
        x, var = a.raw.X, a.raw.var
    else:
        x, var = a.X, a.var
    dense = x.toarray() if sp.issparse(x) else np.asarray(x)  # toarray() sums duplicates
    dense = dense.astype(np.float64)
    gene = (var["feature_biotype"].astype(str) == "gene") & var["feature_reference"].astype(str).isin(ORGANISMS)
    refs = set(var["feature_reference"].astype(str)[gene])
    if len(refs) != 1:
        return ExpectedDataset(dataset_id, None, a.obs.iloc[:0], var.iloc[:0], np.zeros((0, 0)))
    ref = refs.pop()
    keep_genes = (gene & (var["feature_reference"].astype(str) == ref)).to_numpy()
    obs = a.obs
    keep_cells = (
        (obs["organism_ontology_term_id"].astype(str) == ref)
        & obs["assay_ontology_term_id"].astype(str).isin(ASSAYS)
        & (obs["tissue_type"].astype(str) == "tissue")
    ).to_numpy()
    if not keep_cells.any():
        return ExpectedDataset(dataset_id, None, a.obs.iloc[:0], var.iloc[:0], np.zeros((0, 0)))
    genes = pd.DataFrame(
        {
            "feature_id": var.index[keep_genes].astype(str),
            "feature_name": var["feature_name"].astype(str)[keep_genes].to_numpy(),
            "feature_length": var["feature_length"].to_numpy()[keep_genes] if "feature_length" in var else 0,
        }
    )
    return ExpectedDataset(
        dataset_id, ORGANISMS[ref], obs[keep_cells].copy(), genes, dense[np.ix_(keep_cells, keep_genes)]
    )


@dataclass
class ExpectedExperiment:
    obs: pd.DataFrame  # release obs order
    var: pd.DataFrame  # sorted by feature_id
    raw: npt.NDArray[np.float64]  # obs x var
    normalized: npt.NDArray[np.float64]
    presence: dict[str, npt.NDArray[np.bool_]]  # dataset_id -> per var


def expected_release(manifest: Path) -> tuple[list[ExpectedDataset], dict[str, ExpectedExperiment]]:
    entries = pd.read_csv(manifest)
    datasets = [
        expected_dataset(manifest.parent / uri, ds)
        for ds, uri in zip(entries.dataset_id, entries.h5ad_uri, strict=True)
    ]
    out: dict[str, ExpectedExperiment] = {}
    for org in ORGANISMS.values():
        members = [d for d in datasets if d.organism == org]
        if not members:
            continue
        var = (
            pd.concat([d.genes for d in members])
            .drop_duplicates("feature_id")
            .sort_values("feature_id")
            .reset_index(drop=True)
        )
        pos = {f: i for i, f in enumerate(var.feature_id)}
        raws, obs_parts, presence = [], [], {}
        for d in members:
            m = np.zeros((len(d.obs), len(var)))
            m[:, [pos[f] for f in d.genes.feature_id]] = d.counts
            raws.append(m)
            presence[d.dataset_id] = np.asarray((m > 0).any(axis=0))
            o = d.obs.copy()
            o["dataset_id"] = d.dataset_id
            o["n_measured_vars"] = int(presence[d.dataset_id].sum())
            obs_parts.append(o)
        raw = np.vstack(raws)
        obs = pd.concat(obs_parts)
        obs["tissue_general_ontology_term_id"], obs["tissue_general"] = _tissue_general(obs)
        nz = raw > 0
        obs["nnz"] = nz.sum(axis=1)
        obs["raw_sum"] = raw.sum(axis=1)
        obs["raw_mean_nnz"] = [r[r > 0].mean() if (r > 0).any() else 0.0 for r in raw]
        obs["raw_variance_nnz"] = [r[r > 0].var(ddof=1) if (r > 0).sum() > 1 else 0.0 for r in raw]
        smart = obs["assay_ontology_term_id"].astype(str).isin(SMART_SEQ).to_numpy()
        length = var["feature_length"].to_numpy(dtype=np.float64)
        norm = np.zeros_like(raw)
        for i, r in enumerate(raw):
            v = r / length if smart[i] else r
            if v.sum() > 0:
                norm[i] = v / v.sum()
        var["nnz"] = nz.sum(axis=0)
        cells = {d.dataset_id: len(d.obs) for d in members}
        var["n_measured_obs"] = sum(presence[ds].astype(np.int64) * n for ds, n in cells.items())
        out[org] = ExpectedExperiment(obs.reset_index(drop=True), var, raw, norm, presence)
    return datasets, out


def _tissue_general(obs: pd.DataFrame) -> tuple[list[str], list[str]]:
    from cellxgene_ontology_guide.curated_ontology_term_lists import get_curated_ontology_term_list
    from cellxgene_ontology_guide.entities import CuratedOntologyTermList
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    parser = OntologyParser()
    high = get_curated_ontology_term_list(CuratedOntologyTermList.TISSUE_GENERAL)
    ids, labels = [], []
    for term, label in zip(obs["tissue_ontology_term_id"].astype(str), obs["tissue"].astype(str), strict=True):
        try:
            hits = parser.get_high_level_terms(term, high)
        except KeyError:
            ids.append(term)
            labels.append(label)
            continue
        tg = hits[0] if hits else term
        ids.append(tg)
        labels.append(parser.get_term_label(tg))
    return ids, labels

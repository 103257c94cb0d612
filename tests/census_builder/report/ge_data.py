"""Test data for the report: gene_expression/ Parquet files in the cube's contract, made from known small
DataFrames over a release's own obs groups and var genes (the report's input, not a cube computation)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import tiledbsoma as soma

CATEGORIES = ("sex", "self_reported_ethnicity", "disease")
KEYS = ("tissue_general_ontology_term_id", "cell_type_ontology_term_id")


@dataclass(frozen=True)
class GeneExpressionData:
    """What was written, per organism: the cube, the by-category cubes and the markers (as DataFrames)."""

    cube: dict[str, pd.DataFrame]
    by_category: dict[str, dict[str, pd.DataFrame]]
    markers: dict[str, pd.DataFrame]
    genes: dict[str, pd.DataFrame]  # var: feature_id, feature_name in soma_joinid order
    labels: dict[str, dict[str, str]]  # organism -> obs's label of each cell type and tissue_general term


def _obs(soma_uri: Path, organism: str) -> pd.DataFrame:
    cols = [*KEYS, *(f"{c}_ontology_term_id" for c in CATEGORIES), "cell_type", "tissue_general", *CATEGORIES]
    with soma.DataFrame.open(str(soma_uri / "census_data" / organism / "obs")) as obs:
        df: pd.DataFrame = obs.read(column_names=cols).concat().to_pandas()
    return df


def _var(soma_uri: Path, organism: str) -> pd.DataFrame:
    with soma.DataFrame.open(str(soma_uri / "census_data" / organism / "ms" / "RNA" / "var")) as var:
        df: pd.DataFrame = var.read(column_names=["soma_joinid", "feature_id", "feature_name"]).concat().to_pandas()
    return df.sort_values("soma_joinid").reset_index(drop=True)


def _expression(groups: pd.DataFrame, genes: pd.Series, salt: int) -> pd.DataFrame:
    """One row per group x gene with n_expressing > 0: known, varied values."""
    rows = []
    for gi, (_, g) in enumerate(groups.iterrows()):
        n = int(g["n_cells"])
        for i, feature in enumerate(genes):
            if (i + gi + salt) % 3 == 0:
                continue  # not expressed: no row
            rows.append(
                {
                    **{k: g[k] for k in groups.columns if k != "n_cells"},
                    "feature_id": feature,
                    "n_cells": n,
                    "n_expressing": 1 + (7 * i + 3 * gi + salt) % n,
                    "mean_expression": round(0.25 + (i % 11) / 4 + gi / 50, 6),
                }
            )
    return pd.DataFrame(rows)


def write_gene_expression(
    version_dir: Path, organisms: tuple[str, ...] = ("homo_sapiens", "mus_musculus")
) -> GeneExpressionData:
    """Write ``version_dir/gene_expression/`` for the release in ``version_dir/soma``."""
    out = version_dir / "gene_expression"
    out.mkdir(exist_ok=True)
    data = GeneExpressionData({}, {}, {}, {}, {})
    meta: dict[str, object] = {
        "census_version": version_dir.name,
        "census_schema_version": "1.3.0",
        "organisms": {},
        "method": {"note": "test data"},
        "cell_ontology_version": "v-test",
    }
    for salt, organism in enumerate(organisms):
        obs = _obs(version_dir / "soma", organism)
        var = _var(version_dir / "soma", organism)
        data.genes[organism] = var
        data.labels[organism] = {
            **dict(zip(obs[KEYS[1]].astype(str), obs["cell_type"].astype(str), strict=True)),
            **dict(zip(obs[KEYS[0]].astype(str), obs["tissue_general"].astype(str), strict=True)),
            **{
                k: v
                for c in CATEGORIES
                for k, v in zip(obs[f"{c}_ontology_term_id"].astype(str), obs[c].astype(str), strict=True)
            },
        }
        genes = var["feature_id"].iloc[::2]  # every other gene of var: blocks 0..(len/256), with gaps
        groups = obs.groupby(list(KEYS), observed=True).size().rename("n_cells").reset_index()
        cube = _expression(groups, genes, salt)
        data.cube[organism] = cube
        cube.to_parquet(out / f"{organism}.parquet", index=False)
        data.by_category[organism] = {}
        for cat in CATEGORIES:
            col = f"{cat}_ontology_term_id"
            g = obs.groupby([*KEYS, col], observed=True).size().rename("n_cells").reset_index()
            by = _expression(g, genes.iloc[:40], salt + 1)
            data.by_category[organism][cat] = by
            by.to_parquet(out / f"{organism}_by_{cat}.parquet", index=False)
        markers = []
        for gi, (_, grp) in enumerate(groups.iterrows()):
            for rank in range(1, 6):
                markers.append(
                    {
                        **{k: grp[k] for k in KEYS},
                        "feature_id": genes.iloc[(gi * 5 + rank) % len(genes)],
                        "effect_size": round(3.0 - rank / 2 + gi / 100, 6),
                        "rank": rank,
                    }
                )
        mk = pd.DataFrame(markers)
        data.markers[organism] = mk
        mk.to_parquet(out / f"{organism}_markers.parquet", index=False)
        files = [
            f"{organism}.parquet",
            *(f"{organism}_by_{c}.parquet" for c in CATEGORIES),
            f"{organism}_markers.parquet",
        ]
        meta["organisms"][organism] = {"n_cells": len(obs), "n_groups": len(groups), "files": files}  # type: ignore[index]
    (out / "gene_expression.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return data

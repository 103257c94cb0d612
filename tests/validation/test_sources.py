"""The validator's own source reading and expectations: chunked reads equal a one-shot anndata read for every
layout, the statistics equal numpy's per-row answer for any chunking, and the filters follow the schema."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from census_builder.testing.synthetic import HUMAN, MOUSE, DatasetSpec, write_h5ad
from validation.expected.dataset import PlanTask, plan_dataset
from validation.expected.statistics import row_stats as _row_stats
from validation.expected.tissue import TissueGeneral
from validation.inputs.source import SourceFile

LAYOUTS = [
    DatasetSpec("csr-zeros", n_cells=90, n_genes=40, explicit_zeros=True, seed=1),
    DatasetSpec("csr-dups-raw", n_cells=90, n_genes=40, duplicates=True, use_raw=True, seed=2),
    DatasetSpec("csc-dups", n_cells=90, n_genes=40, layout="csc", duplicates=True, seed=3),
    DatasetSpec("dense-raw", n_cells=90, n_genes=40, layout="dense", use_raw=True, seed=4),
]


def _canonical(m: Any) -> sp.csr_matrix:
    if sp.issparse(m) and m.format in ("csr", "csc"):  # anndata: int32 indices, int64 indptr (scipy cannot mix)
        cls = sp.csr_matrix if m.format == "csr" else sp.csc_matrix
        m = cls((m.data, m.indices.astype(np.int64), m.indptr.astype(np.int64)), shape=m.shape)
    out = sp.csr_matrix(m, dtype=np.float64)
    out.sum_duplicates()
    out.eliminate_zeros()
    return out


@pytest.mark.parametrize("spec", LAYOUTS, ids=[s.dataset_id for s in LAYOUTS])
def test_row_chunks_read_what_anndata_reads(spec: DatasetSpec, tmp_path: Path) -> None:
    path = write_h5ad(tmp_path / f"{spec.dataset_id}.h5ad", spec)
    adata = ad.read_h5ad(path)
    expected = _canonical(adata.raw.X if spec.use_raw else adata.X)
    with SourceFile(path) as src:
        counts = src.counts()
        assert counts.matrix == ("raw/X" if spec.use_raw else "X")
        m = src.matrix(counts.matrix)
        assert m.format == spec.layout
        parts = [m.read_rows(a, b) for a, b in m.row_chunks(150, max_rows=17)]
        assert len(parts) > 2
        got = _canonical(sp.vstack(parts))
        assert (got != expected).nnz == 0
        codes, names = src.codes("obs", "cell_type")
        assert list(names[codes]) == list(adata.obs["cell_type"].astype(str))
        assert list(src.column("obs", "observation_joinid", 10, 20)) == list(adata.obs["observation_joinid"][10:20])
        assert list(src.index(counts.var)) == list((adata.raw.var if spec.use_raw else adata.var).index)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=50), max_size=12), min_size=1, max_size=20))
def test_row_statistics_match_numpy(rows: list[list[int]]) -> None:
    width = 12
    dense = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        dense[i, : len(r)] = r
    m = _canonical(sp.csr_matrix(dense))
    stats = _row_stats(m.indptr.astype(np.int64), m.data)
    for i in range(len(rows)):
        nz = dense[i][dense[i] > 0]
        assert stats.nnz[i] == nz.size
        assert stats.raw_sum[i] == pytest.approx(nz.sum())
        assert stats.raw_mean_nnz[i] == pytest.approx(nz.mean() if nz.size else 0.0)
        assert stats.raw_variance_nnz[i] == pytest.approx(nz.var(ddof=1) if nz.size > 1 else 0.0)


def test_filters_follow_the_schema(tmp_path: Path) -> None:
    mixed_cells = plan_dataset(
        PlanTask(
            "m",
            str(
                write_h5ad(
                    tmp_path / "m.h5ad",
                    DatasetSpec(
                        "m",
                        n_cells=40,
                        cell_organisms=(HUMAN, MOUSE),
                        tissue_types=("tissue", "organoid"),
                        assays=("EFO:0009922", "EFO:0030059"),
                    ),
                )
            ),
            "1.3.0",
            1000,
        )
    )
    adata = ad.read_h5ad(tmp_path / "m.h5ad")
    obs = adata.obs
    keep = (
        (obs["organism_ontology_term_id"] == HUMAN)
        & (obs["tissue_type"] == "tissue")
        & (obs["assay_ontology_term_id"] == "EFO:0009922")
    )
    assert mixed_cells.organism == "homo_sapiens" and mixed_cells.n_cells == int(keep.sum()) > 0
    assert mixed_cells.gene_ids == [
        g for g, b in zip(adata.var.index, adata.var["feature_biotype"], strict=True) if b == "gene"
    ]
    assert mixed_cells.cell_counts[("all", "na", "na")] == [int(keep.sum()), int(obs["is_primary_data"][keep].sum())]

    mixed_genes = plan_dataset(
        PlanTask(
            "g",
            str(
                write_h5ad(
                    tmp_path / "g.h5ad",
                    DatasetSpec("g", n_cells=20, cell_organisms=(HUMAN, MOUSE), gene_organisms=(HUMAN, MOUSE)),
                )
            ),
            "1.3.0",
            1000,
        )
    )
    assert not mixed_genes.contributes and "several organisms" in mixed_genes.exclusion

    old = plan_dataset(
        PlanTask(
            "o",
            str(write_h5ad(tmp_path / "o.h5ad", DatasetSpec("o", n_cells=20, schema_version="3.1.0"))),
            "1.3.0",
            1000,
        )
    )
    assert not old.readable and "3.1.0" in old.problems[0]


def test_unknown_tissue_maps_to_itself() -> None:
    mapper = TissueGeneral()
    assert mapper.lookup("UBERON:0002082", "cardiac ventricle") == ("UBERON:0000948", "heart", True)
    assert mapper.lookup("UBERON:9999999", "made-up tissue") == ("UBERON:9999999", "made-up tissue", False)


def test_plans_arriving_in_the_driver_share_their_gene_strings(tmp_path: Path) -> None:
    """Two datasets of the same genes, each plan unpickled as the driver receives it: after share_strings the
    gene ids and names are the same objects (the driver holds every plan; see DatasetPlan.share_strings)."""
    plans = []
    for name in ("a", "b"):
        path = write_h5ad(tmp_path / f"{name}.h5ad", DatasetSpec(name, n_cells=30, n_genes=25, seed=1))
        plans.append(pickle.loads(pickle.dumps(plan_dataset(PlanTask(name, str(path), "1.3.0", 1_000)))))
    a, b = plans
    assert a.gene_ids == b.gene_ids and len(a.gene_ids) > 0
    assert not any(x is y for x, y in zip(a.gene_ids, b.gene_ids, strict=True))  # as unpickled: separate strings
    a.share_strings()
    b.share_strings()
    assert all(x is y for x, y in zip(a.gene_ids, b.gene_ids, strict=True))
    assert all(x is y for x, y in zip(a.gene_names, b.gene_names, strict=True))
    assert a.gene_lengths.dtype == np.int64 and a.gene_lengths.shape == (len(a.gene_ids),)

"""End to end: the example release holds exactly what the schema and the sources say."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp
import tiledbsoma as soma

from census_builder.census.schema import load_schema
from census_builder.census.stats import F32_TINY
from census_builder.soma.platform import X_NORMALIZED_KEEP_BITS
from tests.conftest import BuiltRelease
from tests.reference import ExpectedDataset, ExpectedExperiment, expected_release

SCHEMA = load_schema()
Expected = tuple[list[ExpectedDataset], dict[str, ExpectedExperiment]]


def _open(uri: str) -> Any:
    """The release's root collection (typed Any: tiledbsoma types a collection's members as SOMAObject)."""
    return soma.open(uri)


@pytest.fixture(scope="module")
def expected(example_release: BuiltRelease) -> Expected:
    return expected_release(example_release.manifest)


def _read_matrix(arr: soma.SparseNDArray, shape: tuple[int, int]) -> sp.coo_matrix:
    t = arr.read().tables().concat()
    return sp.coo_matrix(
        (t["soma_data"].to_numpy(), (t["soma_dim_0"].to_numpy(), t["soma_dim_1"].to_numpy())), shape=shape
    )


def test_structure_and_encodings(example_release: BuiltRelease) -> None:
    with _open(example_release.soma_uri) as census:
        assert set(census) == {"census_info", "census_data"}
        assert set(census["census_info"]) == {"summary", "datasets", "summary_cell_counts"}
        assert set(census["census_data"]) == {"homo_sapiens", "mus_musculus"}
        for org in ("homo_sapiens", "mus_musculus"):
            exp = census["census_data"][org]
            assert set(exp.ms) == {"RNA"}
            rna = exp.ms["RNA"]
            assert set(rna.X) == {"raw", "normalized"}
            obs_schema = exp.obs.schema
            for c in SCHEMA.obs:  # string columns are enumerations (issue 17) but observation_joinid
                stored = obs_schema.field(c.name).type
                if pa.types.is_dictionary(stored):
                    assert c.name != "observation_joinid" and pa.types.is_large_string(c.arrow_type), c.name
                    stored = stored.value_type
                assert stored == c.arrow_type, c.name
            assert [f.name for f in obs_schema] == [c.name for c in SCHEMA.obs]
            assert [f.name for f in rna.var.schema] == [c.name for c in SCHEMA.var]
            for layer in ("raw", "normalized"):
                assert str(rna.X[layer].schema.field("soma_data").type) == "float"
                assert str(rna.X[layer].schema.field("soma_dim_0").type) == "int64"
            assert str(rna["feature_dataset_presence_matrix"].schema.field("soma_data").type) == "bool"
        md = census.metadata
        assert md["census_schema_version"] == "1.3.0"
        assert md["dataset_schema_version"] == "4.0.0"
        assert len(md["manifest_sha256"]) == 64
        assert md["tiledbsoma_version"] == soma.__version__


def test_obs_var_and_matrices_match_sources(example_release: BuiltRelease, expected: Expected) -> None:
    _, experiments = expected
    with _open(example_release.soma_uri) as census:
        for org, exp in experiments.items():
            e = census["census_data"][org]
            obs = e.obs.read().concat().to_pandas()
            var = e.ms["RNA"].var.read().concat().to_pandas()
            n, m = len(exp.obs), len(exp.var)
            assert obs.soma_joinid.tolist() == list(range(n))
            assert var.soma_joinid.tolist() == list(range(m))
            assert var.feature_id.tolist() == exp.var.feature_id.tolist()
            assert var.feature_name.tolist() == exp.var.feature_name.tolist()
            assert var.feature_length.tolist() == exp.var.feature_length.astype(int).tolist()
            assert var.nnz.tolist() == exp.var.nnz.tolist()
            assert var.n_measured_obs.tolist() == exp.var.n_measured_obs.tolist()
            assert obs.observation_joinid.tolist() == exp.obs.observation_joinid.astype(str).tolist()
            assert obs.dataset_id.tolist() == exp.obs.dataset_id.tolist()
            for c in SCHEMA.obs_source_columns:
                assert obs[c].tolist() == exp.obs[c].astype(bool if c == "is_primary_data" else str).tolist(), c
            assert obs.nnz.tolist() == exp.obs.nnz.tolist()
            assert obs.n_measured_vars.tolist() == exp.obs.n_measured_vars.tolist()
            for c in ("raw_sum", "raw_mean_nnz", "raw_variance_nnz"):
                assert obs[c].dtype == np.float32
                np.testing.assert_allclose(obs[c], exp.obs[c].astype(np.float32), rtol=1e-6, err_msg=c)

            raw = _read_matrix(e.ms["RNA"].X["raw"], (n, m))
            assert raw.data.dtype == np.float32
            assert (raw.data != 0).all(), "explicit zeros stored"
            np.testing.assert_array_equal(raw.toarray(), exp.raw)
            norm = _read_matrix(e.ms["RNA"].X["normalized"], (n, m))
            assert (norm.data > 0).all()
            assert set(zip(norm.row, norm.col, strict=True)) == set(zip(raw.row, raw.col, strict=True))
            # stored with X_NORMALIZED_KEEP_BITS mantissa bits: within half their last unit (+ float32's own rounding)
            np.testing.assert_allclose(norm.toarray(), exp.normalized, rtol=2.0**-16 + 2.0**-24, atol=0)
            dropped = np.uint32((1 << (23 - X_NORMALIZED_KEEP_BITS)) - 1)
            assert not (norm.data.view(np.uint32) & dropped)[norm.data > F32_TINY].any(), "unrounded normalized values"


def test_presence_matrix(example_release: BuiltRelease, expected: Expected) -> None:
    _, experiments = expected
    with _open(example_release.soma_uri) as census:
        datasets = census["census_info"]["datasets"].read().concat().to_pandas()
        joinid = dict(zip(datasets.dataset_id, datasets.soma_joinid, strict=True))
        for org, exp in experiments.items():
            pm = census["census_data"][org].ms["RNA"]["feature_dataset_presence_matrix"]
            assert pm.shape == (len(datasets), len(exp.var))
            t = pm.read().tables().concat().to_pandas()
            assert t.soma_data.all(), "explicit False stored"
            got = {(int(r), int(c)) for r, c in zip(t.soma_dim_0, t.soma_dim_1, strict=True)}
            want = {(joinid[ds], int(j)) for ds, p in exp.presence.items() for j in np.nonzero(p)[0]}
            assert got == want


def test_census_info_tables(example_release: BuiltRelease, expected: Expected) -> None:
    datasets_exp, experiments = expected
    with _open(example_release.soma_uri) as census:
        info = census["census_info"]
        datasets = info["datasets"].read().concat().to_pandas()
        contributing = [d for d in datasets_exp if d.organism is not None]
        assert datasets.dataset_id.tolist() == [d.dataset_id for d in contributing]
        assert datasets.soma_joinid.tolist() == list(range(len(contributing)))
        assert datasets.dataset_total_cell_count.tolist() == [len(d.obs) for d in contributing]
        assert datasets.dataset_h5ad_path.tolist() == [f"h5ads/{d.dataset_id}.h5ad" for d in contributing]
        for p in datasets.dataset_h5ad_path:
            assert (example_release.paths.root / p).is_file()
        shipped = sorted(p.name for p in example_release.paths.h5ads.iterdir())
        assert shipped == sorted(f"{d.dataset_id}.h5ad" for d in contributing)  # only the release's datasets
        for p in example_release.paths.h5ads.iterdir():  # same filesystem as the corpus: hard links, no copies
            assert p.stat().st_ino == (example_release.corpus / p.name).stat().st_ino
        assert datasets.dataset_title.str.startswith("Synthetic dataset").all()  # uns["title"] fallback
        assert datasets.citation.str.startswith("Publication:").all()
        assert datasets.dataset_version_id.tolist() == [f"{d.dataset_id}-v1" for d in contributing]

        summary = dict(info["summary"].read().concat().to_pandas()[["label", "value"]].itertuples(index=False))
        all_obs = pd.concat([e.obs for e in experiments.values()])
        assert summary["census_schema_version"] == "1.3.0"
        assert summary["dataset_schema_version"] == "4.0.0"
        assert summary["census_build_date"] == "2026-11-22"
        assert summary["total_cell_count"] == str(len(all_obs))
        assert summary["unique_cell_count"] == str(int(all_obs.is_primary_data.sum()))
        for org, exp in experiments.items():
            donors = exp.obs[["dataset_id", "donor_id"]].astype(str).drop_duplicates()
            assert summary[f"number_donors_{org}"] == str(len(donors))

        counts = info["summary_cell_counts"].read().concat().to_pandas()
        labels = {"homo_sapiens": "Homo sapiens", "mus_musculus": "Mus musculus"}
        for org, exp in experiments.items():
            mine = counts[counts.organism == labels[org]]
            for cat in SCHEMA.summary_categories:
                rows = mine[mine.category == cat.name]
                if cat.name == "all":
                    assert rows[["ontology_term_id", "label"]].values.tolist() == [["na", "na"]]
                    assert rows.total_cell_count.tolist() == [len(exp.obs)]
                    continue
                term = exp.obs[cat.ontology_column].astype(str) if cat.ontology_column else "na"
                frame = pd.DataFrame(
                    {"t": term, "l": exp.obs[cat.label_column].astype(str), "p": exp.obs.is_primary_data.astype(int)}
                )
                want = frame.groupby(["t", "l"]).p.agg(["size", "sum"])
                got = rows.set_index(["ontology_term_id", "label"])[["total_cell_count", "unique_cell_count"]]
                assert len(got) == len(want), cat.name
                for key, r in want.iterrows():
                    assert got.loc[key].tolist() == [r["size"], r["sum"]], (cat.name, key)
        st = counts[counts.category == "suspension_type"]
        assert (st.ontology_term_id == "na").all() and len(st) >= 2  # one row per value, all with id "na"
        assert counts.soma_joinid.tolist() == list(range(len(counts)))


def test_filters_in_release(example_release: BuiltRelease) -> None:
    with _open(example_release.soma_uri) as census:
        datasets = census["census_info"]["datasets"].read().concat().to_pandas()
        assert "mixed-cells-mixed-genes" not in set(datasets.dataset_id)  # genes from both organisms
        assert "human-all-filtered" not in set(datasets.dataset_id)  # only an excluded assay
        for org in ("homo_sapiens", "mus_musculus"):
            obs = census["census_data"][org].obs.read().concat().to_pandas()
            assert set(obs.tissue_type) == {"tissue"}
            assert set(obs.assay_ontology_term_id) <= set(SCHEMA.included_assays)
            assert not obs.is_primary_data.all()  # non-primary cells are kept too
            var = census["census_data"][org].ms["RNA"].var.read().concat().to_pandas()
            assert not var.feature_id.str.startswith("ERCC").any()
            prefix = "ENSG" if org == "homo_sapiens" else "ENSMUSG"
            assert var.feature_id.str.startswith(prefix).all()
        human = census["census_data"]["homo_sapiens"].obs.read().concat().to_pandas()
        mixed = human[human.dataset_id == "mixed-cells-human-genes"]
        assert len(mixed) == 120  # only the human half of the 240 cells


def test_tissue_general(example_release: BuiltRelease) -> None:
    with _open(example_release.soma_uri) as census:
        obs = (
            census["census_data"]["homo_sapiens"]
            .obs.read(column_names=["tissue_ontology_term_id", "tissue_general_ontology_term_id", "tissue_general"])
            .concat()
            .to_pandas()
            .drop_duplicates()
        )
    got = {r.tissue_ontology_term_id: (r.tissue_general_ontology_term_id, r.tissue_general) for r in obs.itertuples()}
    assert got["UBERON:0002082"] == ("UBERON:0000948", "heart")  # cardiac ventricle -> heart
    assert got["UBERON:0002048"] == ("UBERON:0002048", "lung")


def test_fragments_after_finalize(example_release: BuiltRelease) -> None:
    """X keeps one fragment per chunk, over disjoint row ranges, with fragment metadata and commits
    consolidated; every other array is merged into at most one fragment."""
    import tiledb

    from census_builder.soma.consolidation import array_uris

    results = list(example_release.paths.chunks.rglob("*.npz"))
    assert results
    chunks = sum(int(np.load(p)["nnz"].sum()) > 0 for p in results)  # a chunk without values writes nothing
    x_fragments = 0
    for uri in array_uris(example_release.paths.soma):
        frags = tiledb.array_fragments(uri)
        commits = {p.suffix for p in Path(uri, "__commits").iterdir()}
        assert commits <= {".con"}, uri
        if "/X/" not in uri:
            assert len(frags) <= 1, uri
            continue
        assert len(list(Path(uri, "__fragment_meta").iterdir())) == 1, uri
        rows = sorted(f[0] for f in frags.nonempty_domain)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(rows)), uri
        x_fragments += len(frags)
    assert x_fragments == 2 * chunks  # X["raw"] and X["normalized"]


def test_build_report(example_release: BuiltRelease) -> None:
    import json

    report = json.loads(example_release.paths.report.read_text())
    assert report["status"] == "complete"
    assert report["stages_done"] == [
        "stage_and_inspect",
        "plan_axes",
        "write_matrices",
        "write_tables",
        "finalize_release",
    ]
    assert not (example_release.paths.state / "soma.partial").exists()

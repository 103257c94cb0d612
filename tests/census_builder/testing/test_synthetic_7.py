"""The synthetic dataset schema 7.0.0 generator writes what the 7.0.0 text requires."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest

from census_builder.errors import UsageError
from census_builder.testing import synthetic_7 as s7
from census_builder.testing.synthetic_7 import DatasetSpec7, example_specs_7, write_corpus_7, write_h5ad_7

CURATOR_OBS = (
    "assay_ontology_term_id",
    "cell_type_ontology_term_id",
    "development_stage_ontology_term_id",
    "disease_ontology_term_id",
    "donor_id",
    "is_primary_data",
    "self_reported_ethnicity_ontology_term_id",
    "sex_ontology_term_id",
    "suspension_type",
    "tissue_ontology_term_id",
    "tissue_type",
)
LABEL_OBS = ("assay", "cell_type", "development_stage", "disease", "self_reported_ethnicity", "sex", "tissue")
OBS_COLUMNS = {*CURATOR_OBS, *LABEL_OBS, "observation_joinid"}
VAR_COLUMNS = {"feature_is_filtered", "feature_name", "feature_reference", "feature_biotype", "feature_length"}
VAR_COLUMNS |= {"feature_type"}
DEPRECATED_OBS = {"organism", "organism_ontology_term_id", "ethnicity", "ethnicity_ontology_term_id"}
DEPRECATED_UNS = {"X_normalization", "default_field", "layer_descriptions", "tags", "version", "contributors"}
DEPRECATED_UNS |= {"preprint_doi", "project_description", "project_links", "project_name", "publication_doi"}
GENE_PREFIX = {
    "NCBITaxon:9606": "ENSG",
    "NCBITaxon:10090": "ENSMUSG",
    "NCBITaxon:9483": "ENSCJAG",
    "NCBITaxon:9544": "ENSMMUG",
    "NCBITaxon:9598": "ENSPTRG",
}
CITATION = re.compile(
    r"(Publication: https://doi\.org/\S+ )?Dataset Version: https://datasets\.cellxgene\.cziscience\.com/\S+\.h5ad "
    r"curated and distributed by CZ CELLxGENE Discover in Collection: https://cellxgene\.cziscience\.com/collections/\S+"
)
SPECS = {s.dataset_id: s for s in example_specs_7()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest = write_corpus_7(tmp_path_factory.mktemp("corpus7"), example_specs_7())
    return manifest.parent


def _read(corpus: Path, dataset_id: str) -> anndata.AnnData:
    return anndata.read_h5ad(corpus / f"{dataset_id}.h5ad", backed="r")


def _is_str_categorical(col: pd.Series[Any]) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) and all(isinstance(c, str) for c in col.cat.categories)


@pytest.mark.parametrize("dataset_id", sorted(SPECS))
def test_uns_has_the_7_0_0_keys_and_the_organism(corpus: Path, dataset_id: str) -> None:
    spec = SPECS[dataset_id]
    uns = dict(_read(corpus, dataset_id).uns)
    assert uns["schema_version"] == "7.0.0"
    assert uns["schema_reference"] == (
        "https://github.com/chanzuckerberg/single-cell-curation/blob/main/schema/7.0.0/schema.md"
    )
    assert uns["organism_ontology_term_id"] == spec.organism
    assert uns["organism"] == s7.ORGANISMS[spec.organism][0]
    assert isinstance(uns["title"], str) and uns["title"]
    assert CITATION.fullmatch(uns["citation"]), uns["citation"]
    assert uns["citation"].startswith("Publication: ") == bool(spec.doi)
    if spec.batch_condition:
        assert list(uns["batch_condition"]) == list(spec.batch_condition)
    else:
        assert "batch_condition" not in uns  # optional: absent rather than empty
    assert not DEPRECATED_UNS & set(uns)


@pytest.mark.parametrize("dataset_id", sorted(SPECS))
def test_obs_has_exactly_the_7_0_0_columns_with_their_dtypes(corpus: Path, dataset_id: str) -> None:
    obs = _read(corpus, dataset_id).obs
    assert set(obs.columns) == OBS_COLUMNS
    assert not DEPRECATED_OBS & set(obs.columns)  # the organism lives in uns since 6.0.0
    for c in OBS_COLUMNS - {"is_primary_data", "observation_joinid"}:
        assert _is_str_categorical(obs[c]), c
    assert obs["is_primary_data"].dtype == np.bool_
    assert obs["observation_joinid"].map(type).eq(str).all()
    assert obs["observation_joinid"].is_unique and obs.index.is_unique
    assert set(obs["tissue_type"]) <= {"tissue", "organoid", "primary cell culture", "cell line"}
    assert set(obs["suspension_type"]) <= {"cell", "nucleus", "na"}


@pytest.mark.parametrize("dataset_id", sorted(SPECS))
def test_var_has_the_7_0_0_columns_and_raw_var_matches(corpus: Path, dataset_id: str) -> None:
    spec = SPECS[dataset_id]
    ad = _read(corpus, dataset_id)
    var = ad.var
    assert set(var.columns) == VAR_COLUMNS
    assert var["feature_is_filtered"].dtype == np.bool_ and not var["feature_is_filtered"].any()
    # as cellxgene-schema's write_labels stores it: a categorical of int64 lengths
    assert isinstance(var["feature_length"].dtype, pd.CategoricalDtype)
    assert var["feature_length"].cat.categories.dtype == np.int64
    assert (var["feature_length"].astype(np.int64) > 0).all()
    for c in ("feature_name", "feature_reference", "feature_biotype", "feature_type"):
        assert _is_str_categorical(var[c]), c
    assert var.index.is_unique
    if spec.use_raw:
        assert ad.raw is not None
        assert list(ad.raw.var.index) == list(var.index)
        assert set(ad.raw.var.columns) == VAR_COLUMNS - {"feature_is_filtered"}
    else:
        assert ad.raw is None


def test_the_example_corpus_covers_the_five_census_2_4_0_organisms(corpus: Path) -> None:
    organisms = {_read(corpus, d).uns["organism_ontology_term_id"] for d in SPECS}
    assert organisms == {"NCBITaxon:9606", "NCBITaxon:10090", "NCBITaxon:9483", "NCBITaxon:9544", "NCBITaxon:9598"}


@pytest.mark.parametrize("dataset_id", sorted(SPECS))
def test_feature_reference_is_the_organism_or_sars_cov_2_or_ercc(corpus: Path, dataset_id: str) -> None:
    spec = SPECS[dataset_id]
    var = _read(corpus, dataset_id).var
    by_ref = var.groupby("feature_reference", observed=True)
    assert set(by_ref.groups) <= {spec.organism, "NCBITaxon:2697049", "NCBITaxon:32630"}
    genes = var[var["feature_reference"] == spec.organism]
    assert len(genes) == spec.n_genes
    assert genes.index.str.fullmatch(GENE_PREFIX[spec.organism] + r"\d{11}").all()
    assert (genes["feature_biotype"] == "gene").all()
    assert set(genes["feature_type"]) <= {"protein_coding", "lncRNA", "miRNA", "snRNA"}
    sars = var[var["feature_reference"] == "NCBITaxon:2697049"]
    assert len(sars) == spec.n_sars_cov_2
    assert sars.index.str.fullmatch(r"ENSSASG\d{11}").all() and (sars["feature_biotype"] == "gene").all()
    ercc = var[var["feature_reference"] == "NCBITaxon:32630"]
    assert len(ercc) == spec.n_spike_ins
    assert ercc.index.str.fullmatch(r"ERCC-\d{5}").all()
    assert (ercc["feature_biotype"] == "spike-in").all() and (ercc["feature_type"] == "synthetic").all()
    assert list(ercc["feature_name"]) == [f"{i} (spike-in control)" for i in ercc.index]


def test_the_example_corpus_has_sars_cov_2_and_ercc_features_and_every_tissue_type(corpus: Path) -> None:
    refs: set[str] = set()
    tissue_types: set[str] = set()
    for d in SPECS:
        ad = _read(corpus, d)
        refs |= set(ad.var["feature_reference"])
        tissue_types |= set(ad.obs["tissue_type"])
    assert {"NCBITaxon:2697049", "NCBITaxon:32630"} <= refs
    assert tissue_types == {"tissue", "organoid", "primary cell culture", "cell line"}


def test_cell_lines_and_primary_cell_cultures_follow_7_0_0(corpus: Path) -> None:
    obs = _read(corpus, "human-smartseq-7").obs
    line = obs[obs["tissue_type"] == "cell line"]
    assert len(line) == 75
    assert set(line["tissue_ontology_term_id"]) <= {"CVCL_0030", "CVCL_0063"}
    for c in ("donor_id", "development_stage_ontology_term_id", "development_stage", "sex_ontology_term_id"):
        assert set(line[c]) == {"na"}, c
    assert set(line["self_reported_ethnicity_ontology_term_id"]) == {"na"}
    assert "na" not in set(obs.loc[obs["tissue_type"] == "tissue", "donor_id"])
    culture = _read(corpus, "mouse-blood-raw-7").obs
    culture = culture[culture["tissue_type"] == "primary cell culture"]
    assert len(culture) == 200
    assert set(culture["tissue_ontology_term_id"]) <= {"CL:0000057", "CL:0000127"}
    mouse = _read(corpus, "mouse-brain-csc-7").obs
    assert set(mouse["self_reported_ethnicity_ontology_term_id"]) == {"na"}  # not human


def test_census_excluded_rows_follow_tissue_type_and_assay(corpus: Path) -> None:
    kept = {d: int((~s7.census_excluded_rows(_read(corpus, d).obs)).sum()) for d in SPECS}
    assert kept["human-all-filtered-7"] == 0  # MERFISH is not in Census 2.4.0's allowlist
    assert kept["human-smartseq-7"] == 75  # cell lines are not kept
    assert kept["mouse-blood-raw-7"] == 200  # neither are primary cell cultures
    assert kept["marmoset-brain-7"] == 200  # organoids are


@pytest.mark.parametrize("dataset_id", sorted(SPECS))
def test_layouts_are_readable_by_anndata_and_h5py(corpus: Path, dataset_id: str) -> None:
    spec = SPECS[dataset_id]
    path = corpus / f"{dataset_id}.h5ad"
    encoding = {"csr": "csr_matrix", "csc": "csc_matrix", "dense": "array"}[spec.layout]
    with h5py.File(path, "r") as f:
        counts = f["raw/X"] if spec.use_raw else f["X"]
        assert counts.attrs["encoding-type"] == encoding
        assert f["X"].attrs["encoding-type"] == encoding
        assert f["uns/schema_version"][()].decode() == "7.0.0"
        assert "raw" in f if spec.use_raw else "raw" not in f
    ad = anndata.read_h5ad(path, backed="r")
    assert ad.shape == (spec.n_cells, spec.n_genes + spec.n_sars_cov_2 + spec.n_spike_ins)
    full = anndata.read_h5ad(path)
    raw = full.raw.X if spec.use_raw and full.raw is not None else full.X
    values = np.asarray(raw.data if hasattr(raw, "data") and not isinstance(raw, np.ndarray) else raw).ravel()
    assert raw.dtype == np.float32
    assert (values >= 0).all() and (values == np.round(values)).all()  # counts: non-negative integers
    assert values.max() > 0
    if spec.use_raw:
        x = full.X
        normalized = np.asarray(x.data if not isinstance(x, np.ndarray) else x).ravel()
        assert not np.array_equal(normalized, values)  # X is author-normalized, not the counts


def _ids_and_labels(obs: pd.DataFrame, key: str) -> set[tuple[str, str]]:
    pairs = obs[[f"{key}_ontology_term_id", key]].drop_duplicates().astype(str).itertuples(index=False)
    out: set[tuple[str, str]] = set()
    for ids, labels in pairs:
        out |= set(zip(ids.split(" || "), labels.split(" || "), strict=True))
    return out - {("na", "na"), ("unknown", "unknown")}


def test_every_term_is_known_to_the_ontology_guide_with_its_label(corpus: Path) -> None:
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    parser = OntologyParser(schema_version="7.0.0")
    seen: dict[str, set[tuple[str, str]]] = {k: set() for k in LABEL_OBS}
    for d in SPECS:
        obs = _read(corpus, d).obs
        for key in LABEL_OBS:
            seen[key] |= _ids_and_labels(obs, key)
    for key, pairs in seen.items():
        assert pairs, key
        for term, label in sorted(pairs):
            assert not parser.is_term_deprecated(term), (key, term)
            assert parser.get_term_label(term) == label, (key, term)
    for term, _ in seen["self_reported_ethnicity"]:  # 7.0.0: descendants of ethnicity or geography categories
        assert {"HANCESTRO:0601", "HANCESTRO:0602"} & set(parser.get_term_ancestors(term)), term
    for term, _ in seen["development_stage"]:
        root = {"HsapDv": "HsapDv:0000001", "MmusDv": "MmusDv:0000001", "UBERON": "UBERON:0000105"}
        assert root[term.split(":")[0]] in parser.get_term_ancestors(term), term
    tissues = {t for t, _ in seen["tissue"]}
    assert {t.split(":")[0].split("_")[0] for t in tissues} == {"UBERON", "CL", "CVCL"}


@pytest.mark.slow
def test_organism_labels_are_the_ontology_guides() -> None:
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    parser = OntologyParser(schema_version="7.0.0")  # NCBITaxon alone takes ~25 s to load
    for term, (label, _) in s7.ORGANISMS.items():
        assert parser.get_term_label(term) == label


def _arrays(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset) and name.split("/", maxsplit=1)[0] in {"obs", "var", "X", "raw", "uns"}:
                value = np.asarray(obj[()])
                if value.dtype == object:  # variable-length strings: their bytes, not the object pointers
                    out[name] = b"\0".join(v if isinstance(v, bytes) else str(v).encode() for v in value.ravel())
                else:
                    out[name] = value.tobytes()

        f.visititems(visit)
    return out


def test_same_seed_same_bytes_other_seed_other_values(tmp_path: Path) -> None:
    spec = DatasetSpec7("det", organism="NCBITaxon:9483", n_cells=80, n_genes=50, n_sars_cov_2=2, use_raw=True)
    a = _arrays(write_h5ad_7(tmp_path / "a.h5ad", spec))
    b = _arrays(write_h5ad_7(tmp_path / "b.h5ad", spec))
    c = _arrays(write_h5ad_7(tmp_path / "c.h5ad", spec.with_(seed=1)))
    assert a == b
    assert {"obs/observation_joinid", "var/_index", "raw/X/data", "X/data"} <= set(a)
    assert a["raw/X/data"] != c["raw/X/data"] and a["var/_index"] != c["var/_index"]


@pytest.mark.parametrize("dtype", ["int64", "uint64", "uint32"])
def test_feature_length_dtype_writes_a_plain_column_of_that_type(tmp_path: Path, dtype: str) -> None:
    spec = DatasetSpec7("fl", n_cells=10, n_genes=20, feature_length_dtype=dtype)  # type: ignore[arg-type]
    categorical = write_h5ad_7(tmp_path / "c.h5ad", spec.with_(feature_length_dtype="category"))
    plain = write_h5ad_7(tmp_path / "p.h5ad", spec)
    with h5py.File(plain, "r") as f, h5py.File(categorical, "r") as g:
        assert f["var/feature_length"].dtype == np.dtype(dtype)
        cat = g["var/feature_length"]
        assert cat.attrs["encoding-type"] == "categorical"
        values = cat["categories"][...][cat["codes"][...]]
        assert f["var/feature_length"][...].tolist() == values.tolist()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"organism": "NCBITaxon:7955"}, "organism 'NCBITaxon:7955' is not one of NCBITaxon:9606, "),
        ({"assays": ("EFO:0000000",)}, "assays ['EFO:0000000'] are not in synthetic_7.ASSAYS; add them there"),
        ({"tissue_types": ("cell culture",)}, "tissue_types ['cell culture'] are not among tissue, organoid, "),
        (
            {"organism": "NCBITaxon:9598", "tissue_types": ("cell line",)},
            "tissue_type 'cell line' needs a cell line of NCBITaxon:9598 in CELL_LINES",
        ),
        ({"n_sars_cov_2": 12}, "n_sars_cov_2 is 12, must be 0..11"),
        ({"feature_length_dtype": "float32"}, "feature_length_dtype 'float32' is not one of category, int64, "),
    ],
)
def test_invalid_specs_are_refused_with_the_field_named(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as err:
        write_h5ad_7(tmp_path / "x.h5ad", DatasetSpec7("bad").with_(**changes))
    assert str(err.value).startswith("synthetic 7.0.0 dataset 'bad': ")
    assert message in str(err.value)
    assert not (tmp_path / "x.h5ad").exists()


def test_the_example_corpus_plants_the_matrix_edge_cases(corpus: Path) -> None:
    with h5py.File(corpus / "human-lung-10x-7.h5ad", "r") as f:
        assert (f["X/data"][...] == 0).any()  # explicitly stored zeros
        ptr = f["X/indptr"][...]
        assert ptr[1] == ptr[0]  # the first cell has no counts at all
    with h5py.File(corpus / "mouse-blood-raw-7.h5ad", "r") as f:
        ptr, idx = f["raw/X/indptr"][...], f["raw/X/indices"][...]
        rows = [idx[a:b] for a, b in itertools.pairwise(ptr)]
        assert any(len(set(r)) < len(r) for r in rows)  # duplicate entries (non-canonical CSR)
    ad = anndata.read_h5ad(corpus / "human-smartseq-7.h5ad")
    assert ad.raw is not None
    counts = np.asarray(ad.raw.X)
    excluded = s7.census_excluded_rows(ad.obs)
    only_excluded = (counts[excluded] > 0).any(axis=0) & ~(counts[~excluded] > 0).any(axis=0)
    assert only_excluded.sum() == 1  # one gene seen only in cells a Census build drops

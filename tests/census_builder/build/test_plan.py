"""Preflight and the Census filters, one rule at a time, on tiny synthetic H5ADs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from anndata.io import read_elem, write_elem

from census_builder.build.inspect import DatasetPlan, PlanFiles, inspect_dataset
from census_builder.census.schema import load_schema
from census_builder.errors import InputError
from census_builder.testing.synthetic import HUMAN, MOUSE, DatasetSpec, Layout, write_h5ad

SCHEMA = load_schema()


def _plan(
    tmp_path: Path, spec: DatasetSpec, edit: Callable[[h5py.File], None] | None = None, chunk: int = 1000
) -> tuple[DatasetPlan, PlanFiles]:
    path = write_h5ad(tmp_path / f"{spec.dataset_id}.h5ad", spec)
    if edit is not None:
        with h5py.File(path, "r+") as f:
            edit(f)
    plan = inspect_dataset(spec.dataset_id, str(path), SCHEMA, chunk, str(tmp_path / "plan"))
    return plan, PlanFiles(tmp_path / "plan", spec.dataset_id)


def _obs(files: PlanFiles) -> pd.DataFrame:
    return pd.read_parquet(files.obs)


def test_single_species_keeps_tissue_cells_of_allowed_assays(tmp_path: Path) -> None:
    spec = DatasetSpec("d", n_cells=40, assays=("EFO:0009922", "EFO:0030059"), tissue_types=("tissue", "organoid"))
    plan, files = _plan(tmp_path, spec)
    obs = _obs(files)
    assert plan.organism == "homo_sapiens"
    assert set(obs.tissue_type) == {"tissue"}
    assert set(obs.assay_ontology_term_id) == {"EFO:0009922"}
    assert plan.n_cells == len(obs) == 10  # half organoid, half multiome: 40 / 4
    assert plan.n_primary == int(obs.is_primary_data.sum())


@pytest.mark.parametrize(
    ("cells", "genes", "organism", "n_cells"),
    [
        ((HUMAN, MOUSE), (HUMAN,), "homo_sapiens", 10),
        ((HUMAN, MOUSE), (MOUSE,), "mus_musculus", 10),
        ((HUMAN, MOUSE), (HUMAN, MOUSE), None, 0),
        ((MOUSE,), (HUMAN,), None, 0),
    ],
)
def test_multi_species_rules(
    tmp_path: Path, cells: tuple[str, ...], genes: tuple[str, ...], organism: str | None, n_cells: int
) -> None:
    plan, files = _plan(tmp_path, DatasetSpec("m", n_cells=20, cell_organisms=cells, gene_organisms=genes))
    assert plan.organism == organism
    assert plan.n_cells == n_cells
    if organism is None:
        assert plan.excluded_reason
    else:
        genes_df = pd.read_parquet(files.genes)
        prefix = "ENSG" if organism == "homo_sapiens" else "ENSMUSG"
        assert genes_df.feature_id.str.startswith(prefix).all()


def test_only_gene_biotype_features(tmp_path: Path) -> None:
    plan, files = _plan(tmp_path, DatasetSpec("g", n_cells=10, n_genes=20, n_spike_ins=4))
    genes = pd.read_parquet(files.genes)
    assert len(genes) == 20 and plan.n_genes == 20
    assert not genes.feature_id.str.startswith("ERCC").any()


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("UBERON:0002082", ("UBERON:0000948", "heart")),
        ("UBERON:0000178", ("UBERON:0000178", "blood")),
        ("UBERON:9999999", ("UBERON:9999999", "mystery tissue")),
    ],
)
def test_tissue_general(tmp_path: Path, term: str, expected: tuple[str, str]) -> None:
    plan, files = _plan(tmp_path, DatasetSpec("t", n_cells=6, tissues=((term, "mystery tissue"),)))
    obs = _obs(files)
    assert set(zip(obs.tissue_general_ontology_term_id, obs.tissue_general, strict=True)) == {expected}
    assert bool(plan.warnings) == (term == "UBERON:9999999")


def test_chunks_cover_kept_rows_only(tmp_path: Path) -> None:
    spec = DatasetSpec("c", n_cells=100, tissue_types=("organoid",) * 50 + ("tissue",) * 50, density=0.3)
    plan, files = _plan(tmp_path, spec, chunk=200)
    arrays = files.load_arrays()
    assert sum(plan.chunk_cells) == plan.n_cells == arrays["kept_rows"].size == 50
    assert len(plan.chunks) > 1
    assert plan.chunks[0][1] > 50  # rows 0..49 are organoid: no chunk holds only them
    for (a, b), n in zip(plan.chunks, plan.chunk_cells, strict=True):
        assert ((arrays["kept_rows"] >= a) & (arrays["kept_rows"] < b)).sum() == n


# -- errors: one change to a good file, one exact error ------------------------------------------------------


def _set_obs(column: str, values: object) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f["obs"][column]
        write_elem(f["obs"], column, values)

    return edit


def _scale_counts(factor: float, offset: float = 0.0) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        d = f["X"]["data"]
        d[...] = d[...] * factor + offset

    return edit


def _set_first_count(value: float) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        d = f["X"]["data"]
        d[5] = value

    return edit


def _drop(key: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[key]

    return edit


def _uns_version(f: h5py.File) -> None:
    del f["uns"]["schema_version"]
    write_elem(f["uns"], "schema_version", "3.1.0")


def _duplicate_feature(f: h5py.File) -> None:
    var = read_elem(f["var"])
    var.index = [var.index[1] if i == 0 else v for i, v in enumerate(var.index)]
    del f["var"]
    write_elem(f, "var", var)


def _short_var(f: h5py.File) -> None:
    var = read_elem(f["var"]).iloc[:-1]
    del f["var"]
    write_elem(f, "var", var)


N = 12
ERROR_CASES = {
    "schema_version": (_uns_version, "uns/schema_version", "requires '4.0.0'"),
    "missing_obs_column": (_drop("obs/donor_id"), "obs/donor_id", "required column(s) missing"),
    "missing_var_column": (_drop("var/feature_biotype"), "var/feature_biotype", "required column(s) missing"),
    "is_primary_not_bool": (
        _set_obs("is_primary_data", np.ones(N, dtype=np.int64)),
        "obs/is_primary_data",
        "must be boolean",
    ),
    "tissue_type_vocabulary": (
        _set_obs("tissue_type", pd.Categorical(["tissue"] * (N - 1) + ["cell line"])),
        "obs/tissue_type",
        "not in the dataset schema vocabulary",
    ),
    "duplicate_observation_joinid": (
        _set_obs("observation_joinid", np.array(["x"] * N, dtype=object)),
        "obs/observation_joinid",
        "duplicate observation_joinid",
    ),
    "duplicate_feature_id": (_duplicate_feature, "var/index", "duplicate feature id"),
    "negative": (_set_first_count(-1.0), "X", "negative count"),
    "nan": (_set_first_count(np.nan), "X", "non-finite count"),
    "inf": (_set_first_count(np.inf), "X", "non-finite count"),
    "non_integer": (_scale_counts(1.0, 0.5), "X", "non-integer count"),
    "shape_mismatch": (_short_var, "X", "does not match obs x var"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_preflight_errors_name_dataset_file_and_field(tmp_path: Path, case: str) -> None:
    edit, field, message = ERROR_CASES[case]
    with pytest.raises(InputError) as info:
        _plan(tmp_path, DatasetSpec("bad", n_cells=N, n_genes=30), edit)
    err = info.value
    assert err.dataset_id == "bad"
    assert err.uri.endswith("bad.h5ad")
    assert err.field == field
    assert message in err.reason
    assert "'bad'" in str(err) and field in str(err)


def test_smart_seq_needs_feature_length(tmp_path: Path) -> None:
    spec = DatasetSpec("s", n_cells=8, assays=("EFO:0008931",), feature_lengths=False)
    with pytest.raises(InputError, match="feature_length") as info:
        _plan(tmp_path, spec)
    assert info.value.field == "var/feature_length"
    plan, _ = _plan(tmp_path, spec.with_(dataset_id="s10x", assays=("EFO:0009922",)))  # not needed for 10x
    assert plan.n_cells == 8


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "junk.h5ad"
    path.write_bytes(b"this is not HDF5")
    with pytest.raises(InputError, match="not a readable HDF5") as info:
        inspect_dataset("junk", str(path), SCHEMA, 1000, str(tmp_path / "plan"))
    assert info.value.dataset_id == "junk"


def test_truncated_file(tmp_path: Path) -> None:
    path = write_h5ad(tmp_path / "t.h5ad", DatasetSpec("t", n_cells=50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as info:
        inspect_dataset("t", str(path), SCHEMA, 1000, str(tmp_path / "plan"))
    assert info.value.dataset_id == "t"


# -- issue #12: what preflight must not let through silently --------------------------------------------------


def _put_count(layout: str, pos: int, value: int, dtype: str) -> Callable[[h5py.File], tuple[int, int]]:
    """Store the counts as ``dtype`` with ``value`` at stored entry ``pos`` (dense: flat position); returns the
    (row, column) it lands on."""

    def edit(f: h5py.File) -> tuple[int, int]:
        if layout == "dense":
            x = f["X"][...].astype(dtype)
            row, col = divmod(pos, x.shape[1])
            x[row, col] = value
            attrs = dict(f["X"].attrs)
            del f["X"]
            f.create_dataset("X", data=x)
            f["X"].attrs.update(attrs)
            return row, col
        g = f["X"]
        data = g["data"][...].astype(dtype)
        data[pos] = value
        del g["data"]
        g.create_dataset("data", data=data)
        major = int(np.searchsorted(g["indptr"][...], pos, side="right")) - 1
        minor = int(g["indices"][pos])
        return (major, minor) if layout == "csr" else (minor, major)

    return edit


@pytest.mark.parametrize(("layout", "dtype"), [("csr", "int64"), ("csc", "float64"), ("dense", "float64")])
def test_counts_float32_cannot_hold_are_an_error_naming_cell_and_gene(
    tmp_path: Path, layout: Layout, dtype: str
) -> None:
    spec = DatasetSpec("big", n_cells=N, n_genes=30, layout=layout)
    path = write_h5ad(tmp_path / "big.h5ad", spec)
    with h5py.File(path, "r+") as f:
        row, col = _put_count(layout, 7, 2**24 + 1, dtype)(f)
        obs, var = read_elem(f["obs"]), read_elem(f["var"])
    with pytest.raises(InputError) as info:
        inspect_dataset("big", str(path), SCHEMA, 1000, str(tmp_path / "plan"), source="/corpus/big.h5ad")
    err = info.value
    assert (err.dataset_id, err.uri, err.field) == ("big", "/corpus/big.h5ad", "X")
    assert err.reason == (
        "count 16777217 cannot be stored exactly in X['raw'] (float32 would make it 16777216); counts above "
        f"16,777,216 must be exact float32 values at cell {obs.index[row]!r} (observation_joinid "
        f"{obs['observation_joinid'].iloc[row]!r}), gene {var.index[col]!r}"
    )
    with h5py.File(path, "r+") as f:  # 2**24 + 2 is a float32: fine
        _put_count(layout, 7, 2**24 + 2, dtype)(f)
    assert inspect_dataset("big", str(path), SCHEMA, 1000, str(tmp_path / "plan")).n_cells == N


def test_csr_index_out_of_range_is_found_in_preflight(tmp_path: Path) -> None:
    def edit(f: h5py.File) -> None:
        f["X"]["indices"][9] = 10_000

    with pytest.raises(InputError) as info:
        _plan(tmp_path, DatasetSpec("idx", n_cells=N, n_genes=30), edit)
    assert info.value.field == "X/indices"
    assert info.value.reason.startswith("index 10000 out of range [0, 33) at stored entry 9 at cell ")


def test_assay_terms_with_whitespace_are_an_error_and_unknown_ones_a_warning(tmp_path: Path) -> None:
    terms = ["EFO:0009922"] * (N - 3) + [" EFO:0009922", " EFO:0009922", "EFO:0009922 "]
    with pytest.raises(InputError) as info:
        _plan(tmp_path, DatasetSpec("ws", n_cells=N), _set_obs("assay_ontology_term_id", pd.Categorical(terms)))
    assert info.value.field == "obs/assay_ontology_term_id"
    assert info.value.reason == (
        "2 value(s) are not EFO term ids (EFO:NNNNNNN): ' EFO:0009922' (2 cell(s), leading/trailing whitespace), "
        "'EFO:0009922 ' (1 cell(s), leading/trailing whitespace); fix the file, or its cells would be dropped "
        "without a word"
    )
    unknown = ["EFO:0009922"] * (N - 4) + ["EFO:0000001"] * 4
    multiome = ["EFO:0030059"]  # excluded by the Census schema: its rules at work, no warning
    plan, _ = _plan(
        tmp_path,
        DatasetSpec("unknown", n_cells=N + 1),
        _set_obs("assay_ontology_term_id", pd.Categorical(unknown + multiome)),
    )
    assert plan.n_cells == N - 4
    assert plan.warnings == (
        "assay 'EFO:0000001' is not a Census assay (neither included nor excluded by Census schema 1.3.0): "
        "its 4 cell(s) are left out",
    )


def test_negative_feature_length_is_an_error_naming_the_gene(tmp_path: Path) -> None:
    gene: list[str] = []

    def edit(f: h5py.File) -> None:
        var = read_elem(f["var"])
        i = int(np.nonzero(var["feature_biotype"].astype(str).to_numpy() == "gene")[0][2])
        gene.append(var.index[i])
        f["var"]["feature_length"][i] = -5

    with pytest.raises(InputError) as info:
        _plan(tmp_path, DatasetSpec("neg", n_cells=N), edit)
    assert info.value.field == "var/feature_length"
    assert info.value.reason == (
        f"negative feature_length -5 for gene {gene[0]!r} (1 gene(s) negative); lengths are base pairs, >= 0"
    )

"""The "Transforming to str index" warnings consumers see on every get_anndata of a release (README,
"Reading a release as AnnData").

Cause: obs and var of a Census release have no string id column that tiledbsoma makes the index (no
``obs_id``/``var_id`` column, no ``soma_dataframe_original_index_name`` metadata), so ``to_anndata`` hands
anndata a RangeIndex, which anndata converts with that warning, once for obs and once for var. Naming an
index column in the release (the metadata) would move that column out of ``obs``/``var`` and make every
``obs_column_names``/``var_column_names`` selection without it fail, so the release keeps the Census layout
and consumers name the id columns themselves.
"""

from __future__ import annotations

import warnings

import cellxgene_census
import pytest
import tiledbsoma as soma
import tiledbsoma.io
from anndata import ImplicitModificationWarning

from tests.conftest import BuiltRelease

MESSAGE = "Transforming to str index"


def test_named_id_columns_give_string_indexes_without_warning(example_release: BuiltRelease) -> None:
    exp_uri = f"{example_release.soma_uri}/census_data/homo_sapiens"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=MESSAGE)
        with soma.Experiment.open(exp_uri) as exp:
            with exp.axis_query("RNA") as query:
                a = query.to_anndata(X_name="raw", obs_id_name="observation_joinid", var_id_name="feature_id")
            b = tiledbsoma.io.to_anndata(
                exp, "RNA", X_layer_name="raw", obs_id_name="observation_joinid", var_id_name="feature_id"
            )
            joinids = exp.obs.read(column_names=["observation_joinid"]).concat()["observation_joinid"].to_pylist()
            features = exp.ms["RNA"].var.read(column_names=["feature_id"]).concat()["feature_id"].to_pylist()
    for adata in (a, b):
        assert list(adata.obs_names) == joinids
        assert list(adata.var_names) == features
        assert adata.n_obs == 720 and adata.X.nnz > 0


def test_release_keeps_columns_selectable(example_release: BuiltRelease) -> None:
    """Why the release does not name an index column: selections without it must keep working. The
    warning asserted here is the one the README documents; if a new tiledbsoma/anndata stops emitting it,
    update the README."""
    with cellxgene_census.open_soma(uri=example_release.soma_uri) as census:
        for org in ("homo_sapiens", "mus_musculus"):
            exp = census["census_data"][org]
            assert "soma_dataframe_original_index_name" not in exp.obs.metadata
            assert "soma_dataframe_original_index_name" not in exp.ms["RNA"].var.metadata
        with pytest.warns(ImplicitModificationWarning, match=MESSAGE) as caught:
            adata = cellxgene_census.get_anndata(
                census, "Homo sapiens", X_name="raw", obs_column_names=["cell_type"], var_column_names=["feature_name"]
            )
    assert sum(MESSAGE in str(w.message) for w in caught) == 2  # obs and var, nothing else
    assert list(adata.obs.columns) == ["cell_type"] and list(adata.var.columns) == ["feature_name"]

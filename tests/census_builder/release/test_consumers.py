"""The release opens with the real consumer package, cellxgene_census."""

from __future__ import annotations

import cellxgene_census
import numpy as np

from tests.conftest import BuiltRelease


def test_cellxgene_census_get_anndata_both_organisms(example_release: BuiltRelease) -> None:
    with cellxgene_census.open_soma(uri=example_release.soma_uri) as census:
        datasets = census["census_info"]["datasets"].read().concat().to_pandas()
        assert len(datasets) == 5
        for organism, n in (("Homo sapiens", 720), ("Mus musculus", 350)):
            adata = cellxgene_census.get_anndata(census, organism=organism, X_name="raw")
            assert adata.n_obs == n
            assert adata.X.dtype == np.float32
            assert (adata.X.data > 0).all()
            np.testing.assert_allclose(np.asarray(adata.X.sum(axis=1)).ravel(), adata.obs.raw_sum, rtol=1e-6)
        lung = cellxgene_census.get_anndata(
            census,
            organism="Homo sapiens",
            X_name="normalized",
            obs_value_filter="tissue_general == 'lung' and is_primary_data == True",
        )
        assert lung.n_obs > 0 and set(lung.obs.tissue_general) == {"lung"}
        sums = np.asarray(lung.X.sum(axis=1)).ravel()
        np.testing.assert_allclose(sums[sums > 0], 1.0, rtol=1e-4)  # values of 15 mantissa bits: up to 2**-16 each

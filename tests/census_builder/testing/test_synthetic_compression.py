"""The generator writes H5ADs as CELLxGENE's curation tools do (``write_h5ad(compression="gzip")``): every
array compressed, in the chunks anndata's own writer gets from h5py; the same cells and values as uncompressed."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from census_builder.sources.h5ad import H5AD
from census_builder.testing.synthetic import MOUSE, DatasetSpec, anndata_chunks, filter_kwargs, write_h5ad

SPECS = (
    DatasetSpec("csr-raw", n_cells=2_500, n_genes=400, use_raw=True, chunk_cells=700, seed=11, duplicates=True),
    DatasetSpec("dense", n_cells=300, n_genes=200, layout="dense", chunk_cells=128, seed=12),
    DatasetSpec(
        "csc", n_cells=400, n_genes=250, layout="csc", seed=13, cell_organisms=(MOUSE,), gene_organisms=(MOUSE,)
    ),
)


def _datasets(path: Path) -> dict[str, h5py.Dataset]:
    out: dict[str, h5py.Dataset] = {}
    f = h5py.File(path, "r")
    f.visititems(lambda name, node: out.__setitem__(name, node) if isinstance(node, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    out = tmp_path_factory.mktemp("compressed")
    return {
        (s.dataset_id, c): write_h5ad(out / c / f"{s.dataset_id}.h5ad", s.with_(compression=c))
        for s in SPECS
        for c in ("none", "gzip", "lzf")
    }


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
@pytest.mark.parametrize("dataset", [s.dataset_id for s in SPECS])
def test_every_array_is_compressed_in_anndatas_chunks(
    written: dict[tuple[str, str], Path], tmp_path: Path, dataset: str, compression: str
) -> None:
    ours = _datasets(written[dataset, compression])
    # what anndata itself writes for the same content
    again = tmp_path / "anndata.h5ad"
    ad.read_h5ad(written[dataset, "none"]).write_h5ad(again, compression=compression)
    theirs = _datasets(again)
    arrays = {k: d for k, d in ours.items() if d.shape != ()}
    assert arrays and {k for k, d in theirs.items() if d.shape != ()} == set(arrays)
    for key, d in arrays.items():
        assert (d.compression, d.compression_opts) == (compression, 4 if compression == "gzip" else None), key
        if key.endswith(("X/data", "X/indices")) and d.ndim == 1:
            # written block by block: chunks guessed from the length extrapolated from the first block
            assert abs(d.chunks[0] - theirs[key].chunks[0]) <= 0.02 * theirs[key].chunks[0], key
        else:
            assert d.chunks == theirs[key].chunks, key
    scalars = {k for k, d in ours.items() if d.shape == ()}
    assert all(ours[k].compression is None for k in scalars)  # as anndata: HDF5 cannot filter scalars


def test_uncompressed_is_what_the_generator_always_wrote(written: dict[tuple[str, str], Path]) -> None:
    d = _datasets(written["csr-raw", "none"])
    assert all(x.compression is None for x in d.values())
    assert d["raw/X/data"].chunks == d["raw/X/indices"].chunks == (1 << 18,)
    assert d["obs/cell_type/codes"].chunks is None
    assert _datasets(written["dense", "none"])["X"].chunks == (300, 203)  # 200 genes, 3 spike-ins


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
@pytest.mark.parametrize("dataset", [s.dataset_id for s in SPECS])
def test_compressed_files_hold_the_same_data(
    written: dict[tuple[str, str], Path], dataset: str, compression: str
) -> None:
    plain, packed = ad.read_h5ad(written[dataset, "none"]), ad.read_h5ad(written[dataset, compression])
    pd.testing.assert_frame_equal(plain.obs, packed.obs)
    pd.testing.assert_frame_equal(plain.var, packed.var)
    assert plain.uns.keys() == packed.uns.keys()
    with H5AD(written[dataset, "none"], dataset) as a, H5AD(written[dataset, compression], dataset) as b:
        ma, mb = a.counts().read_rows(0, 300), b.counts().read_rows(0, 300)
        assert (ma.indptr.tolist(), ma.indices.tolist()) == (mb.indptr.tolist(), mb.indices.tolist())
        np.testing.assert_array_equal(ma.data, mb.data)


def test_filter_keywords_and_chunks() -> None:
    assert filter_kwargs("none") == {}
    assert filter_kwargs("gzip") == {"compression": "gzip"}
    with pytest.raises(ValueError, match="compression 'zstd' is not one of none, gzip, lzf"):
        filter_kwargs("zstd")  # type: ignore[arg-type]
    assert anndata_chunks((19_800_000,), 4) == (19_336,)  # what h5py gave anndata for a 10x-like X/data

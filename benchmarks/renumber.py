"""Renumber a release the way another tool might: cells shuffled across datasets (a random permutation),
genes in reverse feature_id order, the datasets table reversed. Same content, other soma_joinids.

    python -m benchmarks.renumber benchmarks/data/build-250k/bench benchmarks/data/renumbered-250k/bench [--seed 0]

Copies DIR/VERSION (soma/ and h5ads/, hard links for the h5ads) and rewrites every numbered object with
tiledbsoma directly. X is streamed: read in row chunks of the old numbering, bucketed on disk by row block of
the new numbering, then each block sorted and written as one fragment (disjoint row ranges, like our
builder's), so the renumbered release reads like a release written in its own order. Objects are created
with our builder's platform configs (tile extents, capacity, filters), so the only difference from the
original is the numbering (``--identity`` writes the same numbering: a control for the rewrite itself).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import tiledbsoma as soma

from census_builder.census.schema import load_schema
from census_builder.soma.layout import ReleaseLayout
from census_builder.soma.platform import DATAFRAME_PLATFORM_CONFIG, X_PLATFORM_CONFIG

logger = logging.getLogger("benchmarks.renumber")

ROWS_PER_READ = 5_000  # old rows read at a time (~4.4 M values at 880 per cell)
ROWS_PER_BLOCK = 20_000  # new rows per written fragment


def _df(uri: Path) -> pa.Table:
    with soma.DataFrame.open(str(uri)) as df:
        return df.read().concat()


def _rewrite_df(uri: Path, table: pa.Table, perm: npt.NDArray[np.int64]) -> None:
    new = perm[np.asarray(table.column("soma_joinid").to_numpy(), dtype=np.int64)]
    i = table.column_names.index("soma_joinid")
    table = table.set_column(i, "soma_joinid", pa.array(new, pa.int64())).take(pa.array(np.argsort(new)))
    shutil.rmtree(uri)
    with soma.DataFrame.create(
        str(uri),
        schema=table.schema,
        index_column_names=["soma_joinid"],
        domain=[(0, max(table.num_rows, 1) - 1)],
        platform_config=DATAFRAME_PLATFORM_CONFIG,
    ) as df:
        df.write(table)


def _rewrite_nd(
    uri: Path,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    spill: Path,
    platform_config: dict[str, Any] | None = None,
) -> None:
    """Rewrite a sparse array with row i -> rows[i], column j -> cols[j], streaming (see the module doc)."""
    with soma.SparseNDArray.open(str(uri)) as arr:
        shape = tuple(int(s) for s in arr.shape)
        value_type = arr.schema.field("soma_data").type
    n_blocks = (shape[0] + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    files = {b: [open(spill / f"{b}.{k}", "wb") for k in ("r", "c", "v")] for b in range(n_blocks)}  # noqa: SIM115
    with soma.SparseNDArray.open(str(uri)) as arr:
        for lo in range(0, shape[0], ROWS_PER_READ):
            t = arr.read(coords=(slice(lo, min(shape[0], lo + ROWS_PER_READ) - 1),)).tables().concat()
            r = rows[np.asarray(t.column("soma_dim_0").to_numpy(), dtype=np.int64)]
            c = cols[np.asarray(t.column("soma_dim_1").to_numpy(), dtype=np.int64)]
            v = np.asarray(t.column("soma_data").to_numpy(zero_copy_only=False))
            block = r // ROWS_PER_BLOCK
            order = np.argsort(block, kind="stable")
            bounds = np.searchsorted(block[order], np.arange(n_blocks + 1))
            for b in np.unique(block):
                sel = order[bounds[b] : bounds[b + 1]]
                for f, values in zip(files[int(b)], (r[sel], c[sel], v[sel]), strict=True):
                    values.tofile(f)
    for fs in files.values():
        for f in fs:
            f.close()
    shutil.rmtree(uri)
    with soma.SparseNDArray.create(str(uri), type=value_type, shape=shape, platform_config=platform_config) as arr:
        for b in range(n_blocks):
            r = np.fromfile(spill / f"{b}.r", dtype=np.int64)
            c = np.fromfile(spill / f"{b}.c", dtype=np.int64)
            v = np.fromfile(spill / f"{b}.v", dtype=value_type.to_pandas_dtype())
            order = np.lexsort((c, r))
            if order.size:
                arr.write(
                    pa.table(
                        {
                            "soma_dim_0": pa.array(r[order]),
                            "soma_dim_1": pa.array(c[order]),
                            "soma_data": pa.array(v[order], value_type),
                        }
                    )
                )
            for k in ("r", "c", "v"):
                os.unlink(spill / f"{b}.{k}")
            logger.info("%s: block %d/%d written", uri.name, b + 1, n_blocks)


def renumber(src: Path, dest: Path, seed: int = 0, identity: bool = False) -> Path:
    """``identity``: keep every soma_joinid (a control: the same writer, our numbering)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".build", "*.json", "*.log"), copy_function=os.link)
    root = dest / "soma"
    # copytree hard-linked TileDB files too: rewritten objects are removed and created anew, never edited
    rng = np.random.default_rng(seed)
    layout = ReleaseLayout(str(root), load_schema())
    datasets_uri = Path(layout.census_info_table("datasets"))
    datasets = _df(datasets_uri)
    d_perm = np.arange(datasets.num_rows, dtype=np.int64)
    d_perm = d_perm if identity else d_perm[::-1].copy()
    _rewrite_df(datasets_uri, datasets, d_perm)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        for exp_dir in sorted(Path(layout.census_data).iterdir()):
            exp = layout.experiment(exp_dir.name)
            if not Path(exp.obs).is_dir():
                continue
            obs, var = _df(Path(exp.obs)), _df(Path(exp.var))
            c_perm = np.arange(obs.num_rows, dtype=np.int64) if identity else rng.permutation(obs.num_rows)
            g_perm = np.arange(var.num_rows, dtype=np.int64)
            g_perm = g_perm if identity else g_perm[::-1].copy()
            _rewrite_df(Path(exp.obs), obs, c_perm)
            _rewrite_df(Path(exp.var), var, g_perm)
            for layer_uri in exp.x_layers.values():
                _rewrite_nd(Path(layer_uri), c_perm, g_perm, Path(tmp), X_PLATFORM_CONFIG)
            _rewrite_nd(Path(exp.presence), d_perm, g_perm, Path(tmp))
            logger.info("%s renumbered: %d cells, %d genes", exp.organism, obs.num_rows, var.num_rows)
    return root


def main() -> None:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, help="DIR/VERSION of a release (holding soma/ and h5ads/)")
    p.add_argument("dest", type=Path, help="where the renumbered DIR/VERSION goes (must not exist)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--identity", action="store_true", help="rewrite with the same numbering (a control)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(renumber(args.src, args.dest, args.seed, args.identity))


if __name__ == "__main__":
    main()

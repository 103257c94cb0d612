"""Experimental copies of a release, to find where consumer reads and release size go (issue 17, part 3).

    python -m benchmarks.variants SRC_SOMA DEST_SOMA [--organism homo_sapiens] [--dict-obs]
        [--x-layer normalized] [--x-settings ours|reference] [--zstd-level N] [--no-shuffle] [--keep-bits 15]
        [--capacity N] [--double-delta on|off] [--allows-duplicates on|off]

Copies the release at SRC_SOMA to DEST_SOMA (hard links: every object changed is removed and written anew, never
edited in place), then, for one organism's experiment:

- ``--dict-obs``: rewrites obs with every string column dictionary-encoded (TileDB enumerations), as the
  reference builder writes it;
- ``--x-layer L`` (repeatable): rewrites X layer L, streamed in row blocks and written as one fragment per
  block in row order, with ``--x-settings`` (``ours``: our builder's tiles, capacity and filters;
  ``reference``: the reference builder's: capacity 2^16, soma_dim_0 zstd 9 without double delta, zstd 9 and
  for ``normalized`` zstd 13 without byte shuffle, duplicates allowed), optionally another zstd level for soma_data
  (``--zstd-level``), no byte shuffle on soma_data (``--no-shuffle``), another data tile capacity
  (``--capacity``), double delta on soma_dim_0 or not (``--double-delta on|off``), duplicates allowed or not
  (``--allows-duplicates on|off``), and values rounded to
  ``--keep-bits`` mantissa bits (round half to even; what the reference does to X normalized).

Only the settings named change; the content stays the same (up to the rounding), so ``benchmarks.read`` on
SRC and DEST measures what one setting costs.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from census_builder.census import stats

logger = logging.getLogger("benchmarks.variants")

ROWS_PER_BLOCK = 20_000  # cells read and written at a time (one fragment each)
_OURS_X: dict[str, Any] = {
    "capacity": 2**17,
    "dims": {
        "soma_dim_0": {"tile": 2048, "filters": ["DoubleDeltaFilter", {"_type": "ZstdFilter", "level": 3}]},
        "soma_dim_1": {"tile": 2048, "filters": ["ByteShuffleFilter", {"_type": "ZstdFilter", "level": 3}]},
    },
    "attrs": {"soma_data": {"filters": ["ByteShuffleFilter", {"_type": "ZstdFilter", "level": 3}]}},
    "cell_order": "row-major",
    "tile_order": "row-major",
}
# The reference builder's X settings as its release shows them (benchmarks.read's storage table).
_REFERENCE_X: dict[str, Any] = {
    "capacity": 2**16,
    "dims": {
        "soma_dim_0": {"tile": 2048, "filters": [{"_type": "ZstdFilter", "level": 9}]},
        "soma_dim_1": {"tile": 2048, "filters": ["ByteShuffleFilter", {"_type": "ZstdFilter", "level": 9}]},
    },
    "attrs": {"soma_data": {"filters": ["ByteShuffleFilter", {"_type": "ZstdFilter", "level": 9}]}},
    "cell_order": "row-major",
    "tile_order": "row-major",
    "allows_duplicates": True,
}


def x_settings(
    kind: str,
    layer: str,
    *,
    zstd_level: int | None = None,
    shuffle: bool = True,
    capacity: int | None = None,
    double_delta: bool | None = None,
    allows_duplicates: bool | None = None,
) -> dict[str, Any]:
    """Return the tiledbsoma platform config of an X layer: ``kind`` "ours" or "reference", then the overrides
    (soma_data's zstd level and byte shuffle, the data tile capacity, double delta on soma_dim_0, whether the
    schema allows duplicate coordinates: then TileDB's reader skips deduplication)."""
    create = copy.deepcopy(_OURS_X if kind == "ours" else _REFERENCE_X)
    if allows_duplicates is not None:
        create["allows_duplicates"] = allows_duplicates
    if capacity is not None:
        create["capacity"] = capacity
    if double_delta is not None:
        dim0 = [f for f in create["dims"]["soma_dim_0"]["filters"] if f != "DoubleDeltaFilter"]
        create["dims"]["soma_dim_0"]["filters"] = ["DoubleDeltaFilter", *dim0] if double_delta else dim0
    level = create["attrs"]["soma_data"]["filters"][-1]["level"]
    if kind == "reference" and layer == "normalized":
        level, shuffle = 13, False
    filters: list[Any] = ["ByteShuffleFilter"] if shuffle else []
    filters.append({"_type": "ZstdFilter", "level": zstd_level if zstd_level is not None else level})
    create["attrs"]["soma_data"]["filters"] = filters
    return {"tiledb": {"create": create}}


def round_mantissa(values: npt.NDArray[np.float32], keep_bits: int) -> npt.NDArray[np.float32]:
    """Return a copy of ``values`` rounded as the builder rounds X["normalized"] (``keep_bits`` >= 23: ``values``)."""
    if keep_bits >= 23:
        return values
    out = np.array(values, dtype=np.float32)
    stats.round_mantissa(out, keep_bits)
    return out


def linked_copy(src: Path, dest: Path) -> None:
    """Copy the release ``src`` to ``dest`` with hard links (``dest`` must not exist)."""
    shutil.copytree(src, dest, copy_function=os.link)


def rewrite_x(uri: Path, platform_config: dict[str, Any], keep_bits: int | None = None) -> None:
    """Rewrite the X array at ``uri`` with ``platform_config``, one fragment per ROWS_PER_BLOCK rows, in row order."""
    import tiledbsoma as soma

    with soma.SparseNDArray.open(str(uri)) as arr:
        shape = tuple(int(s) for s in arr.shape)
        value_type = arr.schema.field("soma_data").type
    tmp = uri.with_name(uri.name + ".rewrite")
    shutil.rmtree(tmp, ignore_errors=True)
    with (
        soma.SparseNDArray.open(str(uri)) as src,
        soma.SparseNDArray.create(str(tmp), type=value_type, shape=shape, platform_config=platform_config) as dst,
    ):
        for lo in range(0, shape[0], ROWS_PER_BLOCK):
            t = src.read(coords=(slice(lo, min(shape[0], lo + ROWS_PER_BLOCK) - 1),)).tables().concat()
            if t.num_rows == 0:
                continue
            r = np.asarray(t.column("soma_dim_0").to_numpy(), dtype=np.int64)
            c = np.asarray(t.column("soma_dim_1").to_numpy(), dtype=np.int64)
            v = np.asarray(t.column("soma_data").to_numpy(), dtype=np.float32)
            if keep_bits is not None:
                v = round_mantissa(v, keep_bits)
            order = np.lexsort((c, r))
            dst.write(pa.table({"soma_dim_0": r[order], "soma_dim_1": c[order], "soma_data": pa.array(v[order])}))
    shutil.rmtree(uri)
    tmp.rename(uri)


def dict_obs(uri: Path) -> None:
    """Rewrite the dataframe at ``uri`` with every string column dictionary-encoded; other settings as before."""
    import tiledbsoma as soma

    with soma.DataFrame.open(str(uri)) as df:
        table = df.read().concat()
        n = int(df.count)
    fields = []
    for f in table.schema:
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            table = table.set_column(table.column_names.index(f.name), f.name, table.column(f.name).dictionary_encode())
    fields = [pa.field(f.name, f.type) for f in table.schema]
    table = table.cast(pa.schema(fields))
    shutil.rmtree(uri)
    with soma.DataFrame.create(
        str(uri),
        schema=table.schema,
        index_column_names=["soma_joinid"],
        domain=[(0, max(n, 1) - 1)],
        platform_config={
            "tiledb": {
                "create": {
                    "capacity": 2**16,
                    "offsets_filters": ["DoubleDeltaFilter", {"_type": "ZstdFilter", "level": 3}],
                    "dims": {"soma_joinid": {"filters": ["DoubleDeltaFilter", {"_type": "ZstdFilter", "level": 3}]}},
                }
            }
        },
    ) as out:
        out.write(table)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--organism", default="homo_sapiens")
    ap.add_argument("--dict-obs", action="store_true")
    ap.add_argument("--x-layer", action="append", default=[])
    ap.add_argument("--x-settings", choices=("ours", "reference"), default="ours")
    ap.add_argument("--zstd-level", type=int)
    ap.add_argument("--no-shuffle", action="store_true")
    ap.add_argument("--keep-bits", type=int)
    ap.add_argument("--capacity", type=int, help="data tile capacity of the rewritten X layers")
    ap.add_argument("--double-delta", choices=("on", "off"), help="double delta filter on soma_dim_0")
    ap.add_argument("--allows-duplicates", choices=("on", "off"), help="the X schema's allows_duplicates")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    linked_copy(args.src, args.dest)
    exp = args.dest / "census_data" / args.organism
    if args.dict_obs:
        dict_obs(exp / "obs")
    for layer in args.x_layer:
        dd = None if args.double_delta is None else args.double_delta == "on"
        cfg = x_settings(
            args.x_settings,
            layer,
            zstd_level=args.zstd_level,
            shuffle=not args.no_shuffle,
            capacity=args.capacity,
            double_delta=dd,
            allows_duplicates=None if args.allows_duplicates is None else args.allows_duplicates == "on",
        )
        rewrite_x(exp / "ms" / "RNA" / "X" / layer, cfg, args.keep_bits)
        logger.info("%s rewritten", layer)
    print(args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

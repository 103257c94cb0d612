"""What an X layer's filters cost: write time (the build's side), bytes per value and read time (the consumer's).

    python -m benchmarks.x_filters SOMA_ROOT [--organism mus_musculus] [--layer normalized] [--values 4000000]
        [--repeats 3] [--out DIR] [--codec-only]

Reads the first ``--values`` stored values (whole rows, in row order: one build chunk's worth by default) of one X
layer of a release, then, for each setting of :data:`SETTINGS`, writes them into a fresh SOMA sparse array under
``--out`` (one write, one fragment), reads the array back whole, and reports the best of ``--repeats`` write and
read times and the bytes of each dimension and of soma_data on disk. In-process and single-array, so it
isolates the filters from everything else a build or a query does. First, and alone with ``--codec-only``, the
same values compressed tile by tile with the ``zstandard`` module (byte shuffle or not, zstd levels 3, 6, 9, 13,
full or 15-bit mantissas): the filters' CPU cost without TileDB's write path.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from benchmarks.variants import round_mantissa, x_settings

logger = logging.getLogger("benchmarks.x_filters")

#: name -> (x_settings arguments, mantissa bits kept or None)
SETTINGS: dict[str, tuple[dict[str, Any], int | None]] = {
    "ours (shuffle+zstd3)": ({"kind": "ours"}, None),
    "shuffle+zstd13": ({"kind": "ours", "zstd_level": 13}, None),
    "zstd3, no shuffle": ({"kind": "ours", "shuffle": False}, None),
    "zstd9, no shuffle": ({"kind": "ours", "shuffle": False, "zstd_level": 9}, None),
    "zstd13, no shuffle": ({"kind": "ours", "shuffle": False, "zstd_level": 13}, None),
    "ours, 15 mantissa bits": ({"kind": "ours"}, 15),
    "zstd9, no shuffle, 15 bits": ({"kind": "ours", "shuffle": False, "zstd_level": 9}, 15),
    "reference (zstd13, no shuffle, 15 bits)": ({"kind": "reference"}, 15),
}


def sample(root: str, organism: str, layer: str, n_values: int) -> pa.Table:
    """Return the first ``n_values`` (rounded up to whole rows) stored values of the layer, in row order."""
    import tiledbsoma as soma

    with soma.SparseNDArray.open(f"{root}/census_data/{organism}/ms/RNA/X/{layer}") as x:
        tables, got, lo = [], 0, 0
        n_rows = int(x.shape[0])
        while got < n_values and lo < n_rows:
            t = x.read(coords=(slice(lo, min(n_rows, lo + 2000) - 1),)).tables().concat()
            tables.append(t)
            got += t.num_rows
            lo += 2000
    t = pa.concat_tables(tables).sort_by([("soma_dim_0", "ascending"), ("soma_dim_1", "ascending")])
    return t


def _bytes(uri: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in uri.rglob("*.tdb"):
        if "__fragments" in f.parts and f.name != "__fragment_metadata.tdb":
            out[f.name] = out.get(f.name, 0) + f.stat().st_size
    return out


def measure(table: pa.Table, shape: tuple[int, int], workdir: Path, repeats: int) -> list[dict[str, Any]]:
    """Write and read ``table`` with every setting; return one row per setting."""
    import tiledbsoma as soma

    rows = []
    values = np.asarray(table.column("soma_data").to_numpy(), dtype=np.float32)
    for name, (kw, bits) in SETTINGS.items():
        opts = dict(kw)
        cfg = x_settings(str(opts.pop("kind", "ours")), "normalized", **opts)
        data = table.set_column(2, "soma_data", pa.array(round_mantissa(values, bits) if bits else values))
        writes, reads = [], []
        for _ in range(repeats):
            uri = workdir / "x"
            shutil.rmtree(uri, ignore_errors=True)
            t = time.perf_counter()
            with soma.SparseNDArray.create(str(uri), type=pa.float32(), shape=shape, platform_config=cfg) as a:
                a.write(data)
            writes.append(time.perf_counter() - t)
            t = time.perf_counter()
            with soma.SparseNDArray.open(str(uri)) as a:
                n = sum(x.num_rows for x in a.read().tables())
            reads.append(time.perf_counter() - t)
            if n != data.num_rows:
                raise RuntimeError(f"{name}: read back {n} values of {data.num_rows}")
        sizes = _bytes(workdir / "x")
        rows.append(
            {
                "setting": name,
                "write_s": min(writes),
                "read_s": min(reads),
                "data_bytes_per_value": sizes.get("a0.tdb", 0) / data.num_rows,
                "dims_bytes_per_value": (sizes.get("d0.tdb", 0) + sizes.get("d1.tdb", 0)) / data.num_rows,
            }
        )
        logger.info("%s: %s", name, rows[-1])
    return rows


def codec_table(values: npt.NDArray[np.float32], tile: int = 2**17, repeats: int = 3) -> list[dict[str, Any]]:
    """Compress ``values`` tile by tile as TileDB's filters would (byte shuffle or not, then zstd at a level),
    with the ``zstandard`` module: the CPU cost of a filter setting alone, without TileDB's write path."""
    import zstandard

    rows = []
    for bits in (None, 15):
        v = round_mantissa(values, bits) if bits else values
        tiles = [np.ascontiguousarray(v[i : i + tile]) for i in range(0, v.size, tile)]
        for shuffle in (True, False):
            raw = [t.view(np.uint8).reshape(-1, 4).T.tobytes() if shuffle else t.tobytes() for t in tiles]
            for level in (3, 6, 9, 13):
                comp, dec, cpu = [], [], []
                for _ in range(repeats):
                    c = zstandard.ZstdCompressor(level=level)
                    t0, c0 = time.perf_counter(), time.process_time()
                    out = [c.compress(b) for b in raw]
                    comp.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)  # CPU time: what a loaded machine disturbs least
                    d = zstandard.ZstdDecompressor()
                    t0 = time.perf_counter()
                    for b in out:
                        d.decompress(b)
                    dec.append(time.perf_counter() - t0)
                rows.append(
                    {
                        "setting": f"{'shuffle+' if shuffle else ''}zstd{level}{', 15 bits' if bits else ''}",
                        "compress_s": min(comp),
                        "compress_cpu_s": min(cpu),
                        "decompress_s": min(dec),
                        "bytes_per_value": sum(len(b) for b in out) / v.size,
                    }
                )
                logger.info("%s", rows[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--organism", default="mus_musculus")
    ap.add_argument("--layer", default="normalized")
    ap.add_argument("--values", type=int, default=4_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, help="scratch directory (default: a temporary one)")
    ap.add_argument("--codec-only", action="store_true", help="only the zstandard table (no TileDB writes)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = sample(args.root, args.organism, args.layer, args.values)
    values = np.asarray(table.column("soma_data").to_numpy(), dtype=np.float32)
    print(f"{values.size:,} values of X {args.layer} ({args.organism}), zstandard per 2^17-value tile, best of 3")
    print("| soma_data filters | compress s | compress CPU s | decompress s | bytes/value |")
    print("|---|---|---|---|---|")
    for r in codec_table(values):
        print(
            f"| {r['setting']} | {r['compress_s']:.2f} | {r['compress_cpu_s']:.2f} | {r['decompress_s']:.2f} "
            f"| {r['bytes_per_value']:.3f} |"
        )
    if args.codec_only:
        return 0
    import tiledbsoma as soma

    with soma.SparseNDArray.open(f"{args.root}/census_data/{args.organism}/ms/RNA/X/{args.layer}") as x:
        shape = (int(x.shape[0]), int(x.shape[1]))
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        rows = measure(table, shape, Path(tmp), args.repeats)
    print(f"{table.num_rows:,} values of X {args.layer} ({args.organism}), best of {args.repeats}")
    print("| setting | write s | read s | soma_data bytes/value | dims bytes/value |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['write_s']:.2f} | {r['read_s']:.2f} | {r['data_bytes_per_value']:.3f} "
            f"| {r['dims_bytes_per_value']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

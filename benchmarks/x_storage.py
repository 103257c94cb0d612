"""X storage settings on a release's real rows: bytes of each file and write CPU per setting (issue 17, size).

    python -m benchmarks.x_storage SOMA_ROOT [--organism mus_musculus] [--rows 30000] [--out DIR]
        [--json OUT] [--reads [--compare OTHER_SOMA_ROOT] [--repeats 5]] [SETTING ...]

Reads the first ``--rows`` cells of X["raw"] and X["normalized"] of one organism, then for each setting of
:data:`SETTINGS` (all by default) writes both layers into fresh SOMA sparse arrays (one write each: one
fragment, TileDB sorting into global order) and reports the MiB of soma_data (``a0``), soma_dim_0 (``d0``) and
soma_dim_1 (``d1``) and the write's CPU seconds (process time: TileDB's threads included). ``before`` is the
storage of main at the start of the second round, ``chosen`` is :func:`census_builder.soma.platform.
x_platform_config`; the others change one thing. The values are written as read (a release built with
rounding keeps its rounded normalized values).

``--reads``: also times four reads of X["raw"] on each setting's array (and on OTHER_SOMA_ROOT's, e.g. the
reference builder's release, as it is), the arrays taking turns within each repeat, median of ``--repeats``:
50 genes evenly spaced over every row, 30 % of the rows as one range, 14 % of the rows scattered (a tissue's
cells), and every row in 32,768-row blocks (a loader's scan). Use ``--rows`` of the whole organism for it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from census_builder.soma.platform import X_CAPACITY, X_TILE, x_platform_config

logger = logging.getLogger("benchmarks.x_storage")
LAYERS = ("raw", "normalized")


def _zstd(level: int) -> dict[str, Any]:
    return {"_type": "ZstdFilter", "level": level}


def _config(d0: list[Any], d1: list[Any], data: dict[str, list[Any]], layer: str) -> dict[str, Any]:
    return {
        "tiledb": {
            "create": {
                "capacity": X_CAPACITY,
                "allows_duplicates": True,
                "dims": {"soma_dim_0": {"tile": X_TILE, "filters": d0}, "soma_dim_1": {"tile": X_TILE, "filters": d1}},
                "attrs": {"soma_data": {"filters": data[layer]}},
                "cell_order": "row-major",
                "tile_order": "row-major",
            }
        }
    }


def _setting(d1: list[Any], data_levels: tuple[int, int], d0_level: int = 9) -> dict[str, dict[str, Any]]:
    raw_level, norm_level = data_levels
    data: dict[str, list[Any]] = {"raw": ["ByteShuffleFilter", _zstd(raw_level)], "normalized": [_zstd(norm_level)]}
    return {layer: _config([_zstd(d0_level)], d1, data, layer) for layer in LAYERS}


_SHUFFLE_9 = ["ByteShuffleFilter", _zstd(9)]
# name -> per layer platform config
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "before": _setting(_SHUFFLE_9, (9, 9)),
    "d1 Delta+ByteShuffle+Zstd 9": _setting(["DeltaFilter", *_SHUFFLE_9], (9, 9)),
    "d1 Delta+Zstd 9 (no shuffle)": _setting(["DeltaFilter", _zstd(9)], (9, 9)),
    "d1 DoubleDelta+ByteShuffle+Zstd 9": _setting(["DoubleDeltaFilter", *_SHUFFLE_9], (9, 9)),
    "d1 BitWidthReduction+ByteShuffle+Zstd 9": _setting(["BitWidthReductionFilter", *_SHUFFLE_9], (9, 9)),
    "d1 Delta+ByteShuffle+Zstd 11": _setting(["DeltaFilter", "ByteShuffleFilter", _zstd(11)], (9, 9)),
    "d1 Delta+ByteShuffle+Zstd 13": _setting(["DeltaFilter", "ByteShuffleFilter", _zstd(13)], (9, 9)),
    "d1 Delta+ByteShuffle+Zstd 19": _setting(["DeltaFilter", "ByteShuffleFilter", _zstd(19)], (9, 9)),
    "values Zstd 13": _setting(_SHUFFLE_9, (13, 13)),
    "values Zstd 15": _setting(_SHUFFLE_9, (15, 15)),
    "values Zstd 17": _setting(_SHUFFLE_9, (17, 17)),
    "values Zstd 19": _setting(_SHUFFLE_9, (19, 19)),
    "d1 Delta+ByteShuffle+Zstd 11, values Zstd 13": _setting(["DeltaFilter", "ByteShuffleFilter", _zstd(11)], (13, 13)),
    "chosen": {layer: x_platform_config(layer) for layer in LAYERS},
}


def _mib(uri: Path, name: str) -> float:
    return sum(f.stat().st_size for f in uri.rglob(name)) / 2**20


def measure(
    root: str, organism: str, rows: int, out: Path, names: list[str], keep: bool = False
) -> list[dict[str, Any]]:
    """Write the first ``rows`` cells of both layers with each named setting; one result row per setting.
    ``keep``: leave each setting's X["raw"] at ``out/<i>-raw`` (for :func:`time_reads`)."""
    import resource

    import tiledbsoma as soma

    tables: dict[str, pa.Table] = {}
    n_cols = 0
    for layer in LAYERS:
        with soma.SparseNDArray.open(f"{root}/census_data/{organism}/ms/RNA/X/{layer}") as a:
            n_cols = int(a.shape[1])
            tables[layer] = a.read(coords=(slice(0, rows - 1),)).tables().concat()
    results: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {"setting": name, "entries": tables["raw"].num_rows}
        for layer in LAYERS:
            uri = out / f"{len(results)}-{layer}"
            shutil.rmtree(uri, ignore_errors=True)
            soma.SparseNDArray.create(
                str(uri), type=pa.float32(), shape=(rows, n_cols), platform_config=SETTINGS[name][layer]
            )
            before = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            with soma.SparseNDArray.open(str(uri), "w") as w:
                w.write(tables[layer])
            after = resource.getrusage(resource.RUSAGE_SELF)
            row[layer] = {
                "a0_mib": round(_mib(uri, "a0.tdb"), 4),
                "d0_mib": round(_mib(uri, "d0.tdb"), 4),
                "d1_mib": round(_mib(uri, "d1.tdb"), 4),
                "write_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
                "write_s": round(time.perf_counter() - t0, 2),
            }
            if not (keep and layer == "raw"):
                shutil.rmtree(uri)
        logger.info("%s: %s", name, row)
        results.append(row)
    return results


def time_reads(arrays: dict[str, str], n_rows: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of each read (see the module docstring) on each X array of ``arrays`` (name -> URI)."""
    import numpy as np
    import tiledbsoma as soma

    with soma.SparseNDArray.open(next(iter(arrays.values()))) as a:
        n_cols = int(a.shape[1])
    cols = np.linspace(0, n_cols - 1, 50).astype(np.int64)
    points = np.sort(np.random.default_rng(1).choice(n_rows, int(n_rows * 0.14), replace=False)).astype(np.int64)
    lo, hi = int(n_rows * 0.3), int(n_rows * 0.6) - 1
    block = 32_768
    reads: dict[str, Any] = {
        "50 genes": lambda a: a.read(coords=(slice(None), cols)).tables(),
        "row range": lambda a: a.read(coords=(slice(lo, hi),)).tables(),
        "scattered rows": lambda a: a.read(coords=(points,)).tables(),
        "scan": lambda a: (
            t for r in range(0, n_rows, block) for t in a.read(coords=(slice(r, min(n_rows, r + block) - 1),)).tables()
        ),
    }
    times: dict[str, dict[str, list[float]]] = {q: {name: [] for name in arrays} for q in reads}
    for _ in range(repeats):
        for q, read in reads.items():
            for name, uri in arrays.items():
                t0 = time.perf_counter()
                with soma.SparseNDArray.open(uri) as a:
                    for _t in read(a):
                        pass
                times[q][name].append(time.perf_counter() - t0)
    return {q: {name: round(float(np.median(v)), 3) for name, v in per.items()} for q, per in times.items()}


def reads_table(medians: dict[str, dict[str, float]]) -> str:
    """Return the markdown table of :func:`time_reads`' medians, one column per array."""
    names = list(next(iter(medians.values())))
    lines = ["| read | " + " | ".join(f"{n} s" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {q} | " + " | ".join(f"{per[n]:.2f}" for n in names) + " |" for q, per in medians.items()]
    return "\n".join(lines)


def table(results: list[dict[str, Any]]) -> str:
    """Return the markdown table of :func:`measure`'s rows."""
    head = (
        "| setting | raw a0 / d0 / d1 MiB | normalized a0 / d0 / d1 MiB | total MiB | write CPU s (raw + normalized) |"
    )
    lines = [head, "|---|---|---|---|---|"]
    for r in results:
        raw, norm = r["raw"], r["normalized"]
        total = sum(x[k] for x in (raw, norm) for k in ("a0_mib", "d0_mib", "d1_mib"))
        lines.append(
            f"| {r['setting']} | {raw['a0_mib']:.2f} / {raw['d0_mib']:.2f} / {raw['d1_mib']:.2f} "
            f"| {norm['a0_mib']:.2f} / {norm['d0_mib']:.2f} / {norm['d1_mib']:.2f} | {total:.2f} "
            f"| {raw['write_cpu_s']:.1f} + {norm['write_cpu_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description="X storage settings on a release's rows: file sizes, write CPU.")
    ap.add_argument("root")
    ap.add_argument("settings", nargs="*", help=f"names of SETTINGS (default: all): {', '.join(SETTINGS)}")
    ap.add_argument("--organism", default="mus_musculus")
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--out", type=Path, help="scratch directory (default: a temporary one)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--reads", action="store_true", help="also time reads of each setting's X raw")
    ap.add_argument("--compare", help="another release whose X raw is timed as it is (with --reads)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    unknown = [n for n in args.settings if n not in SETTINGS]
    if unknown:
        ap.error(f"unknown setting(s) {unknown}; known: {list(SETTINGS)}")
    names = args.settings or list(SETTINGS)
    medians: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        results = measure(args.root, args.organism, args.rows, Path(tmp), names, keep=args.reads)
        if args.reads:
            x = f"census_data/{args.organism}/ms/RNA/X/raw"
            arrays = {"other": f"{args.compare}/{x}"} if args.compare else {}
            arrays.update({name: str(Path(tmp) / f"{i}-raw") for i, name in enumerate(names)})
            medians = time_reads(arrays, args.rows, args.repeats)
    if args.json:
        args.json.write_text(json.dumps({"settings": results, "reads": medians}, indent=2))
    print(table(results))
    if medians:
        print()
        print(reads_table(medians))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

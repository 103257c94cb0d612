"""Validation time and peak RSS for one release in three numberings: as our builder wrote it, rewritten by
benchmarks.renumber with the same numbering (a control for the writer's layout), and renumbered (cells shuffled
across datasets, genes and datasets reversed).

    python -m benchmarks.numbering RELEASE_DIR MANIFEST [--workers 2] [--rounds 3] [--keep]
        [--out benchmarks/results/numbering/latest.json]

RELEASE_DIR is a build's DIR/VERSION (e.g. benchmarks/data/build-250k/bench after ``python -m benchmarks.run``);
the rewritten copies go beside it and are removed afterwards (``--keep`` keeps them, and a later run with
``--keep`` reuses them). The three are validated in turn, ``--rounds`` times (the machine's load varies:
compare runs of the same round); every run is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.renumber import renumber
from benchmarks.run import run_measured

logger = logging.getLogger("benchmarks.numbering")


def _validate(soma: Path, manifest: Path, workers: int) -> dict[str, Any]:
    out = run_measured(
        [sys.executable, "-m", "validation", str(soma), "--manifest", str(manifest), "--workers", str(workers)]
    )
    doc = json.loads((soma.parent / "validation_report.json").read_text(encoding="utf-8"))
    return {
        "seconds": round(out["seconds"], 1),
        "peak_rss_gib": round(out["peak_rss_bytes"] / 2**30, 2),
        "passed": out["returncode"] == 0,
        "readings": doc.get("readings", {}),
    }


def main() -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("release", type=Path)
    p.add_argument("manifest", type=Path)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/numbering/latest.json"))
    p.add_argument("--keep", action="store_true")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results: dict[str, Any] = {"release": str(args.release), "workers": args.workers}
    copies = {
        "rewritten": args.release.with_name(args.release.name + "-rewritten"),
        "renumbered": args.release.with_name(args.release.name + "-renumbered"),
    }
    sources = {"ours": args.release, **copies}
    try:
        for name, path in copies.items():
            if not (args.keep and (path / "soma").is_dir()):
                shutil.rmtree(path, ignore_errors=True)
                renumber(args.release, path, identity=name == "rewritten")
        for _ in range(args.rounds):
            for name, path in sources.items():
                run = _validate(path / "soma", args.manifest, args.workers)
                run["load_average_1min"] = round(os.getloadavg()[0], 2)
                results.setdefault(name + "_runs", []).append(run)
                results[name] = run
                logger.info("%s: %s", name, run)
    finally:
        if not args.keep:
            for path in copies.values():
                shutil.rmtree(path, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    for name in sources:
        for r in results[name + "_runs"]:
            print(
                f"{name:>10}: {r['seconds']:7.1f} s, peak RSS {r['peak_rss_gib']:.2f} GiB, passed={r['passed']}, "
                f"load {r['load_average_1min']}"
            )
    return 0 if all(results[n]["passed"] for n in ("ours", *copies)) else 1


if __name__ == "__main__":
    raise SystemExit(main())

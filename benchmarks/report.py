"""Render benchmarks/results/*.json as the markdown tables in RESULTS.md:  python -m benchmarks.report

The first table has one row per result (sources: none, gzip or lzf); the second the CPU of the build's
process tree per stage (mean, in % of one core) and the fraction of each stage in which every core was busy.
``python -m benchmarks.report --timeline RESULT.json [--bucket S]``: one build's CPU over time instead, a row per
S seconds (default 10): the stage, the build tree's CPU in % of one core and the whole machine's busy %.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GIB = 1024**3


def table(results_dir: Path = Path("benchmarks/results")) -> str:
    """Return the markdown table of every result in ``results_dir``, smallest corpus first."""
    runs = _runs(results_dir)
    head = (
        "| cells | sources | non-zeros | build s | stages s (inspect / matrices / tables / finalize) | cells/s | nnz/s "
        "| peak RSS GiB | release GiB | floor s | build / floor | validation s | validation / build "
        "| validation peak RSS GiB |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        st = r["stage_seconds"]
        stages = " / ".join(
            f"{st.get(k, 0):.0f}" for k in ("stage_and_inspect", "write_matrices", "write_tables", "finalize_release")
        )
        floor = r.get("floor", {}).get("seconds")
        ratio = r.get("build_over_floor")
        rows.append(
            f"| {r['cells']:,} | {r.get('compression', 'none')} | {r['nnz']:,} | {r['build_seconds']:.0f} | {stages} "
            f"| {r['cells_per_second']:,.0f} "
            f"| {r['nnz_per_second'] / 1e6:.2f} M | {r['build_peak_rss_bytes'] / GIB:.2f} "
            f"| {r['release_bytes'] / GIB:.2f} | {f'{floor:.0f}' if floor else '-'} "
            f"| {f'{ratio:.2f}' if ratio else '-'} | {r['validation_seconds']:.0f} "
            f"({'passed' if r['validation_passed'] else 'FAILED'}) "
            f"| {r['validation_seconds'] / r['build_seconds']:.2f} "
            f"| {r['validation_peak_rss_bytes'] / GIB:.2f} |"
        )
    return "\n".join(rows)


def _runs(results_dir: Path) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in results_dir.glob("*.json")]
    return sorted(runs, key=lambda r: (r["cells"], r.get("compression", "none")))


def cpu_table(results_dir: Path = Path("benchmarks/results")) -> str:
    """Return the markdown table of the build's CPU per stage of every result that sampled it: mean CPU of the
    process tree in % of one core, and (in brackets) the % of the stage's samples with every core busy."""
    runs = [r for r in _runs(results_dir) if r.get("build_cpu_per_stage")]
    stages = ("stage_and_inspect", "plan_axes", "write_matrices", "write_tables", "finalize_release")
    head = "| cells | sources | load avg | " + " | ".join(stages) + " | validation |"
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        per = r["build_cpu_per_stage"]
        cells = [
            f"{per[k]['tree_cpu_percent']:.0f} % ({100 * per[k]['all_cores_busy_fraction']:.0f} %)" if k in per else "-"
            for k in stages
        ]
        load = r.get("load_average_at_start", ["-"])[0]
        rows.append(
            f"| {r['cells']:,} | {r.get('compression', 'none')} | {load} | "
            + " | ".join(cells)
            + f" | {r.get('validation_cpu_percent', 0):.0f} % |"
        )
    return "\n".join(rows)


def timeline(result: dict[str, Any], bucket: float = 10.0) -> str:
    """Return the markdown table of one result's build CPU per ``bucket`` seconds (see the module docstring)."""
    samples = result["build_cpu_samples"]  # [t, tree cores, tree rss, [machine % per core]]
    starts = sorted(result.get("build_stage_starts", {}).items(), key=lambda kv: kv[1])
    head = "| from s | stage | build tree CPU % of one core | machine busy % | |"
    rows = [head, "|---|---|---|---|---|"]
    end = float(samples[-1][0]) if samples else 0.0
    lo = 0.0
    while lo < end:
        inside = [x for x in samples if lo < float(x[0]) <= lo + bucket]
        if inside:
            tree = 100 * sum(float(x[1]) for x in inside) / len(inside)
            machine = sum(sum(x[3]) / max(1, len(x[3])) for x in inside) / len(inside)
            stage = next((name for name, t in reversed(starts) if t <= lo + bucket / 2), "-")
            bar = "#" * round(tree / 10)
            rows.append(f"| {lo:.0f} | {stage} | {tree:.0f} | {machine:.0f} | `{bar}` |")
        lo += bucket
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--timeline", type=Path, help="one result JSON: its build's CPU over time")
    ap.add_argument("--bucket", type=float, default=10.0)
    args = ap.parse_args(argv)
    if args.timeline:
        print(timeline(json.loads(args.timeline.read_text()), args.bucket))
        return
    print(table(args.results))
    print()
    print(cpu_table(args.results))


if __name__ == "__main__":
    main()

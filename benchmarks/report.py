"""Render benchmarks/results/*.json as the markdown tables in RESULTS.md:  python -m benchmarks.report

The first table has one row per result (sources: none, gzip or lzf); the second the CPU of the build's
process tree per stage (mean, in % of one core) and the fraction of each stage in which every core was busy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GIB = 1024**3


def table(results_dir: Path = Path("benchmarks/results")) -> str:
    """Return the markdown table of every result in ``results_dir``, smallest corpus first."""
    runs = _runs(results_dir)
    head = (
        "| cells | sources | non-zeros | build s | stages s (inspect / matrices / tables / finalize) | cells/s | nnz/s "
        "| peak RSS GiB | release GiB | floor s | build / floor | validation s | validation / build |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        st = r["stage_seconds"]
        stages = " / ".join(
            f"{st.get(k, 0):.0f}" for k in ("stage_and_inspect", "write_matrices", "write_tables", "finalize_release")
        )
        floor = r.get("floor", {}).get("seconds")
        rows.append(
            f"| {r['cells']:,} | {r.get('compression', 'none')} | {r['nnz']:,} | {r['build_seconds']:.0f} | {stages} "
            f"| {r['cells_per_second']:,.0f} "
            f"| {r['nnz_per_second'] / 1e6:.2f} M | {r['build_peak_rss_bytes'] / GIB:.2f} "
            f"| {r['release_bytes'] / GIB:.2f} | {f'{floor:.0f}' if floor else '-'} "
            f"| {r.get('build_over_floor', float('nan')):.2f} | {r['validation_seconds']:.0f} "
            f"({'passed' if r['validation_passed'] else 'FAILED'}) "
            f"| {r['validation_seconds'] / r['build_seconds']:.2f} |"
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


if __name__ == "__main__":
    print(table())
    print()
    print(cpu_table())

"""Render benchmarks/results/*.json as the markdown table in RESULTS.md:  python -m benchmarks.report"""

from __future__ import annotations

import json
from pathlib import Path

GIB = 1024**3


def table(results_dir: Path = Path("benchmarks/results")) -> str:
    """Return the markdown table of every result in ``results_dir``, smallest corpus first."""
    runs = sorted((json.loads(p.read_text()) for p in results_dir.glob("*.json")), key=lambda r: r["cells"])
    head = (
        "| cells | non-zeros | build s | stages s (inspect / matrices / tables / finalize) | cells/s | nnz/s "
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
            f"| {r['cells']:,} | {r['nnz']:,} | {r['build_seconds']:.0f} | {stages} | {r['cells_per_second']:,.0f} "
            f"| {r['nnz_per_second'] / 1e6:.2f} M | {r['build_peak_rss_bytes'] / GIB:.2f} "
            f"| {r['release_bytes'] / GIB:.2f} | {f'{floor:.0f}' if floor else '-'} "
            f"| {r.get('build_over_floor', float('nan')):.2f} | {r['validation_seconds']:.0f} "
            f"({'passed' if r['validation_passed'] else 'FAILED'}) "
            f"| {r['validation_seconds'] / r['build_seconds']:.2f} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())

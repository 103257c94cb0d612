"""The PNG figures of the release notes, drawn with matplotlib's Agg canvas (no display, no global backend).

- totals: cells and unique cells per organism, beside the previous release's cells
- CATEGORY: cells by assay, tissue_general and disease per organism (top labels, the rest as "other")
- datasets: cell-count change of every added, removed or changed dataset
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from census_builder.release.notes_compare import CATEGORIES, CATEGORY_TITLES, ReleaseDiff, ReleaseFacts, signed

TOP_LABELS = 25  # labels shown per figure panel (the rest are summed into "other")
FIGURE_DPI = 110


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _top(counts: Mapping[str, int], n: int = TOP_LABELS) -> list[tuple[str, int]]:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > n:
        items = [*items[: n - 1], ("other", sum(v for _, v in items[n - 1 :]))]
    return items


def _draw_totals(cur: ReleaseFacts, prev: ReleaseFacts | None, path: Path) -> None:
    import numpy as np

    names = sorted(set(cur.organisms) | set(prev.organisms if prev else {}))
    fig = _new_figure(7, 4)
    ax = fig.subplots()
    x = np.arange(len(names))
    series: list[tuple[str, list[int]]] = []
    if prev is not None:
        series.append((f"{prev.version} cells", [prev.organisms[n].cells if n in prev.organisms else 0 for n in names]))
    series.append((f"{cur.version} cells", [cur.organisms[n].cells if n in cur.organisms else 0 for n in names]))
    series.append(
        (f"{cur.version} unique cells", [cur.organisms[n].unique_cells if n in cur.organisms else 0 for n in names])
    )
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=7)
    labels = {
        **({n: o.label for n, o in prev.organisms.items()} if prev else {}),
        **{n: o.label for n, o in cur.organisms.items()},
    }
    ax.set_xticks(x, [labels[n] for n in names])
    ax.set_ylabel("cells")
    ax.set_title(f"Census {cur.version}: cells per organism")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=FIGURE_DPI)


def _draw_category(cur: ReleaseFacts, prev: ReleaseFacts | None, category: str, path: Path) -> None:
    import numpy as np

    names = [n for n in sorted(cur.organisms) if cur.organisms[n].by_category.get(category)]
    tops = {n: _top(cur.organisms[n].by_category.get(category, {})) for n in names}
    rows = max([len(t) for t in tops.values()] + [1])
    fig = _new_figure(6 * max(len(names), 1), max(2.6, 1.2 + 0.3 * rows))
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    compared = False
    for ax, name in zip(axes, names, strict=False):
        items = tops[name]
        labels = [k for k, _ in items]
        y = np.arange(len(items))
        if prev is not None and name in prev.organisms:
            before = prev.organisms[name].by_category.get(category, {})
            other = sum(v for k, v in before.items() if k not in labels)
            ax.barh(
                y + 0.2,
                [before.get(k, other if k == "other" else 0) for k in labels],
                0.4,
                label=prev.version,
                color="#bbbbbb",
            )
            ax.barh(y - 0.2, [v for _, v in items], 0.4, label=cur.version, color="#1f77b4")
            compared = True
        else:
            ax.barh(y, [v for _, v in items], 0.6, color="#1f77b4")
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("cells")
        ax.set_title(f"{cur.organisms[name].label}: cells by {CATEGORY_TITLES[category]}", fontsize=10)
    if compared:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    fig.savefig(path, dpi=FIGURE_DPI)


def _draw_dataset_changes(diff: ReleaseDiff, version: str, path: Path) -> None:
    import numpy as np

    rows = (
        [(f"+ {d.dataset_id}", d.cells) for d in diff.added]
        + [(f"- {d.dataset_id}", -d.cells) for d in diff.removed]
        + [(f"~ {c.dataset_id}", c.cell_delta) for c in diff.changed]
    )
    fig = _new_figure(8, 1.5 + 0.35 * max(len(rows), 1))
    ax = fig.subplots()
    y = np.arange(len(rows))
    values = [v for _, v in rows]
    bars = ax.barh(y, values, color=["#2ca02c" if v > 0 else "#d62728" if v < 0 else "#7f7f7f" for v in values])
    ax.bar_label(bars, labels=[signed(v) for v in values], fontsize=8, padding=2)
    ax.margins(x=0.15)
    ax.set_yticks(y, [k for k, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("change in cells")
    ax.set_title(f"Census {version} vs {diff.previous}: cells per dataset (+ added, - removed, ~ changed)", fontsize=10)
    fig.savefig(path, dpi=FIGURE_DPI)


def draw_figures(
    cur: ReleaseFacts, prev: ReleaseFacts | None, diff: ReleaseDiff | None, out_dir: Path
) -> dict[str, Path]:
    """Draw the figures that have something to show (no chart without bars) into ``out_dir``.

    Returns them by key; a figure of an earlier run that has nothing to show now is deleted.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}

    def path(key: str) -> Path:
        figures[key] = out_dir / f"{cur.version}-{key}.png"
        return figures[key]

    if cur.organisms or (prev is not None and prev.organisms):
        _draw_totals(cur, prev, path("totals"))
    for cat in CATEGORIES:
        if any(o.by_category.get(cat) for o in cur.organisms.values()):
            _draw_category(cur, prev, cat, path(cat))
    if diff is not None and (diff.added or diff.removed or diff.changed):
        _draw_dataset_changes(diff, cur.version, path("datasets"))
    for key in ("totals", *CATEGORIES, "datasets"):
        if key not in figures:
            (out_dir / f"{cur.version}-{key}.png").unlink(missing_ok=True)
    return figures

"""The notes command: ``release_notes/VERSION.md`` and PNG figures beside it, read from the releases themselves.

    read_release     facts of one release (root metadata, census_info tables, per-organism counts) via tiledbsoma
    diff_releases    datasets added / removed / changed and cell-count changes versus the previous release
    draw_figures     totals per organism; cells by assay, tissue_general and disease; dataset cell-count changes
    write_markdown   the notes, linking the figures

Counts by category come from ``census_info/summary_cell_counts``; a category missing there is counted from
obs, one batch at a time. Figures are drawn with matplotlib's Agg canvas (no display, no global backend).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from census_builder.errors import CensusBuilderError
from census_builder.state import BuildPaths

logger = logging.getLogger(__name__)

CATEGORIES = ("assay", "tissue_general", "disease")
CATEGORY_TITLES = {"assay": "assay", "tissue_general": "tissue (tissue_general)", "disease": "disease"}
VERSION_KEYS = (
    "census_schema_version",
    "dataset_schema_version",
    "census_build_date",
    "census_builder_version",
    "tiledbsoma_version",
    "anndata_version",
    "git_commit",
    "manifest_sha256",
)
DATASET_FIELDS = (
    "dataset_version_id",
    "dataset_title",
    "collection_id",
    "collection_name",
    "collection_doi",
    "citation",
    "dataset_h5ad_path",
)
TOP_LABELS = 25  # labels shown per figure panel (the rest are summed into "other")


@dataclass(frozen=True)
class DatasetFacts:
    dataset_id: str
    cells: int
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.fields.get("dataset_title", "")


@dataclass(frozen=True)
class OrganismFacts:
    name: str  # census_data key, e.g. homo_sapiens
    label: str  # e.g. Homo sapiens
    cells: int
    unique_cells: int
    genes: int
    by_category: Mapping[str, Mapping[str, int]]  # category -> label -> cells


@dataclass(frozen=True)
class ReleaseFacts:
    version: str
    uri: str
    metadata: Mapping[str, str]
    summary: Mapping[str, str]
    organisms: Mapping[str, OrganismFacts]
    datasets: Mapping[str, DatasetFacts]

    @property
    def total_cells(self) -> int:
        return sum(o.cells for o in self.organisms.values())


@dataclass(frozen=True)
class DatasetChange:
    dataset_id: str
    before: DatasetFacts
    after: DatasetFacts
    changed_fields: tuple[str, ...]

    @property
    def cell_delta(self) -> int:
        return self.after.cells - self.before.cells


@dataclass(frozen=True)
class ReleaseDiff:
    previous: str
    added: tuple[DatasetFacts, ...]
    removed: tuple[DatasetFacts, ...]
    changed: tuple[DatasetChange, ...]
    unchanged: int


# -- reading -----------------------------------------------------------------------------------------------


def _organism_label(name: str, schema_version: str) -> str:
    from census_builder.schema import load_schema

    try:
        labels = {o.name: o.label for o in load_schema(schema_version).organisms}
    except CensusBuilderError:
        labels = {}
    return labels.get(name, name.replace("_", " ").capitalize())


def _count_obs_column(obs: Any, column: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for batch in obs.read(column_names=[column]):
        counts.update(str(v) for v in batch.column(column).to_pylist())
    return dict(counts)


def read_release(uri: str, *, version: str | None = None, context: Any = None) -> ReleaseFacts:
    """Everything the notes say about one release, read with tiledbsoma from ``uri`` (its root collection)."""
    import tiledbsoma as soma

    root: Any
    with soma.Collection.open(uri, context=context) as root:
        metadata = {k: str(v) for k, v in root.metadata.items() if not k.startswith("soma_")}
        info = root["census_info"]
        summary_df = info["summary"].read().concat().to_pandas()
        summary = dict(zip(summary_df["label"].astype(str), summary_df["value"].astype(str), strict=True))
        ds_df = info["datasets"].read().concat().to_pandas()
        datasets = {
            str(r["dataset_id"]): DatasetFacts(
                dataset_id=str(r["dataset_id"]),
                cells=int(r["dataset_total_cell_count"]),
                fields={f: str(r[f]) for f in DATASET_FIELDS if f in ds_df.columns},
            )
            for _, r in ds_df.iterrows()
        }
        counts = info["summary_cell_counts"].read().concat().to_pandas()
        schema_version = metadata.get("census_schema_version") or summary.get("census_schema_version", "")
        organisms: dict[str, OrganismFacts] = {}
        for name in sorted(root["census_data"].keys()):
            exp = root["census_data"][name]
            label = _organism_label(name, schema_version)
            mine = counts[counts["organism"] == label]
            every = mine[mine["category"] == "all"]
            cells = int(every["total_cell_count"].sum()) if len(every) else int(exp.obs.count)
            unique = int(every["unique_cell_count"].sum()) if len(every) else 0
            by_category: dict[str, dict[str, int]] = {}
            for cat in CATEGORIES:
                rows = mine[mine["category"] == cat]
                if len(rows):
                    by_category[cat] = {
                        str(k): int(v) for k, v in rows.groupby("label")["total_cell_count"].sum().items()
                    }
                elif cat in exp.obs.schema.names:
                    logger.info("%s: %s is not in summary_cell_counts; counting it from obs", name, cat)
                    by_category[cat] = _count_obs_column(exp.obs, cat)
                else:
                    by_category[cat] = {}
            genes = int(exp.ms["RNA"].var.count) if "RNA" in exp.ms else 0
            organisms[name] = OrganismFacts(
                name=name, label=label, cells=cells, unique_cells=unique, genes=genes, by_category=by_category
            )
    return ReleaseFacts(
        version=version or metadata.get("census_version") or Path(uri.rstrip("/")).parent.name,
        uri=uri,
        metadata=metadata,
        summary=summary,
        organisms=organisms,
        datasets=datasets,
    )


def diff_releases(previous: ReleaseFacts, current: ReleaseFacts) -> ReleaseDiff:
    before, after = previous.datasets, current.datasets
    added = tuple(after[d] for d in sorted(set(after) - set(before)))
    removed = tuple(before[d] for d in sorted(set(before) - set(after)))
    changed: list[DatasetChange] = []
    unchanged = 0
    for d in sorted(set(before) & set(after)):
        b, a = before[d], after[d]
        fields = tuple(f for f in DATASET_FIELDS if b.fields.get(f) != a.fields.get(f))
        if b.cells != a.cells:
            fields = ("dataset_total_cell_count", *fields)
        if fields:
            changed.append(DatasetChange(d, b, a, fields))
        else:
            unchanged += 1
    return ReleaseDiff(previous.version, added, removed, tuple(changed), unchanged)


# -- figures -----------------------------------------------------------------------------------------------


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
    fig.savefig(path, dpi=110)


def _draw_category(cur: ReleaseFacts, prev: ReleaseFacts | None, category: str, path: Path) -> None:
    import numpy as np

    names = sorted(cur.organisms)
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
    fig.savefig(path, dpi=110)


def _draw_dataset_changes(diff: ReleaseDiff, version: str, path: Path) -> None:
    import numpy as np

    rows = (
        [(f"+ {d.dataset_id}", d.cells) for d in diff.added]
        + [(f"- {d.dataset_id}", -d.cells) for d in diff.removed]
        + [(f"~ {c.dataset_id}", c.cell_delta) for c in diff.changed]
    )
    fig = _new_figure(8, 1.5 + 0.35 * max(len(rows), 1))
    ax = fig.subplots()
    if rows:
        y = np.arange(len(rows))
        values = [v for _, v in rows]
        bars = ax.barh(y, values, color=["#2ca02c" if v > 0 else "#d62728" if v < 0 else "#7f7f7f" for v in values])
        ax.bar_label(bars, labels=[_signed(v) for v in values], fontsize=8, padding=2)
        ax.margins(x=0.15)
        ax.set_yticks(y, [k for k, _ in rows], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
    else:
        ax.text(0.5, 0.5, "no dataset changes", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("change in cells")
    ax.set_title(f"Census {version} vs {diff.previous}: cells per dataset (+ added, - removed, ~ changed)", fontsize=10)
    fig.savefig(path, dpi=110)


def draw_figures(
    cur: ReleaseFacts, prev: ReleaseFacts | None, diff: ReleaseDiff | None, out_dir: Path
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"totals": out_dir / f"{cur.version}-totals.png"}
    _draw_totals(cur, prev, figures["totals"])
    for cat in CATEGORIES:
        figures[cat] = out_dir / f"{cur.version}-{cat}.png"
        _draw_category(cur, prev, cat, figures[cat])
    if diff is not None:
        figures["datasets"] = out_dir / f"{cur.version}-datasets.png"
        _draw_dataset_changes(diff, cur.version, figures["datasets"])
    return figures


# -- markdown ----------------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    def cell(v: object) -> str:
        text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def _signed(n: int) -> str:
    return f"{n:+,}"


def write_markdown(
    cur: ReleaseFacts,
    prev: ReleaseFacts | None,
    diff: ReleaseDiff | None,
    figures: Mapping[str, Path],
    path: Path,
    *,
    inputs: Mapping[str, Any] | None = None,
) -> None:
    md: list[str] = [f"# CELLxGENE Census release {cur.version}", ""]
    build_date = cur.metadata.get("census_build_date") or cur.summary.get("census_build_date", "")
    md.append(
        f"Built {build_date} with census schema {cur.metadata.get('census_schema_version', '?')}: "
        f"{cur.total_cells:,} cells from {len(cur.datasets)} datasets in {len(cur.organisms)} organisms."
    )
    md.append(f"Compared with release {prev.version}." if prev else "First release: nothing to compare with.")
    md += ["", "## Totals", ""]
    header = ["Organism", "Cells", "Unique cells", "Genes"]
    if prev:
        header += [f"Cells in {prev.version}", "Change"]
    rows: list[list[object]] = []
    for name in sorted(set(cur.organisms) | set(prev.organisms if prev else {})):
        o = cur.organisms.get(name)
        row: list[object] = [
            o.label if o else name,
            o.cells if o else 0,
            o.unique_cells if o else 0,
            o.genes if o else 0,
        ]
        if prev:
            prev_cells = prev.organisms[name].cells if name in prev.organisms else 0
            row += [prev_cells, _signed((o.cells if o else 0) - prev_cells)]
        rows.append(row)
    md += _table(header, rows)
    md += ["", f"![Cells per organism]({figures['totals'].name})", ""]

    for cat in CATEGORIES:
        md += [f"## Cells by {CATEGORY_TITLES[cat]}", ""]
        for name, o in sorted(cur.organisms.items()):
            counts = o.by_category.get(cat, {})
            before = prev.organisms[name].by_category.get(cat, {}) if prev and name in prev.organisms else None
            md += [f"### {o.label}", ""]
            head = [cat, "Cells"] + ([f"Cells in {prev.version}", "Change"] if before is not None and prev else [])
            labels = sorted(set(counts) | set(before or {}), key=lambda k: (-counts.get(k, 0), k))
            body: list[list[object]] = []
            for k in labels:
                r: list[object] = [k, counts.get(k, 0)]
                if before is not None:
                    r += [before.get(k, 0), _signed(counts.get(k, 0) - before.get(k, 0))]
                body.append(r)
            md += [*_table(head, body), ""]
        md += [f"![Cells by {CATEGORY_TITLES[cat]}]({figures[cat].name})", ""]

    md += ["## Datasets", ""]
    if diff is None or prev is None:
        md += [f"{len(cur.datasets)} datasets (no previous release to compare with).", ""]
        listed = sorted(cur.datasets.values(), key=lambda d: d.dataset_id)
        md += _table(["Dataset", "Title", "Cells"], [[d.dataset_id, d.title, d.cells] for d in listed])
        md.append("")
    else:
        md += [
            f"Versus {prev.version}: {len(diff.added)} added, {len(diff.removed)} removed, "
            f"{len(diff.changed)} changed, {diff.unchanged} unchanged; "
            f"cells {_signed(cur.total_cells - prev.total_cells)} ({prev.total_cells:,} -> {cur.total_cells:,}).",
            "",
        ]
        md += [f"### Added ({len(diff.added)})", ""]
        md += [*_table(["Dataset", "Title", "Cells"], [[d.dataset_id, d.title, d.cells] for d in diff.added]), ""]
        md += [f"### Removed ({len(diff.removed)})", ""]
        md += [
            *_table(
                ["Dataset", "Title", f"Cells in {prev.version}"],
                [[d.dataset_id, d.title, d.cells] for d in diff.removed],
            ),
            "",
        ]
        md += [f"### Changed ({len(diff.changed)})", ""]
        md += [
            *_table(
                ["Dataset", "What changed", f"Cells in {prev.version}", "Cells", "Change"],
                [
                    [c.dataset_id, ", ".join(c.changed_fields), c.before.cells, c.after.cells, _signed(c.cell_delta)]
                    for c in diff.changed
                ],
            ),
            "",
        ]
        md += [f"![Dataset changes]({figures['datasets'].name})", ""]

    md += _left_out(inputs or {})
    md += ["## Schema and software versions", ""]
    vrows = [
        [
            k,
            cur.metadata.get(k, cur.summary.get(k, "")),
            *([prev.metadata.get(k, prev.summary.get(k, ""))] if prev else []),
        ]
        for k in VERSION_KEYS
    ]
    md += [*_table(["", cur.version, *([prev.version] if prev else [])], vrows), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(md), encoding="utf-8")


def _left_out(inputs: Mapping[str, Any]) -> list[str]:
    """Manifest datasets that are not in the release (invalid ones excluded with --exclude-invalid, and those
    the Census filters leave without cells), and preflight warnings, from the build report."""
    rows = [
        [d["dataset_id"], "invalid input", f"{d.get('field', '')}: {d['reason']}".lstrip(": ")]
        for d in inputs.get("invalid", [])
    ]
    rows += [[d["dataset_id"], "no cells pass the Census filters", d["reason"]] for d in inputs.get("no_cells", [])]
    md: list[str] = []
    if rows:
        md += ["## Datasets left out", "", *_table(["Dataset", "Why", "Details"], rows), ""]
    warnings = inputs.get("warnings", {})
    if warnings:
        md += ["## Build warnings", "", *[f"- {ds}: {w}" for ds, ws in warnings.items() for w in ws], ""]
    return md


# -- the command -------------------------------------------------------------------------------------------


def find_previous(workdir: str | Path, version: str) -> str | None:
    """The newest complete build in ``workdir`` whose name sorts before ``version``."""
    root = Path(workdir)
    names = (
        sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and p.name < version and BuildPaths.for_version(root, p.name).is_complete()
        )
        if root.is_dir()
        else []
    )
    return names[-1] if names else None


def make_notes(
    workdir: str | Path, version: str, *, previous: str | None = None, out_dir: str | Path = "release_notes"
) -> Path:
    """Write ``out_dir/VERSION.md`` and its figures; returns the markdown path. ``previous`` defaults to the
    newest complete build in ``workdir`` named before ``version``."""
    paths = BuildPaths.for_version(workdir, version)
    if not paths.is_complete():
        raise CensusBuilderError(f"build {version} in {paths.root} is not complete; build it first")
    prev_name = previous if previous is not None else find_previous(workdir, version)
    prev_paths = BuildPaths.for_version(workdir, prev_name) if prev_name else None
    if prev_paths is not None and not prev_paths.is_complete():
        raise CensusBuilderError(f"previous build {prev_name} in {prev_paths.root} is not complete")
    cur = read_release(str(paths.soma), version=version)
    prev = read_release(str(prev_paths.soma), version=prev_name) if prev_paths is not None else None
    diff = diff_releases(prev, cur) if prev is not None else None
    out = Path(out_dir)
    figures = draw_figures(cur, prev, diff, out)
    md = out / f"{version}.md"
    report = json.loads(paths.report.read_text(encoding="utf-8")) if paths.report.is_file() else {}
    write_markdown(cur, prev, diff, figures, md, inputs=report.get("inputs"))
    logger.info(
        "release notes written: %s (%d figures)%s",
        md,
        len(figures),
        f", compared with {prev_name}" if prev_name else "",
    )
    return md

"""The report's HTML pages: the overview rendered here; the Gene Expression and markers pages are shells that
their scripts (static/gene_expression.js, static/markers.js) fill from ``data/``."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from census_builder.release.notes_compare import CATEGORIES, CATEGORY_TITLES, ReleaseFacts

PAGES = (("index.html", "Overview"), ("gene_expression.html", "Gene Expression"), ("markers.html", "Marker genes"))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(name: str, title: str, version: str, body: str, scripts: Sequence[str] = ()) -> str:
    here = ' class="here"'
    nav = " ".join(f'<a href="{p}"{here if p == name else ""}>{_e(label)}</a>' for p, label in PAGES)
    tags = "\n".join(f'<script src="{_e(s)}"></script>' for s in scripts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · Census {_e(version)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="report.css">
</head>
<body>
<header><span class="brand">Census {_e(version)}</span> <nav>{nav}</nav></header>
<main>
{body}
</main>
{tags}
</body>
</html>
"""


def _bars(counts: Mapping[str, int]) -> str:
    if not counts:
        return '<p class="muted">none</p>'
    top = max(counts.values()) or 1
    rows = "".join(
        f'<tr><td>{_e(label)}</td><td class="num">{n:,}</td>'
        f'<td class="bar"><span style="width:{100 * n / top:.1f}%"></span></td></tr>'
        for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return f'<table class="counts"><tbody>{rows}</tbody></table>'


def overview(facts: ReleaseFacts, index: Mapping[str, Any]) -> str:
    """Return the body of index.html."""
    meta = {**facts.summary, **facts.metadata}
    versions = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(meta[k])}</td></tr>"
        for k in ("census_version", "census_schema_version", "census_build_date", "dataset_schema_version")
        if k in meta
    )
    org_rows = "".join(
        f'<tr><td>{_e(o.label)} <span class="muted">({_e(o.name)})</span></td><td class="num">{o.cells:,}</td>'
        f'<td class="num">{o.unique_cells:,}</td><td class="num">{o.genes:,}</td></tr>'
        for o in facts.organisms.values()
    )
    parts = [
        f"<h1>Census {_e(facts.version)}</h1>",
        f'<table class="facts">{versions}</table>',
        '<p>Pages: <a href="gene_expression.html">Gene Expression</a> (dot plot of mean expression and fraction of '
        'cells expressing, by cell type, with group-by) · <a href="markers.html">Marker genes</a> per tissue and cell '
        "type.</p>",
        "<h2>Cells per organism</h2>",
        '<table id="organisms"><thead><tr><th>organism</th><th>cells</th><th>unique (primary) cells</th>'
        f"<th>genes</th></tr></thead><tbody>{org_rows}</tbody></table>",
    ]
    if not index.get("gene_expression"):
        parts.append(
            '<p class="note">This release has no Gene Expression data yet: run '
            f"<code>{_e(index['produce'])}</code>, then the report again.</p>"
        )
    for o in facts.organisms.values():
        parts.append(f'<h2 id="cells-{_e(o.name)}">Cells of {_e(o.label)}</h2><div class="cats">')
        for cat in CATEGORIES:
            parts.append(
                f'<section class="cat" data-category="{_e(cat)}"><h3>by {_e(CATEGORY_TITLES[cat])}</h3>'
                f"{_bars(o.by_category.get(cat, {}))}</section>"
            )
        parts.append("</div>")
    ds_rows = []
    for d in sorted(
        facts.datasets.values(), key=lambda d: (d.fields.get("collection_name", ""), d.title, d.dataset_id)
    ):
        doi = d.fields.get("collection_doi", "")
        doi_html = f'<a href="https://doi.org/{_e(doi)}">{_e(doi)}</a>' if doi else ""
        ds_rows.append(
            f"<tr><td>{_e(d.fields.get('collection_name', ''))}</td><td>{doi_html}</td>"
            f'<td>{_e(d.title or d.dataset_id)} <span class="muted">({_e(d.dataset_id)})</span></td>'
            f'<td class="num">{d.cells:,}</td></tr>'
        )
    parts += [
        f"<h2>Datasets ({len(facts.datasets):,}) and their collections</h2>",
        '<table id="datasets"><thead><tr><th>collection</th><th>DOI</th><th>dataset</th><th>cells</th></tr></thead>'
        f"<tbody>{''.join(ds_rows)}</tbody></table>",
    ]
    return "\n".join(parts)


GENE_EXPRESSION_BODY = """<h1>Gene Expression</h1>
<p class="muted">Rows are cell types, columns genes. Dot colour: mean expression, ln(CPTT+1) over the cells that
express the gene; dot size: fraction of the cell type's cells expressing it. Hover over a dot for the numbers.</p>
<div id="controls" class="controls">
<label>organism <select id="organism"></select></label>
<label>tissue <select id="tissue"></select></label>
<label>group by <select id="groupby"><option value="none">none</option></select></label>
<label>gene <input id="gene-input" list="gene-list" placeholder="symbol or feature id" size="18"></label>
<datalist id="gene-list"></datalist>
<button id="gene-add" type="button">add</button>
<button id="gene-clear" type="button">clear genes</button>
<span id="gene-msg" class="msg"></span>
</div>
<div id="genes" class="chips"></div>
<div id="status" class="msg"></div>
<div id="dotplot"></div>
<p id="method" class="muted"></p>"""

MARKERS_BODY = """<h1>Marker genes</h1>
<p class="muted">The top marker genes of each cell type within a tissue, with their effect sizes (rank 1 first).
Click a cell type to show its markers in the Gene Expression dot plot.</p>
<div class="controls">
<label>organism <select id="organism"></select></label>
<label>tissue <select id="tissue"></select></label>
</div>
<div id="status" class="msg"></div>
<table id="markers"><thead><tr><th>cell type</th><th>top marker genes (effect size)</th></tr></thead>
<tbody></tbody></table>"""


def write_pages(out: Path, facts: ReleaseFacts, index: Mapping[str, Any]) -> None:
    """Write index.html, gene_expression.html and markers.html to ``out``."""
    v = facts.version
    (out / "index.html").write_text(_page("index.html", "Overview", v, overview(facts, index)), encoding="utf-8")
    ge = _page(
        "gene_expression.html",
        "Gene Expression",
        v,
        GENE_EXPRESSION_BODY,
        ("plotly.min.js", "data/index.js", "report.js", "gene_expression.js"),
    )
    (out / "gene_expression.html").write_text(ge, encoding="utf-8")
    mk = _page("markers.html", "Marker genes", v, MARKERS_BODY, ("data/index.js", "report.js", "markers.js"))
    (out / "markers.html").write_text(mk, encoding="utf-8")

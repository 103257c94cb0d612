"""The report in a real browser: headless Debian Chromium (Playwright) opens every page from file://; no console
errors, no failed requests; the dot plot's figure data (plotly's ``data`` of the plot div) has the expected dots
for known genes; the tissue / gene pickers, the group-by and the markers page's links work. Screenshots go to the
test's tmp dir."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.census_builder.report.conftest import Report

KEYS = ["tissue_general_ontology_term_id", "cell_type_ontology_term_id"]
FIGURE = """() => {
  const d = document.getElementById('dotplot'), t = d.data[0];
  return {x: t.x, y: t.y, custom: t.customdata, size: t.marker.size, color: t.marker.color,
          rows: d.layout.yaxis.ticktext, genes: d.layout.xaxis.ticktext,
          status: document.getElementById('status').textContent};
}"""


class Problems(list[str]):
    """Console errors, page errors and failed requests seen by a page."""


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Problems]]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    problems = Problems()
    p.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    p.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    yield p, problems
    context.close()


def _url(out: Path, name: str, hash_: str = "") -> str:
    return (out / name).as_uri() + hash_


def _rendered(p: Any, after: int = 0) -> int:
    """Wait until the dot plot has drawn a render newer than ``after``; return its number."""
    js = f"() => Number(document.getElementById('dotplot').dataset.rendered || 0) > {after}"
    p.wait_for_function(js, timeout=30_000)
    return int(p.evaluate("() => Number(document.getElementById('dotplot').dataset.rendered)"))


def _expected(
    report: Report, tissue: str, genes: list[str], category: str = ""
) -> set[tuple[str, str, int, int, float]]:
    """(gene symbol, row label, n_expressing, n_cells, mean) of each dot, from the test's DataFrames."""
    org = "homo_sapiens"
    df = report.data.by_category[org][category] if category else report.data.cube[org]
    labels = report.data.labels[org]
    symbol = dict(zip(report.data.genes[org]["feature_id"], report.data.genes[org]["feature_name"], strict=True))
    df = df[(df[KEYS[0]] == tissue) & df["feature_id"].isin(genes)]
    out = set()
    for _, r in df.iterrows():
        ct = labels[r[KEYS[1]]]
        n = int(r["n_cells"])
        value = labels[r[f"{category}_ontology_term_id"]] if category else ""
        row = f"{ct} \u00b7 {value} ({n:,})" if category else f"{ct} ({n:,} cells)"
        out.add((symbol[r["feature_id"]], row, int(r["n_expressing"]), n, round(float(r["mean_expression"]), 4)))
    return out


def _dots(fig: dict[str, Any]) -> set[tuple[str, str, int, int, float]]:
    dots = set()
    for x, y, c, size, color in zip(fig["x"], fig["y"], fig["custom"], fig["size"], fig["color"], strict=True):
        symbol, row, e, n, frac, mean = c
        assert fig["genes"][x] == symbol and fig["rows"][y] == row
        assert color == mean and frac == pytest.approx(e / n)
        assert size == pytest.approx(4 + 18 * math.sqrt(e / n))
        dots.add((symbol, row, e, n, mean))
    return dots


def _tissue(report: Report, label: str) -> str:
    return next(t for t, lab in report.data.labels["homo_sapiens"].items() if lab == label and t.startswith("UBERON"))


def test_every_page_opens_without_errors(report: Report, page: tuple[Any, Problems], tmp_path: Path) -> None:
    p, problems = page
    p.goto(_url(report.out, "index.html"))
    assert p.locator("#organisms tbody tr").count() == 2
    p.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    p.goto(_url(report.out, "gene_expression.html"))
    _rendered(p)
    fig = p.evaluate(FIGURE)
    assert len(fig["x"]) > 0 and fig["status"] == ""  # the default selection shows dots
    p.screenshot(path=str(tmp_path / "gene_expression.png"), full_page=True)
    p.goto(_url(report.out, "markers.html"))
    p.wait_for_selector("#markers[data-rendered]")
    p.screenshot(path=str(tmp_path / "markers.png"), full_page=True)
    assert problems == []
    assert all((tmp_path / f"{n}.png").stat().st_size > 10_000 for n in ("index", "gene_expression", "markers"))


def test_dot_plot_shows_the_known_genes(report: Report, page: tuple[Any, Problems]) -> None:
    p, problems = page
    var = report.data.genes["homo_sapiens"]["feature_id"].tolist()
    genes = [var[300], var[0], var[1]]  # blocks 1 and 0; var[1] is never expressed (the test data skips odd genes)
    kidney = _tissue(report, "kidney")
    p.goto(_url(report.out, "gene_expression.html", f"#organism=homo_sapiens&tissue={kidney}&genes={','.join(genes)}"))
    _rendered(p)
    fig = p.evaluate(FIGURE)
    want = _expected(report, kidney, genes)
    assert len(want) >= 3 and _dots(fig) == want
    assert len(fig["x"]) == len(want)
    assert fig["rows"] == ["B cell (47 cells)", "macrophage (59 cells)", "T cell (62 cells)"]
    symbols = report.data.genes["homo_sapiens"].set_index("feature_id")["feature_name"]
    assert fig["genes"] == [symbols[g] for g in genes]
    assert problems == []


def test_pickers_and_group_by(report: Report, page: tuple[Any, Problems], tmp_path: Path) -> None:
    p, problems = page
    p.goto(_url(report.out, "gene_expression.html"))
    n = _rendered(p)
    lung = _tissue(report, "lung")
    p.select_option("#tissue", label="lung")
    n = _rendered(p, n)
    p.click("#gene-clear")
    n = _rendered(p, n)
    assert p.evaluate(FIGURE)["x"] == [] and p.evaluate(FIGURE)["status"] == "pick genes to plot"
    genes = report.data.genes["homo_sapiens"]
    for i in (2, 10):
        p.fill("#gene-input", genes["feature_name"][i])
        p.click("#gene-add")
        n = _rendered(p, n)
    picked = [genes["feature_id"][2], genes["feature_id"][10]]
    assert _dots(p.evaluate(FIGURE)) == _expected(report, lung, picked)

    p.select_option("#groupby", "sex")
    n = _rendered(p, n)
    fig = p.evaluate(FIGURE)
    want = _expected(report, lung, picked, "sex")
    assert len(want) > 3 and _dots(fig) == want
    by_sex = report.data.by_category["homo_sapiens"]["sex"]
    assert len(fig["rows"]) == len(by_sex[by_sex[KEYS[0]] == lung].groupby([KEYS[1], "sex_ontology_term_id"]))
    p.screenshot(path=str(tmp_path / "group_by_sex.png"), full_page=True)

    p.fill("#gene-input", "NO-SUCH-GENE")
    p.click("#gene-add")
    assert p.text_content("#gene-msg") == "unknown gene: NO-SUCH-GENE"
    p.click(f".chip[data-feature-id='{picked[0]}'] button")
    n = _rendered(p, n)
    assert _dots(p.evaluate(FIGURE)) == _expected(report, lung, picked[1:], "sex")
    assert f"tissue={lung.replace(':', '%3A')}&groupby=sex&genes={picked[1]}" in p.url
    assert problems == []


def test_markers_open_in_the_dot_plot(report: Report, page: tuple[Any, Problems]) -> None:
    p, problems = page
    p.goto(_url(report.out, "markers.html"))
    p.wait_for_selector("#markers[data-rendered]")
    p.select_option("#tissue", label="brain")
    brain = _tissue(report, "brain")
    p.wait_for_selector(f"#markers[data-rendered='{brain}']")
    mk = report.data.markers["homo_sapiens"]
    mine = mk[mk[KEYS[0]] == brain]
    assert p.locator("#markers tbody tr").count() == mine[KEYS[1]].nunique() == 3
    row = p.locator("#markers tbody tr").first
    ct = row.get_attribute("data-cell-type")
    markers = mine[mine[KEYS[1]] == ct].sort_values("rank")
    symbols = report.data.genes["homo_sapiens"].set_index("feature_id")["feature_name"]
    first = markers.iloc[0]
    assert f"{symbols[first['feature_id']]} ({first['effect_size']:.2f})" in (row.text_content() or "")
    row.locator("td.ct").click()
    p.wait_for_url("**/gene_expression.html#*")
    _rendered(p)
    fig = p.evaluate(FIGURE)
    genes = markers["feature_id"].tolist()
    assert fig["genes"] == [symbols[g] for g in genes]
    assert _dots(fig) == _expected(report, brain, genes)
    assert problems == []


def test_without_gene_expression_the_pages_say_how(report_without_ge: Path, page: tuple[Any, Problems]) -> None:
    p, problems = page
    for name in ("gene_expression.html", "markers.html"):
        p.goto(_url(report_without_ge, name))
        text = p.text_content("#no-data") or ""
        assert "python -m census_builder gene-expression --version example --workdir" in text, text
    p.goto(_url(report_without_ge, "index.html"))
    assert p.locator("#datasets tbody tr").count() == 5
    assert problems == []

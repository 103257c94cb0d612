"""End to end: build -> ``gene-expression`` -> ``report``; the browser shows the real
cube's dots (headless Chromium; the expected dots read from the cube's Parquet with pandas)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from census_builder.testing.synthetic import write_corpus
from tests.census_builder.gene_expression.test_stage import gene_expression_specs
from tests.conftest import run_main_once

KEYS = ["tissue_general_ontology_term_id", "cell_type_ontology_term_id"]


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``build --gene-expression`` of the cube tests' small corpus (cells with ~500 genes), then ``report``:
    DIR/VERSION."""
    manifest = write_corpus(tmp_path_factory.mktemp("report-e2e-corpus"), gene_expression_specs())
    workdir = tmp_path_factory.mktemp("report-e2e")
    w = str(workdir)
    argv = ["build", "--version", "e2e", "--manifest", str(manifest), "--workdir", w, "--workers", "1"]
    assert run_main_once([*argv, "--no-validate", "--gene-expression"]) == 0
    assert run_main_once(["report", "--version", "e2e", "--workdir", w]) == 0
    return workdir / "e2e"


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    problems: list[str] = []
    p.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    p.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    yield p, problems
    context.close()


@pytest.mark.slow  # a build and the cube (~1 min on a loaded machine)
def test_the_dot_plot_shows_the_real_cube(real_report: Path, page: tuple[Any, list[str]], tmp_path: Path) -> None:
    p, problems = page
    cube = pd.read_parquet(real_report / "gene_expression" / "homo_sapiens.parquet")
    for k in [*KEYS, "feature_id"]:
        cube[k] = cube[k].astype(str)
    # the gene expressed in the most groups of the tissue with the most rows: a known gene with many dots
    tissue = cube[KEYS[0]].value_counts().index[0]
    mine = cube[cube[KEYS[0]] == tissue]
    gene = mine["feature_id"].value_counts().index[0]
    want = mine[mine["feature_id"] == gene]
    url = (
        real_report / "report" / "gene_expression.html"
    ).as_uri() + f"#organism=homo_sapiens&tissue={tissue}&genes={gene}"
    p.goto(url)
    p.wait_for_function("() => Number(document.getElementById('dotplot').dataset.rendered || 0) > 0", timeout=30_000)
    fig = p.evaluate("() => document.getElementById('dotplot').data[0].customdata")
    got = sorted((c[2], c[3], c[5]) for c in fig)
    expected = sorted(
        (int(e), int(n), round(float(m), 4))
        for e, n, m in zip(want["n_expressing"], want["n_cells"], want["mean_expression"], strict=True)
    )
    assert len(got) == len(want) > 0 and got == expected
    p.screenshot(path=str(tmp_path / "gene_expression.png"), full_page=True)
    p.goto((real_report / "report" / "markers.html").as_uri())
    p.wait_for_selector("#markers[data-rendered]")
    assert p.locator("#markers tbody tr").count() > 0
    assert problems == []

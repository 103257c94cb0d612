"""The report's fixtures: a copy of the example release with test gene_expression/ files, its report written
once by the CLI (package scope: the data and the browser tests share it), and one headless Chromium per module."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.census_builder.report.ge_data import GeneExpressionData, write_gene_expression
from tests.conftest import BuiltRelease, run_main_once

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER = "CENSUS_BUILDER_REQUIRE_BROWSER"


@dataclass(frozen=True)
class Report:
    workdir: Path
    version: str
    out: Path  # the report directory
    data: GeneExpressionData

    def read_js(self, key: str) -> Any:
        """The value a data file ``data/KEY.js`` assigns."""
        text = (self.out / "data" / f"{key}.js").read_text(encoding="ascii")
        prefix = f"(window.CB_DATA=window.CB_DATA||{{}})[{json.dumps(key)}]="
        assert text.startswith(prefix) and text.endswith(";\n"), text[:200]
        return json.loads(text[len(prefix) : -2])


@pytest.fixture(scope="package")
def report(tmp_path_factory: pytest.TempPathFactory, example_release: BuiltRelease) -> Report:
    """The example release (copied) with test gene_expression/ files, and its report (``report`` CLI)."""
    workdir = tmp_path_factory.mktemp("report-build")
    shutil.copytree(example_release.paths.root, workdir / "example")
    data = write_gene_expression(workdir / "example")
    code = run_main_once(["report", "--version", "example", "--workdir", str(workdir)])
    assert code == 0
    return Report(workdir, "example", workdir / "example" / "report", data)


@pytest.fixture(scope="package")
def report_without_ge(tmp_path_factory: pytest.TempPathFactory, example_release: BuiltRelease) -> Path:
    """The report of the example release with no gene_expression/ (its report directory)."""
    workdir = tmp_path_factory.mktemp("report-no-ge")
    shutil.copytree(example_release.paths.root, workdir / "example")
    code = run_main_once(["report", "--version", "example", "--workdir", str(workdir)])
    assert code == 0
    return workdir / "example" / "report"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium per module (Playwright); skipped without it, unless
    CENSUS_BUILDER_REQUIRE_BROWSER=1 (CI): then the tests fail."""
    if not CHROMIUM.exists():
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{CHROMIUM} is missing and {REQUIRE_BROWSER}=1: install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (Debian's chromium package); the report's browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()

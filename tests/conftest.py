"""Shared fixtures: the example corpus and one release built from it (session-scoped: built once)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths
from census_builder.testing.synthetic import example_specs, write_corpus


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Repeat the random order's seed at the end: with -q (make test, CI) pytest hides the header that shows it."""
    seed = config.getoption("randomly_seed", default=None)
    if isinstance(seed, int):
        terminalreporter.write_line(f"tests ran in random order; replay it with -p randomly --randomly-seed={seed}")


@dataclass(frozen=True)
class BuiltRelease:
    paths: BuildPaths
    manifest: Path
    corpus: Path

    @property
    def soma_uri(self) -> str:
        return str(self.paths.soma)


@pytest.fixture(scope="session")
def example_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example corpus's manifest (H5ADs beside it). Treat as read-only."""
    return write_corpus(tmp_path_factory.mktemp("corpus"), example_specs())


@pytest.fixture(scope="session")
def example_release(tmp_path_factory: pytest.TempPathFactory, example_corpus: Path) -> Iterator[BuiltRelease]:
    """A complete release built from the example corpus with two local dask workers. Treat as read-only:
    copy it (shutil.copytree) before changing anything."""
    workdir = tmp_path_factory.mktemp("build")
    paths = build(
        BuildConfig(version="example", manifest=example_corpus, workdir=workdir, workers=2, build_date="2026-11-22")
    )
    yield BuiltRelease(paths=paths, manifest=example_corpus, corpus=example_corpus.parent)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """cli.main configures the root logger; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    ours = logging.getLogger("census_builder")
    ours_level = ours.level
    validation_level = logging.getLogger("validation").level
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()  # e.g. the log file handlers of build / validate / publish / notes
    root.handlers[:] = handlers
    root.setLevel(level)
    ours.setLevel(ours_level)
    logging.getLogger("validation").setLevel(validation_level)

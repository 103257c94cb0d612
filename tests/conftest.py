"""Shared fixtures: the example corpus and one release built from it (session-scoped: built once)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# Tests run in a random order (pytest-randomly), so every test must leave the process as it found it. The
# commands under test configure process-wide state as a command line does: cli.main and validation's main
# replace the root logger's handlers and set logger levels, the dask client sets dask's global config and
# quiets dask's loggers. The two autouse fixtures below put all of that back after every test.


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put back the root logger's handlers and level and the level of every logger that existed before."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: lg.level for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()  # e.g. the log file handlers of build / validate / publish / notes
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lg in logging.root.manager.loggerDict.items():
        if isinstance(lg, logging.Logger) and name in levels:
            lg.setLevel(levels[name])


def _put_back(current: dict[str, Any], saved: dict[str, Any]) -> None:
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            _put_back(current[key], value)
        else:
            current[key] = copy.deepcopy(value)


@pytest.fixture(autouse=True)
def restore_dask_config() -> Iterator[None]:
    """Put back every value of dask's global config (the build's dask client sets it without a context
    manager). Keys that appear during a test stay: a package imported then adds its defaults."""
    import dask.config
    import distributed  # noqa: F401 - its defaults join the config on import: be they in the snapshot

    saved = copy.deepcopy(dask.config.config)
    yield
    _put_back(dask.config.config, saved)

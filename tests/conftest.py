"""Shared fixtures: the example corpus and one release built from it (session-scoped: built once)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.config
import distributed  # noqa: F401 - imported before the baseline below: its config defaults and loggers are in it
import pytest

from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths
from census_builder.testing.synthetic import example_specs, write_corpus
from tests.spatial_build import Built, build_spatial_release


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say the random order's seed first too: a run that dies (a crash in a C library) never reaches its summary."""
    seed = session.config.getoption("randomly_seed", default=None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if isinstance(seed, int) and reporter is not None:
        reporter.write_line(f"random order: -p randomly --randomly-seed={seed}")


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


@pytest.fixture(scope="session")
def spatial_release(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The small mixed Census 2.4.0 release with census_spatial_sequencing (tests/spatial_build.py), built once
    for test_build_spatial.py and test_spatial_end_to_end.py. Treat as read-only: copy it before changing it."""
    return build_spatial_release(tmp_path_factory)


# Tests run in a random order (pytest-randomly), so no test may depend on what ran before it. The commands
# under test configure process-wide state as a command line does: cli.main and validation's main replace the
# root logger's handlers and set logger levels; the build's dask client sets dask's global config (without a
# context manager) and quiets dask's loggers, also when a session or module fixture builds. The autouse
# fixtures below start and leave every test with dask's config and the logger levels of the session's start
# (the baseline, taken here) and with the root handlers it found.
def _levels() -> dict[str, int]:
    return {name: lg.level for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}


_DASK_CONFIG = copy.deepcopy(dask.config.config)
_ROOT_LEVEL = logging.getLogger().level
_LOGGER_LEVELS = _levels()
_ABSENT = object()


def _put_back(current: dict[str, Any], saved: dict[str, Any]) -> None:
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            _put_back(current[key], value)
        elif current.get(key, _ABSENT) != value:
            current[key] = copy.deepcopy(value)


def _set_levels(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        lg = logging.root.manager.loggerDict.get(name)
        if isinstance(lg, logging.Logger) and lg.level != level:  # setLevel clears every logger's cache
            lg.setLevel(level)


def run_main_once(argv: list[str]) -> int:
    """Run the CLI's ``main(argv)`` from a module- or session-scoped fixture, which runs outside
    :func:`restore_logging`: the root logger's handlers and level are put back, the handlers main() added closed,
    and the warnings it raises (e.g. tiledbsoma's experimental spatial types) are not recorded."""
    import warnings

    from census_builder.cli.main import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return main(argv)
    finally:
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The baseline's logger levels before and after the test (loggers created since: the levels they had
    before the test); the root logger's handlers as the test found them."""
    logging.getLogger().setLevel(_ROOT_LEVEL)
    _set_levels(_LOGGER_LEVELS)
    root = logging.getLogger()
    handlers = root.handlers[:]
    later = _levels()
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()  # e.g. the log file handlers of build / validate / publish / notes
    root.handlers[:] = handlers
    root.setLevel(_ROOT_LEVEL)
    _set_levels({**later, **_LOGGER_LEVELS})


@pytest.fixture(autouse=True)
def restore_dask_config() -> Iterator[None]:
    """Every value of dask's global config as in the baseline, before and after the test. Keys added since
    stay (a package imported later adds its defaults)."""
    _put_back(dask.config.config, _DASK_CONFIG)
    yield
    _put_back(dask.config.config, _DASK_CONFIG)

"""The autouse fixtures of tests/conftest.py undo what a command changes process-wide (random test order)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

LEAKS_THEN_CHECKS = """
import logging

import dask.config

from census_builder.cli.logs import configure_logging

FAILURES = dask.config.get("distributed.scheduler.allowed-failures")
LEVEL = logging.getLogger("census_builder").level


def test_1_configures_like_a_command() -> None:
    dask.config.set({"distributed.scheduler.allowed-failures": FAILURES + 1})  # as the build's dask client does
    configure_logging(logging.DEBUG)


def test_2_finds_the_process_as_it_was() -> None:
    assert dask.config.get("distributed.scheduler.allowed-failures") == FAILURES
    assert logging.getLogger("census_builder").level == LEVEL
    assert not any(type(h) is logging.StreamHandler for h in logging.getLogger().handlers)
"""


@pytest.mark.parametrize(
    ("conftest", "outcome"),
    [
        ("from tests.conftest import restore_dask_config, restore_logging  # noqa: F401", {"passed": 2}),
        ("", {"passed": 1, "failed": 1}),  # the control: without them the second test sees the first one's changes
    ],
)
def test_a_command_run_by_one_test_leaves_nothing_for_the_next(
    pytester: pytest.Pytester, conftest: str, outcome: dict[str, int]
) -> None:
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_order=LEAKS_THEN_CHECKS)
    pytester.runpytest_inprocess("-p", "no:randomly", "-p", "no:cacheprovider").assert_outcomes(**outcome)

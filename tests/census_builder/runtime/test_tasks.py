"""The shared task runner: results in order, outcomes as they complete, errors to the caller, cancellation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from census_builder.runtime.cluster import TaskCall, run_calls, run_tasks


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:  # type: ignore[no-untyped-call]
        yield c


def _square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


def _add(x: int, y: int) -> int:
    return x + y


def test_run_tasks_returns_results_in_item_order_and_reports_each(client: Any) -> None:
    seen: list[tuple[int, int]] = []
    assert run_tasks(client, _square, [3, 1, 2], on_result=lambda item, res: seen.append((item, res))) == [9, 1, 4]
    assert sorted(seen) == [(1, 1), (2, 4), (3, 9)]
    assert run_tasks(client, _square, []) == []


def test_run_tasks_reraises_a_task_error(client: Any) -> None:
    with pytest.raises(ValueError, match="negative: -1"):
        run_tasks(client, _square, [2, -1, 3])


def test_run_calls_hands_errors_and_results_to_the_handler(client: Any) -> None:
    outcomes: dict[int, Any] = {}

    def done(i: int, res: Any, error: Exception | None) -> None:
        outcomes[i] = repr(error) if error is not None else res

    run_calls(client, [TaskCall(_add, (1, 2)), TaskCall(_square, (-4,), priority=5), TaskCall(_square, (5,))], done)
    assert outcomes == {0: 3, 1: "ValueError('negative: -4')", 2: 25}


def test_a_handler_error_stops_the_run(client: Any) -> None:
    def done(i: int, res: Any, error: Exception | None) -> None:
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        run_calls(client, [TaskCall(_square, (i,)) for i in range(4)], done)

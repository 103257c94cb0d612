"""Progress lines of a validation phase: throttled, with tasks, cells/s and ETA, and one at the end."""

from __future__ import annotations

import logging

import pytest

from validation.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "validation.progress"]


def test_lines_at_most_every_ten_seconds_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="validation.progress")
    clock = Clock()
    p = Progress("check_contents", 4, total_cells=400, clock=clock)
    for t in (1.0, 5.0, 12.0, 13.0):
        clock.now = 100.0 + t
        p.update(cells=100)
    assert _lines(caplog) == [
        "[check_contents] 3/4 tasks, 300/400 cells, 25 cells/s, ETA 0:00:04, elapsed 0:00:12",
        "[check_contents] 4/4 tasks, 400/400 cells, 31 cells/s, elapsed 0:00:13",
    ]


def test_resumed_tasks_count_as_done_but_not_towards_the_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="validation.progress")
    clock = Clock()
    p = Progress("check_contents", 4, total_cells=400, resumed=2, resumed_cells=200, clock=clock)
    clock.now += 10
    p.update(cells=100)
    assert _lines(caplog) == [
        "[check_contents] 3/4 tasks (2 from the checkpoint), 300/400 cells, 10 cells/s, ETA 0:00:10, elapsed 0:00:10"
    ]


def test_without_cells_the_eta_follows_tasks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="validation.progress")
    clock = Clock()
    p = Progress("plan_datasets", 3, every=0.0, clock=clock)
    clock.now += 20
    p.update()
    assert _lines(caplog) == ["[plan_datasets] 1/3 tasks, ETA 0:00:40, elapsed 0:00:20"]

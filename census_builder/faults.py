"""Named fault-injection points for the reliability tests.

A test sets ``CENSUS_BUILDER_KILL_AT=<point>`` (e.g. ``after:plan_axes``, ``chunk:<dataset>#<i>``,
``before:move_release``) to have the process that reaches that point SIGKILL itself, exactly as a crash
would. Nothing else reads the variable; unset, every point is a no-op.
"""

from __future__ import annotations

import os
import signal

ENV = "CENSUS_BUILDER_KILL_AT"


def point(name: str) -> None:
    target = os.environ.get(ENV)
    if target and target == name:
        os.kill(os.getpid(), signal.SIGKILL)

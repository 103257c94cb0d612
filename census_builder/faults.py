"""Named fault-injection points for the reliability tests.

A test sets ``CENSUS_BUILDER_KILL_AT=<point>`` (e.g. ``after:plan_axes``, ``chunk:<dataset>#<i>``,
``before:move_release``) to have the process that reaches that point SIGKILL itself, exactly as a crash
would; or ``CENSUS_BUILDER_PAUSE_AT=<point>`` to have it create the file named by
``CENSUS_BUILDER_PAUSE_FLAG`` and sleep (up to 120 s), so that the test can signal the build at a known
point. Nothing else reads these variables; unset, every point is a no-op.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "CENSUS_BUILDER_KILL_AT"
PAUSE_ENV = "CENSUS_BUILDER_PAUSE_AT"
PAUSE_FLAG_ENV = "CENSUS_BUILDER_PAUSE_FLAG"


def point(name: str) -> None:
    target = os.environ.get(ENV)
    if target and target == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_ENV) == name:
        flag = os.environ.get(PAUSE_FLAG_ENV)
        if flag:
            Path(flag).write_text(str(os.getpid()), encoding="ascii")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # short sleeps: a signal handler runs between them
            time.sleep(0.05)

"""Ctrl-C (SIGINT) and SIGTERM end a command with one clean line and exit status 128 + the signal.

The report is marked ``interrupted``, the lock released; the exit status is 130 or 143.

While a command runs, both signals raise :class:`Interrupted` (a KeyboardInterrupt) in the main thread,
so every ``finally`` and context manager on the way out runs (report, lock, dask cluster). Signals that
arrive while it is stopping are ignored: stopping takes a few seconds at most.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

logger = logging.getLogger(__name__)

HANDLED = (signal.SIGINT, signal.SIGTERM)
SIGNAL_EXIT_BASE = 128  # the shell's convention: a command ended by signal N exits 128 + N


class Interrupted(KeyboardInterrupt):
    """The command was stopped by ``signum``; ``continue_with`` is the command that carries on, if known."""

    def __init__(self, signum: int, continue_with: str = "", what: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.continue_with = continue_with
        self.what = what

    @property
    def exit_code(self) -> int:
        """The exit status: 128 + the signal."""
        return SIGNAL_EXIT_BASE + self.signum


def signal_name(signum: int) -> str:
    """Name ``signum`` as the error line does: "Ctrl-C (SIGINT)", "SIGTERM"."""
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name


def signum_of(e: BaseException) -> int:
    """Return the signal that raised ``e`` (SIGINT for a plain KeyboardInterrupt)."""
    return e.signum if isinstance(e, Interrupted) else signal.SIGINT


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread while the block runs."""
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            logger.debug("%s while stopping: ignored", signal.Signals(signum).name)
            return
        stopping = True
        from census_builder.runtime.cluster import quiet_dask_logs

        quiet_dask_logs()  # at once: local workers got the same signal, and dask reports their going
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    old = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def command_line(argv: Sequence[str], *, drop: Sequence[str] = ()) -> str:
    """``python -m census_builder ARGS`` as a shell line, without the flags in ``drop``."""
    return shlex.join(["python", "-m", "census_builder", *(a for a in argv if a not in drop)])

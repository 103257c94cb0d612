"""Preload of the local dask workers the builder starts (``distributed.worker.preload``).

A terminal's Ctrl-C reaches every process of the foreground group: without this, each worker process
answers it with a KeyboardInterrupt traceback of its event loop while the driver is already stopping the
build. The driver alone handles Ctrl-C; it closes the cluster, which stops the workers.

The workers get a handler that does nothing rather than SIG_IGN: TileDB installs its own SIGINT handler
when it first starts in a process and then calls the handler it replaced, which must be a function.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


def _leave_to_driver(signum: int, frame: FrameType | None) -> None:
    """Do nothing: the driver stops the build and closes the cluster; the worker carries on until then."""


def dask_setup(worker: Any) -> None:
    """Install the SIGINT handler in the worker process (dask calls this when the worker starts)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _leave_to_driver)

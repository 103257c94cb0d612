"""Preload of the local dask workers the builder starts (``distributed.worker.preload``).

A terminal's Ctrl-C reaches every process of the foreground group: without this, each worker process
answers it with a KeyboardInterrupt traceback of its event loop while the driver is already stopping the
build. The driver alone handles Ctrl-C; it closes the cluster, which stops the workers.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

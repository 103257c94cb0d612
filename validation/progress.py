"""Progress of a validation phase on the ``validation.progress`` logger (INFO), like the builder's stages.

    [check_contents] 12/40 tasks, 120,000 cells, 5,000 cells/s, ETA 0:00:20, elapsed 0:00:24

One line at most every ``every`` seconds and one at the end. Tasks taken from a checkpoint count as done
but not towards the rate: the ETA is the remaining work at the speed of this run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

EVERY = 10.0  # seconds between progress lines


def hms(seconds: float) -> str:
    """Format ``seconds`` as H:MM:SS."""
    s = int(max(0.0, seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Tasks done / total, cells checked and cells/s, ETA, for one phase of a validation."""

    def __init__(
        self,
        what: str,
        total: int,
        *,
        total_cells: int = 0,
        resumed: int = 0,
        resumed_cells: int = 0,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.total_cells = total_cells
        self.done = resumed
        self.cells = resumed_cells
        self.resumed = resumed
        self.resumed_cells = resumed_cells
        self.every = every
        self.clock = clock
        self.start = clock()
        self._last = self.start

    def update(self, cells: int = 0) -> None:
        """One more task done, ``cells`` of them checked; logs a line when one is due."""
        self.done += 1
        self.cells += cells
        now = self.clock()
        if now - self._last >= self.every or self.done >= self.total:
            self._last = now
            logger.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """Return the progress line at time ``now`` (default: the clock's)."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        parts = [f"[{self.what}] {self.done}/{self.total} tasks"]
        if self.resumed:
            parts[0] += f" ({self.resumed} from the checkpoint)"
        new_cells = self.cells - self.resumed_cells
        if self.total_cells:
            parts.append(f"{self.cells:,}/{self.total_cells:,} cells, {new_cells / elapsed:,.0f} cells/s")
            left, rate = self.total_cells - self.cells, new_cells / elapsed
        else:
            left, rate = self.total - self.done, (self.done - self.resumed) / elapsed
        if left > 0 and rate > 0:
            parts.append(f"ETA {hms(left / rate)}")
        parts.append(f"elapsed {hms(elapsed)}")
        return ", ".join(parts)

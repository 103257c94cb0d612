"""Progress of long stages on stderr (through logging): done/total, cells/s, ETA."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("census_builder.runtime.progress")


def _hms(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Items done / total of one stage, cells and cells/s, ETA: a log line every ``every`` seconds."""

    def __init__(self, stage: str, total: int, unit: str, *, total_cells: int = 0, every: float = 2.0) -> None:
        self.stage = stage
        self.total = total
        self.unit = unit
        self.total_cells = total_cells
        self.every = every
        self.done = 0
        self.cells = 0
        self.start = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1, cells: int = 0, note: str = "") -> None:
        """Count ``n`` more items done (``cells`` of them); log a line when one is due or all are done."""
        self.done += n
        self.cells += cells
        now = time.monotonic()
        if now - self._last >= self.every or self.done >= self.total:
            self._last = now
            logger.info("%s", self.line(note))

    def line(self, note: str = "") -> str:
        """Return the progress line (``note`` appended)."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        parts = [f"[{self.stage}] {self.done}/{self.total} {self.unit}"]
        if self.cells:
            parts.append(f"{self.cells:,} cells, {self.cells / elapsed:,.0f} cells/s")
        frac = (self.cells / self.total_cells) if self.total_cells else (self.done / self.total if self.total else 1)
        if 0 < frac < 1:
            parts.append(f"ETA {_hms(elapsed * (1 - frac) / frac)}")
        parts.append(f"elapsed {_hms(elapsed)}")
        if note:
            parts.append(note)
        return ", ".join(parts)

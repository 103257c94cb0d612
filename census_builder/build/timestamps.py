"""The write timestamps of a build: how each resumable write unit's fragment is named, and their invariant.

TileDB names every fragment by its write timestamp (ms). The build gives each resumable write unit its
own, so that a rerun can delete exactly what an interrupted run half-wrote (soma/consolidation.py's
``delete_fragments_at``)::

    base                      taken right after the empty release structure was created (plan_axes)
    base + 1 + k              X["raw"] / X["normalized"] fragments of matrix chunk k (k = 0 .. n_chunks-1)
    base + 1 + n_chunks + k   the obs rows of that chunk

Invariant: every write timestamp lies in (base, base + 2 * n_chunks], after the structure's own
timestamps; and all of them are in the past before anything reads the release (a TileDB read at "now"
does not see a fragment from the future): :meth:`Timestamps.wait_until_past` runs before finalize_release
consolidates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from census_builder.errors import BuildStateError

logger = logging.getLogger(__name__)

AFTER_CREATION_SECONDS = 0.002  # the base starts strictly after the release structure's timestamps (ms)
_BUG = "this is a bug in census_builder: please report it with the build directory's .build/stages"


def now_ms() -> int:
    """Return the wall clock in ms, as TileDB timestamps count."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Timestamps:
    """The write timestamps of one build (``base``: from plan_axes; ``n_chunks``: its matrix chunks)."""

    base: int
    n_chunks: int

    @staticmethod
    def new_base(clock: Callable[[], int] = now_ms) -> int:
        """Return a base for a release structure created just now (after waiting for the clock to pass it)."""
        time.sleep(AFTER_CREATION_SECONDS)
        return clock()

    @property
    def last(self) -> int:
        """The latest timestamp any write of this build carries."""
        return self.base + 2 * self.n_chunks

    def chunk(self, k: int) -> int:
        """Return the timestamp of matrix chunk ``k``'s X fragments (``k`` counts all chunks, in task order)."""
        return self.check(self.base + 1 + self._index(k, "matrix chunk"), f"matrix chunk {k}")

    def obs(self, k: int) -> int:
        """Return the timestamp of the obs rows of matrix chunk ``k``."""
        return self.check(self.base + 1 + self.n_chunks + self._index(k, "obs chunk"), f"obs rows of chunk {k}")

    def check(self, timestamp: int, what: str) -> int:
        """``timestamp``, if it lies in this build's range; a write outside it would be a wrong fragment."""
        if not self.base < timestamp <= self.last:
            raise BuildStateError(
                f"{what}: write timestamp {timestamp} lies outside this build's range ({self.base}, {self.last}] "
                f"(base {self.base}, {self.n_chunks} chunks); nothing was written; {_BUG}"
            )
        return timestamp

    def check_in_past(self, clock: Callable[[], int] = now_ms) -> None:
        """Raise unless every write timestamp is in the past (a read at "now" would miss later fragments)."""
        now = clock()
        if now <= self.last:
            raise BuildStateError(
                f"the release's write timestamps reach {self.last} ms, {self.last - now + 1} ms after now ({now}): "
                "a read now would miss fragments; the system clock may have gone back since the build planned "
                "its axes (wait, then run the same command again to resume)"
            )

    def wait_until_past(self, clock: Callable[[], int] = now_ms, max_wait: float = 60.0) -> None:
        """Wait (at most ``max_wait`` s) until every write timestamp is in the past, then check that it is."""
        ahead = (self.last - clock() + 1) / 1000
        if ahead > 0:
            logger.debug("waiting %.3f s until every write timestamp is in the past", ahead)
            time.sleep(min(ahead, max_wait))
        self.check_in_past(clock)

    def _index(self, k: int, what: str) -> int:
        if not 0 <= k < self.n_chunks:
            raise BuildStateError(f"{what} {k} is not one of this build's {self.n_chunks} chunks; {_BUG}")
        return k

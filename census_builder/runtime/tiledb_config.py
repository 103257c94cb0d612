"""TileDB settings that compute no Census value: how the processes that read and write releases use memory.

TileDB's default is to ``malloc_trim`` after every query, which hands the freed heap back to the kernel so
the next chunk page-faults all of it in again (measured in a validation worker at 250 k cells: 6.1 M -> 2.9 M
page faults, 52 s -> 46 s, with the worker malloc settings of ``runtime.cluster.WORKER_MALLOC_ENV``).
"""

from __future__ import annotations

NO_MALLOC_TRIM: dict[str, str] = {"sm.mem.malloc_trim": "false"}

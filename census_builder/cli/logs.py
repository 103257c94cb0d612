"""Logging of the commands: the stderr handler at the user's level, and the debug log files beside a build.

The files are ``DIR/VERSION/build.log``, ``validate.log``, ``publish.log`` and ``notes.log``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

NOISY_LOGGERS = ("distributed", "dask", "tornado", "asyncio")  # kept at WARNING: their INFO lines drown ours


def configure_logging(level: int) -> None:
    """Log census_builder's and validation's records at ``level`` to stderr, other libraries' warnings only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("census_builder").setLevel(level)
    logging.getLogger("validation").setLevel(level)  # its progress and "resuming" lines, like the build stages'
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


class LogFile(logging.FileHandler):
    """The build log. When the disk is full, records it cannot write are dropped without a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Drop the record silently when the disk is full; report other errors as logging does."""
        from census_builder.diskfull import DISK_FULL_ERRNOS

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return
        super().handleError(record)


def log_to_file(path: Path) -> None:
    """Log to ``path`` too, at debug level; stderr keeps the level the user chose."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = LogFile(path, encoding="utf-8")
    fh.setLevel(logging.DEBUG)
    fh.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(fh)
    # The file gets debug detail; stderr keeps the level the user chose.
    for h in logging.getLogger().handlers:
        if type(h) is logging.StreamHandler:
            h.setLevel(logging.getLogger("census_builder").level)
    logging.getLogger("census_builder").setLevel(logging.DEBUG)
    logging.getLogger("validation").setLevel(logging.DEBUG)


def log_to_version_dir(workdir: Path, version: str, name: str) -> None:
    """Log to ``DIR/VERSION/name`` too (debug level; stderr keeps the user's level) when DIR/VERSION exists.

    A command refused for a version that was never built leaves no directory behind.
    """
    from census_builder.build.state import BuildPaths

    root = BuildPaths.for_version(workdir, version).root
    if root.is_dir():
        log_to_file(root / name)

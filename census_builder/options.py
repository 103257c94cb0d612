"""Checks of option values: argparse ``type=`` functions, also applied to config-file and environment values.

Every malformed value is one line and exit status 2, before any work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import socket
from pathlib import Path
from typing import NoReturn

from census_builder.errors import UsageError
from census_builder.names import check_version_name

SCHEDULER_CONNECT_TIMEOUT = 5.0  # seconds to reach --scheduler before giving up
DEFAULT_SCHEDULER_PORT = 8786
LOG_LEVELS = ("debug", "info", "warning", "error")


class ArgumentParser(argparse.ArgumentParser):
    """Usage errors as one line (``PROG: error: ... (see PROG --help)``), exit status 2; subparsers inherit it."""

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def version(text: str) -> str:
    """Parse a release version name (``census_builder.names``)."""
    try:
        return check_version_name(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def fraction(text: str) -> float:
    """Parse a share between 0 and 1 (``--max-excluded``)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1 (e.g. 0.25)")
    return value


def schema_version(text: str) -> str:
    """Parse a Census schema version this census-builder has the schema of (``schema/census_schema_*.yaml``)."""
    import census_schema

    known = census_schema.available_versions()
    if text not in known:
        have = ", ".join(known)
        raise argparse.ArgumentTypeError(f"{text!r} is not a Census schema version this builder has ({have})")
    return text


def log_level(text: str) -> str:
    """Parse a logging level name for census_builder's own records: debug, info, warning or error."""
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return text.lower()


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return n


def iso_date(text: str) -> str:
    """Parse an ISO date, YYYY-MM-DD."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from None


def workdir(text: str) -> Path:
    """Parse a directory, or a path where one can be created: nothing on the way may be a file."""
    path = Path(text)
    for p in (path, *path.absolute().parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"cannot be created: {p} is a file"
                raise argparse.ArgumentTypeError(f"{text!r} {what}, not a directory")
            break
    return path


def memory_limit(text: str) -> str:
    """``auto`` or a size dask understands (``3GiB``, ``4e9``...): checked with dask.utils.parse_bytes."""
    if text == "auto":
        return text
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size (e.g. 3GiB, 4000MB, auto)") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive memory size (e.g. 3GiB) or auto")
    return text


def scheduler(text: str) -> str:
    """Parse a dask scheduler address (``tcp://host:port``, ``host:port``...) that answers within a few seconds."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    if scheme not in ("tcp", "tls", "ws", "wss"):
        return text  # inproc://, ucx://...: not reachable over plain TCP; the client finds out
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [IPv6]:port
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or (port_text and not port_text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a scheduler address (e.g. tcp://host:8786)")
    port = int(port_text) if port_text else DEFAULT_SCHEDULER_PORT
    silent = f"{host}:{port} accepted the connection but did not answer like a dask scheduler"
    try:
        sock = socket.create_connection((host, port), timeout=SCHEDULER_CONNECT_TIMEOUT)
    except OSError as e:
        answered, problem = False, f"{host}:{port}: {'no answer' if isinstance(e, TimeoutError) else e.strerror or e}"
    else:
        # A dask scheduler speaks first on plain TCP (its handshake): a port that accepts and stays silent (a
        # proxy, another service) is not one. TLS and websockets start with the client: connecting is all.
        with sock:
            try:
                answered, problem = scheme != "tcp" or sock.recv(1) != b"", silent
            except OSError:
                answered, problem = False, silent
    if not answered:
        raise argparse.ArgumentTypeError(
            f"cannot reach the dask scheduler at {text} ({problem} within {SCHEDULER_CONNECT_TIMEOUT:g} s); "
            f"start it (dask scheduler --port {DEFAULT_SCHEDULER_PORT}) or fix the address"
        )
    return text

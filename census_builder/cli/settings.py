"""The site settings on the command line: their flags, ``--config FILE`` and the ``config`` command.

A command declares the settings it uses (:func:`setting_flag`, :func:`uses`); :func:`resolve` merges
defaults, config file, environment and the flags given (``census_builder.config``) into ``args``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from census_builder import config
from census_builder.config import KEYS, SETTINGS, Settings

SETTING_KEYS = "setting_keys"  # the parser default listing the settings a command uses

FLAG_HELP = {
    "workdir": f"build root (default ./{config.DEFAULT_WORKDIR})",
    "workers": "local dask worker processes (default: one per core)",
    "scheduler": "address of an existing dask scheduler to use instead",
    "chunk_nnz": (
        f"stored entries per matrix task; bounds each worker's memory (default {config.DEFAULT_CHUNK_NNZ:,})"
    ),
    "memory_limit": "per local worker, e.g. 3GiB (default: auto)",
    "max_excluded": "with --exclude-invalid: refuse (exit 3) before writing the release when more than this share "
    f"of the manifest's datasets is invalid (0..1, default {config.DEFAULT_MAX_EXCLUDED:g})",
    "publish_jobs": f"concurrent transfers (default {config.DEFAULT_PUBLISH_JOBS})",
    "schema_version": f"Census schema version to build, or (example) to write a corpus for (default "
    f"{config.DEFAULT_SCHEMA_VERSION}; 2.4.0: from dataset schema 7.0.0 H5ADs)",
}
METAVARS = {"max_excluded": "FRACTION", "schema_version": "VERSION"}
CONFIG_HELP = f"TOML file of site settings (default: ${config.CONFIG_ENV})"
_BY_KEY = {s.key: s for s in SETTINGS}


def _dest(key: str) -> str:
    return _BY_KEY[key].flag.lstrip("-").replace("-", "_")


def uses(parser: argparse.ArgumentParser, *keys: str) -> None:
    """Record that the command of ``parser`` uses the settings ``keys`` (checked and resolved for it)."""
    parser.set_defaults(**{SETTING_KEYS: (*(parser.get_default(SETTING_KEYS) or ()), *keys)})


def setting_flag(parser: argparse.ArgumentParser, key: str) -> None:
    """Add the flag of setting ``key`` to ``parser``; unset, the value comes from environment, file or default."""
    s = _BY_KEY[key]
    extra: dict[str, Any] = {"metavar": METAVARS[key]} if key in METAVARS else {}
    parser.add_argument(s.flag, type=s.parse, default=argparse.SUPPRESS, help=FLAG_HELP[key], **extra)
    uses(parser, key)


def resolve(args: argparse.Namespace) -> Settings:
    """Return the settings of the command in ``args``; sets each setting flag's attribute of ``args`` to its value.

    Raises :class:`~census_builder.errors.UsageError` for a bad config file or environment value.
    """
    keys = (*getattr(args, SETTING_KEYS, ()), "log_level")
    flags: dict[str, object] = {}
    for key in keys:
        if _BY_KEY[key].flag.startswith("--") and hasattr(args, _dest(key)):
            flags[key] = getattr(args, _dest(key))
    if getattr(args, "verbose", False):
        flags["log_level"] = "debug"
    settings = config.load_settings(flags, config_file=getattr(args, "config", None), keys=keys)
    for key in keys:
        if _BY_KEY[key].flag.startswith("--"):
            setattr(args, _dest(key), settings.value(key))
    args.settings = settings
    return settings


def config_option(parser: argparse.ArgumentParser, *, default: object = None) -> None:
    """Add ``--config FILE`` to ``parser``."""
    parser.add_argument("--config", type=Path, default=default, metavar="FILE", help=CONFIG_HELP)


def register_config_command(sub: Any) -> None:
    """Add ``config`` (print the effective settings and where each came from) to the subparsers ``sub``."""
    c = sub.add_parser("config", help="print the effective site settings and where each value came from")
    for s in SETTINGS:
        if s.flag.startswith("--"):
            setting_flag(c, s.key)
    uses(c, *(k for k in KEYS if not _BY_KEY[k].flag.startswith("--")))
    c.set_defaults(handler=_show)


def config_lines(settings: Settings) -> list[str]:
    """Return the output of ``config``: the config file, then one line per setting (key, value, origin)."""
    if settings.config_file is None:
        head = f"config file: none (--config FILE or ${config.CONFIG_ENV} names one)"
    else:
        head = f"config file: {settings.config_file} ({settings.config_from})"
    rows = [(k, settings.shown(k), settings.origin(k)) for k in KEYS]
    kw = max(len(r[0]) for r in rows)
    vw = max(len(r[1]) for r in rows)
    return [head, *(f"{k.ljust(kw)}  {v.ljust(vw)}  {o}" for k, v, o in rows)]


def _show(args: argparse.Namespace) -> int:
    print("\n".join(config_lines(args.settings)))
    return 0

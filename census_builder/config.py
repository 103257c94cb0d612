"""Site settings, resolved once into a frozen :class:`Settings`: defaults < config file < environment < flags.

The settings are what a release engineer sets once per site (workdir, workers, scheduler, chunk_nnz,
memory_limit, max_excluded, schema_version, publish_jobs, log_level), not per-run choices such as
``--version``. Each is read, in rising precedence, from its default below, a TOML config file (``--config
FILE``, else ``$CENSUS_BUILDER_CONFIG``, else none), the environment variable ``CENSUS_BUILDER_<KEY>`` and
the command-line flag. Every value passes the same check as the flag (``census_builder.options``); a
bad one is a :class:`UsageError` naming where it came from. Other ``CENSUS_BUILDER_*`` variables
(``_GIT_COMMIT``, the fault-injection ``_KILL_AT`` ...) are not settings and are never read here.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from census_schema import DEFAULT_VERSION as DEFAULT_SCHEMA_VERSION

from census_builder import options
from census_builder.errors import UsageError

DEFAULT_WORKDIR = Path("census-build")
DEFAULT_CHUNK_NNZ = 4_000_000  # stored entries read per matrix task: bounds each worker's memory
DEFAULT_MAX_EXCLUDED = 0.1  # with --exclude-invalid: the largest share of the datasets that may be left out
DEFAULT_PUBLISH_JOBS = 8  # concurrent transfers of publish
DEFAULT_LOG_LEVEL = "info"

CONFIG_ENV = "CENSUS_BUILDER_CONFIG"
ENV_PREFIX = "CENSUS_BUILDER_"
DEFAULT_ORIGIN = "default"

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CHUNK_NNZ",
    "DEFAULT_LOG_LEVEL",
    "DEFAULT_MAX_EXCLUDED",
    "DEFAULT_PUBLISH_JOBS",
    "DEFAULT_SCHEMA_VERSION",
    "DEFAULT_WORKDIR",
    "SETTINGS",
    "Setting",
    "Settings",
    "config_file_path",
    "describe",
    "load_settings",
]


@dataclass(frozen=True)
class Setting:
    """One site setting: its key (also the TOML key), check, accepted TOML types and its meaning when unset."""

    key: str
    parse: Callable[[str], object]  # the flag's argparse type function
    toml_types: tuple[type, ...]
    flag: str  # the command-line flag that sets it ("" when none does)
    unset: str = ""  # what None (no value) means, for `config`

    @property
    def env(self) -> str:
        """The environment variable that sets it: ``CENSUS_BUILDER_<KEY>``."""
        return ENV_PREFIX + self.key.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("workdir", options.workdir, (str,), "--workdir"),
    Setting("workers", options.positive_int, (int,), "--workers", unset="auto (one local worker per core)"),
    Setting("scheduler", options.scheduler, (str,), "--scheduler", unset="none (a local dask cluster)"),
    Setting("chunk_nnz", options.positive_int, (int,), "--chunk-nnz"),
    Setting("memory_limit", options.memory_limit, (str, int), "--memory-limit", unset="auto"),
    Setting("max_excluded", options.fraction, (float, int), "--max-excluded"),
    Setting("schema_version", options.schema_version, (str,), "--census-schema"),
    Setting("publish_jobs", options.positive_int, (int,), "--jobs"),
    Setting("log_level", options.log_level, (str,), "-v"),
)
KEYS = tuple(s.key for s in SETTINGS)
_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The effective site settings and, per key, where its value came from (``origins``)."""

    workdir: Path = DEFAULT_WORKDIR
    workers: int | None = None
    scheduler: str | None = None
    chunk_nnz: int = DEFAULT_CHUNK_NNZ
    memory_limit: str | None = None
    max_excluded: float = DEFAULT_MAX_EXCLUDED
    schema_version: str = DEFAULT_SCHEMA_VERSION
    publish_jobs: int = DEFAULT_PUBLISH_JOBS
    log_level: str = DEFAULT_LOG_LEVEL
    config_file: Path | None = None  # the file read, if any
    config_from: str = ""  # what named it: "--config" or "CENSUS_BUILDER_CONFIG"
    keys: tuple[str, ...] = KEYS  # the settings resolved (a command's); the others keep their defaults
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def value(self, key: str) -> object:
        """Return the value of setting ``key``."""
        return getattr(self, key)

    def origin(self, key: str) -> str:
        """Where the value of ``key`` came from: default, config file F, environment VAR or flag --F."""
        return self.origins.get(key, DEFAULT_ORIGIN)

    def shown(self, key: str) -> str:
        """Return the value of ``key`` as the `config` command and the build log show it."""
        value = self.value(key)
        return _BY_KEY[key].unset if value is None else str(value)


def config_file_path(flag: Path | None, environ: Mapping[str, str]) -> tuple[Path | None, str]:
    """Return the config file to read and why: ``--config FILE``, else ``$CENSUS_BUILDER_CONFIG``, else none."""
    if flag is not None:
        return flag, "--config"
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]), CONFIG_ENV
    return None, ""


def load_settings(
    flags: Mapping[str, object] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    keys: Iterable[str] | None = None,
) -> Settings:
    """Resolve the settings ``keys`` (default: all) from defaults, config file, environment and ``flags``.

    ``flags`` maps keys to values the command line gave (already checked by argparse), ``config_file`` is
    ``--config`` (``$CENSUS_BUILDER_CONFIG`` when None). Settings not in ``keys`` keep their defaults and are
    not checked: a command checks only what it uses (``publish`` does not dial the dask scheduler). Raises
    :class:`UsageError` for an unreadable file, an unknown key in it, or a bad value from file or environment.
    """
    env = os.environ if environ is None else environ
    wanted = KEYS if keys is None else tuple(keys)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    path, why = config_file_path(config_file, env)
    if path is not None:
        for key, raw in _read_file(path).items():
            if key in wanted:
                values[key] = _check(
                    _BY_KEY[key], _from_toml(_BY_KEY[key], raw, path), f"config file {path}: key {key}"
                )
                origins[key] = f"config file {path}"
    for key in wanted:
        s = _BY_KEY[key]
        text = env.get(s.env, "")
        if text:  # set and not empty
            values[key] = _check(s, text, f"environment {s.env}")
            origins[key] = f"environment {s.env}"
    for key, value in (flags or {}).items():
        if key in wanted:
            values[key] = value
            origins[key] = f"flag {_BY_KEY[key].flag}"
    return Settings(**values, config_file=path, config_from=why, keys=wanted, origins=origins)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise UsageError(f"config file {path}: cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config file {path}: not valid TOML ({e})") from None
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        raise UsageError(f"config file {path}: unknown key {unknown[0]!r}; the known keys are {', '.join(KEYS)}")
    return doc


def _from_toml(setting: Setting, raw: object, path: Path) -> str:
    if isinstance(raw, bool) or not isinstance(raw, setting.toml_types):
        expected = " or ".join(_TOML_NAMES[t] for t in setting.toml_types)
        raise UsageError(f"config file {path}: key {setting.key}: {raw!r} is not a TOML {expected}")
    return str(raw)


_TOML_NAMES = {str: "string", int: "integer", float: "float"}


def _check(setting: Setting, text: str, where: str) -> object:
    try:
        return setting.parse(text)
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"{where}: {e}") from None


def describe(settings: Settings, keys: Iterable[str] | None = None) -> str:
    """``key=value (origin), ...`` for ``keys`` (default: those resolved): the build log's record of its settings."""
    chosen = settings.keys if keys is None else keys
    return ", ".join(f"{k}={settings.shown(k)} ({settings.origin(k)})" for k in chosen)

"""Site settings: defaults < config file < CENSUS_BUILDER_* environment < flags; bad values name their origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from census_builder import config
from census_builder.build.pipeline import BuildConfig
from census_builder.config import load_settings
from census_builder.errors import UsageError


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_defaults_are_defined_once_and_used_by_build_config() -> None:
    s = load_settings(environ={})
    assert (s.workdir, s.workers, s.scheduler, s.chunk_nnz, s.memory_limit) == (
        Path("census-build"),
        None,
        None,
        4_000_000,
        None,
    )
    assert (s.max_excluded, s.schema_version, s.publish_jobs, s.log_level) == (0.1, "1.3.0", 8, "info")
    assert s.config_file is None and {s.origin(k) for k in config.KEYS} == {"default"}
    b = BuildConfig(version="v", manifest=Path("m.csv"))
    assert (b.workdir, b.chunk_nnz, b.schema_version, b.max_excluded) == (
        s.workdir,
        s.chunk_nnz,
        s.schema_version,
        s.max_excluded,
    )


def test_each_layer_overrides_the_one_before(tmp_path: Path) -> None:
    f = _toml(tmp_path, 'workers = 2\nchunk_nnz = 1000\nworkdir = "from-file"\nmax_excluded = 0.5\n')
    env = {"CENSUS_BUILDER_CHUNK_NNZ": "2000", "CENSUS_BUILDER_WORKDIR": "from-env"}
    s = load_settings({"workdir": Path("from-flag")}, config_file=f, environ=env)
    assert s.max_excluded == 0.5 and s.origin("max_excluded") == f"config file {f}"
    assert s.workers == 2 and s.origin("workers") == f"config file {f}"
    assert s.chunk_nnz == 2000 and s.origin("chunk_nnz") == "environment CENSUS_BUILDER_CHUNK_NNZ"
    assert s.workdir == Path("from-flag") and s.origin("workdir") == "flag --workdir"
    assert s.memory_limit is None and s.origin("memory_limit") == "default"
    assert s.config_file == f


def test_the_config_file_comes_from_the_flag_else_the_environment(tmp_path: Path) -> None:
    by_env = _toml(tmp_path, "workers = 3\n")
    by_flag = tmp_path / "flag.toml"
    by_flag.write_text("workers = 5\n")
    assert load_settings(environ={"CENSUS_BUILDER_CONFIG": str(by_env)}).workers == 3
    assert load_settings(config_file=by_flag, environ={"CENSUS_BUILDER_CONFIG": str(by_env)}).workers == 5
    assert load_settings(environ={"CENSUS_BUILDER_CONFIG": ""}).config_file is None


def test_other_census_builder_variables_are_not_settings() -> None:
    env = {
        "CENSUS_BUILDER_GIT_COMMIT": "abc",
        "CENSUS_BUILDER_KILL_AT": "matrix:chunk",
        "CENSUS_BUILDER_FAIL_AT": "x",
        "CENSUS_BUILDER_PAUSE_AT": "y",
        "CENSUS_BUILDER_PAUSE_DIR": "/nowhere",
        "CENSUS_BUILDER_WORKERS": "",  # empty: unset
    }
    s = load_settings(environ=env)
    assert s == load_settings(environ={}) and {s.origin(k) for k in config.KEYS} == {"default"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = 0\n", "key workers: '0' must be at least 1"),
        ('workers = "four"\n', "key workers: 'four' is not a TOML integer"),
        ("workers = true\n", "key workers: True is not a TOML integer"),
        ("max_excluded = 2\n", "key max_excluded: '2' is not a share between 0 and 1 (e.g. 0.25)"),
        ('memory_limit = "3XB"\n', "key memory_limit: '3XB' is not a memory size (e.g. 3GiB, 4000MB, auto)"),
        ('schema_version = "9.9.9"\n', "key schema_version: '9.9.9' is not a Census schema version this builder has"),
        ('log_level = "loud"\n', "key log_level: 'loud' is not a log level (debug, info, warning, error)"),
        ("workers = [\n", "not valid TOML"),
    ],
)
def test_a_bad_file_value_names_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    f = _toml(tmp_path, text)
    with pytest.raises(UsageError) as e:
        load_settings(config_file=f, environ={})
    assert str(e.value).startswith(f"config file {f}: ") and message in str(e.value)


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(UsageError) as e:
        load_settings(environ={"CENSUS_BUILDER_WORKERS": "-1"})
    assert str(e.value) == "environment CENSUS_BUILDER_WORKERS: '-1' must be at least 1"
    with pytest.raises(UsageError) as e:
        load_settings(environ={"CENSUS_BUILDER_MAX_EXCLUDED": "half"})
    assert str(e.value) == "environment CENSUS_BUILDER_MAX_EXCLUDED: 'half' is not a share between 0 and 1 (e.g. 0.25)"


def test_an_unknown_key_names_it_and_the_known_keys(tmp_path: Path) -> None:
    f = _toml(tmp_path, "wokers = 4\n")
    with pytest.raises(UsageError) as e:
        load_settings(config_file=f, environ={})
    assert str(e.value) == (
        f"config file {f}: unknown key 'wokers'; the known keys are workdir, workers, scheduler, chunk_nnz, "
        "memory_limit, max_excluded, schema_version, publish_jobs, log_level"
    )


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"config file .*nope.toml: cannot read it \(No such file or directory\)"):
        load_settings(environ={"CENSUS_BUILDER_CONFIG": str(tmp_path / "nope.toml")})


def test_only_the_keys_a_command_uses_are_checked(tmp_path: Path) -> None:
    env = {"CENSUS_BUILDER_SCHEDULER": "tcp://nowhere:notaport", "CENSUS_BUILDER_WORKDIR": "w"}
    s = load_settings(environ=env, keys=["workdir"])
    assert s.workdir == Path("w") and s.scheduler is None
    with pytest.raises(UsageError, match="environment CENSUS_BUILDER_SCHEDULER: 'tcp://nowhere:notaport' is not"):
        load_settings(environ=env)
    # an unknown key in the file is an error whatever the command
    with pytest.raises(UsageError, match="unknown key 'x'"):
        load_settings(config_file=_toml(tmp_path, "x = 1\n"), environ={}, keys=["workdir"])

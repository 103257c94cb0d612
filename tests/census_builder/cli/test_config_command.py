"""``config`` prints the effective settings and their origins; bad settings are one line and exit 2."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from census_builder.build import pipeline
from census_builder.build.pipeline import BuildConfig
from census_builder.cli import main


@pytest.fixture(autouse=True)
def logging_restored(restore_logging: None) -> None:
    """Every test here runs main(), which configures logging (tests/census_builder/conftest.py unsets settings)."""


def _config_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, tuple[str, str]]:
    assert main.main(["config", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {}
    for line in lines[1:]:
        key, value, origin = line.split(None, 2)
        rows[key] = (value, origin)
    rows["config file"] = (lines[0].removeprefix("config file: "), "")
    return rows


def test_config_shows_each_value_and_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _config_out(capsys, [])
    assert out["config file"][0] == "none (--config FILE or $CENSUS_BUILDER_CONFIG names one)"
    assert out["workdir"] == ("census-build", "default")
    assert out["chunk_nnz"] == ("4000000", "default")
    assert out["log_level"] == ("info", "default")

    site = tmp_path / "site.toml"
    site.write_text('workers = 2\nchunk_nnz = 1000\npublish_jobs = 3\nworkdir = "file-wd"\n')
    monkeypatch.setenv("CENSUS_BUILDER_CONFIG", str(site))
    monkeypatch.setenv("CENSUS_BUILDER_CHUNK_NNZ", "2000")
    monkeypatch.setenv("CENSUS_BUILDER_PUBLISH_JOBS", "4")
    monkeypatch.setenv("CENSUS_BUILDER_GIT_COMMIT", "not-a-setting")
    out = _config_out(capsys, ["--jobs", "5", "-v"])
    assert out["config file"][0] == f"{site} (CENSUS_BUILDER_CONFIG)"
    assert out["workers"] == ("2", f"config file {site}")
    assert out["workdir"] == ("file-wd", f"config file {site}")
    assert out["chunk_nnz"] == ("2000", "environment CENSUS_BUILDER_CHUNK_NNZ")
    assert out["publish_jobs"] == ("5", "flag --jobs")
    assert out["log_level"] == ("debug", "flag -v")
    assert out["memory_limit"] == ("auto", "default")

    other = tmp_path / "other.toml"
    other.write_text("workers = 7\n")
    out = _config_out(capsys, ["--config", str(other)])
    assert out["workers"] == ("7", f"config file {other}") and out["config file"][0] == f"{other} (--config)"
    assert _config_out(capsys, ["--workers", "9"])["workers"] == ("9", "flag --workers")


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        (
            {"CENSUS_BUILDER_WORKERS": "0"},
            "",
            "census_builder build: error: environment CENSUS_BUILDER_WORKERS: '0' must be at least 1",
        ),
        ({}, "workers = -2\n", "census_builder build: error: config file {f}: key workers: '-2' must be at least 1"),
        ({}, "worker = 2\n", "census_builder build: error: config file {f}: unknown key 'worker'; the known keys are"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    toml: str,
    message: str,
) -> None:
    f = tmp_path / "site.toml"
    f.write_text(toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["build", "--version", "v", "--manifest", "m.csv", "--workdir", str(tmp_path / "w"), "--config", str(f)]
    with pytest.raises(SystemExit) as done:
        main.main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message.format(f=f)), err
    assert not (tmp_path / "w").exists()


def test_the_build_gets_its_settings_and_logs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BuildConfig] = []

    def fake_build(config: BuildConfig) -> None:
        seen.append(config)
        raise KeyboardInterrupt  # stop before anything is built

    monkeypatch.setattr(pipeline, "build", fake_build)
    site = tmp_path / "site.toml"
    site.write_text(f'chunk_nnz = 1000\nmax_excluded = 0.5\nmemory_limit = "2GiB"\nworkdir = "{tmp_path / "w"}"\n')
    monkeypatch.setenv("CENSUS_BUILDER_CHUNK_NNZ", "2000")
    argv = ["build", "--version", "v", "--manifest", "m.csv", "--config", str(site), "--max-excluded", "0.25"]
    assert main.main(argv) == 130
    (config,) = seen
    assert (config.chunk_nnz, config.max_excluded, config.memory_limit, config.workdir) == (
        2000,
        0.25,
        "2GiB",
        tmp_path / "w",
    )
    assert config.schema_version == "1.3.0" and config.workers is None
    log = (tmp_path / "w" / "v" / "build.log").read_text()
    (line,) = [line.split(" INFO census_builder: ", 1)[1] for line in log.splitlines() if " settings: " in line]
    assert line == (
        f"settings: workdir={tmp_path / 'w'} (config file {site}), workers=auto (one local worker per core) "
        "(default), scheduler=none (a local dask cluster) (default), chunk_nnz=2000 (environment "
        f"CENSUS_BUILDER_CHUNK_NNZ), memory_limit=2GiB (config file {site}), max_excluded=0.25 (flag "
        "--max-excluded), schema_version=1.3.0 (default), log_level=info (default)"
    )


def test_commands_check_only_the_settings_they_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CENSUS_BUILDER_SCHEDULER", "tcp://127.0.0.1:notaport")
    # notes does not use the scheduler: it gets as far as looking for the build
    assert main.main(["notes", "--version", "v", "--workdir", str(tmp_path)]) == 1
    assert "CENSUS_BUILDER_SCHEDULER" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main.main(["validate", "--version", "v", "--workdir", str(tmp_path)])
    assert done.value.code == 2
    assert "environment CENSUS_BUILDER_SCHEDULER: 'tcp://127.0.0.1:notaport' is not a scheduler address" in (
        capsys.readouterr().err
    )


def test_usage_errors_raised_while_running_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from census_builder.errors import UsageError

    def refuse(args: argparse.Namespace) -> int:
        raise UsageError("bad value")

    monkeypatch.setattr("census_builder.cli.build._example", refuse)
    assert main.main(["example", "--out", "x"]) == 2

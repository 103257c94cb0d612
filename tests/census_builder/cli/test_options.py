"""Version names and option values: each bad one is one line on stderr and exit status 2, before any work."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from census_builder import options
from census_builder.build.pipeline import BuildConfig, build
from census_builder.cli import main
from census_builder.errors import UsageError
from census_builder.names import check_version_name
from census_builder.release.publish import publish


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    return err


BAD_VERSIONS = [
    ("../x", "is not a valid release version"),
    ("/abs/path", "is not a valid release version"),
    ("", "is not a valid release version"),
    ("a b", "is not a valid release version"),
    (".hidden", "is not a valid release version"),
    ("x" * 129, "is not a valid release version"),
    ("release.json", "would take the place of a file of the release directory"),
    ("mirrors.json", "would take the place of a file of the release directory"),
    ("latest", "is an alias name"),
    ("Stable", "is an alias name"),
]


@pytest.mark.parametrize(("version", "message"), BAD_VERSIONS)
def test_bad_version_names_are_refused_by_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, message: str
) -> None:
    w = str(tmp_path / "w")
    commands = [
        ["build", "--version", version, "--manifest", "m.csv", "--workdir", w],
        ["validate", "--version", version, "--workdir", w],
        ["publish", "--version", version, "--workdir", w, "--to", str(tmp_path / "dest")],
        ["notes", "--version", version, "--workdir", w],
        ["release", "retract", version, "--reason", "r", "--to", str(tmp_path / "dest")],
    ]
    for argv in commands:
        err = _usage_error(capsys, argv)
        assert message in err and err.startswith(f"census_builder {argv[0]}"), err
    assert not (tmp_path / "w").exists() and not (tmp_path / "dest").exists()
    with pytest.raises(UsageError, match=message):  # the library functions refuse it too
        build(BuildConfig(version=version, manifest=tmp_path / "m.csv", workdir=tmp_path / "w"))
    with pytest.raises(UsageError, match=message):
        publish(tmp_path / "w", version, tmp_path / "dest")
    assert not (tmp_path / "w").exists() and not (tmp_path / "dest").exists()


def test_good_version_names_pass() -> None:
    for name in ("2026-11-22", "v1", "2026-11-22.rc1", "a_b", "latest-2026"):
        assert check_version_name(name) == name


def test_bad_option_values_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    build = ["build", "--version", "v", "--manifest", "m.csv", "--workdir", str(tmp_path / "w")]
    cases = [
        ([*build, "--workers", "-1"], "argument --workers: '-1' must be at least 1"),
        ([*build, "--workers", "0"], "argument --workers: '0' must be at least 1"),
        ([*build, "--workers", "two"], "argument --workers: 'two' is not a whole number"),
        ([*build, "--chunk-nnz", "-5"], "argument --chunk-nnz: '-5' must be at least 1"),
        ([*build, "--build-date", "notadate"], "argument --build-date: 'notadate' is not a date in the form YYYY"),
        ([*build, "--build-date", "2026-13-01"], "argument --build-date: '2026-13-01' is not a date"),
        ([*build, "--memory-limit", "3XB"], "argument --memory-limit: '3XB' is not a memory size"),
        ([*build, "--memory-limit", "0"], "argument --memory-limit: '0' must be a positive memory size"),
        ([*build, "--workdir", str(a_file)], f"argument --workdir: '{a_file}' is a file, not a directory"),
        ([*build, "--workdir", str(a_file / "sub")], f"cannot be created: {a_file} is a file, not a directory"),
        (
            ["validate", "--version", "v", "--workers", "-1"],
            "argument --workers: '-1' must be at least 1",
        ),
        (
            ["publish", "--version", "v", "--to", str(tmp_path / "d"), "--jobs", "0"],
            "argument --jobs: '0' must be at least 1",
        ),
        (
            ["publish", "--version", "v", "--to", str(tmp_path / "d"), "--release-date", "tomorrow"],
            "argument --release-date: 'tomorrow' is not a date",
        ),
        (["notes", "--version", "v", "--workdir", str(a_file)], "is a file, not a directory"),
    ]
    for argv, message in cases:
        assert message in _usage_error(capsys, argv), argv
    assert not (tmp_path / "w").exists()


def test_an_unreachable_scheduler_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _closed_port()
    for scheduler in (f"tcp://127.0.0.1:{port}", f"127.0.0.1:{port}"):
        err = _usage_error(
            capsys,
            ["build", "--version", "v", "--manifest", "m.csv", "--workdir", str(tmp_path), "--scheduler", scheduler],
        )
        assert (
            f"cannot reach the dask scheduler at {scheduler} (127.0.0.1:{port}: Connection refused within 5 s)" in err
        )
    err = _usage_error(capsys, ["validate", "--version", "v", "--scheduler", "tcp://127.0.0.1:notaport"])
    assert "is not a scheduler address" in err

    monkeypatch.setattr(options, "SCHEDULER_CONNECT_TIMEOUT", 0.5)
    with socket.socket() as silent:  # accepts connections (as a proxy would) but never speaks: not a scheduler
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        err = _usage_error(capsys, ["validate", "--version", "v", "--scheduler", address])
        assert "accepted the connection but did not answer like a dask scheduler within 0.5 s" in err

    with socket.socket() as server:  # speaks first, as a dask scheduler's handshake does: accepted
        server.bind(("127.0.0.1", 0))
        server.listen()

        def greet() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"handshake")

        t = threading.Thread(target=greet, daemon=True)
        t.start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        assert options.scheduler(address) == address
        t.join(10)

"""--help of every command: what it does, one example, the exit codes."""

from __future__ import annotations

import pytest

from census_builder.cli import helptext, main
from validation.__main__ import parse_args


def _all_commands() -> list[str]:
    return list(helptext.commands(main._parser()))


def test_every_command_has_a_help_entry() -> None:
    paths = _all_commands()
    assert {
        "",
        "build",
        "validate",
        "example",
        "publish",
        "release",
        "release alias",
        "release retract",
        "release list",
        "notes",
    } <= set(paths)
    assert [p for p in paths if p not in helptext.HELP] == []


@pytest.mark.parametrize("command", _all_commands())
def test_help_shows_description_example_and_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main.main([*command.split(), "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    h = helptext.HELP[command]
    assert h.description.splitlines()[0] in out
    assert f"\nexample:\n  {h.example}\n" in out
    assert h.example.startswith(f"python -m census_builder {command}".rstrip())
    assert "\nexit status:\n  0    " in out and "\n  2    usage error" in out and "\n  130  interrupted" in out
    if command == "build":
        assert "\n  3    too many datasets excluded (--max-excluded)\n" in out


def test_validation_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "\nexample:\n  python -m validation census-build/2026-11-22/soma --manifest " in out
    assert "\nexit status:\n  0    every check passed\n  1    a check failed\n  2    " in out

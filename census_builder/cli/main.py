"""Command line: ``python -m census_builder {build,validate,example,publish,release,notes,report,config} ...``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from census_builder.errors import CensusBuilderError, TooManyExcludedError, UsageError

logger = logging.getLogger("census_builder")

EXIT_FAILED = 1  # README "Exit status"
EXIT_USAGE = 2
EXIT_TOO_MANY_EXCLUDED = 3
# The exit status of each error class (the first that matches); any other CensusBuilderError is EXIT_FAILED.
EXIT_STATUS: tuple[tuple[type[CensusBuilderError], int], ...] = (
    (TooManyExcludedError, EXIT_TOO_MANY_EXCLUDED),
    (UsageError, EXIT_USAGE),
)


def _parser() -> argparse.ArgumentParser:
    from census_builder import options
    from census_builder.cli.build import register_build_commands  # build, validate, example
    from census_builder.cli.gene_expression import register_gene_expression_command
    from census_builder.cli.release import register_release_commands  # publish, release, notes
    from census_builder.cli.report import register_report_command
    from census_builder.cli.settings import config_option, register_config_command

    p = options.ArgumentParser(prog="census_builder", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument(
        "--about", action=_About, help="print census-builder's version, git commit and dependency versions, and exit"
    )
    config_option(p)
    sub = p.add_subparsers(dest="command", required=True)
    register_build_commands(sub)
    register_gene_expression_command(sub)
    register_release_commands(sub)
    register_report_command(sub)
    register_config_command(sub)
    _common_options_everywhere(p)
    from census_builder.cli.helptext import apply  # description, example and exit codes of every command

    return apply(p)


class _About(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from census_builder.cli.about import about_lines

        print("\n".join(about_lines()))
        parser.exit(0)


def _common_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` and ``--config`` after any (sub)command as well as before it: ``build ... -v``."""
    from census_builder.cli.settings import config_option

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                if "-v" not in sub._option_string_actions:
                    sub.add_argument(
                        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
                    )
                if "--config" not in sub._option_string_actions:
                    config_option(sub, default=argparse.SUPPRESS)
                _common_options_everywhere(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv[1:]``); returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    from census_builder.cli.logs import configure_logging
    from census_builder.cli.settings import resolve

    try:
        settings = resolve(args)
    except UsageError as e:  # a bad config file or CENSUS_BUILDER_* value: like a bad flag, one line and exit 2
        parser.exit(EXIT_USAGE, f"{parser.prog} {args.command}: error: {e}\n")
    configure_logging(getattr(logging, settings.log_level.upper()))
    from census_builder.cli.interrupt import signals_interrupt

    try:
        with signals_interrupt():
            return int(args.handler(args))
    except CensusBuilderError as e:
        logger.error("%s", e)
        return next((status for cls, status in EXIT_STATUS if isinstance(e, cls)), EXIT_FAILED)
    except KeyboardInterrupt as e:
        return _interrupted(e, args, argv)
    except Exception as e:
        from census_builder.diskfull import disk_full_error

        full = disk_full_error(e, where=getattr(args, "workdir", None) or Path.cwd())
        if full is None:
            raise
        logger.error("%s", full)  # a full disk is one line, not a traceback
        return EXIT_FAILED


def _interrupted(e: KeyboardInterrupt, args: argparse.Namespace, argv: list[str]) -> int:
    """One line: what was stopped and the command that carries on; exit 128 + signal."""
    from census_builder.cli.interrupt import SIGNAL_EXIT_BASE, Interrupted, command_line, signal_name, signum_of

    signum = signum_of(e)
    what = e.what if isinstance(e, Interrupted) and e.what else f"{args.command} interrupted"
    if isinstance(e, Interrupted) and e.continue_with:
        todo = e.continue_with
    elif args.command == "build":  # finished work is kept; --restart again would discard it
        todo = command_line(argv, drop=("--restart",))
    else:
        todo = command_line(argv)
    logger.error("%s by %s; continue with: %s", what, signal_name(signum), todo)
    return SIGNAL_EXIT_BASE + signum

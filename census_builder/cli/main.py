"""Command line: ``python -m census_builder {build,validate,example,publish,release,notes} ...``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from census_builder.build.state import BuildPaths

logger = logging.getLogger("census_builder")


def _parser() -> argparse.ArgumentParser:
    from census_builder.cli import options

    p = options.ArgumentParser(prog="census_builder", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument(
        "--about", action=_About, help="print census-builder's version, git commit and dependency versions, and exit"
    )
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build (or resume) a Census release from a manifest")
    b.add_argument("--version", required=True, type=options.version, help="release version, e.g. 2026-11-22")
    b.add_argument("--manifest", required=True, type=Path, help="CSV with header dataset_id,h5ad_uri[,...]")
    _workdir_and_cluster_options(b)
    b.add_argument(
        "--chunk-nnz",
        type=options.positive_int,
        default=4_000_000,
        help="stored entries per matrix task; bounds each worker's memory (default 4,000,000)",
    )
    b.add_argument(
        "--memory-limit", type=options.memory_limit, default=None, help="per local worker, e.g. 3GiB (default: auto)"
    )
    b.add_argument(
        "--exclude-invalid",
        action="store_true",
        help="build without datasets that fail preflight, recording them in the report",
    )
    b.add_argument(
        "--build-date",
        type=options.iso_date,
        default=None,
        help="ISO date recorded as census_build_date (default: today, UTC)",
    )
    b.add_argument("--no-validate", action="store_true", help="skip validating the release against its sources")
    b.add_argument(
        "--force-rebuild",
        action="store_true",
        help="if VERSION is complete, build it again into a new directory DIR/VERSION.rebuild-<time> "
        "(the complete release is never touched)",
    )
    b.add_argument(
        "--skip-host-check",
        action="store_true",
        help="build even when the host check estimates too little free disk space in the workdir",
    )
    _restart_options(b)

    v = sub.add_parser("validate", help="validate a built release (DIR/VERSION/soma) against its sources")
    v.add_argument("--version", required=True, type=options.version)
    _workdir_and_cluster_options(v)

    e = sub.add_parser("example", help="write the small example corpus (H5ADs + manifest.csv)")
    e.add_argument("--out", type=Path, default=Path("example-corpus"))
    from census_builder.cli.release import register_release_commands  # publish, release, notes

    register_release_commands(sub)
    _verbose_everywhere(p)
    from census_builder.cli.helptext import apply  # description, example and exit codes of every command

    return apply(p)


class _About(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        from census_builder.cli.about import about_lines

        print("\n".join(about_lines()))
        parser.exit(0)


def _workdir_and_cluster_options(p: argparse.ArgumentParser) -> None:
    from census_builder.cli import options

    p.add_argument(
        "--workdir", type=options.workdir, default=Path("census-build"), help="build root (default ./census-build)"
    )
    p.add_argument(
        "--workers", type=options.positive_int, default=None, help="local dask worker processes (default: one per core)"
    )
    p.add_argument(
        "--scheduler", type=options.scheduler, default=None, help="address of an existing dask scheduler to use instead"
    )


def _restart_options(b: argparse.ArgumentParser) -> None:
    b.add_argument(
        "--restart",
        action="store_true",
        help="discard the unfinished build of VERSION (DIR/VERSION/.build/ and its report's state; never a "
        "complete release) once no live build holds its lock, then build from scratch with these inputs",
    )
    b.add_argument(
        "--max-excluded",
        type=_fraction,
        default=0.1,
        metavar="FRACTION",
        help="with --exclude-invalid: refuse (exit 3) before writing the release when more than this share "
        "of the manifest's datasets is invalid (0..1, default 0.1)",
    )


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1 (e.g. 0.25)")
    return value


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` after any (sub)command as well as before it: ``build ... -v``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                if "-v" not in sub._option_string_actions:
                    sub.add_argument(
                        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
                    )
                _verbose_everywhere(sub)


def _configure_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("census_builder").setLevel(level)
    logging.getLogger("validation").setLevel(level)  # its progress and "resuming" lines, like the build stages'
    for noisy in ("distributed", "dask", "tornado", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _LogFile(logging.FileHandler):
    """The build log. When the disk is full, records it cannot write are dropped without a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        from census_builder.diskfull import DISK_FULL_ERRNOS

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return
        super().handleError(record)


def _log_to_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = _LogFile(path, encoding="utf-8")
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
    """Log to ``DIR/VERSION/name`` too (debug level; stderr keeps the user's level) when DIR/VERSION exists
    (a command refused for a version that was never built leaves no directory behind)."""
    from census_builder.build.state import BuildPaths

    root = BuildPaths.for_version(workdir, version).root
    if root.is_dir():
        _log_to_file(root / name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    from census_builder.cli.interrupt import signals_interrupt
    from census_builder.errors import CensusBuilderError, TooManyExcludedError

    try:
        with signals_interrupt():
            if hasattr(args, "handler"):
                return int(args.handler(args))
            if args.command == "build":
                return _build(args)
            if args.command == "example":
                return _example(args)
            if args.command == "validate":
                return _validate(args)
    except TooManyExcludedError as e:
        logger.error("%s", e)
        return EXIT_TOO_MANY_EXCLUDED
    except CensusBuilderError as e:
        logger.error("%s", e)
        return 1
    except KeyboardInterrupt as e:
        return _interrupted(e, args, argv)
    except Exception as e:
        from census_builder.diskfull import disk_full_error

        full = disk_full_error(e, where=getattr(args, "workdir", None) or Path.cwd())
        if full is None:
            raise
        logger.error("%s", full)  # a full disk is one line, not a traceback
        return 1
    return 2


EXIT_TOO_MANY_EXCLUDED = 3  # README "Exit status"


def _interrupted(e: KeyboardInterrupt, args: argparse.Namespace, argv: list[str]) -> int:
    """One line: what was stopped and the command that carries on; exit 128 + signal."""
    from census_builder.cli.interrupt import Interrupted, command_line, signal_name, signum_of

    signum = signum_of(e)
    what = e.what if isinstance(e, Interrupted) and e.what else f"{args.command} interrupted"
    if isinstance(e, Interrupted) and e.continue_with:
        todo = e.continue_with
    elif args.command == "build":  # finished work is kept; --restart again would discard it
        todo = command_line(argv, drop=("--restart",))
    else:
        todo = command_line(argv)
    logger.error("%s by %s; continue with: %s", what, signal_name(signum), todo)
    return 128 + signum


def _build(args: argparse.Namespace) -> int:
    from census_builder.build.pipeline import BuildConfig, build
    from census_builder.build.state import BuildPaths

    paths = BuildPaths.for_version(args.workdir, args.version)
    if not paths.is_complete():
        _log_to_file(paths.log)
    config = BuildConfig(
        version=args.version,
        manifest=args.manifest,
        workdir=args.workdir,
        workers=args.workers,
        scheduler=args.scheduler,
        chunk_nnz=args.chunk_nnz,
        exclude_invalid=args.exclude_invalid,
        force_rebuild=args.force_rebuild,
        build_date=args.build_date,
        memory_limit=args.memory_limit,
        skip_host_check=args.skip_host_check,
        restart=args.restart,
        max_excluded=args.max_excluded,
    )
    out = build(config)
    logger.info("release written to %s (report: %s)", out.soma, out.report)
    if args.no_validate:
        logger.warning("validation skipped (--no-validate): this release cannot be published until validated")
        _print_summary(out)
        return 0
    try:
        rc = _run_validation(out, workers=args.workers, scheduler=args.scheduler)
    except KeyboardInterrupt as e:  # the release is complete (immutable): only validation is left to do
        from census_builder.cli.interrupt import Interrupted, signum_of

        raise Interrupted(
            signum_of(e),
            continue_with=_validate_command(out),
            what=f"validation of the complete release {out.root.name} interrupted",
        ) from None
    _print_summary(out)
    return rc


def _print_summary(paths: BuildPaths) -> None:
    from census_builder.build.summary import stored_summary, summary_lines

    found = stored_summary(paths)
    if found is not None:
        print("\n".join(summary_lines(found)), flush=True)  # the build's closing output, like the check lines


def _validate_command(paths: BuildPaths) -> str:
    import shlex

    argv = ["validate", "--version", paths.root.name, "--workdir", str(paths.root.parent)]
    return shlex.join(["python", "-m", "census_builder", *argv])


def _validate(args: argparse.Namespace) -> int:
    from census_builder.build.state import BuildPaths
    from census_builder.errors import CensusBuilderError

    paths = BuildPaths.for_version(args.workdir, args.version)
    if not paths.is_complete():
        raise CensusBuilderError(f"no complete release at {paths.root}; build it first")
    _log_to_file(paths.root / "validate.log")
    return _run_validation(paths, workers=args.workers, scheduler=args.scheduler)


def _run_validation(paths: BuildPaths, *, workers: int | None, scheduler: str | None) -> int:
    """Validate with the independent checker; its report lands at DIR/VERSION/validation_report.json."""
    from census_builder.build.summary import record_validation
    from census_builder.errors import CensusBuilderError
    from census_builder.runtime import faults
    from census_builder.runtime.cluster import dask_client
    from census_builder.sources.staged import validation_manifest
    from validation import InputError as ValidationInputError
    from validation import validate_release

    manifest = validation_manifest(paths)
    logger.info("validating %s against its sources", paths.soma)
    t0 = time.perf_counter()
    with dask_client(workers=workers, scheduler=scheduler) as client:
        faults.point("validate:start")
        try:
            report = validate_release(str(paths.soma), manifest, client=client, report_path=paths.validation_report)
        except ValidationInputError as e:  # e.g. another validation of this release is running: one line
            raise CensusBuilderError(f"cannot validate {paths.root.name}: {e}") from e
    record_validation(paths, passed=report.passed, seconds=time.perf_counter() - t0)
    for line in report.lines():
        print(line)  # the per-check lines are this command's output
    if not report.passed:
        logger.error(
            "validation FAILED (%s); see %s. The release stays unpublishable; what to do: README, "
            "'When validation fails' (fix the cause, then %s; or build again with --force-rebuild or a new --version)",
            ", ".join(report.failed),
            paths.validation_report,
            _validate_command(paths),
        )
        return 1
    return 0  # validation itself logged "validation passed; report: ..."


def _example(args: argparse.Namespace) -> int:
    from census_builder.testing.synthetic import example_specs, write_corpus

    manifest = write_corpus(args.out, example_specs())
    logger.info("example corpus written; manifest: %s", manifest)
    return 0

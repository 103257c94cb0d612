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
    from census_builder.state import BuildPaths

logger = logging.getLogger("census_builder")


def _parser() -> argparse.ArgumentParser:
    from census_builder import options

    p = options.ArgumentParser(prog="census_builder", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build (or resume) a Census release from a manifest")
    b.add_argument("--version", required=True, type=options.version, help="release version, e.g. 2026-11-22")
    b.add_argument("--manifest", required=True, type=Path, help="CSV with header dataset_id,h5ad_uri[,...]")
    b.add_argument(
        "--workdir", type=options.workdir, default=Path("census-build"), help="build root (default ./census-build)"
    )
    b.add_argument(
        "--workers", type=options.positive_int, default=None, help="local dask worker processes (default: one per core)"
    )
    b.add_argument(
        "--scheduler", type=options.scheduler, default=None, help="address of an existing dask scheduler to use instead"
    )
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

    v = sub.add_parser("validate", help="validate a built release (DIR/VERSION/soma) against its sources")
    v.add_argument("--version", required=True, type=options.version)
    v.add_argument(
        "--workdir", type=options.workdir, default=Path("census-build"), help="build root (default ./census-build)"
    )
    v.add_argument(
        "--workers", type=options.positive_int, default=None, help="local dask worker processes (default: one per core)"
    )
    v.add_argument(
        "--scheduler", type=options.scheduler, default=None, help="address of an existing dask scheduler to use instead"
    )

    e = sub.add_parser("example", help="write the small example corpus (H5ADs + manifest.csv)")
    e.add_argument("--out", type=Path, default=Path("example-corpus"))
    from census_builder.release_cli import register_release_commands  # publish, release, notes

    register_release_commands(sub)
    from census_builder.helptext import apply  # description, example and exit codes of every command

    return apply(p)


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
    from census_builder.state import BuildPaths

    root = BuildPaths.for_version(workdir, version).root
    if root.is_dir():
        _log_to_file(root / name)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    from census_builder.errors import CensusBuilderError

    try:
        if hasattr(args, "handler"):
            return int(args.handler(args))
        if args.command == "build":
            return _build(args)
        if args.command == "example":
            return _example(args)
        if args.command == "validate":
            return _validate(args)
    except CensusBuilderError as e:
        logger.error("%s", e)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; re-run the same command to resume")
        return 130
    except Exception as e:
        from census_builder.diskfull import disk_full_error

        full = disk_full_error(e, where=getattr(args, "workdir", None) or Path.cwd())
        if full is None:
            raise
        logger.error("%s", full)  # a full disk is one line, not a traceback
        return 1
    return 2


def _build(args: argparse.Namespace) -> int:
    from census_builder.build import BuildConfig, build
    from census_builder.state import BuildPaths

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
    )
    out = build(config)
    logger.info("release written to %s (report: %s)", out.soma, out.report)
    if args.no_validate:
        logger.warning("validation skipped (--no-validate): this release cannot be published until validated")
        _print_summary(out)
        return 0
    rc = _run_validation(out, workers=args.workers, scheduler=args.scheduler)
    _print_summary(out)
    return rc


def _print_summary(paths: BuildPaths) -> None:
    from census_builder.summary import stored_summary, summary_lines

    found = stored_summary(paths)
    if found is not None:
        print("\n".join(summary_lines(found)), flush=True)  # the build's closing output, like the check lines


def _validate(args: argparse.Namespace) -> int:
    from census_builder.errors import CensusBuilderError
    from census_builder.state import BuildPaths

    paths = BuildPaths.for_version(args.workdir, args.version)
    if not paths.is_complete():
        raise CensusBuilderError(f"no complete release at {paths.root}; build it first")
    _log_to_file(paths.root / "validate.log")
    return _run_validation(paths, workers=args.workers, scheduler=args.scheduler)


def _run_validation(paths: BuildPaths, *, workers: int | None, scheduler: str | None) -> int:
    """Validate with the independent checker; its report lands at DIR/VERSION/validation_report.json."""
    from census_builder.cluster import dask_client
    from census_builder.summary import record_validation
    from validation import validate_release

    logger.info("validating %s against its sources", paths.soma)
    t0 = time.perf_counter()
    with dask_client(workers=workers, scheduler=scheduler) as client:
        report = validate_release(str(paths.soma), paths.manifest, client=client, report_path=paths.validation_report)
    record_validation(paths, passed=report.passed, seconds=time.perf_counter() - t0)
    for line in report.lines():
        print(line)  # the per-check lines are this command's output
    if not report.passed:
        logger.error("validation FAILED (%s); see %s", ", ".join(report.failed), paths.validation_report)
        return 1
    return 0  # validation itself logged "validation passed; report: ..."


def _example(args: argparse.Namespace) -> int:
    from census_builder.synthetic import example_specs, write_corpus

    manifest = write_corpus(args.out, example_specs())
    logger.info("example corpus written; manifest: %s", manifest)
    return 0

"""The command ``python -m validation RELEASE_SOMA_URI --manifest MANIFEST.csv [--census-schema V] [--workers N]``.

The Census schema is the one the release records (census_info['summary']) unless ``--census-schema`` names one.

Prints one line per check (PASS / FAIL with the first offending rows), writes the JSON report (default:
``validation_report.json`` beside the release directory) and exits 0 only if every check passed
(1: a check failed; 2: the command could not run, nothing was touched; 130 / 143: interrupted by Ctrl-C /
SIGTERM). An interrupted validation resumes where it stopped when the same command is run again (finished
tasks are kept in ``.validation/`` beside the report).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
from pathlib import Path
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that the cluster is stopped and the checkpoint kept as on Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


EPILOG = """\
One PASS/FAIL line per check, with the first offending rows; the JSON report is written beside the release.

example:
  python -m validation census-build/2026-11-22/soma --manifest census-build/2026-11-22/manifest.csv --workers 4

exit status:
  0    every check passed
  1    a check failed
  2    the command could not run (unreadable manifest, unknown Census schema version, usage error)
  130  interrupted (Ctrl-C)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (``argv``; None: ``sys.argv``); usage errors exit 2."""
    p = argparse.ArgumentParser(
        prog="python -m validation",
        description="Validate a Census release against the schema and its source H5ADs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("release", metavar="RELEASE_SOMA_URI", help="the release's root SOMACollection (DIR/VERSION/soma)")
    p.add_argument("--manifest", required=True, type=Path, help="the manifest CSV the release was built from")
    p.add_argument("--workers", type=int, default=None, help="local dask worker processes (default: one per core)")
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler to run on instead")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="where to write the JSON report (default: validation_report.json beside the release)",
    )
    p.add_argument(
        "--census-schema",
        default=None,
        metavar="VERSION",
        help="the Census schema version to validate against (default: the one the release records in "
        "census_info['summary'])",
    )
    p.add_argument(
        "--chunk-entries",
        type=int,
        default=None,
        metavar="N",
        help="source entries per row chunk, the unit a worker compares X in: bounds each worker's memory "
        "(default: 2,000,000)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    if args.chunk_entries is not None and args.chunk_entries < 1:
        p.error("--chunk-entries must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status (see the module docstring)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from validation.core import default_report_path, validate_release  # heavy imports after parsing
    from validation.errors import InputError
    from validation.run import DEFAULT_CHUNK_ENTRIES

    if not args.verbose:  # the local scheduler runs in this process: keep its INFO chatter out of the output
        import distributed  # noqa: F401  (creates its loggers, with their own levels)

        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in ("distributed", "dask", "tornado"):
                logging.getLogger(name).setLevel(logging.WARNING)

    client = None
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.scheduler:
            from distributed import Client

            client = Client(args.scheduler)  # type: ignore[no-untyped-call]
        report = validate_release(
            args.release,
            args.manifest,
            workers=args.workers,
            report_path=args.report,
            client=client,
            schema_version=args.census_schema,
            chunk_entries=args.chunk_entries or DEFAULT_CHUNK_ENTRIES,
        )
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        command = shlex.join(["python", "-m", "validation", *(sys.argv[1:] if argv is None else argv)])
        print(
            f"validation {what}; finished checks are kept: run the same command to resume: {command}", file=sys.stderr
        )
        return 143 if isinstance(e, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
    for line in report.lines():
        print(line)
    print(f"report: {args.report or default_report_path(args.release)}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``report`` (a static HTML site beside a release: overview, Gene Expression dot plot, markers).

``register_report_command`` adds it to the main parser; its handler imports the report package when run.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from census_builder import options
from census_builder.cli.settings import setting_flag

logger = logging.getLogger("census_builder")


def register_report_command(sub: Any) -> None:
    """Add ``report`` to the subparsers ``sub`` of the main parser."""
    p = sub.add_parser(
        "report", help="write a static HTML report of a build (overview, Gene Expression dot plot, marker genes)"
    )
    p.add_argument("--version", required=True, type=options.version, help="the build to describe")
    setting_flag(p, "workdir")
    p.add_argument(
        "--out", type=Path, default=None, help="output directory (default DIR/VERSION/report, beside the build)"
    )
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from census_builder.cli.logs import log_to_version_dir
    from census_builder.report import write_report

    log_to_version_dir(args.workdir, args.version, "report.log")
    index = write_report(args.workdir, args.version, out=args.out)
    logger.info("report: %s (open it in a browser: xdg-open %s)", index, index)
    return 0

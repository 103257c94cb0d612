"""Command line of the Gene Expression stage: ``gene-expression`` (and ``build --gene-expression``)."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from census_builder import options
from census_builder.cli.settings import setting_flag

if TYPE_CHECKING:
    from census_builder.build.state import BuildPaths

logger = logging.getLogger("census_builder")


def register_gene_expression_command(sub: Any) -> None:
    """Add ``gene-expression`` to the subparsers ``sub`` of the main parser."""
    g = sub.add_parser(
        "gene-expression", help="compute the Gene Expression cube of a complete release (DIR/VERSION/gene_expression)"
    )
    g.add_argument("--version", required=True, type=options.version, help="release version, e.g. 2026-11-22")
    for key in ("workdir", "workers", "scheduler", "chunk_nnz", "memory_limit"):
        setting_flag(g, key)
    g.set_defaults(handler=_gene_expression)


def _gene_expression(args: argparse.Namespace) -> int:
    from census_builder.build.state import BuildPaths
    from census_builder.cli.logs import log_to_file

    paths = BuildPaths.for_version(args.workdir, args.version)
    if paths.root.is_dir():
        log_to_file(paths.root / "gene_expression.log")
    return run_for(
        paths,
        workers=args.workers,
        scheduler=args.scheduler,
        memory_limit=args.memory_limit,
        chunk_nnz=args.chunk_nnz,
    )


def run_for(
    paths: BuildPaths,
    *,
    workers: int | None,
    scheduler: str | None,
    memory_limit: str | None = None,
    chunk_nnz: int | None = None,
) -> int:
    """Run the stage on the release at ``paths`` and print where its output went (also ``build --gene-expression``)."""
    from census_builder.gene_expression.stage import DEFAULT_CHUNK_NNZ, run

    result = run(
        paths.root.parent,
        paths.root.name,
        workers=workers,
        scheduler=scheduler,
        memory_limit=memory_limit,
        chunk_nnz=chunk_nnz or DEFAULT_CHUNK_NNZ,
    )
    for organism, entry in sorted(result.organisms.items()):
        print(f"gene expression {organism}: {entry['n_cells']} cells, {entry['n_groups']} groups", flush=True)
    print(f"gene expression written to {result.path} ({result.seconds:.1f} s)", flush=True)
    return 0

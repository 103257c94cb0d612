"""Command line for building: ``build``, ``validate`` and ``example``.

``register_build_commands`` adds the subcommands to the main parser; each sets ``handler`` (args -> exit
code), which ``census_builder.cli.main.main`` calls. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from census_builder import options
from census_builder.cli.settings import setting_flag

if TYPE_CHECKING:
    from census_builder.build.state import BuildPaths

logger = logging.getLogger("census_builder")


def register_build_commands(sub: Any) -> None:
    """Add ``build``, ``validate`` and ``example`` to the subparsers ``sub`` of the main parser."""
    b = sub.add_parser("build", help="build (or resume) a Census release from a manifest")
    b.add_argument("--version", required=True, type=options.version, help="release version, e.g. 2026-11-22")
    b.add_argument(
        "--manifest",
        required=True,
        type=Path,
        help="CSV with header dataset_id,h5ad_uri[,...] (or the reference builder's dataset_asset_h5ad_uri)",
    )
    _workdir_and_cluster_options(b)
    setting_flag(b, "chunk_nnz")
    setting_flag(b, "memory_limit")
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
    b.add_argument(
        "--restart",
        action="store_true",
        help="discard the unfinished build of VERSION (DIR/VERSION/.build/ and its report's state; never a "
        "complete release) once no live build holds its lock, then build from scratch with these inputs",
    )
    setting_flag(b, "max_excluded")
    setting_flag(b, "schema_version")
    b.add_argument(
        "--gene-expression",
        action="store_true",
        help="after a successful build (and validation), compute its Gene Expression cube "
        "(the gene-expression command)",
    )
    b.set_defaults(handler=_build)

    v = sub.add_parser("validate", help="validate a built release (DIR/VERSION/soma) against its sources")
    v.add_argument("--version", required=True, type=options.version)
    _workdir_and_cluster_options(v)
    v.set_defaults(handler=_validate)

    e = sub.add_parser("example", help="write the small example corpus (H5ADs + manifest.csv)")
    e.add_argument("--out", type=Path, default=Path("example-corpus"))
    setting_flag(e, "schema_version")  # 2.4.0: the dataset schema 7.0.0 corpus
    e.set_defaults(handler=_example)


def _workdir_and_cluster_options(p: argparse.ArgumentParser) -> None:
    for key in ("workdir", "workers", "scheduler"):
        setting_flag(p, key)


def _build(args: argparse.Namespace) -> int:
    from census_builder import config
    from census_builder.build.pipeline import BuildConfig, build
    from census_builder.build.state import BuildPaths
    from census_builder.cli.logs import log_to_file

    paths = BuildPaths.for_version(args.workdir, args.version)
    if not paths.is_complete():
        log_to_file(paths.log)
    logger.info("settings: %s", config.describe(args.settings))
    build_config = BuildConfig(
        version=args.version,
        manifest=args.manifest,
        workdir=args.workdir,
        workers=args.workers,
        scheduler=args.scheduler,
        chunk_nnz=args.chunk_nnz,
        exclude_invalid=args.exclude_invalid,
        schema_version=args.settings.schema_version,
        force_rebuild=args.force_rebuild,
        build_date=args.build_date,
        memory_limit=args.memory_limit,
        skip_host_check=args.skip_host_check,
        restart=args.restart,
        max_excluded=args.max_excluded,
    )
    out = build(build_config)
    logger.info("release written to %s (report: %s)", out.soma, out.report)
    if args.no_validate:
        logger.warning("validation skipped (--no-validate): this release cannot be published until validated")
        _print_summary(out)
        return _gene_expression_after_build(args, out)
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
    return _gene_expression_after_build(args, out) if rc == 0 else rc


def _gene_expression_after_build(args: argparse.Namespace, out: BuildPaths) -> int:
    """``build --gene-expression``: the Gene Expression stage on the release just built."""
    if not args.gene_expression:
        return 0
    from census_builder.cli.gene_expression import run_for

    return run_for(
        out, workers=args.workers, scheduler=args.scheduler, memory_limit=args.memory_limit, chunk_nnz=args.chunk_nnz
    )


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
    from census_builder.cli.logs import log_to_file
    from census_builder.errors import CensusBuilderError

    paths = BuildPaths.for_version(args.workdir, args.version)
    if not paths.is_complete():
        raise CensusBuilderError(f"no complete release at {paths.root}; build it first")
    log_to_file(paths.root / "validate.log")
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
    from census_builder.census.schema import load_schema
    from census_builder.testing import synthetic_7

    if load_schema(args.settings.schema_version).dataset_schema_version == synthetic_7.SCHEMA_VERSION:
        from census_builder.testing.synthetic_spatial import write_example_corpus_7

        manifest = write_example_corpus_7(args.out)  # with one Visium and one Slide-seqV2 dataset
    else:
        from census_builder.testing.synthetic import example_specs, write_corpus

        manifest = write_corpus(args.out, example_specs())
    logger.info("example corpus written; manifest: %s", manifest)
    return 0

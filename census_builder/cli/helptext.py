"""``--help`` of every command: what it does, one example, the exit codes.

The parsers are built where their options live (cli/build.py, cli/release.py, cli/settings.py); ``apply``
then walks the finished parser tree and sets each command's description and epilog from ``HELP``, keyed by
the command path ("build", "release alias", ...). A command without an entry keeps argparse's text plus the exit codes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from census_builder.config import CONFIG_ENV, DEFAULT_WORKDIR


@dataclass(frozen=True)
class Help:
    """The help of one command: its description, one example and which exit codes it has."""

    description: str
    example: str
    exit_codes: str = "common"  # a key of EXIT_CODES


EXIT_CODES = {
    "common": """\
exit status:
  0    success
  1    failed (the error names the cause and the command that fixes it)
  2    usage error, or the command could not run
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)""",
    "build": """\
exit status:
  0    the release is complete (and passed validation, unless --no-validate)
  1    failed: a build error, or the release failed validation
  2    usage error, or the command could not run
  3    too many datasets excluded (--max-excluded)
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM); the last line says how to continue""",
    "validate": """\
exit status:
  0    every check passed
  1    a check failed (see the FAIL lines and the JSON report)
  2    usage error, or the validation could not run
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)""",
}

PROG = "python -m census_builder"
WORKDIR = DEFAULT_WORKDIR  # the examples' --workdir

HELP: dict[str, Help] = {
    "": Help(
        "Build, validate, publish and describe CELLxGENE Census releases (TileDB-SOMA collections) made from\n"
        "a manifest CSV of H5AD files. `COMMAND --help` explains each command.",
        f"{PROG} build --version 2026-11-22 --manifest manifest.csv --workdir {WORKDIR}",
    ),
    "build": Help(
        "Build (or resume) release VERSION from the manifest into DIR/VERSION/ (DIR: --workdir):\n"
        "a host check of disk and memory, then staging and preflight of every source, the release under\n"
        "DIR/VERSION/soma, and validation against the sources. Ends with a summary (cells and genes per\n"
        "organism, datasets, size, time per stage); figures in DIR/VERSION/build_report.json, the debug log\n"
        "in DIR/VERSION/build.log. Re-running the same command resumes an interrupted build.",
        f"{PROG} build --version 2026-11-22 --manifest manifest.csv --workdir {WORKDIR} --workers 4",
        "build",
    ),
    "validate": Help(
        "Validate the complete build DIR/VERSION/soma against its sources with the independent checker:\n"
        "one PASS/FAIL line per check, the JSON report in DIR/VERSION/validation_report.json, the log in\n"
        "DIR/VERSION/validate.log. (Any release, from any tool: python -m validation RELEASE --manifest M.)",
        f"{PROG} validate --version 2026-11-22 --workdir {WORKDIR}",
        "validate",
    ),
    "example": Help(
        "Write the small synthetic example corpus (H5ADs and manifest.csv) to --out.",
        f"{PROG} example --out example-corpus && {PROG} build --version example --manifest example-corpus/manifest.csv",
    ),
    "gene-expression": Help(
        "Compute the Gene Expression cube of the complete release DIR/VERSION (the CELLxGENE Discover method:\n"
        "primary cells of Table-1 assays with >= 500 genes, ln(CPTT+1), raw counts <= 3 missing, Cell Ontology\n"
        "roll-up) into DIR/VERSION/gene_expression/: a SOMA collection (soma/), Parquet files per organism and\n"
        "gene_expression.json. The release is only read. Log: DIR/VERSION/gene_expression.log.",
        f"{PROG} gene-expression --version 2026-11-22 --workdir {WORKDIR} --workers 4",
    ),
    "publish": Help(
        "Copy the complete, validated build DIR/VERSION to DEST/VERSION (a local directory or\n"
        "s3://bucket/prefix), verify every object, then add VERSION to DEST/release.json. An interrupted\n"
        "publish re-run finishes the job. Log: DIR/VERSION/publish.log.",
        f"{PROG} publish --version 2026-11-22 --workdir {WORKDIR} --to s3://my-bucket/census",
    ),
    "release": Help(
        "Manage DEST/release.json, the release directory cellxgene_census reads: aliases, retractions,\n"
        "listing. `release COMMAND --help` explains each.",
        f"{PROG} release list --to s3://my-bucket/census",
    ),
    "release alias": Help(
        "Point alias NAME (e.g. latest, stable) at published release VERSION.",
        f"{PROG} release alias latest 2026-11-22 --to s3://my-bucket/census",
    ),
    "release retract": Help(
        "Mark published release VERSION as retracted (with a reason; its aliases move to --replaced-by).",
        f'{PROG} release retract 2026-11-22 --reason "wrong counts in dataset X" --replaced-by 2026-11-29 '
        "--to s3://my-bucket/census",
    ),
    "release list": Help(
        "List the releases and aliases of DEST (or print release.json with --json).",
        f"{PROG} release list --to s3://my-bucket/census",
    ),
    "release unalias": Help(
        "Remove alias NAME from DEST/release.json.",
        f"{PROG} release unalias stable --to s3://my-bucket/census",
    ),
    "release unretract": Help(
        "Undo the retraction of published release VERSION.",
        f"{PROG} release unretract 2026-11-22 --to s3://my-bucket/census",
    ),
    "release lts": Help(
        "Set (or with --clear, clear) the long-term-stable flag of published release VERSION.",
        f"{PROG} release lts 2026-11-22 --to s3://my-bucket/census",
    ),
    "release mirrors": Help(
        "Show DEST/mirrors.json and the code a consumer runs to open DEST with cellxgene_census; "
        "--set NAME adds or replaces a mirror.",
        f"{PROG} release mirrors --to s3://my-bucket/census --url https://census.example.org/",
    ),
    "notes": Help(
        "Write release notes for build VERSION (markdown and PNG figures) to DIR/VERSION/release_notes/ (or --out),\n"
        "compared with the newest earlier non-retracted release of --from DEST (or of the destination publish\n"
        "recorded), or --previous.\n"
        "Log: DIR/VERSION/notes.log.",
        f"{PROG} notes --version 2026-11-22 --from s3://my-bucket/census --workdir {WORKDIR}",
    ),
    "report": Help(
        "Write a static HTML report of build VERSION to DIR/VERSION/report/ (or --out) that opens from disk, no\n"
        "server or network: index.html (cells per organism, assay, tissue, disease; datasets and collections),\n"
        "gene_expression.html (the dot plot: mean expression and fraction expressing per cell type and gene,\n"
        "with group-by) and markers.html (marker genes per tissue and cell type), from DIR/VERSION/soma and\n"
        "DIR/VERSION/gene_expression/ (the gene-expression command). Log: DIR/VERSION/report.log.",
        f"{PROG} report --version 2026-11-22 --workdir {WORKDIR} && xdg-open {WORKDIR}/2026-11-22/report/index.html",
    ),
    "config": Help(
        "Print the effective site settings, one line each: key, value and where the value came from. Each\n"
        "setting is, in rising precedence, its default, a key of the TOML config file (--config FILE, else\n"
        f"${CONFIG_ENV}), the environment variable CENSUS_BUILDER_<KEY> and the command's flag.",
        f"{PROG} config --config site.toml",
    ),
}


def epilog(h: Help | None) -> str:
    """Return the text after the options: the example, then the exit codes."""
    codes = EXIT_CODES[h.exit_codes if h else "common"]
    return f"example:\n  {h.example}\n\n{codes}" if h else codes


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def commands(parser: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every parser in the tree, by command path ("" for the root)."""
    out = {path: parser}
    for name, sub in _subcommands(parser).items():
        out.update(commands(sub, f"{path} {name}".strip()))
    return out


def apply(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Set description, example and exit codes on ``parser`` and every subcommand parser under it."""
    for path, p in commands(parser).items():
        h = HELP.get(path)
        if h is not None:
            p.description = h.description
        p.epilog = epilog(h)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser

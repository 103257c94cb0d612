"""Build a release with the reference builder from one of our manifests, offline.

    python -m benchmarks.reference.run --corpus MANIFEST --out DIR [--python /work/refvenv/bin/python]
        [--build-tag YYYY-MM-DD] [--workers 2] [--commit-sha SHA]

The reference builder runs in its own interpreter (``--python``, a virtual environment made by
``python -m benchmarks.reference.install``). This module writes, under ``DIR``:

- ``manifest.csv``: our manifest (``dataset_id,h5ad_uri,...``) in the reference's form: ``dataset_id``,
  ``dataset_asset_h5ad_uri`` (absolute path) and the metadata columns it reads (see ``reference_manifest``);
- ``blocklist.txt``: empty, so no dataset is blocked and nothing is fetched from GitHub;
- ``work/``: the reference's working directory; its release is ``work/TAG/soma`` (the path printed last).

The reference writes its build tag as ``census_build_date`` in ``census_info/summary``: pass our build's
``--build-date`` as ``--build-tag`` to compare the two releases without that difference (the reference's
default, and ours, is today's date).

It runs ``python -m cellxgene_census_builder.build_soma --build-tag TAG --max_worker_processes N work build
--manifest DIR/manifest.csv --dataset_id_blocklist_uri DIR/blocklist.txt`` with ``COMMIT_SHA`` set (the
reference otherwise asks git for the commit of its working directory). With a manifest and a local blocklist
it makes no network request: the manifest replaces the CELLxGENE Discover API, and the H5ADs are copied from
their local paths. Its own validation runs after the build (``--validate`` is its default).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py

logger = logging.getLogger("benchmarks.reference.run")

DEFAULT_PYTHON = "/work/refvenv/bin/python"
DEFAULT_SOURCE = Path("/work/ref-src")  # where install.py puts the reference's source and COMMIT
# The reference's Dataset fields that a manifest may set, in its order (build_soma/datasets.py). Every value
# must be a non-empty string: the reference reads the CSV with pandas, which turns an empty cell into NaN,
# and its Dataset checks each field's type. A column that is empty in some row is therefore left out.
REFERENCE_COLUMNS = (
    "dataset_version_id",
    "dataset_title",
    "citation",
    "collection_id",
    "collection_name",
    "collection_doi",
    "collection_doi_label",
)
# Filled from the H5AD's uns when our manifest lacks them (our builder does the same for dataset_title).
FROM_UNS = {"dataset_title": "title", "citation": "citation"}


def _uns_text(path: Path, key: str) -> str:
    with h5py.File(path, "r") as f:
        if f"uns/{key}" not in f:
            return ""
        value = f[f"uns/{key}"][()]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def reference_manifest(rows: Sequence[dict[str, str]], base_dir: Path) -> tuple[list[dict[str, str]], list[str]]:
    """Return our manifest ``rows`` as the reference's rows, and the metadata columns left out (empty somewhere).

    Relative ``h5ad_uri`` values are taken from ``base_dir`` (the manifest's directory) and made absolute.
    """
    out: list[dict[str, str]] = []
    for row in rows:
        uri = row["h5ad_uri"].removeprefix("file://")
        path = Path(uri) if uri.startswith(("/", "s3://")) else (base_dir / uri).resolve()
        ref = {"dataset_id": row["dataset_id"], "dataset_asset_h5ad_uri": str(path)}
        for col in REFERENCE_COLUMNS:
            value = (row.get(col) or "").strip()
            if not value and col in FROM_UNS and not str(path).startswith("s3://"):
                value = _uns_text(path, FROM_UNS[col])
            ref[col] = value
        out.append(ref)
    dropped = [c for c in REFERENCE_COLUMNS if any(not r[c] for r in out)]
    for r in out:
        for c in dropped:
            del r[c]
    return out, dropped


def write_inputs(manifest: Path, out: Path) -> tuple[Path, Path]:
    """Write the reference's manifest and an empty blocklist under ``out``; return their paths."""
    with manifest.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    ref_rows, dropped = reference_manifest(rows, manifest.resolve().parent)
    if dropped:
        logger.warning("left out of the reference's manifest (empty in some row): %s", ", ".join(dropped))
    out.mkdir(parents=True, exist_ok=True)
    ref_manifest, blocklist = out / "manifest.csv", out / "blocklist.txt"
    with ref_manifest.open("w", newline="", encoding="utf-8") as f:
        fields = list(ref_rows[0]) if ref_rows else ["dataset_id", "dataset_asset_h5ad_uri"]
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(ref_rows)
    blocklist.write_text("# no dataset is blocked\n", encoding="utf-8")
    return ref_manifest, blocklist


def command(python: str, work: Path, manifest: Path, blocklist: Path, build_tag: str, workers: int) -> list[str]:
    """Return the reference builder's command line."""
    return [
        python,
        "-m",
        "cellxgene_census_builder.build_soma",
        "--build-tag",
        build_tag,
        "--max_worker_processes",
        str(workers),
        str(work),
        "build",
        "--manifest",
        str(manifest),
        "--dataset_id_blocklist_uri",
        str(blocklist),
    ]


def _commit_sha(given: str | None) -> str:
    if given:
        return given
    recorded = DEFAULT_SOURCE / "COMMIT"
    return recorded.read_text(encoding="utf-8").strip() if recorded.is_file() else "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the inputs, run the reference builder, print its release's soma path."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference.run", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="our manifest (dataset_id,h5ad_uri,...)")
    p.add_argument("--out", type=Path, required=True, help="directory for the inputs and the reference's work/")
    p.add_argument("--python", default=DEFAULT_PYTHON, help="the reference's interpreter")
    p.add_argument(
        "--build-tag",
        default=datetime.date.today().isoformat(),
        help="the reference's build tag: its release's directory and census_build_date (default: today)",
    )
    p.add_argument("--workers", type=int, default=2, help="the reference's --max_worker_processes")
    p.add_argument("--commit-sha", help=f"COMMIT_SHA for the reference (default: {DEFAULT_SOURCE}/COMMIT)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out: Path = args.out.resolve()
    manifest, blocklist = write_inputs(args.corpus, out)
    work = out / "work"
    if (work / args.build_tag).exists():
        print(f"{work / args.build_tag} exists: remove it or pass another --build-tag", file=sys.stderr)
        return 2
    work.mkdir(exist_ok=True)
    cmd = command(args.python, work, manifest, blocklist, args.build_tag, args.workers)
    env = dict(os.environ, COMMIT_SHA=_commit_sha(args.commit_sha))
    logger.info("running %s", " ".join(cmd))
    rc = subprocess.run(cmd, env=env, check=False).returncode
    if rc != 0:
        print(f"the reference builder failed (exit status {rc}); its log is under {work}", file=sys.stderr)
        return 1
    print(work / args.build_tag / "soma")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

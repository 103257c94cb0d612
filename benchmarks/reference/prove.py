"""The value-for-value proof of our Census 2.4.0 release against the reference builder's, end to end.

    python -m benchmarks.reference.prove --out DIR [--python /work/refvenv/bin/python] [--build-date 2026-11-26]
        [--workers 1] [--no-validate] [--validator] [--results FILE [--append]] [--only ID,ID...]

Under ``DIR`` (which must not exist yet, or be empty), it

1. writes the comparison corpus (``benchmarks.reference.corpus``) to ``DIR/corpus``;
2. builds it with ours: ``python -m census_builder build --census-schema 2.4.0 --version DATE --build-date DATE
   --manifest DIR/corpus/manifest.csv --workdir DIR/ours`` (``--no-validate`` passed on), log ``DIR/ours.log``;
3. builds it with the reference (``benchmarks.reference.run``, build tag DATE), log ``DIR/ref.log``;
4. with ``--validator``, runs our validator (``python -m validation``) on both releases, logs
   ``DIR/validation-{ours,ref}.log``;
5. compares the two releases (``benchmarks.reference.compare``), writes the whole listing to
   ``DIR/compare.txt`` and sorts every difference into the explained ones (:data:`EXPLAINED`: each a rule of
   the text the reference departs from, a freedom the text leaves, or a bug of one side, with the schema
   sentence) and the unexplained ones;
6. writes the results (``--results``, default ``DIR/RESULTS-2.4.0.md``): command, commits, corpus, what was
   compared, each kind of difference with its count, examples and explanation.

``--only`` proves a part of the corpus: e.g. the human and mouse datasets alone, to see what each builder
writes for organisms without cells. ``--append`` adds the results to an existing file (one document per run).

Exit status: 0 when every difference is explained, 1 when some is not (or a build failed), 2 on a usage error.
Both builds are deterministic for a given corpus and build date, so the results are reproducible.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import tiledbsoma as soma

from benchmarks.reference.compare import NORMALIZED_RTOL, TABLE_KEYS, compare_releases
from benchmarks.reference.corpus import CorpusSpec, n_observations, reference_corpus, write_reference_corpus
from benchmarks.reference.diff import Difference, Report, compare_tables, plain
from benchmarks.reference.run import DEFAULT_PYTHON, DEFAULT_SOURCE
from census_builder.testing.synthetic_7 import ORGANISMS

logger = logging.getLogger("benchmarks.reference.prove")

REPO = Path(__file__).resolve().parents[2]
CENSUS_SCHEMA = "2.4.0"
SCHEMA_TEXT = "census_schema_2.4.0.md"  # the contract, /work/shared/spec in our sessions
EXAMPLES = 3  # examples listed per explanation in the results


@dataclass(frozen=True)
class Explanation:
    """A kind of difference the text explains: which differences it covers and why they are what they are."""

    title: str
    verdict: str  # "the reference departs from the text" | "a freedom of the text" | "a bug of ..."
    sentence: str  # the schema sentence that decides it (quoted from the text, with its section)
    note: str  # what each side does
    where: str  # regular expression matched against Difference.where (fullmatch)
    what: str  # regular expression matched against Difference.what (search)
    key: str = ""  # regular expression matched against Difference.key (search); "" matches any

    def covers(self, d: Difference) -> bool:
        """Whether this explanation covers ``d``."""
        return (
            re.fullmatch(self.where, d.where) is not None
            and re.search(self.what, d.what) is not None
            and (not self.key or re.search(self.key, d.key) is not None)
        )


_EXP = r"census_(data|spatial_sequencing)/[a-z_]+"  # obs and var: the same columns in both (the text)
_SCENE = r"census_spatial_sequencing/[a-z_]+/spatial/[^/]+"
MAPPED = "census_info/summary_cell_counts (organism mapped)"
#: Every kind of difference the proof expects, in the order the results list them. (The presence matrix is not
#: among them: our 2.4.0 rule is the reference's, "listed"; see schema/census_schema_2.4.0.yaml.)
EXPLAINED: tuple[Explanation, ...] = (
    Explanation(
        "obs statistics stored as float64 by the reference",
        "the reference departs from the text",
        '"raw_sum | float32", "raw_mean_nnz | float32", "raw_variance_nnz | float32" (Cell metadata table).',
        "Ours stores float32, as the table says; the reference stores float64 (its values, compared as numbers "
        "within STATS_RTOL, agree).",
        rf"{_EXP}/obs",
        r"^column 'raw_(sum|mean_nnz|variance_nnz)': type float \(ours\) != double \(reference\)$",
    ),
    Explanation(
        "An extra var column feature_type in the reference",
        "a freedom of the text",
        '"The following columns MUST be included: feature_id, feature_name, feature_length, nnz, '
        'n_measured_obs" (Feature metadata); the text neither lists nor forbids feature_type.',
        "The reference adds the dataset schema's feature_type; ours writes the columns the table lists.",
        rf"{_EXP}/ms/RNA/var",
        r"^column 'feature_type' only in the reference$",
    ),
    Explanation(
        "dataset_h5ad_path: the same file, named relative to another folder",
        "a freedom of the text",
        '"dataset_h5ad_path | string | Relative path to the source h5ad file in the Census storage bucket." '
        "(Census table of CELLxGENE Discover datasets); the text does not say relative to which folder.",
        "The reference names the file relative to the release's h5ads/ folder; ours relative to the release.",
        r"census_info/datasets",
        r"^dataset_h5ad_path: ",
    ),
    Explanation(
        "summary_cell_counts.organism: organism_label (ours) or the experiment name (reference)",
        "the reference departs from the text",
        '"organism | string | The value of an `organism_label` defined in Census table of organisms" (Census '
        'summary cell counts; its example rows read "Homo sapiens").',
        'Ours writes the organism_label ("Homo sapiens"); the reference writes the organism column '
        '("homo_sapiens"), so every row is on one side only under its own key.',
        r"census_info/summary_cell_counts",
        r"^row only in (ours|the reference)$",
    ),
    Explanation(
        "summary_cell_counts: the reference lumps every suspension_type into one row",
        "a bug of the reference",
        '"Each row MUST correspond to a combination of organism and metadata variables" (Census summary cell '
        'counts; its example has rows "suspension_type | suspension_type_a | na" to "suspension_type_N | na").',
        'Suspension types have no ontology term ("na"); the reference\'s create_census_summary_cell_counts '
        "(build_soma/summary_cell_counts.py) groups the per-dataset rows by (organism, category, "
        'ontology_term_id) and keeps the "first" label, so all cells of an organism land in one row labelled '
        'with the first suspension type seen ("cell" here) and the other rows vanish. Ours keeps one row per '
        "suspension type; the sums over them equal the reference's single row.",
        re.escape(MAPPED),
        r"^row only in ours$|^(total|unique)_cell_count: ",
        r"category='suspension_type'",
    ),
    Explanation(
        "Point columns: the reference names the first column of obsm spatial y, the second x",
        "the reference departs from the text",
        '"x | float | It MUST be the corresponding value in the **first** column of `obsm["spatial"]`" and "y | '
        'float | ... the **second** column" (Positions array of a Scene).',
        "Ours writes x = first column, y = second, in that order; the reference writes `pd.DataFrame(tissue_pos, "
        'columns=["y", "x"])`, columns y, x, soma_joinid. The positions agree once swapped, for every point '
        "(docs/spatial-2.4.0-notes.md, point 4).",
        rf"{_SCENE}/obsl/loc",
        r"^column order \['x', 'y', 'soma_joinid'\] \(ours\) != \['y', 'x', 'soma_joinid'\] \(reference\)$"
        r"|^x and y swapped: ours x == reference y and ours y == reference x for all \d+ points$",
    ),
    Explanation(
        "Point coordinates kept as the source's int64 by the reference",
        "the reference departs from the text",
        '"x | float", "y | float" (Positions array of a Scene).',
        "Ours stores float64; the reference keeps the source dtype, int64 for the Visium positions of the corpus "
        "(equal values; docs/spatial-2.4.0-notes.md, point 4).",
        rf"{_SCENE}/obsl/loc",
        r"^column '[xy]': type double \(ours\) != int64 \(reference\)$",
    ),
    Explanation(
        "Scene coordinate space: axes (y, x) in the reference; Slide-seqV2 units",
        "the reference departs from the text",
        '"x ... the first column", "y ... the second column" (Positions array of a Scene); "If Visium Spatial Gene '
        'Expression V1 ("EFO:0022857"), the units for the spatial array positions are pixels from the '
        'full-resolution image." Nothing is said of Slide-seqV2 units (a freedom).',
        "Ours names the axes (x, y) after the point columns, unit pixels for Visium and none for Slide-seqV2 "
        "(the source states none); the reference names them (y, x), unit pixels for both "
        "(docs/spatial-2.4.0-notes.md, point 5).",
        _SCENE,
        r"^coordinate space \[\('x', .*\), \('y', .*\)\] \(ours\) != \[\('y', 'pixels'\), \('x', 'pixels'\)\] "
        r"\(reference\)$",
    ),
    Explanation(
        "img[library_id] is the MultiscaleImage in the reference, not a Collection holding highres_image",
        "the reference departs from the text",
        '"Images of a Scene - `...img[library_id]` - `Collection` of `MultiscaleImage`" and "High resolution '
        'image of a Scene - `...img[library_id]["highres_image"]` - `MultiscaleImage`".',
        "Ours writes the Collection img[library_id] holding the MultiscaleImage highres_image (level hires); the "
        "reference writes the MultiscaleImage at img[library_id] (level hires) (docs/spatial-2.4.0-notes.md, "
        "point 7). The scale (tissue_hires_scalef) agrees.",
        rf"{_SCENE}/img/[^/]+",
        r"^layout: img\[library_id\]\['highres_image'\] is the MultiscaleImage \(ours\) != img\[library_id\] "
        r"is the MultiscaleImage \(reference\)$",
    ),
    Explanation(
        "Image axis order: the reference's label (channel, x, y) does not match its (channel, y, x) pixels",
        "a bug of the reference",
        "\"**Value:** the image from `uns[\"spatial\"][library_id]['images']['hires']`\" (High resolution image "
        "of a Scene).",
        "Both write the hires pixels channel first, rows (y) then columns (x); ours declares data_axis_order "
        "(soma_channel, y, x), the reference passes none and tiledbsoma labels it (soma_channel, x, y). Read by "
        "its label, the reference's image is transposed; read by its layout, every pixel equals ours and the "
        "source (docs/spatial-2.4.0-notes.md, point 8).",
        rf"{_SCENE}/img/[^/]+",
        r"^data_axis_order \('soma_channel', 'y', 'x'\) \(ours\) != \('soma_channel', 'x', 'y'\) \(reference\)$"
        r"|^level 0 equal only with y and x swapped: ",
    ),
    Explanation(
        "Experiments and organisms rows for organisms without cells",
        "the reference departs from the text",
        '"For each organism with qualifying data, the `SOMAExperiment` MUST contain ..." (Single Cell Census '
        'Data) and "Information about organisms whose cells are included in the Census MUST be included" '
        "(Census table of organisms).",
        "The reference writes an experiment and an organisms row for every organism of the schema, with or "
        "without cells; ours only for organisms with cells.",
        r"census_data|census_info/organisms",
        r"^experiment '[a-z_]+' \(0 cells\) only in the reference$|^row only in the reference$",
    ),
)


def _counts_by_label(uri: str) -> pa.Table | None:
    """Return census_info/summary_cell_counts with its organism values mapped to organism_label (None if absent)."""
    c: Any
    with soma.Collection.open(uri) as c:
        info = c["census_info"]
        if "summary_cell_counts" not in info or "organisms" not in info:
            return None
        counts = info["summary_cell_counts"].read().concat()
        orgs = info["organisms"].read().concat()
    names = plain(orgs.column("organism")).to_pylist()
    to_label = dict(zip(names, plain(orgs.column("organism_label")).to_pylist(), strict=True))
    mapped = [to_label.get(v, v) for v in plain(counts.column("organism")).to_pylist()]
    i = counts.column_names.index("organism")
    return counts.set_column(i, "organism", pa.array(mapped, pa.string()))


def recheck_summary_cell_counts(report: Report, ours: str, reference: str) -> bool:
    """Compare summary_cell_counts again, each side's organism values mapped to organism_label through its own
    census_info/organisms, when the first comparison found rows on one side only; add what differs under MAPPED.

    Rows that differ only in how they name the organism would otherwise hide every other difference of those
    rows. Returns whether the tables were compared again (``report`` must hold every difference).
    """
    place = "census_info/summary_cell_counts"
    if not any(d.where == place and d.what.startswith("row only in") for d in report.kept):
        return False
    a, b = _counts_by_label(ours), _counts_by_label(reference)
    if a is None or b is None:
        return False
    compare_tables(report, MAPPED, a, b, TABLE_KEYS["summary_cell_counts"])
    return True


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _run(cmd: Sequence[str], log: Path) -> int:
    """Run ``cmd`` with its output in ``log``; return its exit status."""
    logger.info("running %s (log: %s)", shlex.join(cmd), log)
    with log.open("w", encoding="utf-8") as fh:
        return subprocess.run(list(cmd), stdout=fh, stderr=subprocess.STDOUT, check=False, cwd=REPO).returncode


def classify(report: Report) -> tuple[dict[int, list[Difference]], list[Difference]]:
    """Sort every kept difference of ``report`` into EXPLAINED (by index) and the unexplained ones."""
    explained: dict[int, list[Difference]] = defaultdict(list)
    unexplained: list[Difference] = []
    for d in report.kept:
        for i, e in enumerate(EXPLAINED):
            if e.covers(d):
                explained[i].append(d)
                break
        else:
            unexplained.append(d)
    return dict(explained), unexplained


def bounded(report: Report, limit: int) -> Report:
    """Return ``report`` (which kept every difference) with at most ``limit`` examples per place."""
    out = Report(limit=limit)
    for d in report.kept:
        out.add(d.where, d.key, d.what)
    out.notes.extend(report.notes)
    out.compared.update(report.compared)
    out.largest.update(report.largest)
    return out


def _corpus_lines(specs: Sequence[CorpusSpec]) -> list[str]:
    per_org: dict[str, int] = defaultdict(int)
    for s in specs:
        per_org[ORGANISMS[s.organism][0]] += n_observations(s)
    collections = len({s.collection_id for s in specs})
    orgs = ", ".join(f"{name} {n}" for name, n in per_org.items())
    return [
        f"- {len(specs)} H5ADs (dataset schema 7.0.0), {collections} collections, {sum(per_org.values())} cells in "
        f"the files ({orgs}), written by `python -m benchmarks.reference.corpus` (`reference_corpus`: "
        "`reference_specs_7` and the spatial `reference_spatial_specs`).",
    ]


def validator_lines(reports: Mapping[str, Path]) -> list[str]:
    """Markdown lines: what our validator said of each release (its report JSON), failed checks with counts."""
    lines = ["", "## Our validator on both releases (`python -m validation RELEASE --manifest M`)", ""]
    for side, path in reports.items():
        if not path.is_file():
            lines.append(f"- {side}: no report ({path.name} missing)")
            continue
        report = json.loads(path.read_text(encoding="utf-8"))
        failed = [c for c in report["checks"] if not c["passed"]]
        lines.append(f"- {side}: {'passed' if report['passed'] else 'FAILED'} ({len(report['checks'])} checks)")
        for c in failed:
            first = c["findings"][0]["message"] if c["findings"] else ""
            lines.append(f"  - {c['name']}: {c['n_findings']} finding(s), e.g. {first}")
    return lines


def results_markdown(
    command: str,
    date: str,
    report: Report,
    explained: dict[int, list[Difference]],
    unexplained: list[Difference],
    steps: dict[str, int],
    ref_commit: str,
    specs: Sequence[CorpusSpec],
) -> str:
    """Return the results document."""
    changed = [ln for ln in _git("status", "--porcelain").splitlines() if "RESULTS-" not in ln]  # results: ours
    dirty = " (with uncommitted changes)" if changed else ""
    lines = [
        f"# Census 2.4.0: our release against the reference builder's ({len(specs)} datasets)",
        "",
        "Written by `benchmarks/reference/prove.py`; regenerate it with the command below.",
        "",
        f"- Command: `{command}`",
        f"- Build date (both builds): {date}; run at {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Ours: census-builder commit {_git('rev-parse', 'HEAD') or 'unknown'}{dirty}, "
        f"`--census-schema {CENSUS_SCHEMA}`",
        f"- Reference: chanzuckerberg/cellxgene-census `tools/cellxgene_census_builder` at commit {ref_commit}",
        *_corpus_lines(specs),
        "- Steps (exit status): " + ", ".join(f"{k} {v}" for k, v in steps.items()),
        "- Compared (found on both sides): " + ", ".join(f"{n} {what}" for what, n in sorted(report.compared.items())),
        *(f"- Largest {what}: {v:.3g} (tolerance 2^-15 = {NORMALIZED_RTOL:.3g})" for what, v in report.largest.items()),
        "- X normalized: ours stores each value as computed in float32, unrounded (the text defines "
        "`normalized[i,j] = X[i,j] / sum(X[i, ])` and says nothing of rounding); the reference rounds it to 15 "
        "mantissa bits (`_roundHalfToEven(xNormD, keepbits=15)`, a smaller file), a relative change of at most "
        f"2^-16 = {2.0**-16:.3g}: the largest difference above.",
        f"- Differences: {report.total}, of which {report.total - len(unexplained)} explained and "
        f"{len(unexplained)} unexplained.",
        "",
    ]
    for note in report.notes:
        lines.append(f"Note: {note}.")
    lines += ["", "## The differences, each explained", ""]
    if not explained:
        lines.append("None.")
    for i, e in enumerate(EXPLAINED):
        found = explained.get(i, [])
        if not found:
            continue
        places = sorted({d.where for d in found})
        lines += [
            f"### {e.title} ({len(found)})",
            "",
            f"- Verdict: {e.verdict}.",
            f"- The text: {e.sentence}",
            f"- {e.note}",
            f"- Places: {', '.join(f'`{p}`' for p in places)}",
            "- Examples:",
            *(f"  - `{d.where}`: {d}" for d in found[:EXAMPLES]),
            "",
        ]
    unmatched = [e.title for i, e in enumerate(EXPLAINED) if i not in explained]
    if unmatched:
        lines += ["Expected kinds not found in this run: " + "; ".join(unmatched) + ".", ""]
    lines += [
        "## Left out of the corpus: what the reference cannot build",
        "",
        "- A dense matrix filtered on both axes (cells and genes): its `AnnDataProxy.X` (build_soma/anndata.py) "
        "indexes the h5py dataset with two index arrays; observed: `TypeError: Only one indexing vector or array "
        "is currently allowed for fancy indexing`, build failed.",
        "- A kept cell without counts: its validation asserts `np.all(census_obs_nnz > 0)` "
        "(build_soma/validate_soma.py); observed: `AssertionError`, build failed. Dataset schema 7.0.0 forbids "
        'such cells: "Each cell MUST contain at least one non-zero value" (raw matrix requirements).',
        "",
    ]
    lines += ["## Unexplained differences", ""]
    if not unexplained:
        lines.append("None.")
    for d in unexplained:
        lines.append(f"- `{d.where}`: {d}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: corpus, both builds, (validator,) compare, results; see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference.prove", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="a new (or empty) directory for everything")
    p.add_argument("--python", default=DEFAULT_PYTHON, help="the reference builder's interpreter")
    p.add_argument("--build-date", default=datetime.date.today().isoformat(), help="both builds' date and version")
    p.add_argument("--workers", type=int, default=1, help="worker processes of each build (and the validator)")
    p.add_argument("--no-validate", action="store_true", help="pass --no-validate to our build")
    p.add_argument("--validator", action="store_true", help="also run our validator on both releases")
    p.add_argument("--results", type=Path, help="the results file (default: DIR/RESULTS-2.4.0.md)")
    p.add_argument("--append", action="store_true", help="append to the results file instead of replacing it")
    p.add_argument("--only", help="comma-separated dataset ids: build and compare only these of the corpus")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    out: Path = args.out.resolve()
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty: pass a new directory to --out", file=sys.stderr)
        return 2
    command = "python -m benchmarks.reference.prove " + shlex.join(
        a if not a.startswith(str(out)) else a.replace(str(out), "DIR") for a in (argv or sys.argv[1:])
    )
    date = args.build_date
    specs = reference_corpus()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {s.dataset_id for s in specs})
        if unknown:
            print(f"--only: {', '.join(unknown)} not in the corpus (reference_corpus)", file=sys.stderr)
            return 2
        specs = [s for s in specs if s.dataset_id in wanted]
    manifest = write_reference_corpus(out / "corpus", specs)
    steps: dict[str, int] = {}
    ours_cmd = [sys.executable, "-m", "census_builder", "build", "--census-schema", CENSUS_SCHEMA]
    ours_cmd += ["--version", date, "--build-date", date, "--manifest", str(manifest)]
    ours_cmd += ["--workdir", str(out / "ours"), "--workers", str(args.workers)]
    ours_cmd += ["--no-validate"] if args.no_validate else []
    steps["our build"] = _run(ours_cmd, out / "ours.log")
    ref_cmd = [sys.executable, "-m", "benchmarks.reference.run", "--corpus", str(manifest), "--out", str(out / "ref")]
    ref_cmd += ["--python", args.python, "--build-tag", date, "--workers", str(args.workers)]
    steps["reference build"] = _run(ref_cmd, out / "ref.log")
    ours_soma, ref_soma = out / "ours" / date / "soma", out / "ref" / "work" / date / "soma"
    if steps["our build"] != 0 or steps["reference build"] != 0:
        print(f"a build failed ({steps}); see {out}/ours.log and {out}/ref.log", file=sys.stderr)
        return 1
    if args.validator:
        for side, soma_dir in (("ours", ours_soma), ("ref", ref_soma)):
            cmd = [sys.executable, "-m", "validation", str(soma_dir), "--manifest", str(manifest)]
            cmd += ["--workers", str(args.workers), "--report", str(out / f"validation-{side}.json")]
            steps[f"validator on {side}"] = _run(cmd, out / f"validation-{side}.log")
    full = compare_releases(str(ours_soma), str(ref_soma), limit=sys.maxsize)
    if recheck_summary_cell_counts(full, str(ours_soma), str(ref_soma)):
        full.notes.append(f"summary_cell_counts compared again with organism values mapped to organism_label: {MAPPED}")
    listing = "\n".join([f"ours:      {ours_soma}", f"reference: {ref_soma}", *bounded(full, 20).lines()])
    (out / "compare.txt").write_text(listing + "\n", encoding="utf-8")
    print(listing)
    explained, unexplained = classify(full)
    recorded = DEFAULT_SOURCE / "COMMIT"
    ref_commit = recorded.read_text(encoding="utf-8").strip() if recorded.is_file() else "unknown"
    text = results_markdown(command, date, full, explained, unexplained, steps, ref_commit, specs)
    if args.validator:
        sides = {"ours": out / "validation-ours.json", "reference": out / "validation-ref.json"}
        text += "\n".join(validator_lines(sides)) + "\n"
    results = args.results or out / "RESULTS-2.4.0.md"
    with results.open("a" if args.append else "w", encoding="utf-8") as fh:
        fh.write(("\n" if args.append and results.stat().st_size else "") + text)
    print(f"results: {results} ({full.total} differences, {len(unexplained)} unexplained)")
    return 0 if not unexplained else 1


if __name__ == "__main__":
    raise SystemExit(main())

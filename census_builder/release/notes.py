"""The notes command: ``VERSION.md`` and PNG figures beside it, read from the releases themselves.

They are written to ``DIR/VERSION/release_notes/`` (beside the build) unless ``--out`` says otherwise.

    locate_previous  the release to compare with: the newest published, non-retracted one before VERSION in the
                     destination's release.json (``--from``, or where VERSION was published), else a build

    read_release     facts of one release (root metadata, census_info tables, per-organism counts) via tiledbsoma
    diff_releases    datasets added / removed / changed and cell-count changes versus the previous release
                     (both in :mod:`census_builder.release.notes_compare`)
    spatial section  census_spatial_sequencing (Census 2.4.0): per organism its datasets, spots (total, primary),
                     scenes and genes, Visium / Slide-seqV2 counts, spatial datasets added / removed and spot
                     changes; left out when neither release has spatial data
    draw_figures     totals per organism; cells by assay, tissue_general and disease; dataset cell-count changes
                     (:mod:`census_builder.release.notes_figures`)
    write_markdown   the notes, linking the figures
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from census_builder.build.state import BuildPaths
from census_builder.errors import CensusBuilderError
from census_builder.release.destination import Destination
from census_builder.release.directory import ReleaseDirectory, open_store
from census_builder.release.notes_compare import (
    CATEGORIES,
    CATEGORY_TITLES,
    ReleaseDiff,
    ReleaseFacts,
    SpatialDiff,
    diff_releases,
    diff_spatial,
    read_release,
    signed,
)
from census_builder.release.notes_figures import draw_figures
from census_builder.release.published import publications
from census_builder.runtime.s3 import S3_DEFAULT_REGION

logger = logging.getLogger(__name__)

VERSION_KEYS = (
    "census_schema_version",
    "dataset_schema_version",
    "census_build_date",
    "census_builder_version",
    "tiledbsoma_version",
    "anndata_version",
    "git_commit",
    "manifest_sha256",
)


# -- markdown ----------------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Return a markdown table; nothing at all when there are no rows. An empty cell shows as "-"."""
    if not rows:
        return []

    def cell(v: object) -> str:
        text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
        return text.replace("|", "\\|").replace("\n", " ") or "-"

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def write_markdown(
    cur: ReleaseFacts,
    prev: ReleaseFacts | None,
    diff: ReleaseDiff | None,
    figures: Mapping[str, Path],
    path: Path,
    *,
    inputs: Mapping[str, Any] | None = None,
) -> None:
    """Write the notes of ``cur`` (compared with ``prev``, linking ``figures``) to ``path``.

    ``inputs`` is the build report's ``inputs`` (datasets left out, build warnings).
    """
    md: list[str] = [f"# CELLxGENE Census release {cur.version}", ""]
    build_date = cur.metadata.get("census_build_date") or cur.summary.get("census_build_date", "")
    md.append(
        f"Built {build_date} with census schema {cur.metadata.get('census_schema_version', '?')}: "
        f"{cur.total_cells:,} cells from {len(cur.datasets)} datasets in {len(cur.organisms)} organisms."
    )
    if cur.spatial:
        md.append(
            f"Cell counts include {sum(o.spots for o in cur.spatial.values()):,} spatial spots "
            f"(census_spatial_sequencing, see below)."
        )
    md.append(f"Compared with release {prev.version}." if prev else "First release: nothing to compare with.")
    md += ["", "## Totals", ""]
    header = ["Organism", "Cells", "Unique cells", "Genes"]
    if prev:
        header += [f"Cells in {prev.version}", "Change"]
    rows: list[list[object]] = []
    for name in sorted(set(cur.organisms) | set(prev.organisms if prev else {})):
        o = cur.organisms.get(name)
        row: list[object] = [
            o.label if o else name,
            o.cells if o else 0,
            o.unique_cells if o else 0,
            o.genes if o else 0,
        ]
        if prev:
            prev_cells = prev.organisms[name].cells if name in prev.organisms else 0
            row += [prev_cells, signed((o.cells if o else 0) - prev_cells)]
        rows.append(row)
    md += [*_table(header, rows), ""]
    if "totals" in figures:
        md += [f"![Cells per organism]({figures['totals'].name})", ""]

    for cat in CATEGORIES:
        section: list[str] = []
        for name, o in sorted(cur.organisms.items()):
            counts = o.by_category.get(cat, {})
            before = prev.organisms[name].by_category.get(cat, {}) if prev and name in prev.organisms else None
            if not counts and not before:
                continue
            section += [f"### {o.label}", ""]
            head = [cat, "Cells"] + ([f"Cells in {prev.version}", "Change"] if before is not None and prev else [])
            labels = sorted(set(counts) | set(before or {}), key=lambda k: (-counts.get(k, 0), k))
            body: list[list[object]] = []
            for k in labels:
                r: list[object] = [k, counts.get(k, 0)]
                if before is not None:
                    r += [before.get(k, 0), signed(counts.get(k, 0) - before.get(k, 0))]
                body.append(r)
            section += [*_table(head, body), ""]
        if cat in figures:
            section += [f"![Cells by {CATEGORY_TITLES[cat]}]({figures[cat].name})", ""]
        if section:
            md += [f"## Cells by {CATEGORY_TITLES[cat]}", "", *section]

    md += _spatial_section(cur, prev)
    md += ["## Datasets", ""]
    if diff is None or prev is None:
        md += [f"{len(cur.datasets)} datasets (no previous release to compare with).", ""]
        listed = sorted(cur.datasets.values(), key=lambda d: d.dataset_id)
        table = _table(["Dataset", "Title", "Cells"], [[d.dataset_id, d.title, d.cells] for d in listed])
        md += [*table, ""] if table else []
    else:
        md += [
            f"Versus {prev.version}: {len(diff.added)} added, {len(diff.removed)} removed, "
            f"{len(diff.changed)} changed, {diff.unchanged} unchanged; "
            f"cells {signed(cur.total_cells - prev.total_cells)} ({prev.total_cells:,} -> {cur.total_cells:,}).",
            "",
        ]
        changed_rows: list[list[object]] = [
            [c.dataset_id, ", ".join(c.changed_fields), c.before.cells, c.after.cells, signed(c.cell_delta)]
            for c in diff.changed
        ]
        for title, table in (
            (
                f"Added ({len(diff.added)})",
                _table(["Dataset", "Title", "Cells"], [[d.dataset_id, d.title, d.cells] for d in diff.added]),
            ),
            (
                f"Removed ({len(diff.removed)})",
                _table(
                    ["Dataset", "Title", f"Cells in {prev.version}"],
                    [[d.dataset_id, d.title, d.cells] for d in diff.removed],
                ),
            ),
            (
                f"Changed ({len(diff.changed)})",
                _table(
                    ["Dataset", "What changed", f"Cells in {prev.version}", "Cells", "Change"],
                    changed_rows,
                ),
            ),
        ):
            if table:  # an empty section is left out: the summary line above already says 0
                md += [f"### {title}", "", *table, ""]
        if "datasets" in figures:
            md += [f"![Dataset changes]({figures['datasets'].name})", ""]

    md += _left_out(inputs or {})
    vrows = [
        [
            k,
            cur.metadata.get(k, cur.summary.get(k, "")),
            *([prev.metadata.get(k, prev.summary.get(k, ""))] if prev else []),
        ]
        for k in VERSION_KEYS
    ]
    vtable = _table(["Field", cur.version, *([prev.version] if prev else [])], [r for r in vrows if any(r[1:])])
    if vtable:
        md += ["## Schema and software versions", "", *vtable, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(md), encoding="utf-8")


def _spatial_section(cur: ReleaseFacts, prev: ReleaseFacts | None) -> list[str]:
    """Return the census_spatial_sequencing section: nothing when neither release has spatial data."""
    if not cur.spatial and not (prev and prev.spatial):
        return []
    md = ["## Spatial data (census_spatial_sequencing)", ""]
    header = ["Organism", "Datasets", "Spots", "Primary spots", "Scenes", "Genes"]
    if prev:
        header += [f"Spots in {prev.version}", "Change"]
    rows: list[list[object]] = []
    for name in sorted(set(cur.spatial) | set(prev.spatial if prev else {})):
        o = cur.spatial.get(name)
        row: list[object] = [o.label, len(o.datasets), o.spots, o.primary_spots, o.scenes, o.genes] if o else []
        if prev:
            p = prev.spatial.get(name)
            row = row or [p.label if p else name, 0, 0, 0, 0, 0]
            before = p.spots if p else 0
            row += [before, signed((o.spots if o else 0) - before)]
        rows.append(row)
    md += [*_table(header, rows), ""]
    assay_rows = [
        [o.label, assay, n, spots, primary]
        for _, o in sorted(cur.spatial.items())
        for assay, (n, spots, primary) in sorted(o.by_assay().items())
    ]
    if assay_rows:
        md += ["### By assay", "", *_table(["Organism", "Assay", "Datasets", "Spots", "Primary spots"], assay_rows), ""]
    listed = sorted(cur.spatial_datasets.values(), key=lambda d: d.dataset_id)
    ds_rows = [
        [d.dataset_id, cur.spatial[d.organism].label, d.assay, d.spots, d.primary_spots, "yes" if d.has_scene else "no"]
        for d in listed
    ]
    if ds_rows:
        md += ["### Datasets", ""]
        md += [*_table(["Dataset", "Organism", "Assay", "Spots", "Primary spots", "Scene"], ds_rows), ""]
    if prev:
        md += _spatial_changes(diff_spatial(prev, cur), prev.version)
    return md


def _spatial_changes(diff: SpatialDiff, prev_version: str) -> list[str]:
    """Return the spatial datasets added, removed and with other spot counts versus ``prev_version``."""
    md = [
        f"Versus {prev_version}, spatial datasets: {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} with other spot counts; spots {signed(diff.spot_delta)}.",
        "",
    ]
    rows: list[list[object]] = [["added", d.dataset_id, d.assay, 0, d.spots, signed(d.spots)] for d in diff.added]
    rows += [["removed", d.dataset_id, d.assay, d.spots, 0, signed(-d.spots)] for d in diff.removed]
    rows += [["changed", a.dataset_id, a.assay, b.spots, a.spots, signed(a.spots - b.spots)] for b, a in diff.changed]
    table = _table(["", "Dataset", "Assay", f"Spots in {prev_version}", "Spots", "Change"], rows)
    return [*md, *table, ""] if table else md


def _left_out(inputs: Mapping[str, Any]) -> list[str]:
    """Return the sections on manifest datasets that are not in the release, and on preflight warnings.

    Datasets are left out as invalid (with --exclude-invalid) or because the Census filters leave them without
    cells; all of it comes from the build report.
    """
    rows = [
        [d["dataset_id"], "invalid input", f"{d.get('field', '')}: {d['reason']}".lstrip(": ")]
        for d in inputs.get("invalid", [])
    ]
    rows += [[d["dataset_id"], "no cells pass the Census filters", d["reason"]] for d in inputs.get("no_cells", [])]
    md: list[str] = []
    if rows:
        md += ["## Datasets left out", "", *_table(["Dataset", "Why", "Details"], rows), ""]
    warnings = inputs.get("warnings", {})
    if warnings:
        md += ["## Build warnings", "", *[f"- {ds}: {w}" for ds, ws in warnings.items() for w in ws], ""]
    return md


# -- the command -------------------------------------------------------------------------------------------


def find_previous(workdir: str | Path, version: str) -> str | None:
    """Return the newest complete build in ``workdir`` whose name sorts before ``version``."""
    root = Path(workdir)
    names = (
        sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and p.name < version and BuildPaths.for_version(root, p.name).is_complete()
        )
        if root.is_dir()
        else []
    )
    return names[-1] if names else None


def previous_published(directory: ReleaseDirectory, version: str) -> str | None:
    """Return the newest release in ``directory`` named before ``version`` that is not retracted."""
    names = sorted(n for n, e in directory.releases.items() if n < version and not e.retracted)
    return names[-1] if names else None


@dataclass(frozen=True)
class PreviousRelease:
    """The release the notes compare with, and how to read it."""

    name: str
    uri: str  # the release's root collection
    where: str  # for messages: "DEST/release.json" or the build directory
    context: Any = None  # a SOMATileDBContext for S3 destinations


def _tiledb_context(dest: Destination, region: str | None) -> Any:
    """Return a tiledbsoma context that reads ``dest``; None for a local destination.

    For S3 it has the endpoint and region; credentials come from the usual AWS environment variables.
    """
    if dest.kind != "s3":
        return None
    import urllib.parse

    import tiledbsoma as soma

    config: dict[str, str | float] = {"vfs.s3.region": region or S3_DEFAULT_REGION}
    if dest.endpoint_url:
        url = urllib.parse.urlparse(dest.endpoint_url)
        config.update(
            {
                "vfs.s3.endpoint_override": url.netloc,
                "vfs.s3.scheme": url.scheme or "https",
                "vfs.s3.use_virtual_addressing": "false",
            }
        )
    return soma.SOMATileDBContext(tiledb_config=config)


def _published_release(dest: Destination, directory: ReleaseDirectory, name: str) -> PreviousRelease:
    build = directory.resolve(name)
    entry = directory.releases[build]
    if entry.retracted:
        logger.warning("comparing with %s, which is retracted at %s", build, dest)
    # relative_uri is relative to DEST (as a mirror resolves it): right even if DEST was moved or renamed.
    uri = dest.base_uri + entry.soma.relative_uri if entry.soma.relative_uri else entry.soma.uri
    return PreviousRelease(build, uri, f"{dest}/release.json", _tiledb_context(dest, entry.soma.s3_region))


def _built_release(workdir: str | Path, name: str) -> PreviousRelease:
    paths = BuildPaths.for_version(workdir, name)
    if not paths.is_complete():
        raise CensusBuilderError(
            f"previous release {name!r}: no complete build at {paths.root} (and not published where --from points); "
            "name a published release or a complete build in --workdir with --previous"
        )
    return PreviousRelease(name, str(paths.soma), str(paths.root))


def locate_previous(
    workdir: str | Path,
    version: str,
    *,
    previous: str | None = None,
    dest: str | Path | None = None,
    endpoint_url: str | None = None,
) -> PreviousRelease | None:
    """Find the release to compare ``version`` with.

    With a destination (``dest``, or where ``version`` was last published as recorded in
    ``DIR/VERSION/published.json``): ``previous`` (a release or alias in its release.json, else a complete build
    in ``workdir``), or by default the newest published, non-retracted release named before ``version``.
    Without one: ``previous`` or the newest complete build in ``workdir`` named before ``version``.
    """
    target: Destination | None = None
    recorded = False
    if dest is not None:
        target = Destination.parse(dest, endpoint_url=endpoint_url)
    else:
        done = publications(BuildPaths.for_version(workdir, version))
        if done:
            target, recorded = done[-1].destination(), True
    if target is not None:
        try:
            directory = open_store(target).read()
        except CensusBuilderError as e:
            if not recorded:
                raise
            logger.warning(
                "cannot read release.json at %s, where %s was published (%s); looking in --workdir instead "
                "(pass --from DEST to choose the destination)",
                target,
                version,
                e,
            )
        else:
            if previous is not None:
                if previous in directory.releases or previous in directory.aliases:
                    return _published_release(target, directory, previous)
                return _built_release(workdir, previous)
            name = previous_published(directory, version)
            if name is None:
                logger.info("no published release before %s at %s: first release", version, target)
                return None
            logger.info("previous release: %s, the newest published before %s at %s", name, version, target)
            return _published_release(target, directory, name)
    if previous is not None:
        return _built_release(workdir, previous)
    name = find_previous(workdir, version)
    if name is not None:
        logger.info(
            "previous release: %s, the newest complete build in %s (no destination given or recorded: "
            "pass --from DEST to compare with the previous published release)",
            name,
            workdir,
        )
    return _built_release(workdir, name) if name is not None else None


def make_notes(
    workdir: str | Path,
    version: str,
    *,
    previous: str | None = None,
    out_dir: str | Path | None = None,
    dest: str | Path | None = None,
    endpoint_url: str | None = None,
) -> Path:
    """Write ``out_dir/VERSION.md`` and its figures; returns the markdown path.

    ``out_dir`` defaults to ``DIR/VERSION/release_notes`` (beside the build, never the current directory); the
    previous release is found by :func:`locate_previous`.
    """
    paths = BuildPaths.for_version(workdir, version)
    if not paths.is_complete():
        raise CensusBuilderError(
            f"build {version} in {paths.root} is not complete; build it first (census_builder build --version "
            f"{version} --workdir {workdir} ...)"
        )
    prev_release = locate_previous(workdir, version, previous=previous, dest=dest, endpoint_url=endpoint_url)
    cur = read_release(str(paths.soma), version=version)
    prev = (
        read_release(prev_release.uri, version=prev_release.name, context=prev_release.context)
        if prev_release is not None
        else None
    )
    diff = diff_releases(prev, cur) if prev is not None else None
    out = Path(out_dir) if out_dir is not None else paths.root / "release_notes"
    figures = draw_figures(cur, prev, diff, out)
    md = out / f"{version}.md"
    report = json.loads(paths.report.read_text(encoding="utf-8")) if paths.report.is_file() else {}
    write_markdown(cur, prev, diff, figures, md, inputs=report.get("inputs"))
    logger.info(
        "release notes written: %s (%d figures)%s",
        md,
        len(figures),
        f", compared with {prev_release.name} ({prev_release.where})" if prev_release else "",
    )
    return md

"""Release notes for two successive example releases: the diff is right (checked against the releases read
independently), the tables agree with obs, and the figures are readable PNGs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiledbsoma as soma
from matplotlib.image import imread

from census_builder.build.pipeline import BuildConfig, build
from census_builder.build.state import BuildPaths
from census_builder.cli import main
from census_builder.errors import CensusBuilderError
from census_builder.release.destination import Destination
from census_builder.release.directory import LocalDirectoryStore, entry_for
from census_builder.release.notes import (
    PreviousRelease,
    find_previous,
    locate_previous,
    make_notes,
    write_markdown,
)
from census_builder.release.notes_compare import (
    DatasetFacts,
    OrganismFacts,
    ReleaseFacts,
    diff_releases,
    read_release,
)
from census_builder.release.notes_figures import draw_figures
from census_builder.release.published import record_publication
from census_builder.testing.synthetic import MOUSE, DatasetSpec, example_specs, write_corpus
from tests.conftest import BuiltRelease

V1, V2 = "2026-11-01", "2026-11-22"
ADDED = "mouse-kidney-new"
REMOVED = "mouse-blood-raw"
RESIZED = "human-smartseq"


def _second_specs() -> list[DatasetSpec]:
    """The example corpus one release later: one dataset replaced by a new one (in place, so that the manifest
    columns of the others stay the same) and one dataset grown."""
    out = []
    for s in example_specs():
        if s.dataset_id == REMOVED:
            out.append(DatasetSpec(ADDED, n_cells=180, cell_organisms=(MOUSE,), gene_organisms=(MOUSE,), seed=11))
        elif s.dataset_id == RESIZED:
            out.append(s.with_(n_cells=300))
        else:
            out.append(s)
    return out


@pytest.fixture(scope="module")
def two_releases(example_release: BuiltRelease, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir holding V1 (a copy of the example release) and V2 (built from the changed corpus)."""
    workdir = tmp_path_factory.mktemp("notes-work")
    shutil.copytree(example_release.paths.root, workdir / V1)
    manifest = write_corpus(tmp_path_factory.mktemp("corpus2"), _second_specs())
    build(BuildConfig(version=V2, manifest=manifest, workdir=workdir, workers=1, build_date=V2))
    return workdir


def _obs_frame(uri: str) -> dict[str, dict[str, int]]:
    """cells per organism, by dataset, read straight from obs."""
    out: dict[str, dict[str, int]] = {}
    c: Any
    with soma.Collection.open(uri) as c:
        for org in c["census_data"]:
            obs = c["census_data"][org].obs.read(column_names=["dataset_id"]).concat().to_pandas()
            out[org] = {str(k): int(v) for k, v in obs["dataset_id"].value_counts().items()}
    return out


def test_diff_of_two_successive_releases(two_releases: Path) -> None:
    prev = read_release(str(two_releases / V1 / "soma"), version=V1)
    cur = read_release(str(two_releases / V2 / "soma"), version=V2)
    diff = diff_releases(prev, cur)
    assert [d.dataset_id for d in diff.added] == [ADDED]
    assert [d.dataset_id for d in diff.removed] == [REMOVED]
    assert [c.dataset_id for c in diff.changed] == [RESIZED]
    assert diff.changed[0].changed_fields == ("dataset_total_cell_count",)
    before, after = _obs_frame(str(two_releases / V1 / "soma")), _obs_frame(str(two_releases / V2 / "soma"))
    assert diff.changed[0].before.cells == before["homo_sapiens"][RESIZED]
    assert diff.changed[0].after.cells == after["homo_sapiens"][RESIZED] > before["homo_sapiens"][RESIZED]
    assert diff.added[0].cells == after["mus_musculus"][ADDED]
    assert diff.removed[0].cells == before["mus_musculus"][REMOVED]
    assert diff.unchanged == len(cur.datasets) - 2
    for facts, counts in ((prev, before), (cur, after)):
        for org, o in facts.organisms.items():
            assert o.cells == sum(counts[org].values())
            for cat in ("assay", "tissue_general", "disease"):
                assert sum(o.by_category[cat].values()) == o.cells
    assert cur.organisms["homo_sapiens"].by_category["tissue_general"].keys() <= {
        "lung",
        "heart",
        "blood",
        "kidney",
        "brain",
    }


def test_notes_markdown_and_figures(two_releases: Path, tmp_path: Path) -> None:
    assert find_previous(two_releases, V2) == V1
    md_path = make_notes(two_releases, V2, out_dir=tmp_path / "release_notes")
    assert md_path == tmp_path / "release_notes" / f"{V2}.md"
    md = md_path.read_text()
    cur = read_release(str(two_releases / V2 / "soma"))
    prev = read_release(str(two_releases / V1 / "soma"))
    human, mouse = cur.organisms["homo_sapiens"], cur.organisms["mus_musculus"]
    human_before = prev.organisms["homo_sapiens"].cells
    assert (
        f"| Homo sapiens | {human.cells:,} | {human.unique_cells:,} | {human.genes:,} | {human_before:,} | "
        f"{human.cells - human_before:+,} |" in md
    )
    assert f"| Mus musculus | {mouse.cells:,} |" in md
    assert "Compared with release 2026-11-01." in md
    assert "1 added, 1 removed, 1 changed" in md
    assert f"| {ADDED} | Synthetic dataset {ADDED} | 180 |" in md
    assert f"| {REMOVED} | Synthetic dataset {REMOVED} | 200 |" in md
    assert f"| {RESIZED} | dataset_total_cell_count | 150 | 300 | +150 |" in md
    assert "| census_schema_version | 1.3.0 | 1.3.0 |" in md
    assert f"| census_build_date | {V2} | 2026-11-22 |" in md  # V1 is the example release, built "2026-11-22"
    assert "| tiledbsoma_version | 2.3.0 | 2.3.0 |" in md
    assert "census_spatial_sequencing" not in md and "spots" not in md and cur.spatial == {}  # 1.3.0: no spatial
    _assert_no_empty_tables(md)
    for section in ("## Cells by assay", "## Cells by tissue (tissue_general)", "## Cells by disease"):
        assert section in md
    figures = sorted(p.name for p in md_path.parent.glob("*.png"))
    assert figures == sorted(f"{V2}-{k}.png" for k in ("totals", "assay", "tissue_general", "disease", "datasets"))
    for name in figures:
        assert f"]({name})" in md
        image = imread(md_path.parent / name)
        assert image.ndim == 3 and image.shape[0] >= 200 and image.shape[1] >= 400
        assert np.unique(image.reshape(-1, image.shape[2]), axis=0).shape[0] > 20  # not blank


def test_first_release_has_no_diff(two_releases: Path, tmp_path: Path) -> None:
    assert find_previous(two_releases, V1) is None
    md = make_notes(two_releases, V1, out_dir=tmp_path).read_text()
    assert "First release: nothing to compare with." in md
    assert "| human-lung-10x | Synthetic dataset human-lung-10x | 450 |" in md
    assert not (tmp_path / f"{V1}-datasets.png").exists()
    assert (tmp_path / f"{V1}-totals.png").stat().st_size > 0


def test_notes_command(two_releases: Path, tmp_path: Path, restore_logging: None) -> None:
    out = tmp_path / "notes"
    assert (
        main.main(["notes", "--version", V2, "--previous", V1, "--workdir", str(two_releases), "--out", str(out)]) == 0
    )
    assert (out / f"{V2}.md").is_file() and (out / f"{V2}-datasets.png").stat().st_size > 0
    assert main.main(["notes", "--version", "9999-01-01", "--workdir", str(two_releases), "--out", str(out)]) == 1


def test_notes_are_written_beside_the_build_by_default(
    two_releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """Not into the current directory (e.g. the project's source tree): DIR/VERSION/release_notes/."""
    workdir = tmp_path / "work"
    shutil.copytree(two_releases / V1, workdir / V1)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main.main(["notes", "--version", V1, "--workdir", str(workdir)]) == 0
    assert list(cwd.iterdir()) == []
    notes = workdir / V1 / "release_notes"
    assert sorted(p.name for p in notes.iterdir()) == sorted(
        [f"{V1}.md", *(f"{V1}-{k}.png" for k in ("totals", "assay", "tissue_general", "disease"))]
    )


def _assert_no_empty_tables(md: str) -> None:
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            assert i + 1 < len(lines) and lines[i + 1].startswith("| "), f"table without rows: {lines[i - 1]}"
            assert not lines[i - 1].startswith("|  |"), f"empty header cell: {lines[i - 1]}"
        assert "|  |" not in line, f"empty cell: {line}"


def _publish_soma(build: Path, dest: Path, name: str) -> None:
    """What publish leaves at DEST for ``name`` (only soma/ is read by notes), registered in release.json."""
    shutil.copytree(build / "soma", dest / name / "soma")
    LocalDirectoryStore(dest).update(lambda d: d.with_release(name, entry_for(Destination.parse(dest), name)))


def test_notes_compare_with_the_previous_published_release(
    two_releases: Path, tmp_path: Path, restore_logging: None
) -> None:
    """The previous release is the newest published, non-retracted one named before VERSION in release.json
    (given with --from, or recorded by publish in DIR/VERSION/published.json), not the newest build on disk."""
    workdir = tmp_path / "work"
    shutil.copytree(two_releases / V2, workdir / V2)
    shutil.copytree(two_releases / V1, workdir / "2026-11-20")  # a newer build that was never published
    old = tmp_path / "old-dest"
    _publish_soma(two_releases / V1, old, "2026-10-01")
    store = LocalDirectoryStore(old)
    store.update(
        lambda d: (
            d.with_release("2026-11-15", entry_for(Destination.parse(old), "2026-11-15"))
            .with_retraction("2026-11-15", reason="wrong counts")
            .with_release("2026-12-01", entry_for(Destination.parse(old), "2026-12-01"))  # newer than V2
            .with_alias("stable", "2026-10-01")
        )
    )
    dest = tmp_path / "dest"
    old.rename(dest)  # release.json's absolute URIs are stale now: its relative_uri still finds the release

    # Without a destination: the newest complete build in --workdir before V2.
    newest_build = workdir / "2026-11-20"
    assert locate_previous(workdir, V2) == PreviousRelease("2026-11-20", str(newest_build / "soma"), str(newest_build))
    prev = locate_previous(workdir, V2, dest=dest)
    assert prev is not None and prev.name == "2026-10-01"
    assert prev.uri == Destination.parse(dest).base_uri + "2026-10-01/soma/"
    assert main.main(["notes", "--version", V2, "--workdir", str(workdir), "--from", str(dest)]) == 0
    md = (workdir / V2 / "release_notes" / f"{V2}.md").read_text()
    assert "Compared with release 2026-10-01." in md
    assert "1 added, 1 removed, 1 changed" in md
    _assert_no_empty_tables(md)

    # An alias names the release to compare with; a name not in release.json is a build in --workdir.
    assert locate_previous(workdir, V2, dest=dest, previous="stable") == prev
    built = locate_previous(workdir, V2, dest=dest, previous="2026-11-20")
    assert built is not None and built.uri == str(workdir / "2026-11-20" / "soma")
    with pytest.raises(CensusBuilderError, match="previous release 'nope': no complete build"):
        locate_previous(workdir, V2, dest=dest, previous="nope")

    # Published: the recorded destination is used without --from.
    record_publication(BuildPaths.for_version(workdir, V2), Destination.parse(dest))
    assert locate_previous(workdir, V2) == prev
    # Nothing published before: a first release.
    assert locate_previous(workdir, "2026-10-01", dest=dest) is None


def _facts(version: str, disease: dict[str, int]) -> ReleaseFacts:
    org = OrganismFacts(
        name="homo_sapiens",
        label="Homo sapiens",
        cells=10,
        unique_cells=10,
        genes=5,
        by_category={"assay": {"10x 3' v3": 10}, "tissue_general": {"lung": 10}, "disease": disease},
    )
    return ReleaseFacts(
        version=version,
        uri="unused",
        metadata={"census_schema_version": "1.3.0", "census_build_date": version},
        summary={},
        organisms={"homo_sapiens": org},
        datasets={"d1": DatasetFacts("d1", 10, {"dataset_title": ""})},
    )


def test_empty_tables_and_charts_are_left_out(tmp_path: Path) -> None:
    """No dataset changes and a category without counts: no header-only tables, no empty charts, no sections
    with nothing in them; a chart of an earlier run that has nothing to show now is deleted."""
    prev, cur = _facts("v1", {}), _facts("v2", {})
    diff = diff_releases(prev, cur)
    stale = tmp_path / "v2-datasets.png"
    stale.write_bytes(b"old")
    figures = draw_figures(cur, prev, diff, tmp_path)
    assert sorted(figures) == ["assay", "tissue_general", "totals"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["v2-assay.png", "v2-tissue_general.png", "v2-totals.png"]
    md_path = tmp_path / "v2.md"
    write_markdown(cur, prev, diff, figures, md_path)
    md = md_path.read_text()
    _assert_no_empty_tables(md)
    assert "Versus v1: 0 added, 0 removed, 0 changed, 1 unchanged" in md
    for absent in ("### Added", "### Removed", "### Changed", "## Cells by disease", "Dataset changes", "git_commit"):
        assert absent not in md
    assert "## Cells by assay" in md and "| census_schema_version | 1.3.0 | 1.3.0 |" in md
    assert "| Field | v2 | v1 |" in md

    first = tmp_path / "first"
    write_markdown(cur, None, None, draw_figures(cur, None, None, first), first / "v2.md")
    md = (first / "v2.md").read_text()
    _assert_no_empty_tables(md)
    assert "| d1 | - | 10 |" in md  # an empty title shows as "-"

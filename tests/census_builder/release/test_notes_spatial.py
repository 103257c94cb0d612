"""Release notes of Census 2.4.0 releases with census_spatial_sequencing (issue 16).

The small release ``sp`` that tests/spatial_build.py builds once per session: a 10x dataset, a human Visium
section whose first spots are not primary data, a mouse Slide-seqV2 puck whose first beads are not a Census tissue
type (left out) and a Visium dataset that is not a single section (left out). The previous releases compared
with are derived from its facts in code (spatial datasets added, removed, with other spot counts; none at all).
Expected counts come from the sources' specs and from the release read with tiledbsoma, never from the notes'
own helpers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import tiledbsoma as soma

from census_builder.release.notes import make_notes, write_markdown
from census_builder.release.notes_compare import (
    ReleaseFacts,
    SpatialDatasetFacts,
    SpatialOrganismFacts,
    diff_releases,
    diff_spatial,
    read_release,
)
from tests.spatial_build import NOT_PRIMARY, SLIDE_KEPT, TENX, VISIUM, Built

pytestmark = pytest.mark.filterwarnings("ignore:Support for spatial types is experimental")

VISIUM_LABEL = "Visium Spatial Gene Expression V1"
V = "sp"  # the shared release's version


@pytest.fixture(scope="module")
def workdir(spatial_release: Built) -> Path:
    """The workdir holding release ``sp`` (tests/spatial_build.py; read-only: notes are written elsewhere)."""
    return spatial_release.root.parent


def _var_rows(workdir: Path, version: str, organism: str) -> int:
    uri = workdir / version / "soma" / "census_spatial_sequencing" / organism / "ms" / "RNA" / "var"
    with soma.DataFrame.open(str(uri)) as v:
        return int(v.count)


def _facts(workdir: Path) -> ReleaseFacts:
    return read_release(str(workdir / V / "soma"), version=V)


def test_read_release_counts_spatial_datasets_spots_and_scenes(workdir: Path) -> None:
    sb = _facts(workdir)
    primary = VISIUM.n_obs - NOT_PRIMARY
    human, mouse = sb.spatial["homo_sapiens"], sb.spatial["mus_musculus"]
    assert set(sb.spatial) == {"homo_sapiens", "mus_musculus"}
    assert human.datasets == {
        "vis": SpatialDatasetFacts("vis", "homo_sapiens", VISIUM_LABEL, VISIUM.n_obs, primary, True)
    }
    assert (human.scenes, human.spots, human.primary_spots) == (1, VISIUM.n_obs, primary)
    assert human.genes == _var_rows(workdir, V, "homo_sapiens") > 0
    assert human.by_assay() == {VISIUM_LABEL: (1, VISIUM.n_obs, primary)}
    assert mouse.by_assay() == {"Slide-seqV2": (1, SLIDE_KEPT, SLIDE_KEPT)}
    assert mouse.scenes == 1
    # an organism with spatial data only is in the totals (census_info counts its spots)
    assert sb.organisms["mus_musculus"].cells == SLIDE_KEPT
    assert sb.organisms["mus_musculus"].genes == _var_rows(workdir, V, "mus_musculus")
    assert sb.organisms["homo_sapiens"].cells == TENX.n_cells + VISIUM.n_obs
    assert sb.total_cells == TENX.n_cells + VISIUM.n_obs + SLIDE_KEPT


def test_notes_of_a_first_spatial_release(workdir: Path, tmp_path: Path) -> None:
    md = make_notes(workdir, V, out_dir=tmp_path).read_text(encoding="utf-8")
    primary = VISIUM.n_obs - NOT_PRIMARY
    spots = VISIUM.n_obs + SLIDE_KEPT
    assert f"Cell counts include {spots} spatial spots (census_spatial_sequencing, see below)." in md
    assert "## Spatial data (census_spatial_sequencing)" in md
    assert "| Organism | Datasets | Spots | Primary spots | Scenes | Genes |" in md
    genes = _var_rows(workdir, V, "homo_sapiens")
    assert f"| Homo sapiens | 1 | {VISIUM.n_obs} | {primary} | 1 | {genes} |" in md
    assert f"| Homo sapiens | {VISIUM_LABEL} | 1 | {VISIUM.n_obs} | {primary} |" in md
    assert f"| Mus musculus | Slide-seqV2 | 1 | {SLIDE_KEPT} | {SLIDE_KEPT} |" in md
    assert f"| vis | Homo sapiens | {VISIUM_LABEL} | {VISIUM.n_obs} | {primary} | yes |" in md
    assert f"| slide | Mus musculus | Slide-seqV2 | {SLIDE_KEPT} | {SLIDE_KEPT} | yes |" in md
    assert "spatial datasets:" not in md  # no previous release
    assert f"| Mus musculus | {SLIDE_KEPT} | {SLIDE_KEPT} |" in md  # the spatial-only organism is in the totals


def _previous(cur: ReleaseFacts) -> ReleaseFacts:
    """``sa``: the puck had 80 spots, no Visium section, and a Visium dataset ``gone`` (30 spots)."""
    mouse = cur.spatial["mus_musculus"]
    slide = replace(mouse.datasets["slide"], spots=80, primary_spots=80)
    gone = SpatialDatasetFacts("gone", "homo_sapiens", VISIUM_LABEL, 30, 30, True)
    human = replace(cur.spatial["homo_sapiens"], datasets={"gone": gone})
    return replace(
        cur, version="sa", spatial={"homo_sapiens": human, "mus_musculus": replace(mouse, datasets={"slide": slide})}
    )


def test_notes_compare_spatial_datasets_with_the_previous_release(workdir: Path, tmp_path: Path) -> None:
    cur = _facts(workdir)
    prev = _previous(cur)
    write_markdown(cur, prev, diff_releases(prev, cur), {}, tmp_path / "n.md")
    md = (tmp_path / "n.md").read_text(encoding="utf-8")
    primary = VISIUM.n_obs - NOT_PRIMARY
    genes = _var_rows(workdir, V, "homo_sapiens")
    assert "| Organism | Datasets | Spots | Primary spots | Scenes | Genes | Spots in sa | Change |" in md
    assert f"| Homo sapiens | 1 | {VISIUM.n_obs} | {primary} | 1 | {genes} | 30 | +{VISIUM.n_obs - 30} |" in md
    delta = VISIUM.n_obs - 30 + SLIDE_KEPT - 80
    assert f"Versus sa, spatial datasets: 1 added, 1 removed, 1 with other spot counts; spots {delta:+}." in md
    assert f"| added | vis | {VISIUM_LABEL} | 0 | {VISIUM.n_obs} | +{VISIUM.n_obs} |" in md
    assert f"| removed | gone | {VISIUM_LABEL} | 30 | 0 | -30 |" in md
    assert f"| changed | slide | Slide-seqV2 | 80 | {SLIDE_KEPT} | {SLIDE_KEPT - 80:+} |" in md


def _without_spatial(facts: ReleaseFacts, version: str) -> ReleaseFacts:
    return replace(facts, version=version, spatial={})


def test_a_previous_release_without_spatial_data_compares_cleanly(workdir: Path, tmp_path: Path) -> None:
    cur = _facts(workdir)
    prev = _without_spatial(cur, "s0")  # e.g. a 1.3.0 release, or 2.4.0 from single-cell datasets only
    write_markdown(cur, prev, diff_releases(prev, cur), {}, tmp_path / "up.md")
    md = (tmp_path / "up.md").read_text(encoding="utf-8")
    assert f"| Homo sapiens | 1 | {VISIUM.n_obs} | {VISIUM.n_obs - NOT_PRIMARY} |" in md
    spots = VISIUM.n_obs + SLIDE_KEPT
    assert f"Versus s0, spatial datasets: 2 added, 0 removed, 0 with other spot counts; spots +{spots}." in md
    # and the other way round: the spatial data went away
    write_markdown(prev, cur, diff_releases(cur, prev), {}, tmp_path / "down.md")
    down = (tmp_path / "down.md").read_text(encoding="utf-8")
    assert f"| Homo sapiens | 0 | 0 | 0 | 0 | 0 | {VISIUM.n_obs} | -{VISIUM.n_obs} |" in down
    assert f"| removed | vis | {VISIUM_LABEL} | {VISIUM.n_obs} | 0 | -{VISIUM.n_obs} |" in down
    # neither has spatial data: no section, no spot line
    write_markdown(prev, _without_spatial(cur, "s00"), None, {}, tmp_path / "none.md")
    none = (tmp_path / "none.md").read_text(encoding="utf-8")
    assert "census_spatial_sequencing" not in none and "spots" not in none


def test_diff_spatial_reports_spot_changes() -> None:
    def facts(version: str, spots: int, primary: int) -> ReleaseFacts:
        d = SpatialDatasetFacts("vis", "homo_sapiens", VISIUM_LABEL, spots, primary, True)
        spatial = {"homo_sapiens": SpatialOrganismFacts("homo_sapiens", "Homo sapiens", 5, 1, {"vis": d})}
        return ReleaseFacts(version, "unused", {}, {}, {}, {}, spatial)

    diff = diff_spatial(facts("a", 10, 10), facts("b", 12, 9))
    assert (diff.added, diff.removed, diff.spot_delta) == ((), (), 2)
    assert [(b.spots, a.spots) for b, a in diff.changed] == [(10, 12)]
    assert diff_spatial(facts("a", 10, 10), facts("b", 10, 8)).spot_delta == 0  # primary spots only
    assert diff_spatial(facts("a", 10, 10), facts("b", 10, 10)).changed == ()

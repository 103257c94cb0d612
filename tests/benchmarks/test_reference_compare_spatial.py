"""benchmarks.reference.compare on census_spatial_sequencing: two tiny hand-made releases (tests/benchmarks/
minispatial.py), ours and one written as the reference builder writes (other numbering, swapped point names, image
directly under img[library_id] with tiledbsoma's default axis order); each test plants one change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.reference.compare import compare_releases
from benchmarks.reference.diff import Report
from tests.benchmarks.minispatial import SpatialMini, spatial_content, write_spatial_release

EXP = "census_spatial_sequencing/homo_sapiens"
IMG = f"{EXP}/spatial/d1/img/d1_A1"
LOC = f"{EXP}/spatial/d1/obsl/loc"
# what the reference's way of writing alone gives, for equal content
LAYOUT = [
    (
        f"{EXP}/spatial/d1",
        "",
        "coordinate space [('x', None), ('y', None)] (ours) != [('y', None), ('x', None)] (reference)",
    ),
    (IMG, "", "data_axis_order ('soma_channel', 'y', 'x') (ours) != ('soma_channel', 'x', 'y') (reference)"),
    (
        IMG,
        "",
        "layout: img[library_id]['highres_image'] is the MultiscaleImage (ours) != img[library_id] is the "
        "MultiscaleImage (reference)",
    ),
    (
        IMG,
        "",
        "level 0 equal only with y and x swapped: the reference's data_axis_order ('soma_channel', 'x', 'y') "
        "does not match its layout",
    ),
    (LOC, "", "column order ['x', 'y', 'soma_joinid'] (ours) != ['y', 'x', 'soma_joinid'] (reference)"),
    (LOC, "", "x and y swapped: ours x == reference y and ours y == reference x for all 3 points"),
]


def _pair(tmp_path: Path, change: Callable[[SpatialMini], Any] | None = None, reference: bool = True) -> Report:
    ours = write_spatial_release(tmp_path / "ours", spatial_content())
    ref = spatial_content()
    if change is not None:
        change(ref)
    return compare_releases(ours, write_spatial_release(tmp_path / "ref", ref, reference=reference))


def _diffs(report: Report) -> list[tuple[str, str, str]]:
    assert report.total == len(report.kept), report.counts
    return sorted((d.where, d.key, d.what) for d in report.kept)


def test_the_same_content_written_the_same_way_is_equal(tmp_path: Path) -> None:
    report = _pair(tmp_path, reference=False)
    assert _diffs(report) == []
    assert report.compared["points"] == 3
    assert report.compared["obs_spatial_presence rows"] == 3
    assert report.compared["image pixels"] == 4 * 6 * 3
    assert report.compared["X raw entries"] == 3


def test_the_reference_layout_gives_only_its_naming_differences(tmp_path: Path) -> None:
    report = _pair(tmp_path)
    assert _diffs(report) == sorted(LAYOUT)
    assert report.compared["image pixels"] == 4 * 6 * 3


def test_a_moved_point_is_listed_by_observation(tmp_path: Path) -> None:
    def move(m: SpatialMini) -> None:
        m.positions["b"] = (31.0, 5.0)

    report = _pair(tmp_path, move, reference=False)
    assert _diffs(report) == [
        (LOC, "dataset_id='d1' observation_joinid='b'", "(x, y): (30.0, 5.0) (ours) != (31.0, 5.0) (reference)")
    ]


def test_a_changed_pixel_radius_scale_and_in_tissue_are_listed(tmp_path: Path) -> None:
    def change(m: SpatialMini) -> None:
        m.image[0, 0, 0] ^= 1
        m.radius = 2.0
        m.scale = 0.1
        m.spots["b"] = 1

    report = _pair(tmp_path, change, reference=False)
    assert _diffs(report) == [
        (f"{EXP}/obs", "dataset_id='d1' observation_joinid='b'", "in_tissue: 0 (ours) != 1 (reference)"),
        (IMG, "", "level 0: 1 of 72 pixel values differ"),
        (IMG, "", "scene-to-image scale {'x': 0.08, 'y': 0.08} (ours) != {'x': 0.1, 'y': 0.1} (reference)"),
        (LOC, "", "metadata soma_geometry: 85.9375 (ours) != 2.0 (reference)"),
    ]


def test_a_presence_row_on_one_side_only_is_listed(tmp_path: Path) -> None:
    def drop(m: SpatialMini) -> None:
        m.presence_rows.discard("c")

    report = _pair(tmp_path, drop)
    assert (
        f"{EXP}/obs_spatial_presence",
        "dataset_id='d1' observation_joinid='c' scene_id='d1'",
        "row only in ours",
    ) in _diffs(report)
    assert len(_diffs(report)) == len(LAYOUT) + 1

"""End to end: our builder's census_spatial_sequencing passes the validator; planted faults give the findings.

A small mixed corpus (10x, a Visium section, a Slide-seqV2 puck, a Visium dataset that is not a single
section) is built once per session (tests/spatial_build.py, shared with test_build_spatial.py); each fault is
planted in a copy of the release.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.spatial_build import SPATIAL, Built
from validation import ValidationReport, validate_release

pytestmark = pytest.mark.filterwarnings("ignore:Support for spatial types is experimental")


@pytest.fixture(scope="module")
def release(spatial_release: Built) -> tuple[Path, Path]:
    """(the built release's VERSION directory, its manifest.csv)."""
    return spatial_release.root, spatial_release.root / "manifest.csv"


def _validate(version_dir: Path, manifest: Path, client: Any) -> ValidationReport:
    return validate_release(
        str(version_dir / "soma"), manifest, client=client, report_path=version_dir / "validation_report.json"
    )


def _copy(release: tuple[Path, Path], tmp_path: Path) -> Path:
    out = tmp_path / "sp"
    shutil.copytree(release[0], out, symlinks=True)
    return out


def _messages(report: ValidationReport, check: str) -> list[str]:
    return [f.message for c in report.checks if c.name == check for f in c.findings]


def test_our_spatial_release_validates(release: tuple[Path, Path], tmp_path: Path, validation_client: Any) -> None:
    report = _validate(_copy(release, tmp_path), release[1], validation_client)
    assert report.passed, [(c.name, [f.message for f in c.findings][:3]) for c in report.checks if not c.passed]
    assert report.readings["spatial dataset vis-multi"].startswith('not included: uns["spatial"]["is_single"]')


def test_a_moved_point_is_found(release: tuple[Path, Path], tmp_path: Path, validation_client: Any) -> None:
    import tiledbsoma as soma

    out = _copy(release, tmp_path)
    uri = str(out / "soma" / SPATIAL / "homo_sapiens" / "spatial" / "vis" / "obsl" / "loc")
    with soma.PointCloudDataFrame.open(uri) as loc:
        points = loc.read().concat().sort_by("soma_joinid")
    other = points.slice(1, 1)  # a second point for soma_joinid 0, at the position of soma_joinid 1
    with soma.PointCloudDataFrame.open(uri, "w") as loc:
        loc.write(pa.table({"x": other.column("x"), "y": other.column("y"), "soma_joinid": pa.array([0], pa.int64())}))
    report = _validate(out, release[1], validation_client)
    assert any(
        m.startswith("1 observation(s) of the scene have not exactly one point")
        for m in _messages(report, "spatial_points")
    )
    assert any("point(s) are not at the source's obsm" in m for m in _messages(report, "spatial_points"))


def test_a_changed_pixel_is_found(release: tuple[Path, Path], tmp_path: Path, validation_client: Any) -> None:
    import tiledbsoma as soma

    out = _copy(release, tmp_path)
    img = out / "soma" / SPATIAL / "homo_sapiens" / "spatial" / "vis" / "img" / "vis_A1" / "highres_image"
    with soma.MultiscaleImage.open(str(img)) as image:
        level_uri = image[sorted(image.keys())[0]].uri
    with soma.DenseNDArray.open(level_uri) as level:
        pixel = level.read((slice(0, 0), slice(7, 7), slice(5, 5))).to_numpy()
    with soma.DenseNDArray.open(level_uri, "w") as level:
        level.write((slice(0, 0), slice(7, 7), slice(5, 5)), pa.Tensor.from_numpy(pixel ^ np.uint8(0xFF)))
    report = _validate(out, release[1], validation_client)
    assert any("differs from the source's hires image in 1 pixel(s)" in m for m in _messages(report, "spatial_images"))


def test_a_changed_count_is_found(release: tuple[Path, Path], tmp_path: Path, validation_client: Any) -> None:
    import tiledbsoma as soma

    out = _copy(release, tmp_path)
    raw = out / "soma" / SPATIAL / "mus_musculus" / "ms" / "RNA" / "X" / "raw"
    with soma.SparseNDArray.open(str(raw)) as arr:
        t = arr.read().tables().concat()
    first = t.slice(0, 1)
    changed = pa.table(
        {
            "soma_dim_0": first.column("soma_dim_0"),
            "soma_dim_1": first.column("soma_dim_1"),
            "soma_data": pa.array([float(first.column("soma_data")[0].as_py()) + 1.0], pa.float32()),
        }
    )
    with soma.SparseNDArray.open(str(raw), "w") as arr:
        arr.write(changed)
    report = _validate(out, release[1], validation_client)
    messages = _messages(report, "x_raw")
    assert messages and all(m.startswith(f"{SPATIAL}: ") for m in messages), messages

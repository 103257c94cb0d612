"""The spatial source reader finds each bad spatial input the generator plants, with the field and the rule."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from census_builder.errors import InputError
from census_builder.sources.h5ad import H5AD
from census_builder.sources.spatial import (
    SLIDE_SEQ_V2,
    VISIUM_V1,
    iter_hires,
    read_positions,
    read_spatial,
    spatial_problems,
)
from census_builder.testing.synthetic_spatial import SpatialSpec, write_spatial_h5ad

# Small and fast: 600 of the 4992 spots and a 120 x 100 image (the reader does not check those two 7.0.0 rules).
VISIUM = SpatialSpec("vis", n_spots=600, n_genes=30, hires_shape=(120, 100), seed=3)
SLIDE = SpatialSpec("slide", assay=SLIDE_SEQ_V2, n_spots=300, n_genes=30, seed=4)


def _write(tmp_path: Path, spec: SpatialSpec) -> Path:
    return write_spatial_h5ad(tmp_path / f"{spec.dataset_id}.h5ad", spec)


def _problems(path: Path, dataset_id: str, assay: str) -> list[str]:
    with H5AD(path, dataset_id) as h5:
        return [str(p) for p in spatial_problems(h5, assay)]


def test_a_visium_section_reads_back_with_its_library(tmp_path: Path) -> None:
    path = _write(tmp_path, VISIUM)
    with H5AD(path, "vis") as h5:
        source = read_spatial(h5, VISIUM_V1)
        xy = read_positions(h5)
        bands = list(iter_hires(h5, "vis_A1", max_pixels=2500))
    assert source.is_single and source.n_obs == 600 and source.positions_columns == 2
    assert source.positions_dtype == "int64"
    assert source.library is not None
    assert source.library.library_id == "vis_A1" and source.library.hires_shape == (120, 100, 3)
    assert source.library.tissue_hires_scalef == 0.08 and not source.library.has_fullres
    assert source.library.spot_diameter_fullres == pytest.approx(55 / (8000 / 1250))
    assert xy.dtype == np.float64 and xy.shape == (600, 2)
    assert [a for a, _ in bands] == list(range(0, 120, 25)) and all(b.shape[1:] == (100, 3) for _, b in bands)
    with h5py.File(path, "r") as f:
        assert np.array_equal(np.concatenate([b for _, b in bands]), f["uns/spatial/vis_A1/images/hires"][...])


def test_a_slide_seq_puck_has_no_library(tmp_path: Path) -> None:
    with H5AD(_write(tmp_path, SLIDE), "slide") as h5:
        source = read_spatial(h5, SLIDE_SEQ_V2)
        assert source.library is None and source.is_single and source.positions_dtype == "float64"
        assert read_positions(h5, 10, 20).shape == (10, 2)


def test_is_single_false_is_reported_not_refused(tmp_path: Path) -> None:
    with H5AD(_write(tmp_path, VISIUM.with_(is_single=False)), "vis") as h5:
        source = read_spatial(h5, VISIUM_V1)
    assert not source.is_single and source.library is None


def test_missing_image(tmp_path: Path) -> None:
    path = _write(tmp_path, VISIUM.with_(missing_image=True))
    assert _problems(path, "vis", VISIUM_V1) == [
        f"dataset 'vis' ({path}), field 'uns/spatial/vis_A1/images/hires': "
        "missing: a single Visium section MUST have its hires image"
    ]


def test_several_library_ids(tmp_path: Path) -> None:
    path = _write(tmp_path, VISIUM.with_(n_library_ids=2))
    assert _problems(path, "vis", VISIUM_V1) == [
        f"dataset 'vis' ({path}), field 'uns/spatial': holds 2 library ids ('vis_A1', 'vis_A1_2'); "
        "a single Visium section MUST have exactly one"
    ]


@pytest.mark.parametrize(
    ("positions", "reason"),
    [
        ("one_column", "has shape (600, 1) for 600 observations; it must be (600, 2 or more)"),
        ("short", "has shape (599, 2) for 600 observations; it must be (600, 2 or more)"),
    ],
)
def test_spot_positions_of_the_wrong_shape(tmp_path: Path, positions: str, reason: str) -> None:
    path = _write(tmp_path, VISIUM.with_(positions=positions))
    assert _problems(path, "vis", VISIUM_V1) == [f"dataset 'vis' ({path}), field 'obsm/spatial': {reason}"]
    with H5AD(path, "vis") as h5, pytest.raises(InputError) as err:
        read_spatial(h5, VISIUM_V1)
    assert err.value.field == "obsm/spatial"


def test_a_nan_position_is_found_with_its_row_when_read(tmp_path: Path) -> None:
    path = _write(tmp_path, VISIUM.with_(positions="nan"))
    assert _problems(path, "vis", VISIUM_V1) == []  # structure is fine; values are checked as they are read
    with H5AD(path, "vis") as h5:
        name = h5.dataframe_index("obs")[300]
        assert read_positions(h5, 0, 300).shape == (300, 2)
        with pytest.raises(InputError) as err:
            read_positions(h5, 200, 400)
    assert str(err.value).startswith(
        f"dataset 'vis' ({path}), field 'obsm/spatial': row 300 (observation {name!r}) is "
    )
    assert str(err.value).endswith("; positions MUST NOT be NaN or infinite")


def test_missing_spatial_parts_and_wrong_types_are_each_named(tmp_path: Path) -> None:
    path = _write(tmp_path, VISIUM)
    with h5py.File(path, "r+") as f:
        del f["obsm/spatial"]
        del f["uns/spatial/is_single"]
        f["uns/spatial/is_single"] = "yes"
        del f["uns/spatial/vis_A1/scalefactors/tissue_hires_scalef"]
        del f["uns/spatial/vis_A1/scalefactors/spot_diameter_fullres"]
        f["uns/spatial/vis_A1/scalefactors/spot_diameter_fullres"] = -1.0
        hires = f["uns/spatial/vis_A1/images/hires"][...]
        del f["uns/spatial/vis_A1/images/hires"]
        f["uns/spatial/vis_A1/images/hires"] = hires[..., :2].astype(np.float32)
    where = f"dataset 'vis' ({path}), field "
    assert _problems(path, "vis", VISIUM_V1) == [
        where + "'uns/spatial/is_single': is b'yes'; it must be True or False",
        where + "'uns/spatial': holds library ids ('vis_A1'); only a single Visium section may have one "
        "(dataset schema 7.0.0)",
        where + "'obsm/spatial': missing: a spatial dataset MUST have its spot or bead positions",
    ]
    with h5py.File(path, "r+") as f:
        del f["uns/spatial/is_single"]
        f["uns/spatial/is_single"] = np.bool_(True)
    assert _problems(path, "vis", VISIUM_V1) == [
        where + "'uns/spatial/vis_A1/images/hires': has shape (120, 100, 2) and dtype float32; it must be uint8, "
        "height x width x 3 or 4",
        where + "'uns/spatial/vis_A1/scalefactors/spot_diameter_fullres': is -1.0; it must be a positive number",
        where + "'uns/spatial/vis_A1/scalefactors/tissue_hires_scalef': missing",
        where + "'obsm/spatial': missing: a spatial dataset MUST have its spot or bead positions",
    ]
    with h5py.File(path, "r+") as f:
        del f["uns/spatial"]
    assert _problems(path, "vis", VISIUM_V1) == [
        where + "'uns/spatial': missing: an EFO:0022857 dataset MUST have uns['spatial'] (dataset schema 7.0.0)"
    ]


def test_a_library_on_a_slide_seq_puck_is_a_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, SLIDE)
    with h5py.File(path, "r+") as f:
        f.create_group("uns/spatial/puck_1")
    assert _problems(path, "slide", SLIDE_SEQ_V2) == [
        f"dataset 'slide' ({path}), field 'uns/spatial': holds library ids ('puck_1'); only a single Visium "
        "section may have one (dataset schema 7.0.0)"
    ]

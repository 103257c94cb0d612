"""Preflight of Census 2.4.0 spatial datasets (Visium V1, Slide-seqV2): structure errors, which cells are planned."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

from census_builder.build.inspect import DatasetPlan, PlanFiles, inspect_dataset
from census_builder.census.schema import load_schema
from census_builder.errors import InputError
from census_builder.testing.synthetic_spatial import SLIDE_SEQ_V2, VISIUM_V1, SpatialSpec, write_spatial_h5ad
from tests.census_builder.build.h5ad_edits import rewrite

V2_4 = load_schema("2.4.0")
VISIUM = SpatialSpec("vis", n_spots=60, n_genes=20, hires_shape=(40, 30), seed=3)
SLIDE = SpatialSpec("slide", assay=SLIDE_SEQ_V2, n_spots=50, n_genes=20, seed=4)


def _inspect(tmp_path: Path, spec: SpatialSpec) -> tuple[Path, DatasetPlan]:
    path = write_spatial_h5ad(tmp_path / f"{spec.dataset_id}.h5ad", spec)
    return path, inspect_dataset(spec.dataset_id, str(path), V2_4, 1000, str(tmp_path / "plan"))


def _error(tmp_path: Path, spec: SpatialSpec) -> InputError:
    with pytest.raises(InputError) as info:
        _inspect(tmp_path, spec)
    return info.value


def test_visium_cells_are_planned_for_census_spatial_sequencing(tmp_path: Path) -> None:
    path, plan = _inspect(tmp_path, VISIUM)
    obs = anndata.read_h5ad(path).obs
    assert plan.experiment == "census_spatial_sequencing"
    assert plan.organism == "homo_sapiens"
    assert plan.n_cells == 60 and plan.warnings == ()
    assert plan.spatial is not None and plan.spatial["assay"] == VISIUM_V1
    lib = plan.spatial["library"]
    assert (lib["library_id"], lib["hires_shape"]) == ("vis_A1", [40, 30, 3])
    out = pd.read_parquet(PlanFiles(tmp_path / "plan", "vis").obs)
    for c in ("in_tissue", "array_row", "array_col"):
        assert out[c].dtype == np.int64
        np.testing.assert_array_equal(out[c].to_numpy(dtype=np.int64), obs[c].to_numpy(dtype=np.int64))


def test_every_spot_is_kept_primary_or_not_in_tissue_or_not(tmp_path: Path) -> None:
    path = write_spatial_h5ad(tmp_path / "vis.h5ad", VISIUM)
    ipd = np.zeros(60, dtype=bool)
    ipd[:10] = True
    rewrite(path, "obs/is_primary_data", lambda _: ipd)
    plan = inspect_dataset("vis", str(path), V2_4, 1000, str(tmp_path / "plan"))
    assert plan.n_cells == 60 and plan.n_primary == 10
    assert 0 in set(anndata.read_h5ad(path).obs["in_tissue"].astype(int))


def test_slide_seq_cells_have_the_placeholder_in_the_spatial_columns(tmp_path: Path) -> None:
    _, plan = _inspect(tmp_path, SLIDE)
    assert plan.experiment == "census_spatial_sequencing"
    assert plan.spatial is not None and plan.spatial["library"] is None
    out = pd.read_parquet(PlanFiles(tmp_path / "plan", "slide").obs)
    assert len(out) == 50
    for c in ("in_tissue", "array_row", "array_col"):
        assert out[c].dtype == np.int64 and (out[c] == -9223372036854775808).all()


def test_not_single_is_left_out_with_a_warning(tmp_path: Path) -> None:
    _, plan = _inspect(tmp_path, VISIUM.with_(is_single=False))
    reason = (
        "uns['spatial']['is_single'] is False: Census schema 2.4.0 includes only single Visium Spatial Gene "
        "Expression V1 sections in census_spatial_sequencing, so its 60 cell(s) are left out"
    )
    assert plan.organism is None and plan.n_cells == 0
    assert plan.warnings == (reason,) and plan.excluded_reason == reason


def test_missing_image_is_an_input_error(tmp_path: Path) -> None:
    e = _error(tmp_path, VISIUM.with_(missing_image=True))
    assert (e.dataset_id, e.field) == ("vis", "uns/spatial/vis_A1/images/hires")
    assert e.reason == "missing: a single Visium section MUST have its hires image"


def test_several_library_ids_is_an_input_error(tmp_path: Path) -> None:
    e = _error(tmp_path, VISIUM.with_(n_library_ids=2))
    assert e.field == "uns/spatial"
    assert "holds 2 library ids" in e.reason and "a single Visium section MUST have exactly one" in e.reason


@pytest.mark.parametrize("how", ["one_column", "short"])
def test_positions_of_the_wrong_shape_are_an_input_error(tmp_path: Path, how: str) -> None:
    e = _error(tmp_path, SLIDE.with_(positions=how))
    assert e.field == "obsm/spatial"
    assert e.reason.endswith("it must be (50, 2 or more)")


def test_several_problems_are_named_in_one_error(tmp_path: Path) -> None:
    e = _error(tmp_path, VISIUM.with_(missing_image=True, positions="one_column"))
    assert e.field == "uns/spatial/vis_A1/images/hires"
    assert e.reason == (
        "missing: a single Visium section MUST have its hires image (and 1 more: obsm/spatial: has shape (60, 1) "
        "for 60 observations; it must be (60, 2 or more))"
    )

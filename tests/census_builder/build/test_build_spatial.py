"""One CLI build of Census 2.4.0 from a mixed corpus (tests/spatial_build.py, built once per session): a 10x
dataset, a small Visium V1 section, a Slide-seqV2 puck and a Visium dataset that is not a single section. The
release's census_spatial_sequencing is read with tiledbsoma and the pinned cellxgene_census client, and checked
against the sources (anndata), never the builder's helpers.

The build ends with the independent validator (census_spatial_sequencing included), which must pass.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cellxgene_census
import numpy as np
import pandas as pd
import pytest
import tiledbsoma as soma

from census_builder.build.outputs import DatasetAxes
from census_builder.build.spatial import write_scene
from census_builder.census.schema import load_schema
from census_builder.soma.layout import ReleaseLayout
from census_builder.testing.synthetic_spatial import SpatialSpec
from tests.census_builder.soma.storage_checks import assert_obs_enumerations, assert_x_settings
from tests.spatial_build import SLIDE, SLIDE_KEPT, SPATIAL, VISIUM, Built

INT64_MIN = -9223372036854775808

pytestmark = pytest.mark.filterwarnings("ignore:Support for spatial types is experimental")


@pytest.fixture(scope="module")
def built(spatial_release: Built) -> Built:
    """The release built once per session by tests/spatial_build.py (shared with test_spatial_end_to_end.py)."""
    return spatial_release


def _open(built: Built) -> Any:
    return soma.open(built.soma)  # the release's root Collection (typed as a bare SOMAObject)


def _frame(node: Any) -> pd.DataFrame:
    out: pd.DataFrame = node.read().concat().to_pandas().sort_values("soma_joinid").reset_index(drop=True)
    return out


def test_spatial_experiments_hold_raw_only_and_the_spatial_objects(built: Built) -> None:
    with _open(built) as census:
        assert sorted(census[SPATIAL].keys()) == ["homo_sapiens", "mus_musculus"]
        human = census[SPATIAL]["homo_sapiens"]
        assert sorted(human.keys()) == ["ms", "obs", "obs_spatial_presence", "spatial"]
        assert list(human.ms["RNA"].X.keys()) == ["raw"]
        assert sorted(human.spatial.keys()) == ["vis"]  # the not-single section is left out
        assert sorted(human.spatial["vis"].keys()) == ["img", "obsl"]
        assert sorted(census[SPATIAL]["mus_musculus"].spatial["slide"].keys()) == ["obsl"]  # no img: not Visium
        assert list(census["census_data"].keys()) == ["homo_sapiens"]  # spatial cells never go to census_data


def test_obs_has_every_spot_with_the_source_spatial_columns(built: Built) -> None:
    src = built.source("vis").obs
    with _open(built) as census:
        obs = _frame(census[SPATIAL]["homo_sapiens"].obs)
        slide = _frame(census[SPATIAL]["mus_musculus"].obs)
    assert len(obs) == VISIUM.n_obs and (obs["dataset_id"] == "vis").all()
    assert obs["observation_joinid"].tolist() == src["observation_joinid"].astype(str).tolist()
    for c in ("in_tissue", "array_row", "array_col"):
        assert obs[c].dtype == np.int64
        np.testing.assert_array_equal(obs[c].to_numpy(), src[c].to_numpy(dtype=np.int64))
        assert (slide[c] == INT64_MIN).all()
    assert len(obs) == len(src)  # every spot, in the tissue or not
    assert len(slide) == SLIDE_KEPT


def test_x_raw_equals_the_source_counts(built: Built) -> None:
    src = built.source("slide")
    with _open(built) as census:
        exp = census[SPATIAL]["mus_musculus"]
        var = _frame(exp.ms["RNA"].var)
        x = exp.ms["RNA"].X["raw"].read().tables().concat().to_pandas()
    raw = src.raw.to_adata() if src.raw is not None else src
    genes = raw.var.index.get_indexer(var["feature_id"])
    kept = (src.obs["tissue_type"] == "tissue").to_numpy()
    dense = np.asarray(raw.X.todense() if hasattr(raw.X, "todense") else raw.X)[kept][:, genes]
    assert dense.shape[0] == SLIDE_KEPT
    got = np.zeros_like(dense, dtype=np.float64)
    got[x["soma_dim_0"].to_numpy(), x["soma_dim_1"].to_numpy()] = x["soma_data"].to_numpy()
    np.testing.assert_array_equal(got, dense)
    assert (var["nnz"].to_numpy() == (dense > 0).sum(axis=0)).all()


def test_obs_spatial_presence_maps_each_observation_to_its_scene(built: Built) -> None:
    with _open(built) as census:
        table = _frame(census[SPATIAL]["homo_sapiens"].obs_spatial_presence)
    assert table["soma_joinid"].tolist() == list(range(VISIUM.n_obs))
    assert set(table["scene_id"]) == {"vis"} and table["data"].all()


@pytest.mark.parametrize(("organism", "spec"), [("homo_sapiens", VISIUM), ("mus_musculus", SLIDE)])
def test_scene_points_are_the_source_positions(built: Built, organism: str, spec: SpatialSpec) -> None:
    src = built.source(spec.dataset_id)
    with _open(built) as census:
        exp = census[SPATIAL][organism]
        points = exp.spatial[spec.dataset_id].obsl["loc"]
        loc = _frame(points)
        meta = dict(points.metadata)
        obs = _frame(exp.obs)
    assert list(loc.columns) == ["x", "y", "soma_joinid"] and loc["x"].dtype == np.float64
    by_joinid = obs.set_index("soma_joinid")["observation_joinid"]
    order = pd.Index(src.obs["observation_joinid"].astype(str)).get_indexer(by_joinid.loc[loc["soma_joinid"]])
    np.testing.assert_array_equal(loc["x"].to_numpy(), src.obsm["spatial"][order, 0].astype(np.float64))
    np.testing.assert_array_equal(loc["y"].to_numpy(), src.obsm["spatial"][order, 1].astype(np.float64))
    assert meta["soma_geometry_type"] == "radius"
    if spec is VISIUM:
        lib = src.uns["spatial"]["vis_A1"]
        assert meta["soma_geometry"] == float(lib["scalefactors"]["spot_diameter_fullres"]) / 2
    else:
        assert meta["soma_geometry"] == 2.0


def test_visium_image_is_the_source_hires_pixel_for_pixel(built: Built) -> None:
    hires = built.source("vis").uns["spatial"]["vis_A1"]["images"]["hires"]  # (height, width, channel)
    with _open(built) as census:
        scene = census[SPATIAL]["homo_sapiens"].spatial["vis"]
        image = scene.img["vis_A1"]["highres_image"]
        assert isinstance(image, soma.MultiscaleImage) and image.level_count == 1
        assert image.data_axis_order == ("soma_channel", "y", "x")
        pixels = image["hires"].read().to_numpy()
        transform = scene.get_transform_to_multiscale_image("highres_image", subcollection=["img", "vis_A1"])
        region = image.read_spatial_region("hires", region=(0, 0, 9, 4)).data.to_numpy()  # x 0..9, y 0..4
    assert pixels.shape == (3, 60, 40)
    np.testing.assert_array_equal(pixels, np.transpose(hires, (2, 0, 1)))
    np.testing.assert_array_equal(region, np.transpose(hires[:5, :10], (2, 0, 1)))
    np.testing.assert_array_equal(transform.scale_factors, [0.1, 0.1])


def test_anndata_of_a_scene_has_the_spatial_obs_columns(built: Built) -> None:
    with _open(built) as census:
        exp = census[SPATIAL]["homo_sapiens"]
        joinids = _frame(exp.obs_spatial_presence).query("scene_id == 'vis'")["soma_joinid"].to_numpy()
        with exp.axis_query("RNA", obs_query=soma.AxisQuery(coords=(joinids,))) as q:
            adata = q.to_anndata("raw")
    assert adata.n_obs == VISIUM.n_obs
    assert {"in_tissue", "array_row", "array_col"} <= set(adata.obs.columns)


def test_cellxgene_census_opens_the_release(built: Built) -> None:
    with cellxgene_census.open_soma(uri=built.soma) as census:
        # The client looks an organism up in census_data before it opens ``modality``: mouse (spatial cells only)
        # is reachable through census[...] directly, human (in both) through get_anndata.
        spatial = cellxgene_census.get_anndata(census, organism="Homo sapiens", modality=SPATIAL)
        data = cellxgene_census.get_anndata(census, organism="Homo sapiens")
        mouse = census[SPATIAL]["mus_musculus"].obs.read().concat().to_pandas()
    assert spatial.n_obs == VISIUM.n_obs and "array_row" in spatial.obs.columns
    assert list(spatial.obs["dataset_id"].unique()) == ["vis"]
    assert data.n_obs == 30 and "in_tissue" not in data.obs.columns
    assert len(mouse) == SLIDE_KEPT


def test_census_info_counts_spatial_datasets_and_cells(built: Built) -> None:
    with _open(built) as census:
        info = census["census_info"]
        summary = info["summary"].read().concat().to_pandas().set_index("label")["value"]
        datasets = _frame(info["datasets"]).set_index("dataset_id")["dataset_total_cell_count"]
        organisms = _frame(info["organisms"])["organism"].tolist()
        counts = info["summary_cell_counts"].read().concat().to_pandas()
    assert int(summary["total_cell_count"]) == 30 + VISIUM.n_obs + SLIDE_KEPT
    assert datasets.to_dict() == {"human-10x": 30, "vis": VISIUM.n_obs, "slide": SLIDE_KEPT}
    assert organisms == ["homo_sapiens", "mus_musculus"]  # mouse has spatial cells only
    mouse_all = counts[(counts["organism"] == "Mus musculus") & (counts["category"] == "all")]
    assert mouse_all["total_cell_count"].tolist() == [SLIDE_KEPT]


def test_build_report_names_the_dataset_that_is_not_a_single_section(built: Built) -> None:
    report = json.loads((built.root / "build_report.json").read_text(encoding="utf-8"))
    assert report["summary"]["spatial"] == {
        "homo_sapiens": {"cells": VISIUM.n_obs, "genes": 20, "datasets": 1},
        "mus_musculus": {"cells": SLIDE_KEPT, "genes": 20, "datasets": 1},
    }
    assert report["inputs"]["warnings"]["vis-multi"] == [
        "uns['spatial']['is_single'] is False: Census schema 2.4.0 includes only single Visium Spatial Gene "
        "Expression V1 sections in census_spatial_sequencing, so its 30 cell(s) are left out"
    ]


def test_writing_a_scene_again_changes_nothing(built: Built, tmp_path: Path) -> None:
    """A rerun of write_tables (after an interruption) rewrites a scene in place: same points, same pixels."""
    copy = tmp_path / "soma"
    shutil.copytree(built.soma, copy)
    exp = ReleaseLayout(str(copy), load_schema("2.4.0")).experiment("homo_sapiens", SPATIAL)
    plan = json.loads((built.root / ".build" / "plan" / "vis.json").read_text(encoding="utf-8"))
    axes = DatasetAxes("vis", "homo_sapiens", 1, 0, VISIUM.n_obs, experiment=SPATIAL)
    write_scene(exp, axes, str(built.corpus / "vis.h5ad"), plan["spatial"], np.arange(VISIUM.n_obs))
    with _open(built) as before, soma.open(str(copy)) as after_root:
        after: Any = after_root
        for census in (before, after):
            scene = census[SPATIAL]["homo_sapiens"].spatial["vis"]
            assert len(_frame(scene.obsl["loc"])) == VISIUM.n_obs
        old, new = (c[SPATIAL]["homo_sapiens"].spatial["vis"] for c in (before, after))
        pd.testing.assert_frame_equal(_frame(old.obsl["loc"]), _frame(new.obsl["loc"]))
        image = "img", "vis_A1", "highres_image", "hires"
        np.testing.assert_array_equal(_node(old, image).read().to_numpy(), _node(new, image).read().to_numpy())


def _node(node: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@pytest.mark.parametrize("experiment", ["census_data", SPATIAL])
def test_storage_settings_of_x_and_obs(built: Built, experiment: str) -> None:
    """Census 2.4.0 (both experiments): issue 17's X settings and obs enumerations (storage_checks.py)."""
    strings = [c.name for c in load_schema("2.4.0").obs if c.encoding == "string"]
    with _open(built) as census:
        organisms = sorted(census[experiment].keys())
    assert organisms
    for organism in organisms:
        exp = f"{built.soma}/{experiment}/{organism}"
        assert_x_settings(f"{exp}/ms/RNA/X/raw", "raw")
        if experiment == "census_data":
            assert_x_settings(f"{exp}/ms/RNA/X/normalized", "normalized")
        assert_obs_enumerations(f"{exp}/obs", strings)

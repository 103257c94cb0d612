"""census_spatial_sequencing's spatial parts (Census 2.4.0), written by the write_tables stage after obs.

Per spatial organism: ``obs_spatial_presence`` (one row per (observation, scene), ``data`` True) and one
:class:`tiledbsoma.Scene` per dataset in ``spatial[<dataset_id>]``, holding ``obsl["loc"]`` (x, y, soma_joinid:
the first and second columns of the source's ``obsm["spatial"]``) and, for Visium, ``img[<library_id>]`` (a
Collection) with ``["highres_image"]``, a MultiscaleImage whose level ``hires`` is the source's hires image,
(channel, y, x), written band by band. Every write is idempotent (same coordinates, same values), so a rerun
of the stage rewrites what an interrupted run left half-written; existing objects are reopened, not recreated.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import tiledbsoma as soma

from census_builder.build.inspect import PlanFiles
from census_builder.build.outputs import DatasetAxes
from census_builder.census.spatial import (
    HIGHRES_IMAGE,
    HIGHRES_LEVEL,
    OBS_SPATIAL_PRESENCE_SCHEMA,
    POINTS,
    POINTS_SCHEMA,
    SLIDE_SEQ_RADIUS,
)
from census_builder.soma.layout import CENSUS_SPATIAL, ExperimentLayout
from census_builder.soma.platform import DATAFRAME_PLATFORM_CONFIG, context
from census_builder.sources.h5ad import H5AD
from census_builder.sources.spatial import VISIUM_V1, iter_hires, read_positions

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger(__name__)

POSITION_ROWS = 1 << 20  # positions read (and points written) at a time
AXES = ("x", "y")


def write_spatial(run: BuildRun) -> None:
    """Write obs_spatial_presence and every scene of every census_spatial_sequencing experiment."""
    axes = run.axes()
    plans = {p.dataset_id: p for p in run.plans()}
    for organism, shape in axes.spatial.items():
        exp = run.layout.experiment(organism, CENSUS_SPATIAL)
        members = axes.members(organism, CENSUS_SPATIAL)
        _write_presence(exp, shape.n_obs, members)
        for d in members:
            p = plans[d.dataset_id]
            kept_rows = PlanFiles(run.paths.plans, d.dataset_id).load_arrays()["kept_rows"]
            write_scene(exp, d, p.h5ad_path, p.spatial or {}, kept_rows)
            logger.info("[write_tables:spatial] %s: scene %s, %d point(s)", organism, d.dataset_id, d.n_cells)


def _write_presence(exp: ExperimentLayout, n_obs: int, members: list[DatasetAxes]) -> None:
    """Write obs_spatial_presence: each observation belongs to the scene of its dataset (scene id = dataset_id)."""
    ctx = context()
    with soma.Experiment.open(exp.uri, "w", context=ctx) as e:
        if "obs_spatial_presence" not in e:
            e.add_new_dataframe(
                "obs_spatial_presence",
                schema=OBS_SPATIAL_PRESENCE_SCHEMA,
                index_column_names=["soma_joinid", "scene_id"],
                domain=[(0, max(n_obs, 1) - 1), ("", "")],
                platform_config=DATAFRAME_PLATFORM_CONFIG,
            )
    with soma.DataFrame.open(exp.obs_spatial_presence, "w", context=ctx) as df:
        for d in members:
            joinids = np.arange(d.obs_offset, d.obs_offset + d.n_cells, dtype=np.int64)
            table = pa.table(
                {
                    "soma_joinid": joinids,
                    "scene_id": pa.array([d.dataset_id] * d.n_cells, type=pa.large_string()),
                    "data": np.ones(d.n_cells, dtype=bool),
                },
                schema=OBS_SPATIAL_PRESENCE_SCHEMA,
            )
            df.write(table)


def _coordinate_space(assay: str) -> soma.CoordinateSpace:
    """Visium: full-resolution image pixels (the text); Slide-seqV2: the source's units, which it does not name."""
    unit = "pixels" if assay == VISIUM_V1 else None
    axes: tuple[Any, ...] = tuple(soma.Axis(a, unit=unit) for a in AXES)
    return soma.CoordinateSpace(axes)


def write_scene(
    exp: ExperimentLayout, d: DatasetAxes, h5ad_path: str, spatial: dict[str, Any], kept_rows: np.ndarray[Any, Any]
) -> None:
    """Write the scene of dataset ``d``: its points and (Visium) its hires image."""
    assay = str(spatial.get("assay", ""))
    library = spatial.get("library")
    space = _coordinate_space(assay)
    ctx = context()
    with warnings.catch_warnings(), H5AD(h5ad_path, d.dataset_id) as h5:
        warnings.filterwarnings("ignore", "Support for spatial types is experimental")
        scenes: Any
        with soma.Collection.open(exp.spatial, "w", context=ctx) as scenes:
            scene = (
                scenes[d.dataset_id] if d.dataset_id in scenes else scenes.add_new_collection(d.dataset_id, soma.Scene)
            )
            with scene:
                scene.coordinate_space = space
                _write_points(scene, space, d, h5, kept_rows, assay, library)
                if library is not None:
                    _write_image(scene, space, h5, library)


def _write_points(
    scene: Any,
    space: soma.CoordinateSpace,
    d: DatasetAxes,
    h5: H5AD,
    kept_rows: np.ndarray[Any, Any],
    assay: str,
    library: Any,
) -> None:
    """Write obsl["loc"]: x, y (the first two columns of obsm["spatial"]), soma_joinid, for the kept rows."""
    if "obsl" not in scene:
        scene.add_new_collection("obsl")
    n_source = int(h5.file["obsm/spatial"].shape[0])
    blocks = [read_positions(h5, a, min(a + POSITION_ROWS, n_source)) for a in range(0, n_source, POSITION_ROWS)]
    xy = np.concatenate(blocks)[kept_rows] if blocks else np.zeros((0, 2))
    if POINTS in scene["obsl"]:
        points = scene["obsl"][POINTS]
    else:
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        points = scene.add_new_point_cloud_dataframe(
            POINTS,
            "obsl",
            transform=soma.IdentityTransform(AXES, AXES),
            coordinate_space=space,
            schema=POINTS_SCHEMA,
            domain=[
                (float(lo[0]), float(hi[0])),
                (float(lo[1]), float(hi[1])),
                (d.obs_offset, d.obs_offset + d.n_cells - 1),
            ],
            platform_config=DATAFRAME_PLATFORM_CONFIG,
        )
    radius = float(library["spot_diameter_fullres"]) / 2 if assay == VISIUM_V1 and library else SLIDE_SEQ_RADIUS
    with points:
        points.metadata["soma_geometry_type"] = "radius"
        points.metadata["soma_geometry"] = radius
        for a in range(0, xy.shape[0], POSITION_ROWS):
            b = min(a + POSITION_ROWS, xy.shape[0])
            points.write(
                pa.table(
                    {
                        "x": xy[a:b, 0],
                        "y": xy[a:b, 1],
                        "soma_joinid": np.arange(d.obs_offset + a, d.obs_offset + b, dtype=np.int64),
                    },
                    schema=POINTS_SCHEMA,
                )
            )


def _write_image(scene: Any, space: soma.CoordinateSpace, h5: H5AD, library: dict[str, Any]) -> None:
    """Write img[library_id]["highres_image"]: level ``hires`` = the source's hires image, (channel, y, x), in bands."""
    library_id = str(library["library_id"])
    height, width, channels = (int(v) for v in library["hires_shape"])
    if "img" not in scene:
        scene.add_new_collection("img")
    img = scene["img"]
    if library_id not in img:
        img.add_new_collection(library_id)
    if HIGHRES_IMAGE in img[library_id]:
        image = img[library_id][HIGHRES_IMAGE]
    else:
        scalef = float(library["tissue_hires_scalef"])  # hires pixels per full-resolution pixel (scene unit)
        image = scene.add_new_multiscale_image(
            HIGHRES_IMAGE,
            ["img", library_id],
            transform=soma.ScaleTransform(AXES, AXES, [scalef, scalef]),
            coordinate_space=space,
            type=pa.uint8(),
            level_shape=(channels, height, width),
            level_key=HIGHRES_LEVEL,
            data_axis_order=("soma_channel", "y", "x"),
        )
    with image:
        level = image[HIGHRES_LEVEL]
        for row, band in iter_hires(h5, library_id):
            data = np.ascontiguousarray(
                np.transpose(band, (2, 0, 1))
            )  # (rows, width, channel) -> (channel, rows, width)
            level.write((slice(None), slice(row, row + band.shape[0] - 1), slice(None)), pa.Tensor.from_numpy(data))

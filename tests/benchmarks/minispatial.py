"""Tiny hand-made census_spatial_sequencing releases, written with tiledbsoma directly (nothing from census_builder).

``spatial_content()`` is one human Visium scene by name (no soma_joinids): spots with obs columns, X raw entries,
positions ``(first, second)`` column of obsm["spatial"], a radius and a hires image (rows, columns, channels).
``write_spatial_release`` writes it either as ours (points ``x`` = first, ``y`` = second; ``img[library_id]`` a
Collection holding ``highres_image``; data_axis_order (channel, y, x)) or, with ``reference=True``, as the
reference builder does (points ``y`` = first, ``x`` = second; ``img[library_id]`` the MultiscaleImage itself; no
data_axis_order given, so tiledbsoma reports (channel, x, y) for a (channel, y, x) array), numbered backwards.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import tiledbsoma as soma

DATASET, LIBRARY = "d1", "d1_A1"


@dataclass
class SpatialMini:
    """One scene: spots (observation_joinid -> in_tissue), raw entries, positions, radius, image, scale."""

    spots: dict[str, int] = field(default_factory=dict)
    raw: dict[tuple[str, str], float] = field(default_factory=dict)  # (observation_joinid, feature_id) -> value
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # obsm["spatial"][:, 0], [:, 1]
    presence_rows: set[str] = field(default_factory=set)  # observation_joinids in obs_spatial_presence
    radius: float = 85.9375
    image: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros((1, 1, 3), dtype=np.uint8))
    scale: float = 0.08


def spatial_content() -> SpatialMini:
    rng = np.random.default_rng(7)
    spots = {"a": 1, "b": 0, "c": 1}
    return SpatialMini(
        spots=spots,
        raw={("a", "G1"): 3.0, ("b", "G2"): 1.0, ("c", "G1"): 2.0},
        positions={"a": (10.0, 20.0), "b": (30.0, 5.0), "c": (7.0, 8.0)},
        presence_rows=set(spots),
        image=rng.integers(0, 255, size=(4, 6, 3), dtype=np.uint8),  # 4 rows (y), 6 columns (x): not square
    )


def write_spatial_release(root: Path, m: SpatialMini, *, reference: bool = False) -> str:
    """Write ``m`` at ``root`` as ours, or as the reference writes it (``reference=True``, numbered backwards)."""
    ids = list(m.spots)
    joinid = {o: (len(ids) - 1 - i if reference else i) for i, o in enumerate(ids)}
    genes = ["G1", "G2"]
    c: Any
    with warnings.catch_warnings(), soma.Collection.create(str(root)) as c:
        warnings.filterwarnings("ignore", "Support for spatial types is experimental")
        ds = pa.table({"soma_joinid": pa.array([0], pa.int64()), "dataset_id": pa.array([DATASET])})
        c.add_new_collection("census_info").add_new_dataframe("datasets", schema=ds.schema, domain=[(0, 0)]).write(ds)
        exp = c.add_new_collection("census_spatial_sequencing").add_new_collection("homo_sapiens", soma.Experiment)
        n = len(ids)
        obs = pa.table(
            {
                "soma_joinid": pa.array([joinid[o] for o in ids], pa.int64()),
                "dataset_id": pa.array([DATASET] * n),
                "observation_joinid": pa.array(ids),
                "in_tissue": pa.array([m.spots[o] for o in ids], pa.int64()),
            }
        )
        exp.add_new_dataframe("obs", schema=obs.schema, domain=[(0, n - 1)]).write(obs)
        rna = exp.add_new_collection("ms").add_new_collection("RNA", soma.Measurement)
        var = pa.table({"soma_joinid": pa.array([0, 1], pa.int64()), "feature_id": pa.array(genes)})
        rna.add_new_dataframe("var", schema=var.schema, domain=[(0, 1)]).write(var)
        raw = rna.add_new_collection("X").add_new_sparse_ndarray("raw", type=pa.float32(), shape=(n, 2))
        entries = sorted((joinid[o], genes.index(g), v) for (o, g), v in m.raw.items())
        rows, cols, vals = zip(*entries, strict=True)
        raw.write(
            pa.table(
                {
                    "soma_dim_0": pa.array(rows, pa.int64()),
                    "soma_dim_1": pa.array(cols, pa.int64()),
                    "soma_data": pa.array(vals, pa.float32()),
                }
            )
        )
        pres = sorted(m.presence_rows)
        presence = pa.table(
            {
                "soma_joinid": pa.array([joinid[o] for o in pres], pa.int64()),
                "scene_id": pa.array([DATASET] * len(pres)),
                "data": pa.array([True] * len(pres)),
            }
        )
        df = exp.add_new_dataframe(
            "obs_spatial_presence",
            schema=presence.schema,
            index_column_names=["soma_joinid", "scene_id"],
            domain=[(0, n - 1), ("", "")],
        )
        df.write(presence)
        axes = ("y", "x") if reference else ("x", "y")
        space = soma.CoordinateSpace.from_axis_names(axes)
        scene = exp.add_new_collection("spatial").add_new_collection(DATASET, soma.Scene)
        scene.coordinate_space = space
        scene.add_new_collection("obsl")
        pts = [m.positions[o] for o in ids]
        first = pa.array([p[0] for p in pts], pa.float64())
        second = pa.array([p[1] for p in pts], pa.float64())
        cols_ = {"y": first, "x": second} if reference else {"x": first, "y": second}
        table = pa.table({**cols_, "soma_joinid": pa.array([joinid[o] for o in ids], pa.int64())})
        points = scene.add_new_point_cloud_dataframe(
            "loc",
            "obsl",
            transform=soma.IdentityTransform(axes, axes),
            coordinate_space=space,
            schema=table.schema,
            domain=[(0.0, 100.0), (0.0, 100.0), (0, n - 1)],
        )
        points.metadata["soma_geometry_type"] = "radius"
        points.metadata["soma_geometry"] = m.radius
        points.write(table)
        height, width, channels = m.image.shape
        scene.add_new_collection("img")
        if reference:
            image = scene.add_new_multiscale_image(
                LIBRARY,
                "img",
                transform=soma.ScaleTransform(axes, axes, [m.scale, m.scale]),
                coordinate_space=space,
                type=pa.uint8(),
                level_shape=(channels, height, width),
                level_key="hires",
            )
        else:
            scene["img"].add_new_collection(LIBRARY)
            image = scene.add_new_multiscale_image(
                "highres_image",
                ["img", LIBRARY],
                transform=soma.ScaleTransform(axes, axes, [m.scale, m.scale]),
                coordinate_space=space,
                type=pa.uint8(),
                level_shape=(channels, height, width),
                level_key="hires",
                data_axis_order=("soma_channel", "y", "x"),
            )
        data = np.ascontiguousarray(np.transpose(m.image, (2, 0, 1)))  # (channel, y, x) as both builders write
        image["hires"].write((slice(None), slice(None), slice(None)), pa.Tensor.from_numpy(data))
    return str(root)

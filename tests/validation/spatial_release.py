"""Hand-made small census_spatial_sequencing releases for the spatial validator's tests, with planted faults.

Written straight with tiledbsoma from the synthetic spatial sources (``census_builder.testing.synthetic_spatial``),
as decisions 1-5 of issue #16 lay them out; only the members the spatial checks read are written (obs holds
the columns those checks compare, X and the presence matrix are empty), so the census_data checks are not
the point of these releases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa

FAULTS = frozenset(
    {
        "swap_xy",  # loc x = obsm column 2, y = column 1 (the reference's order)
        "int_xy",  # loc x, y stored as int64
        "pixel",  # one hires pixel changed
        "image_direct",  # img[library_id] is the MultiscaleImage itself (the reference's layout)
        "slide_img",  # a Slide-seqV2 scene with an img collection
        "normalized",  # X also has a 'normalized' layer
        "presence_row",  # one observation without its obs_spatial_presence row
        "in_tissue",  # one in_tissue value differs from the source
        "radius",  # Visium soma_geometry is the diameter, not the radius
        "drop_cell",  # one spatial observation left out of obs
        "no_scene",  # a dataset without its scene
        "yxc",  # not a fault: the image stored (y, x, channel) instead of (channel, y, x)
    }
)


def write_spatial_release(out: Path, sources: list[tuple[str, Path, str]], faults: frozenset[str] = frozenset()) -> str:
    """Write a release root at ``out`` holding census_spatial_sequencing; return its URI.

    ``sources``: (dataset_id, H5AD path, census organism key) of spatial datasets, all their rows kept.
    """
    import tiledbsoma as soma

    unknown = faults - FAULTS
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}")
    uri = str(out)
    root: Any
    with soma.Collection.create(uri) as root:
        spatial_root = root.add_new_collection("census_spatial_sequencing")
        by_org: dict[str, list[tuple[str, Path]]] = {}
        for ds, path, org in sources:
            by_org.setdefault(org, []).append((ds, path))
        for org, members in by_org.items():
            exp = spatial_root.add_new_collection(org, soma.Experiment)
            frames: list[pd.DataFrame] = []
            for ds, path in members:
                a = ad.read_h5ad(path, backed="r")
                obs = a.obs
                if "drop_cell" in faults and not frames:
                    obs = obs.iloc[1:]
                frame = pd.DataFrame(
                    {
                        "dataset_id": ds,
                        "observation_joinid": obs["observation_joinid"].astype(str).to_numpy(),
                        "is_primary_data": obs["is_primary_data"].astype(bool).to_numpy(),
                        "_row": np.array([a.obs_names.get_loc(n) for n in obs.index], dtype=np.int64),
                    }
                )
                for c in ("in_tissue", "array_row", "array_col"):
                    frame[c] = (
                        obs[c].astype(np.int64).to_numpy() if c in obs else np.full(len(obs), np.iinfo(np.int64).min)
                    )
                frames.append(frame)
                a.file.close()
            all_obs = pd.concat(frames, ignore_index=True)
            all_obs.insert(0, "soma_joinid", np.arange(len(all_obs), dtype=np.int64))
            if "in_tissue" in faults and "in_tissue" in members_obs_columns(members):
                in_tissue = all_obs["in_tissue"].to_numpy(dtype=np.int64).copy()
                in_tissue[0] = 1 - in_tissue[0]
                all_obs["in_tissue"] = in_tissue
            table = pa.Table.from_pandas(all_obs.drop(columns="_row"), preserve_index=False)
            with exp.add_new_dataframe("obs", schema=table.schema, domain=[(0, max(len(all_obs) - 1, 0))]) as df:
                df.write(table)
            n = len(all_obs)
            ms = exp.add_new_collection("ms")
            rna = ms.add_new_collection("RNA", soma.Measurement)
            var = pa.table({"soma_joinid": pa.array([0], pa.int64()), "feature_id": ["ENSG0"]})
            with rna.add_new_dataframe("var", schema=var.schema, domain=[(0, 0)]) as df:
                df.write(var)
            x = rna.add_new_collection("X")
            for layer in ("raw", "normalized") if "normalized" in faults else ("raw",):
                x.add_new_sparse_ndarray(layer, type=pa.float32(), shape=(n, 1)).close()
            rna.add_new_sparse_ndarray("feature_dataset_presence_matrix", type=pa.bool_(), shape=(len(members), 1))
            keep = np.ones(n, dtype=bool)
            if "presence_row" in faults:
                keep[0] = False
            presence = pa.table(
                {
                    "soma_joinid": pa.array(all_obs["soma_joinid"][keep], pa.int64()),
                    "scene_id": pa.array(all_obs["dataset_id"][keep], pa.large_string()),
                    "data": pa.array(np.ones(int(keep.sum()), dtype=bool)),
                }
            )
            with exp.add_new_dataframe("obs_spatial_presence", schema=presence.schema, domain=[(0, n - 1)]) as df:
                df.write(presence)
            spatial = exp.add_new_collection("spatial")
            for ds, path in members:
                if "no_scene" in faults:
                    continue
                _scene(spatial, ds, path, all_obs[all_obs["dataset_id"] == ds], faults)
    return uri


def members_obs_columns(members: list[tuple[str, Path]]) -> set[str]:
    """Return the obs columns of the first source (the in_tissue fault is planted in Visium obs only)."""
    with h5py.File(members[0][1], "r") as f:
        return set(f["obs"].keys())


def _scene(spatial: Any, ds: str, path: Path, obs: pd.DataFrame, faults: frozenset[str]) -> None:
    """Write the dataset's Scene: obsl['loc'] and, for Visium, img[library_id]['highres_image']."""
    import tiledbsoma as soma
    from tiledbsoma import CoordinateSpace, IdentityTransform, ScaleTransform

    space = CoordinateSpace.from_axis_names(("x", "y"))
    scene = spatial.add_new_collection(ds, soma.Scene)
    scene.coordinate_space = space
    scene.add_new_collection("obsl")
    with h5py.File(path, "r") as f:
        xy = np.asarray(f["obsm/spatial"][:, :2])
        group = f["uns/spatial"]
        libs = [k for k in group if k != "is_single"]
        is_visium = bool(libs)
        rows = obs["_row"].to_numpy()
        first, second = xy[rows, 0], xy[rows, 1]
        if "swap_xy" in faults:
            first, second = second, first
        dtype = pa.int64() if "int_xy" in faults else pa.float64()
        loc_table = pa.table(
            {
                "x": pa.array(first.astype(np.int64 if "int_xy" in faults else np.float64), dtype),
                "y": pa.array(second.astype(np.int64 if "int_xy" in faults else np.float64), dtype),
                "soma_joinid": pa.array(obs["soma_joinid"].to_numpy(), pa.int64()),
            }
        )
        lo = float(min(xy.min(), 0)) - 1
        hi = float(xy.max()) + 1
        dom = (int(lo), int(hi)) if "int_xy" in faults else (lo, hi)
        loc = scene.add_new_point_cloud_dataframe(
            "loc",
            "obsl",
            transform=IdentityTransform(("x", "y"), ("x", "y")),
            coordinate_space=space,
            schema=loc_table.schema,
            domain=[dom, dom, (0, 2**40)],
        )
        loc.write(loc_table)
        if is_visium:
            sf = group[libs[0]]["scalefactors"]
            diameter = float(sf["spot_diameter_fullres"][()])
            scalef = float(sf["tissue_hires_scalef"][()])
            loc.metadata["soma_geometry"] = diameter if "radius" in faults else diameter / 2
        else:
            loc.metadata["soma_geometry"] = 2.0
        loc.metadata["soma_geometry_type"] = "radius"
        loc.close()
        if not is_visium:
            if "slide_img" in faults:
                scene.add_new_collection("img")
            return
        lib = libs[0]
        hires = np.asarray(group[lib]["images"]["hires"][...])
        if "pixel" in faults:
            hires[3, 5, 1] ^= 0xFF
        h, w, c = hires.shape
        img = scene.add_new_collection("img")
        transform = ScaleTransform(("x", "y"), ("x", "y"), [scalef, scalef])
        if "image_direct" in faults:
            image = scene.add_new_multiscale_image(
                lib,
                "img",
                transform=transform,
                coordinate_space=space,
                type=pa.uint8(),
                level_shape=(c, h, w),
                level_key="hires",
                data_axis_order=("soma_channel", "y", "x"),
            )
        else:
            holder = img.add_new_collection(lib)
            yxc = "yxc" in faults
            image = soma.MultiscaleImage.create(
                f"{holder.uri}/highres_image",
                type=pa.uint8(),
                level_shape=(h, w, c) if yxc else (c, h, w),
                level_key="hires",
                coordinate_space=space,
                data_axis_order=("y", "x", "soma_channel") if yxc else ("soma_channel", "y", "x"),
            )
            holder.set("highres_image", image)
            scene.set_transform_to_multiscale_image("highres_image", ["img", lib], transform=transform)
        image["hires"].write(
            (slice(None), slice(None), slice(None)),
            pa.Tensor.from_numpy(np.ascontiguousarray(hires if "yxc" in faults else np.transpose(hires, (2, 0, 1)))),
        )
        image.close()
    scene.close()

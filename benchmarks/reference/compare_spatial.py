"""The spatial parts of a census_spatial_sequencing experiment, compared by content (used by compare.py).

- ``obs_spatial_presence``: rows by (``dataset_id``, ``observation_joinid``, ``scene_id``) of the observation,
  with ``data``;
- each scene of ``spatial`` by name; its ``obsl["loc"]`` points by observation: positions compared as numbers
  (float64). When they differ as named but agree with ``x`` and ``y`` swapped for every point, that is ONE
  difference ("x and y swapped"), not one per point; the ``soma_geometry_type`` / ``soma_geometry`` metadata;
- each scene's images: ``img[library_id]`` (a MultiscaleImage, or a Collection holding one: both are found,
  and a different layout is one difference), level names, level 0's pixels after putting each array in
  (channel, y, x) by its own reported ``data_axis_order`` (when they differ but agree with y and x swapped,
  that is one difference), and the scene-to-image scale.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

from benchmarks.reference.diff import JOINID, Report, fmt, member_sets, plain

PRESENCE_TABLE = "obs_spatial_presence"
POINTS = "loc"
SIDES = ("ours", "the reference")


def _obs_keys(exp: Any) -> dict[int, tuple[str, str]]:
    """Obs soma_joinid -> (dataset_id, observation_joinid)."""
    t = exp.obs.read(column_names=[JOINID, "dataset_id", "observation_joinid"]).concat()
    ids = t.column(JOINID).to_pylist()
    ds = plain(t.column("dataset_id")).to_pylist()
    ob = plain(t.column("observation_joinid")).to_pylist()
    return {int(i): (str(d), str(o)) for i, d, o in zip(ids, ds, ob, strict=True)}


def compare_spatial(report: Report, where: str, a: Any, b: Any) -> None:
    """Compare obs_spatial_presence and the scenes of two spatial experiments ``a`` (ours) and ``b``."""
    keys = (_obs_keys(a), _obs_keys(b))
    has = [PRESENCE_TABLE in e for e in (a, b)]
    if has[0] != has[1]:
        report.add(where, "", f"{PRESENCE_TABLE} only in {SIDES[0] if has[0] else SIDES[1]}")
    elif has[0]:
        _presence(report, f"{where}/{PRESENCE_TABLE}", a[PRESENCE_TABLE], b[PRESENCE_TABLE], keys)
    scenes = [set(e["spatial"].keys()) if "spatial" in e else set() for e in (a, b)]
    for scene_id in member_sets(report, f"{where}/spatial", scenes[0], scenes[1], "scene"):
        sa, sb = a["spatial"][scene_id], b["spatial"][scene_id]
        spaces = [[(ax.name, ax.unit) for ax in s.coordinate_space.axes] for s in (sa, sb)]
        if spaces[0] != spaces[1]:
            report.add(
                f"{where}/spatial/{scene_id}", "", f"coordinate space {spaces[0]} (ours) != {spaces[1]} (reference)"
            )
        _points(report, f"{where}/spatial/{scene_id}/obsl/{POINTS}", sa, sb, keys)
        _images(report, f"{where}/spatial/{scene_id}", sa, sb)


def _presence(report: Report, where: str, a: Any, b: Any, keys: tuple[dict[int, Any], ...]) -> None:
    rows: list[dict[tuple[str, str, str], Any]] = []
    for df, k in zip((a, b), keys, strict=True):
        t = df.read().concat()
        j = t.column(JOINID).to_pylist()
        s = plain(t.column("scene_id")).to_pylist()
        d = t.column("data").to_pylist()
        rows.append({(*k.get(int(i), ("?", f"soma_joinid {i}")), str(sc)): v for i, sc, v in zip(j, s, d, strict=True)})
    for side, mine, other in ((SIDES[0], rows[0], rows[1]), (SIDES[1], rows[1], rows[0])):
        for key in sorted(set(mine) - set(other)):
            report.add(where, _key(key), f"row only in {side}")
    common = sorted(set(rows[0]) & set(rows[1]))
    report.compared["obs_spatial_presence rows"] += len(common)
    for key in common:
        if rows[0][key] != rows[1][key]:
            report.add(where, _key(key), f"data: {fmt(rows[0][key])} (ours) != {fmt(rows[1][key])} (reference)")


def _key(key: tuple[str, ...]) -> str:
    text = f"dataset_id={key[0]!r} observation_joinid={key[1]!r}"
    return text + (f" scene_id={key[2]!r}" if len(key) > 2 else "")


def _points(report: Report, where: str, sa: Any, sb: Any, keys: tuple[dict[int, Any], ...]) -> None:
    found = [("obsl" in s and POINTS in s["obsl"]) for s in (sa, sb)]
    if found[0] != found[1]:
        report.add(where, "", f"point cloud only in {SIDES[0] if found[0] else SIDES[1]}")
    if not all(found):
        return
    pa_, pb = sa["obsl"][POINTS], sb["obsl"][POINTS]
    for meta in ("soma_geometry_type", "soma_geometry"):
        va, vb = pa_.metadata.get(meta), pb.metadata.get(meta)
        if va != vb:
            report.add(where, "", f"metadata {meta}: {fmt(va)} (ours) != {fmt(vb)} (reference)")
    pos: list[dict[tuple[str, str], tuple[float, float]]] = []
    for pc_, k in zip((pa_, pb), keys, strict=True):
        t = pc_.read().concat()
        if "x" not in t.column_names or "y" not in t.column_names:
            report.add(where, "", f"columns {t.column_names} have no x and y")
            return
        x = np.asarray(t.column("x").to_numpy(), dtype=np.float64)
        y = np.asarray(t.column("y").to_numpy(), dtype=np.float64)
        j = t.column(JOINID).to_pylist()
        pos.append(
            {k.get(int(i), ("?", f"soma_joinid {i}")): (float(u), float(v)) for i, u, v in zip(j, x, y, strict=True)}
        )
    ta, tb = pa_.schema, pb.schema
    order = [[n for n in s.names if n in ("x", "y", JOINID)] for s in (ta, tb)]
    if order[0] != order[1]:
        report.add(where, "", f"column order {order[0]} (ours) != {order[1]} (reference)")
    for name in ("x", "y"):
        if ta.field(name).type != tb.field(name).type:
            report.add(
                where, "", f"column {name!r}: type {ta.field(name).type} (ours) != {tb.field(name).type} (reference)"
            )
    for side, mine, other in ((SIDES[0], pos[0], pos[1]), (SIDES[1], pos[1], pos[0])):
        for key in sorted(set(mine) - set(other)):
            report.add(where, _key(key), f"point only in {side}")
    common = sorted(set(pos[0]) & set(pos[1]))
    report.compared["points"] += len(common)
    same = [pos[0][c] == pos[1][c] for c in common]
    swapped = [pos[0][c] == pos[1][c][::-1] for c in common]
    if common and not all(same) and all(swapped):
        report.add(
            where, "", f"x and y swapped: ours x == reference y and ours y == reference x for all {len(common)} points"
        )
        return
    for c, ok in zip(common, same, strict=True):
        if not ok:
            report.add(where, _key(c), f"(x, y): {pos[0][c]} (ours) != {pos[1][c]} (reference)")


def _image(scene: Any, library_id: str) -> tuple[Any, str]:
    """Return the MultiscaleImage of img[library_id] and its layout ("img[id]" or "img[id][name]")."""
    node = scene["img"][library_id]
    if node.soma_type == "SOMAMultiscaleImage":
        return node, "img[library_id] is the MultiscaleImage"
    images = [k for k in node if node[k].soma_type == "SOMAMultiscaleImage"]
    if not images:
        return None, "img[library_id] holds no MultiscaleImage"
    return node[images[0]], f"img[library_id][{images[0]!r}] is the MultiscaleImage"


def _pixels(image: Any, level: int) -> npt.NDArray[Any]:
    """Level ``level`` as a (channel, y, x) array, following the image's reported data_axis_order."""
    arr = image[list(image.levels())[level]].read().to_numpy()
    order = list(image.data_axis_order)
    return np.transpose(arr, [order.index(n) for n in ("soma_channel", "y", "x")])


def _images(report: Report, where: str, sa: Any, sb: Any) -> None:
    libs = [set(s["img"].keys()) if "img" in s else set() for s in (sa, sb)]
    for library_id in member_sets(report, f"{where}/img", libs[0], libs[1], "image library"):
        place = f"{where}/img/{library_id}"
        (ia, la), (ib, lb) = _image(sa, library_id), _image(sb, library_id)
        if la != lb:
            report.add(place, "", f"layout: {la} (ours) != {lb} (reference)")
        if ia is None or ib is None:
            continue
        names = [list(ia.levels()), list(ib.levels())]
        if names[0] != names[1]:
            report.add(place, "", f"levels {names[0]} (ours) != {names[1]} (reference)")
        if tuple(ia.data_axis_order) != tuple(ib.data_axis_order):
            report.add(
                place,
                "",
                f"data_axis_order {tuple(ia.data_axis_order)} (ours) != {tuple(ib.data_axis_order)} (reference)",
            )
        pa_, pb = _pixels(ia, 0), _pixels(ib, 0)
        if pa_.shape == pb.shape and np.array_equal(pa_, pb):
            report.compared["image pixels"] += int(pa_.size)
        elif pa_.shape == np.swapaxes(pb, 1, 2).shape and np.array_equal(pa_, np.swapaxes(pb, 1, 2)):
            report.compared["image pixels"] += int(pa_.size)
            report.add(
                place,
                "",
                f"level 0 equal only with y and x swapped: the reference's data_axis_order "
                f"{tuple(ib.data_axis_order)} does not match its layout",
            )
        elif pa_.shape != pb.shape:
            report.add(place, "", f"level 0 shape (channel, y, x) {pa_.shape} (ours) != {pb.shape} (reference)")
        else:
            n = int((pa_ != pb).sum())
            report.add(place, "", f"level 0: {n} of {pa_.size} pixel values differ")
        scales = []
        for s, lib in ((sa, library_id), (sb, library_id)):
            scales.append(_scale(s, lib))
        if scales[0] != scales[1]:
            report.add(place, "", f"scene-to-image scale {scales[0]} (ours) != {scales[1]} (reference)")


def _scale(scene: Any, library_id: str) -> dict[str, float] | None:
    """Return the scene-to-image transform's scale factor by axis name, or None when it cannot be read."""
    node = scene["img"][library_id]
    if node.soma_type == "SOMAMultiscaleImage":
        key, sub = library_id, "img"
    else:
        names = [k for k in node if node[k].soma_type == "SOMAMultiscaleImage"]
        if not names:
            return None
        key, sub = names[0], cast("str", ["img", library_id])  # tiledbsoma takes a path list, typed str
    try:
        t = scene.get_transform_to_multiscale_image(key, subcollection=sub)
    except (KeyError, ValueError, TypeError):
        return None
    return {str(a): float(v) for a, v in zip(t.input_axes, getattr(t, "scale_factors", ()), strict=False)}

"""Read the spatial part of a dataset schema 7.0.0 source: ``uns["spatial"]``, ``obsm["spatial"]``, the hires image.

For Visium Spatial Gene Expression V1 and Slide-seqV2 datasets (Census 2.4.0's ``census_spatial_sequencing``).
:func:`spatial_problems` lists every structural problem a build would trip over (each an :class:`InputError`
naming the dataset, file and field), so a preflight can report them all at once; :func:`read_spatial` returns the
structure or raises the first problem. Nothing large is read here: positions come row range by row range
(:func:`read_positions`) and the image band by band (:func:`iter_hires`).

Checked: ``uns["spatial"]`` and a boolean ``is_single``; exactly one library for a single Visium section (none for
Slide-seqV2 or a Visium dataset that is not single), with ``images["hires"]`` (uint8, height x width x 3 or 4) and
positive ``scalefactors`` ``spot_diameter_fullres`` and ``tissue_hires_scalef``; ``obsm["spatial"]`` numeric with
one row per observation and at least two columns; finite positions (when read). ``is_single`` False is not a
problem here: it is reported (:attr:`SpatialSource.is_single`) for the build to apply Census 2.4.0's rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from census_builder.errors import InputError
from census_builder.sources.h5ad import H5AD

VISIUM_V1 = "EFO:0022857"
SLIDE_SEQ_V2 = "EFO:0030062"
SPATIAL_ASSAYS = (VISIUM_V1, SLIDE_SEQ_V2)
SCALEFACTORS = ("spot_diameter_fullres", "tissue_hires_scalef")


@dataclass(frozen=True)
class SpatialLibrary:
    """One Visium library: its id, scale factors and the hires image's shape (height, width, channels)."""

    library_id: str
    spot_diameter_fullres: float
    tissue_hires_scalef: float
    hires_shape: tuple[int, int, int]
    has_fullres: bool


@dataclass(frozen=True)
class SpatialSource:
    """The spatial structure of one source dataset."""

    assay: str
    is_single: bool
    n_obs: int
    positions_columns: int  # obsm["spatial"]'s columns; the first two are the position
    positions_dtype: str  # numpy dtype name, e.g. "int64", "float64"
    library: SpatialLibrary | None  # single Visium sections only


def _item(node: h5py.Dataset) -> Any:
    value = node[()]
    return value.item() if isinstance(value, np.generic | np.ndarray) and np.size(value) == 1 else value


def _library_problems(h5: H5AD, group: h5py.Group, library_id: str) -> list[InputError]:
    base = f"uns/spatial/{library_id}"
    out: list[InputError] = []
    if not isinstance(group, h5py.Group):
        return [h5.error("is not a group (a library holds images and scalefactors)", field=base)]
    images = group.get("images")
    hires = images.get("hires") if isinstance(images, h5py.Group) else None
    if not isinstance(hires, h5py.Dataset):
        out.append(h5.error("missing: a single Visium section MUST have its hires image", field=f"{base}/images/hires"))
    elif hires.dtype != np.uint8 or hires.ndim != 3 or hires.shape[2] not in (3, 4):
        out.append(
            h5.error(
                f"has shape {hires.shape} and dtype {hires.dtype}; it must be uint8, height x width x 3 or 4",
                field=f"{base}/images/hires",
            )
        )
    factors = group.get("scalefactors")
    for key in SCALEFACTORS:
        node = factors.get(key) if isinstance(factors, h5py.Group) else None
        value = _item(node) if isinstance(node, h5py.Dataset) else None
        if value is None:
            out.append(h5.error("missing", field=f"{base}/scalefactors/{key}"))
        elif isinstance(value, bool | bytes | str) or not np.isfinite(value) or value <= 0:
            out.append(h5.error(f"is {value!r}; it must be a positive number", field=f"{base}/scalefactors/{key}"))
    return out


def _positions_problems(h5: H5AD, n_obs: int) -> list[InputError]:
    node = h5.file.get("obsm/spatial")
    if not isinstance(node, h5py.Dataset):
        return [h5.error("missing: a spatial dataset MUST have its spot or bead positions", field="obsm/spatial")]
    if node.dtype.kind not in "fiu":
        return [h5.error(f"has dtype {node.dtype}; positions must be numbers (kind f, i or u)", field="obsm/spatial")]
    if node.ndim != 2 or node.shape[0] != n_obs or node.shape[1] < 2:
        return [
            h5.error(
                f"has shape {node.shape} for {n_obs} observations; it must be ({n_obs}, 2 or more)",
                field="obsm/spatial",
            )
        ]
    return []


def spatial_problems(h5: H5AD, assay: str) -> list[InputError]:
    """Return every structural problem of ``h5``'s spatial data (``assay``: the dataset's one assay term id)."""
    spatial = h5.file.get("uns/spatial")
    if not isinstance(spatial, h5py.Group):
        return [h5.error(f"missing: an {assay} dataset MUST have uns['spatial'] (dataset schema 7.0.0)", "uns/spatial")]
    out: list[InputError] = []
    node = spatial.get("is_single")
    is_single = _item(node) if isinstance(node, h5py.Dataset) else None
    if not isinstance(is_single, bool | np.bool_):
        out.append(h5.error(f"is {is_single!r}; it must be True or False", field="uns/spatial/is_single"))
    libraries = sorted(k for k in spatial if k != "is_single")
    if assay == VISIUM_V1 and is_single is True:
        if len(libraries) != 1:
            ids = ", ".join(repr(k) for k in libraries) or "none"
            reason = f"holds {len(libraries)} library ids ({ids}); a single Visium section MUST have exactly one"
            out.append(h5.error(reason, field="uns/spatial"))
        else:
            out += _library_problems(h5, spatial[libraries[0]], libraries[0])
    elif libraries:
        ids = ", ".join(repr(k) for k in libraries)
        reason = f"holds library ids ({ids}); only a single Visium section may have one (dataset schema 7.0.0)"
        out.append(h5.error(reason, field="uns/spatial"))
    n_obs = len(h5.dataframe_index("obs"))
    return out + _positions_problems(h5, n_obs)


def read_spatial(h5: H5AD, assay: str) -> SpatialSource:
    """Return ``h5``'s spatial structure; raises the first of :func:`spatial_problems` if there is one."""
    problems = spatial_problems(h5, assay)
    if problems:
        raise problems[0]
    spatial = h5.file["uns/spatial"]
    positions = h5.file["obsm/spatial"]
    library: SpatialLibrary | None = None
    libraries = [k for k in spatial if k != "is_single"]
    if libraries:
        group = spatial[libraries[0]]
        factors = group["scalefactors"]
        h, w, c = group["images/hires"].shape
        library = SpatialLibrary(
            library_id=libraries[0],
            spot_diameter_fullres=float(_item(factors["spot_diameter_fullres"])),
            tissue_hires_scalef=float(_item(factors["tissue_hires_scalef"])),
            hires_shape=(int(h), int(w), int(c)),
            has_fullres="fullres" in group["images"],
        )
    return SpatialSource(
        assay=assay,
        is_single=bool(_item(spatial["is_single"])),
        n_obs=int(positions.shape[0]),
        positions_columns=int(positions.shape[1]),
        positions_dtype=str(positions.dtype),
        library=library,
    )


def read_positions(h5: H5AD, start: int = 0, stop: int | None = None) -> npt.NDArray[np.float64]:
    """Return rows [start, stop) of ``obsm["spatial"]``'s first two columns (x, y) as float64.

    Raises :class:`InputError` naming the first row (and its obs name) that holds NaN or infinity.
    """
    node = h5.file["obsm/spatial"]
    stop = node.shape[0] if stop is None else stop
    xy = np.asarray(node[start:stop, :2], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
    if bad.size:
        row = start + int(bad[0])
        name = h5.dataframe_index("obs")[row]
        raise h5.error(
            f"row {row} (observation {name!r}) is {xy[bad[0]].tolist()}; positions MUST NOT be NaN or infinite",
            field="obsm/spatial",
        )
    return xy


def iter_hires(h5: H5AD, library_id: str, *, max_pixels: int = 1 << 20) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Yield ``(first row, rows)`` bands of the library's hires image, about ``max_pixels`` pixels each."""
    node = h5.file[f"uns/spatial/{library_id}/images/hires"]
    h, w = node.shape[:2]
    band = max(1, max_pixels // max(w, 1))
    for a in range(0, h, band):
        yield a, np.asarray(node[a : min(h, a + band)], dtype=np.uint8)

"""Synthetic CELLxGENE dataset schema 7.0.0 spatial H5AD files: Visium Spatial Gene Expression V1 and Slide-seqV2.

The inputs of Census 2.4.0's ``census_spatial_sequencing`` (issue #16). Built on the 7.0.0 generator
(:mod:`census_builder.testing.synthetic_7`): its writer lays down var, uns, the counts and the non-spatial obs
columns, then this module rewrites obs with the spatial rules and adds ``obsm["spatial"]`` and ``uns["spatial"]``.
What the 7.0.0 text requires of these assays, and how it is met here:

- ``uns["spatial"]`` holds ``is_single`` and nothing else for Slide-seqV2; for a single Visium section also exactly
  one ``library_id`` with ``images["hires"]`` (uint8, H x W x 3, largest side 2000 pixels; ``images["fullres"]``
  optional) and ``scalefactors`` (``spot_diameter_fullres``, ``tissue_hires_scalef``).
- ``obsm["spatial"]``: one row per observation, two columns, no NaN or infinity. Visium: the spot centres in
  full-resolution pixels, ``[pxl_col_in_fullres, pxl_row_in_fullres]`` (x, y: the order scanpy's ``read_visium``
  writes), int64 as in ``tissue_positions.csv``. Slide-seqV2: bead positions (float64) at random in a round puck,
  some beads sharing another bead's position (real pucks have such repeats).
- Visium with ``is_single``: the unfiltered matrix (``raw_feature_bc_matrix``), so exactly 4992 rows, one per spot
  of the V1 capture area's hexagonal grid (78 rows x 64 spots; ``array_row`` 0..77, ``array_col`` 0..127 with the
  row's parity); ``in_tissue`` 1 for spots whose centre lies in an elliptical tissue section, else 0. Spots outside
  the tissue have ``cell_type`` "unknown" and may hold no counts at all (the first one holds none), but one of them
  has counts; every in-tissue spot has counts.
- ``in_tissue``, ``array_row``, ``array_col`` only for single Visium sections (7.0.0: "otherwise, this key MUST NOT
  be present"); ``suspension_type`` "na" (spatial transcriptomics); one assay for all observations; one tissue,
  donor, sex, development stage, disease and ethnicity per dataset (one section of one donor); ``tissue_type``
  "tissue"; ``is_primary_data`` True, and False everywhere when ``is_single`` is False.
- The hires image is deterministic from the seed and cheap: a smooth background gradient, a pink tissue region
  with a soft texture, and the spot footprints (darker disks of ``spot_diameter_fullres``), all computed from the
  same full-resolution geometry as the positions, so spots, image and scale factors agree. It is rendered and
  written band by band of rows straight into the file (never held whole, never copied).

Switches plant the bad spatial inputs issue #16 lists, for preflight tests: ``missing_image``, ``positions``
("one_column", "short", "nan"), ``n_library_ids`` > 1 and ``is_single`` False (7.0.0-valid, but Census 2.4.0 keeps
only single sections). :meth:`SpatialSpec.planted_problems` names the rule each one breaks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
from anndata.io import read_elem, write_elem

from census_builder.errors import UsageError
from census_builder.testing.synthetic import Layout
from census_builder.testing.synthetic_7 import (
    HUMAN,
    MOUSE,
    ORGANISMS,
    DatasetSpec7,
    example_gene_expression_specs_7,
    example_specs_7,
    write_corpus_with,
    write_h5ad_7,
)

VISIUM_V1 = "EFO:0022857"
SLIDE_SEQ_V2 = "EFO:0030062"
#: The spatial assays of Census 2.4.0: term id -> label (as the 7.0.0 EFO has it).
SPATIAL_ASSAYS = {VISIUM_V1: "Visium Spatial Gene Expression V1", SLIDE_SEQ_V2: "Slide-seqV2"}

# The Visium V1 capture area (Space Ranger): 78 rows of 64 spots on a hexagonal grid, 100 um between neighbouring
# spot centres, 55 um spot diameter. array_col counts half-spacings, so a row holds every other column.
VISIUM_ROWS = 78
VISIUM_COLS = 128
VISIUM_SPOTS = VISIUM_ROWS * VISIUM_COLS // 2  # 4992: the rows the unfiltered matrix MUST have (7.0.0)
SPOT_PITCH_UM = 100.0
SPOT_DIAMETER_UM = 55.0
FRAME_UM = 8000.0  # the image's shorter side covers this much of the slide (the 6.5 mm area plus a margin)
HIRES_MAX_SIDE = 2000  # 7.0.0: the largest dimension of images["hires"] MUST be 2000 pixels (V1)
PUCK_RADIUS = 1500.0  # Slide-seqV2: a 3 mm puck, bead positions in um
PLACEHOLDER_ASSAY = "EFO:0009922"  # what synthetic_7 writes first; replaced by the spatial assay

Positions = Literal["ok", "one_column", "short", "nan"]
POSITIONS = ("ok", "one_column", "short", "nan")
UNKNOWN = ("unknown", "unknown")


@dataclass(frozen=True)
class SpatialSpec:
    """What one synthetic 7.0.0 spatial H5AD holds, and which bad spatial input to plant (all off by default)."""

    dataset_id: str
    assay: str = VISIUM_V1
    organism: str = HUMAN
    n_spots: int | None = None  # None: 4992 for Visium V1 (the unfiltered matrix), 1000 beads for Slide-seqV2
    n_genes: int = 300
    n_spike_ins: int = 0
    layout: Layout = "csr"
    use_raw: bool = False
    density: float = 0.1
    tissue: tuple[str, str] = ("UBERON:0000955", "brain")
    library_id: str = ""  # "" -> "<dataset_id>_A1"
    hires_shape: tuple[int, int] = (HIRES_MAX_SIDE, HIRES_MAX_SIDE)  # (height, width) of images["hires"]
    tissue_hires_scalef: float = 0.08  # hires pixels per full-resolution pixel
    fullres: bool = False  # also write images["fullres"] (hires_shape / tissue_hires_scalef: mind its size)
    repeated_fraction: float = 0.02  # Slide-seqV2: share of beads placed on another bead's position
    title: str = ""
    collection_id: str = "collection-spatial"
    doi: str = ""
    seed: int = 0
    chunk_cells: int = 20_000
    # bad inputs (issue #16's list)
    is_single: bool = True
    missing_image: bool = False  # Visium: images has no "hires"
    n_library_ids: int = 1  # Visium: more than one library_id in uns["spatial"]
    positions: Positions = "ok"  # obsm["spatial"] with one column, one row too few, or a NaN

    def with_(self, **changes: object) -> SpatialSpec:
        """Return a copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def is_visium(self) -> bool:
        """Whether the assay is Visium Spatial Gene Expression V1 (else Slide-seqV2)."""
        return self.assay == VISIUM_V1

    @property
    def has_library(self) -> bool:
        """Whether ``uns["spatial"]`` holds a library (image, scale factors): single Visium sections only."""
        return self.is_visium and self.is_single

    @property
    def n_obs(self) -> int:
        """The number of observations (spots or beads)."""
        if self.n_spots is not None:
            return self.n_spots
        return VISIUM_SPOTS if self.is_visium else 1000

    @property
    def library_ids(self) -> tuple[str, ...]:
        """The library ids written to ``uns["spatial"]`` (none unless :attr:`has_library`)."""
        if not self.has_library:
            return ()
        first = self.library_id or f"{self.dataset_id}_A1"
        return (first, *(f"{first}_{k + 2}" for k in range(self.n_library_ids - 1)))

    def check(self) -> None:
        """Raise :class:`UsageError` naming the dataset and field if this spec cannot be written."""
        where = f"synthetic spatial dataset {self.dataset_id!r}"
        if self.assay not in SPATIAL_ASSAYS:
            raise UsageError(f"{where}: assay {self.assay!r} is not one of {', '.join(SPATIAL_ASSAYS)}")
        if self.organism not in ORGANISMS:
            raise UsageError(f"{where}: organism {self.organism!r} is not one of {', '.join(ORGANISMS)}")
        limit = VISIUM_SPOTS if self.is_visium else 10_000_000
        if not 1 <= self.n_obs <= limit:
            raise UsageError(f"{where}: n_spots is {self.n_obs}, must be 1..{limit}")
        if self.positions not in POSITIONS:
            raise UsageError(f"{where}: positions {self.positions!r} is not one of {', '.join(POSITIONS)}")
        if min(self.hires_shape) < 1 or len(self.hires_shape) != 2:
            raise UsageError(f"{where}: hires_shape {self.hires_shape} must be two positive sizes (height, width)")
        if not 0 < self.tissue_hires_scalef <= 1:
            raise UsageError(f"{where}: tissue_hires_scalef is {self.tissue_hires_scalef}, must be in (0, 1]")
        if not 0 <= self.repeated_fraction < 1:
            raise UsageError(f"{where}: repeated_fraction is {self.repeated_fraction}, must be in [0, 1)")
        if self.n_library_ids < 1:
            raise UsageError(f"{where}: n_library_ids is {self.n_library_ids}, must be at least 1")
        if not self.has_library and (self.missing_image or self.n_library_ids != 1 or self.fullres):
            raise UsageError(
                f"{where}: missing_image, n_library_ids and fullres need a library, which only a Visium dataset "
                "with is_single True has"
            )

    def planted_problems(self) -> list[str]:
        """Return the rules this spec's file breaks (empty for a valid 7.0.0 source that Census 2.4.0 accepts)."""
        out: list[str] = []
        if self.has_library and self.n_obs != VISIUM_SPOTS:
            out.append(f"7.0.0 X: a single Visium V1 section's unfiltered matrix MUST contain {VISIUM_SPOTS} rows")
        if self.has_library and max(self.hires_shape) != HIRES_MAX_SIDE:
            out.append("7.0.0 uns['spatial'][library_id]['images']['hires']: largest dimension MUST be 2000 pixels")
        if self.missing_image:
            out.append("7.0.0 uns['spatial'][library_id]['images']['hires']: Curator MUST annotate")
        if self.n_library_ids > 1:
            out.append("7.0.0 uns['spatial'][library_id]: There MUST be only one library_id")
        if self.positions == "one_column":
            out.append("7.0.0 obsm['spatial']: MUST include at least two columns")
        if self.positions == "short":
            out.append("7.0.0 obsm['spatial']: MUST have the same number of rows as X")
        if self.positions == "nan":
            out.append("7.0.0 obsm['spatial']: MUST NOT contain Not a Number (numpy.nan) values")
        if not self.is_single:
            out.append("Census 2.4.0 spatial assays: is_single MUST be True")
        return out

    def dataset_spec_7(self) -> DatasetSpec7:
        """Return the 7.0.0 spec whose file this module starts from (var, uns, counts, non-spatial obs)."""
        return DatasetSpec7(
            dataset_id=self.dataset_id,
            organism=self.organism,
            n_cells=self.n_obs,
            n_genes=self.n_genes,
            n_spike_ins=self.n_spike_ins,
            n_sars_cov_2=0,
            layout=self.layout,
            use_raw=self.use_raw,
            assays=(PLACEHOLDER_ASSAY,),
            tissue_types=("tissue",),
            tissues=(self.tissue,),
            density=self.density,
            zero_cell=self.has_library,  # the first spot, outside the tissue, holds no counts
            excluded_only_gene=False,
            n_donors=1,
            primary_fraction=1.0,
            title=self.title or f"Synthetic {SPATIAL_ASSAYS[self.assay]} dataset {self.dataset_id}",
            collection_id=self.collection_id,
            doi=self.doi,
            seed=self.seed,
            chunk_cells=self.chunk_cells,
        )


# -- Visium geometry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisiumGeometry:
    """Where a section's spots and tissue lie, in full-resolution pixels; the image is drawn from the same numbers."""

    fullres_shape: tuple[int, int]  # (height, width)
    um_per_pixel: float
    origin: tuple[float, float]  # (x, y) of spot array_row 0, array_col 0
    tissue: tuple[float, float, float, float]  # ellipse: centre x, centre y, radius x, radius y

    @property
    def dx(self) -> float:
        """Full-resolution pixels per ``array_col`` step (half the spot pitch)."""
        return SPOT_PITCH_UM / 2 / self.um_per_pixel

    @property
    def dy(self) -> float:
        """Full-resolution pixels per ``array_row`` step (the hexagonal grid's row spacing)."""
        return SPOT_PITCH_UM * math.sqrt(3) / 2 / self.um_per_pixel

    @property
    def spot_diameter_fullres(self) -> float:
        """The spot diameter in full-resolution pixels (``scalefactors["spot_diameter_fullres"]``)."""
        return SPOT_DIAMETER_UM / self.um_per_pixel

    def centres(self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Return the spots' ``(pxl_col_in_fullres, pxl_row_in_fullres)``, whole pixels as Space Ranger writes them."""
        x = np.rint(self.origin[0] + cols * self.dx)
        y = np.rint(self.origin[1] + rows * self.dy)
        return np.stack([x, y], axis=1).astype(np.int64)

    def in_tissue(self, xy: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Return 1 for positions inside the tissue ellipse, else 0."""
        cx, cy, rx, ry = self.tissue
        return ((((xy[:, 0] - cx) / rx) ** 2 + ((xy[:, 1] - cy) / ry) ** 2) <= 1.0).astype(np.int64)


def visium_grid() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return ``(array_row, array_col)`` of the 4992 V1 spots, row by row (a row's columns share its parity)."""
    rows = np.repeat(np.arange(VISIUM_ROWS, dtype=np.int64), VISIUM_COLS // 2)
    cols = np.tile(np.arange(0, VISIUM_COLS, 2, dtype=np.int64), VISIUM_ROWS) + rows % 2
    return rows, cols


def visium_geometry(spec: SpatialSpec) -> VisiumGeometry:
    """Return the section geometry ``spec`` implies: image sizes, pixel size, grid placement, tissue (from the seed)."""
    h, w = spec.hires_shape
    full = (round(h / spec.tissue_hires_scalef), round(w / spec.tissue_hires_scalef))
    um = FRAME_UM / min(full)
    span_x = (VISIUM_COLS - 1) * SPOT_PITCH_UM / 2 / um
    span_y = (VISIUM_ROWS - 1) * SPOT_PITCH_UM * math.sqrt(3) / 2 / um
    ox, oy = (full[1] - span_x) / 2, (full[0] - span_y) / 2
    r = np.random.default_rng([spec.seed, 1])
    cx = ox + span_x * (0.5 + r.uniform(-0.08, 0.08))
    cy = oy + span_y * (0.5 + r.uniform(-0.08, 0.08))
    rx, ry = span_x * r.uniform(0.25, 0.4), span_y * r.uniform(0.25, 0.4)
    return VisiumGeometry(full, um, (ox, oy), (cx, cy, rx, ry))


def _render_rows(
    geo: VisiumGeometry, scale: float, width: int, start: int, stop: int, seed: int
) -> npt.NDArray[np.uint8]:
    """Return image rows [start, stop) (RGB uint8) of an image with ``scale`` pixels per full-resolution pixel."""
    r = np.random.default_rng([seed, 2])
    top, bottom = r.uniform(215, 245, 3), r.uniform(215, 245, 3)  # background gradient colours
    tissue_rgb = np.array([205.0, 120.0, 170.0]) + r.uniform(-15, 15, 3)  # an H&E-like pink
    period = r.uniform(300, 900, 2)  # of the tissue texture, in full-resolution pixels
    ys = (np.arange(start, stop, dtype=np.float64) + 0.5) / scale
    xs = (np.arange(width, dtype=np.float64) + 0.5) / scale
    fy, fx = ys[:, None] / geo.fullres_shape[0], xs[None, :] / geo.fullres_shape[1]
    mix = np.clip((fy + fx) / 2, 0, 1)[..., None]
    img = top * (1 - mix) + bottom * mix
    cx, cy, rx, ry = geo.tissue
    inside = ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1.0
    texture = 0.85 + 0.15 * np.sin(xs[None, :] / period[0]) * np.cos(ys[:, None] / period[1])
    img = np.where(inside[..., None], tissue_rgb * texture[..., None], img)
    # Spot footprints: the nearest spot centre is among the grid's three nearest rows (radius < half the pitch).
    best = np.full((ys.size, xs.size), np.inf)
    u = (xs[None, :] - geo.origin[0]) / geo.dx
    row0 = np.rint((ys - geo.origin[1]) / geo.dy).astype(np.int64)
    for dr in (-1, 0, 1):
        row = (row0 + dr)[:, None]
        col = 2 * np.rint((u - row % 2) / 2).astype(np.int64) + row % 2
        valid = (row >= 0) & (row < VISIUM_ROWS) & (col >= 0) & (col < VISIUM_COLS)
        px = np.rint(geo.origin[0] + col * geo.dx)
        py = np.rint(geo.origin[1] + row * geo.dy)
        d2 = (xs[None, :] - px) ** 2 + (ys[:, None] - py) ** 2
        best = np.minimum(best, np.where(valid, d2, np.inf))
    spot = best <= (geo.spot_diameter_fullres / 2) ** 2
    img = np.where(spot[..., None], img * 0.8, img)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _write_image(
    group: h5py.Group, key: str, geo: VisiumGeometry, shape: tuple[int, int], scale: float, seed: int
) -> None:
    """Render and write one image band by band (about 2**18 pixels at a time)."""
    h, w = shape
    band = max(1, min(h, (1 << 18) // max(w, 1)))
    ds = group.create_dataset(key, shape=(h, w, 3), dtype=np.uint8, chunks=(band, w, 3))
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"
    for a in range(0, h, band):
        b = min(h, a + band)
        ds[a:b] = _render_rows(geo, scale, w, a, b, seed)


# -- obs, obsm, uns --------------------------------------------------------------------------------------


def _barcodes(rng: np.random.Generator, n: int, length: int, suffix: str) -> list[str]:
    """Return ``n`` distinct random ACGT barcodes of ``length`` bases (10x style with ``suffix`` "-1")."""
    values = np.empty(0, dtype=np.int64)
    while values.size < n:  # distinct, in the order first drawn
        drawn = np.concatenate([values, rng.integers(0, 4**length, size=n + 16, dtype=np.int64)])
        values = drawn[np.sort(np.unique(drawn, return_index=True)[1])]
    values = values[:n]
    bases = np.array(list("ACGT"))
    digits = (values[:, None] // (4 ** np.arange(length - 1, -1, -1, dtype=np.int64))[None, :]) % 4
    return ["".join(row) + suffix for row in bases[digits]]


def _slide_seq_positions(spec: SpatialSpec, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Return bead positions (x, y) uniform in a round puck, some beads repeating another bead's position."""
    n = spec.n_obs
    radius = PUCK_RADIUS * np.sqrt(rng.random(n))
    angle = rng.uniform(0, 2 * np.pi, n)
    xy = np.round(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1) + PUCK_RADIUS + 100, 2)
    n_rep = round(spec.repeated_fraction * n) if n > 1 else 0
    if n_rep:
        dst = rng.choice(np.arange(1, n), size=min(n_rep, n - 1), replace=False)
        xy[dst] = xy[rng.integers(0, dst)]  # each onto an earlier bead
    return xy


def _spatial_obs(
    spec: SpatialSpec, obs: pd.DataFrame, rng: np.random.Generator, in_tissue: npt.NDArray[np.int64] | None
) -> pd.DataFrame:
    """Return obs with the 7.0.0 spatial rules applied (see the module docstring)."""
    out = obs.copy()
    n = len(out)
    out.index = pd.Index(_barcodes(rng, n, 16, "-1") if spec.is_visium else _barcodes(rng, n, 14, ""))
    out["assay_ontology_term_id"] = spec.assay
    out["assay"] = SPATIAL_ASSAYS[spec.assay]
    out["suspension_type"] = "na"
    out["tissue_type"] = "tissue"
    for key in ("development_stage", "disease", "self_reported_ethnicity", "sex"):  # one donor, one section
        for c in (f"{key}_ontology_term_id", key):
            out[c] = str(out[c].iloc[0])
    out["is_primary_data"] = np.full(n, spec.is_single, dtype=bool)
    if in_tissue is not None:
        rows, cols = visium_grid()
        out["in_tissue"] = in_tissue
        out["array_row"] = rows[:n]
        out["array_col"] = cols[:n]
        outside = in_tissue == 0
        ct_id = out["cell_type_ontology_term_id"].astype(str).to_numpy()
        ct = out["cell_type"].astype(str).to_numpy()
        ct_id[outside], ct[outside] = UNKNOWN
        out["cell_type_ontology_term_id"], out["cell_type"] = ct_id, ct
    for c in out.columns:
        if c not in {"is_primary_data", "observation_joinid", "in_tissue", "array_row", "array_col"}:
            out[c] = pd.Categorical(out[c].astype(str))
    return out


def _bad_positions(xy: npt.NDArray[np.generic], how: Positions) -> npt.NDArray[np.generic]:
    if how == "one_column":
        return xy[:, :1]
    if how == "short":
        return xy[:-1]
    if how == "nan":
        bad = xy.astype(np.float64)
        bad[len(bad) // 2, 0] = np.nan
        return bad
    return xy


def write_spatial_h5ad(path: str | Path, spec: SpatialSpec) -> Path:
    """Write one synthetic 7.0.0 Visium V1 or Slide-seqV2 H5AD (see the module docstring); returns the path.

    Raises :class:`UsageError` if ``spec`` cannot be written (see :meth:`SpatialSpec.check`).
    """
    spec.check()
    rng = np.random.default_rng([spec.seed, 3])
    geo: VisiumGeometry | None = None
    in_tissue: npt.NDArray[np.int64] | None = None
    xy: npt.NDArray[np.generic]
    if spec.is_visium:
        geo = visium_geometry(spec)
        rows, cols = visium_grid()
        n = spec.n_obs
        picked = np.arange(n) if spec.is_single else np.arange(n) % VISIUM_SPOTS
        xy = geo.centres(rows[picked], cols[picked])
        if spec.has_library:
            in_tissue = geo.in_tissue(xy)
            if in_tissue[0] != 0:  # cannot happen (the tissue never reaches the grid's corner); the counts rely on it
                raise RuntimeError(f"synthetic spatial dataset {spec.dataset_id!r}: spot 0 lies in the tissue")
    else:
        xy = _slide_seq_positions(spec, rng)
    path = write_h5ad_7(path, spec.dataset_spec_7())  # var, uns, counts (the first spot without any), obs
    with h5py.File(path, "r+") as f:
        obs = _spatial_obs(spec, read_elem(f["obs"]), rng, in_tissue)
        del f["obs"]
        write_elem(f, "obs", obs)
        del f["obsm"]
        write_elem(f, "obsm", {"spatial": _bad_positions(xy, spec.positions)})
        write_elem(f["uns"], "spatial", {"is_single": np.bool_(spec.is_single)})
        if geo is not None and spec.has_library:
            for library_id in spec.library_ids:
                _write_library(f["uns/spatial"], library_id, spec, geo)
    return path


def _write_library(spatial: h5py.Group, library_id: str, spec: SpatialSpec, geo: VisiumGeometry) -> None:
    scalefactors = {
        "spot_diameter_fullres": float(geo.spot_diameter_fullres),
        "tissue_hires_scalef": float(spec.tissue_hires_scalef),
    }
    write_elem(spatial, library_id, {"images": {}, "scalefactors": scalefactors})
    images = spatial[library_id]["images"]
    if not spec.missing_image:
        _write_image(images, "hires", geo, spec.hires_shape, spec.tissue_hires_scalef, spec.seed)
    if spec.fullres:
        _write_image(images, "fullres", geo, geo.fullres_shape, 1.0, spec.seed)


# -- corpora -----------------------------------------------------------------------------------------------


def example_spatial_specs() -> list[SpatialSpec]:
    """Return one Visium V1 section (human brain) and one Slide-seqV2 puck (mouse kidney), valid for Census 2.4.0."""
    return [
        SpatialSpec("human-brain-visium-7", assay=VISIUM_V1, organism=HUMAN, doi="10.0000/synthetic.v", seed=21),
        SpatialSpec(
            "mouse-kidney-slideseq-7",
            assay=SLIDE_SEQ_V2,
            organism=MOUSE,
            n_spots=1500,
            tissue=("UBERON:0002113", "kidney"),
            use_raw=True,
            collection_id="collection-spatial-1",
            seed=22,
        ),
    ]


def write_spatial_corpus(
    out_dir: str | Path, specs: Sequence[SpatialSpec], *, manifest_name: str = "manifest.csv"
) -> Path:
    """Write each dataset as ``<out_dir>/<dataset_id>.h5ad`` and a manifest listing them; returns the manifest.

    The manifest has the columns of :func:`census_builder.testing.synthetic_7.write_corpus_7`'s.
    """
    return write_corpus_with(out_dir, specs, write_spatial_h5ad, manifest_name=manifest_name)


def write_example_corpus_7(out_dir: str | Path) -> Path:
    """Write the Census 2.4.0 example corpus: example_specs_7(), example_gene_expression_specs_7() and
    example_spatial_specs(), one manifest."""

    def write(path: Path, spec: DatasetSpec7 | SpatialSpec) -> Path:
        return write_spatial_h5ad(path, spec) if isinstance(spec, SpatialSpec) else write_h5ad_7(path, spec)

    specs: list[DatasetSpec7 | SpatialSpec] = [
        *example_specs_7(),
        *example_gene_expression_specs_7(),
        *example_spatial_specs(),
    ]
    return write_corpus_with(out_dir, specs, write)

"""What a source H5AD holds for Census spatial data: the kept spots, their positions, the Visium library.

The validator's own reading of the CELLxGENE dataset schema 7.0.0 spatial slots (``uns["spatial"]``,
``obsm["spatial"]``, the ``in_tissue`` / ``array_row`` / ``array_col`` obs columns), for
validation.spatial. Positions and the hires image are read in row ranges, never whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from validation.expected.filters import as_bools
from validation.expected.spec import Spec
from validation.inputs.source import SourceError, SourceFile

SPATIAL_OBS_COLUMNS = ("in_tissue", "array_row", "array_col")
VISIUM_V1 = "EFO:0022857"  # the one spatial assay with images (Census schema 2.4.0)
ROWS = 65_536  # source rows per read of obsm["spatial"] and of the obs columns


@dataclass
class SpatialDataset:
    """One source dataset's spatial observations that the release must hold (``kept_rows``: source rows)."""

    dataset_id: str
    path: str
    organism: str | None = None  # census key of the organism
    assay: str = ""
    is_single: bool | None = None
    exclusion: str = ""  # why it contributes no spatial cells ("" if it does or holds no spatial assay)
    kept_rows: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    observation_joinids: npt.NDArray[np.object_] = field(default_factory=lambda: np.zeros(0, object))
    is_primary: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    spatial_obs: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)  # absent: not in the source
    library_ids: list[str] = field(default_factory=list)
    spot_diameter_fullres: float | None = None
    tissue_hires_scalef: float | None = None
    hires_shape: tuple[int, ...] | None = None

    @property
    def n_cells(self) -> int:
        """The number of spatial observations the release must hold."""
        return int(self.kept_rows.size)

    @property
    def is_visium(self) -> bool:
        """Whether the dataset is Visium Spatial Gene Expression V1 (the assay with images)."""
        return self.assay == VISIUM_V1


def _scalar(node: Any) -> Any:
    v = node[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else None
    return v.item() if isinstance(v, np.generic) else v


def read_spatial_dataset(spec: Spec, dataset_id: str, path: str, organism: str | None, term: str) -> SpatialDataset:
    """Return the dataset's spatial observations the release must hold.

    Kept (decision 1 of issue #16): a spatial assay, a kept tissue_type, the Census organism, and
    ``uns["spatial"]["is_single"]`` True; every such row, whatever its is_primary_data or in_tissue.
    """
    out = SpatialDataset(dataset_id, path, organism)
    with SourceFile(path) as src:
        n = src.n_rows("obs")
        codes, names = src.codes("obs", "assay_ontology_term_id")
        spatial = np.array([str(a) in spec.spatial_assays for a in names] + [False], dtype=bool)[codes]
        if not spatial.any():
            return out
        used = {str(names[c]) for c in np.unique(codes[spatial])}
        out.assay = sorted(used)[0]
        if organism is None:
            out.exclusion = f"its organism {term or '(none)'} is not a Census organism"
            return out
        node = src.f.get("uns/spatial/is_single")
        out.is_single = bool(_scalar(node)) if isinstance(node, h5py.Dataset) else None
        if out.is_single is not True:
            out.exclusion = (
                f'uns["spatial"]["is_single"] is {out.is_single}: Census schema 2.4.0 "Otherwise, Census MUST NOT '
                'include the corresponding observations (cells)."'
            )
            return out
        tcodes, tnames = src.codes("obs", "tissue_type")
        kept_type = np.array([str(t) in spec.tissue_types_kept for t in tnames] + [False], dtype=bool)[tcodes]
        keep = spatial & kept_type
        out.kept_rows = np.nonzero(keep)[0].astype(np.int64)
        oj = (
            src.column("obs", "observation_joinid") if src.has_column("obs", "observation_joinid") else src.index("obs")
        )
        out.observation_joinids = np.asarray(oj, dtype=object)[keep]
        out.is_primary = as_bools(src.column("obs", "is_primary_data"))[keep]
        for c in SPATIAL_OBS_COLUMNS:
            if src.has_column("obs", c):
                out.spatial_obs[c] = np.asarray(src.column("obs", c), dtype=np.int64)[keep]
        group = src.f.get("uns/spatial")
        if isinstance(group, h5py.Group):
            out.library_ids = sorted(k for k in group if k != "is_single")
        if out.is_visium and len(out.library_ids) == 1:
            lib = group[out.library_ids[0]] if isinstance(group, h5py.Group) else None
            if isinstance(lib, h5py.Group):
                sf = lib.get("scalefactors")
                if isinstance(sf, h5py.Group):
                    if "spot_diameter_fullres" in sf:
                        out.spot_diameter_fullres = float(_scalar(sf["spot_diameter_fullres"]))
                    if "tissue_hires_scalef" in sf:
                        out.tissue_hires_scalef = float(_scalar(sf["tissue_hires_scalef"]))
                hires = lib.get("images/hires")
                if isinstance(hires, h5py.Dataset):
                    out.hires_shape = tuple(int(s) for s in hires.shape)
        if n and out.n_cells == 0:
            out.exclusion = "no spatial observation of a kept tissue_type"
    return out


def positions(path: str, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Return the first two columns of ``obsm["spatial"]`` at source ``rows`` (read in row ranges), as float64."""
    out = np.zeros((rows.size, 2), dtype=np.float64)
    with SourceFile(path) as src:
        node = src.f.get("obsm/spatial")
        if not isinstance(node, h5py.Dataset) or node.ndim != 2 or node.shape[1] < 2:
            raise SourceError('obsm["spatial"] is missing or has fewer than two columns')
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        for a in range(0, int(node.shape[0]), ROWS):
            lo, hi = np.searchsorted(sorted_rows, [a, a + ROWS])
            if lo == hi:
                continue
            block = np.asarray(node[a : a + ROWS, :2], dtype=np.float64)
            out[order[lo:hi]] = block[sorted_rows[lo:hi] - a]
    return out


def hires_bands(path: str, library_id: str, band_rows: int) -> Iterator[tuple[int, npt.NDArray[Any]]]:
    """Yield (first row, rows) of ``uns["spatial"][library_id]["images"]["hires"]``, ``band_rows`` rows at a time."""
    with SourceFile(path) as src:
        node = src.f.get(f"uns/spatial/{library_id}/images/hires")
        if not isinstance(node, h5py.Dataset):
            raise SourceError(f'uns["spatial"]["{library_id}"]["images"]["hires"] is missing')
        for a in range(0, int(node.shape[0]), band_rows):
            yield a, np.asarray(node[a : a + band_rows])

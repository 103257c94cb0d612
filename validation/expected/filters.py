"""The Census cell filter, the validator's own copy: which source cells the release must hold."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from validation.expected.spec import Spec
from validation.inputs.source import SourceFile


def keep_rows(
    spec: Spec,
    organism_term: str,
    src: SourceFile,
    start: int | None = None,
    stop: int | None = None,
    *,
    spatial: bool = False,
) -> npt.NDArray[np.bool_]:
    """Apply the Census cell filter to obs rows [start, stop).

    Kept: cells of ``organism_term`` (the organism the dataset's cells go to: an obs column per cell, or the
    dataset's one organism in uns, as the schema data says), with an included assay (spatial assays are not
    included: their cells are never in census_data), of a kept tissue_type (1.3.0: tissue; 2.4.0: tissue,
    organoid). ``spatial``: census_spatial_sequencing's cells instead: a spatial assay, and only in a dataset
    whose ``uns["spatial"]["is_single"]`` is True (Census 2.4.0, "Spatial Assays").
    """

    def allowed(column: str, values: frozenset[str]) -> npt.NDArray[np.bool_]:
        codes, names = src.codes("obs", column, start, stop)
        ok = np.array([n in values for n in names] + [False], dtype=bool)  # the extra False: code -1 (NA)
        return ok[codes]

    spatial = spatial or spec.spatial_cells
    assays = spec.spatial_assays if spatial else spec.included_assays
    keep = allowed("assay_ontology_term_id", assays) & allowed("tissue_type", spec.tissue_types_kept)
    if spatial and src.uns_string("spatial/is_single") not in ("True", "true", "1"):
        keep[:] = False
    if spec.organism_in == "uns":
        return keep & (src.uns_string(spec.organism_key) == organism_term)
    return keep & allowed(spec.organism_key, frozenset([organism_term]))


def as_bools(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Return a boolean column as bools (a missing value: False)."""
    if values.dtype == bool:
        return values
    return np.array([bool(v) if v is not None else False for v in values], dtype=bool)

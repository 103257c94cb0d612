"""The Census cell filter, the validator's own copy: which source cells the release must hold."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from validation.expected.spec import Spec
from validation.inputs.source import SourceFile


def keep_rows(
    spec: Spec, organism_term: str, src: SourceFile, start: int | None = None, stop: int | None = None
) -> npt.NDArray[np.bool_]:
    """Apply the Census cell filter to obs rows [start, stop).

    Kept: cells of the organism of the dataset's genes, with an allowed assay, of primary tissue
    (tissue_type "tissue").
    """

    def allowed(column: str, values: frozenset[str]) -> npt.NDArray[np.bool_]:
        codes, names = src.codes("obs", column, start, stop)
        ok = np.array([n in values for n in names] + [False], dtype=bool)  # the extra False: code -1 (NA)
        return ok[codes]

    return (
        allowed("organism_ontology_term_id", frozenset([organism_term]))
        & allowed("assay_ontology_term_id", spec.included_assays)
        & allowed("tissue_type", spec.tissue_types_kept)
    )


def as_bools(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Return a boolean column as bools (a missing value: False)."""
    if values.dtype == bool:
        return values
    return np.array([bool(v) if v is not None else False for v in values], dtype=bool)

"""The one CLI build of a small mixed Census 2.4.0 corpus shared by the spatial tests (session fixture
``spatial_release`` in tests/conftest.py): tests/census_builder/build/test_build_spatial.py reads it,
tests/validation/test_spatial_end_to_end.py plants faults in copies of it, and
tests/census_builder/release/test_notes_spatial.py writes its release notes.

The corpus: a 10x dataset, a small Visium V1 section whose first spots are not primary data, a Slide-seqV2 puck
whose first beads are not a Census tissue type, and a Visium dataset that is not a single section. The build
ends with the independent validator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pandas as pd
import pytest

from census_builder.testing.synthetic_7 import MOUSE, DatasetSpec7, write_corpus_with, write_h5ad_7
from census_builder.testing.synthetic_spatial import SLIDE_SEQ_V2, SpatialSpec, write_spatial_h5ad
from tests.census_builder.build.h5ad_edits import rewrite

SPATIAL = "census_spatial_sequencing"
VISIUM = SpatialSpec("vis", n_spots=120, n_genes=20, hires_shape=(60, 40), tissue_hires_scalef=0.1, seed=3)
SLIDE = SpatialSpec("slide", assay=SLIDE_SEQ_V2, organism=MOUSE, n_spots=70, n_genes=20, use_raw=True, seed=4)
NOT_SINGLE = SpatialSpec("vis-multi", n_spots=30, n_genes=20, is_single=False, seed=5)
TENX = DatasetSpec7("human-10x", n_cells=30, n_genes=25, seed=1)
SPECS: list[Any] = [TENX, VISIUM, SLIDE, NOT_SINGLE]
SLIDE_DROPPED = 10  # the puck's first beads get tissue_type "primary cell culture": not a Census tissue type
SLIDE_KEPT = SLIDE.n_obs - SLIDE_DROPPED
NOT_PRIMARY = 7  # the Visium section's first spots: is_primary_data False (kept: "all cells MUST be included")


@dataclass(frozen=True)
class Built:
    corpus: Path
    root: Path  # DIR/VERSION

    @property
    def soma(self) -> str:
        return str(self.root / "soma")

    def source(self, dataset_id: str) -> anndata.AnnData:
        return anndata.read_h5ad(self.corpus / f"{dataset_id}.h5ad")


def _drop_first_beads(tissue_type: Any) -> pd.Categorical:
    values = np.asarray(tissue_type, dtype=object)
    values[:SLIDE_DROPPED] = "primary cell culture"
    return pd.Categorical(values)


def _not_primary(values: Any) -> Any:
    out = np.asarray(values, dtype=bool).copy()
    out[:NOT_PRIMARY] = False
    return out


def _write(path: Path, spec: Any) -> Path:
    return write_spatial_h5ad(path, spec) if isinstance(spec, SpatialSpec) else write_h5ad_7(path, spec)


def build_spatial_release(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Write the corpus and build release ``sp`` from it with the CLI (validated at the end): exit status 0."""
    from tests.conftest import run_main_once

    corpus = tmp_path_factory.mktemp("spatial-corpus")
    manifest = write_corpus_with(corpus, SPECS, _write)
    rewrite(corpus / "slide.h5ad", "obs/tissue_type", _drop_first_beads)  # the points of a filtered dataset
    rewrite(corpus / "vis.h5ad", "obs/is_primary_data", _not_primary)
    workdir = tmp_path_factory.mktemp("spatial-build")
    argv = ["build", "--census-schema", "2.4.0", "--version", "sp", "--manifest", str(manifest)]
    argv += ["--workdir", str(workdir), "--workers", "1", "--build-date", "2026-11-26", "--skip-host-check"]
    assert run_main_once(argv) == 0
    return Built(corpus=corpus, root=workdir / "sp")

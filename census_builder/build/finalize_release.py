"""Stage 5, finalize_release: consolidate, check X's nnz, stamp and move the release into place.

X keeps its fragments (only their metadata is consolidated), the other arrays are merged; the root
metadata is written and the release moved to ``DIR/VERSION/soma``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from census_builder import __version__
from census_builder.build.outputs import MatricesWritten, ReleaseFinalized, TablesWritten
from census_builder.build.timestamps import Timestamps
from census_builder.errors import BuildStateError
from census_builder.runtime import faults
from census_builder.runtime.cluster import run_tasks
from census_builder.runtime.progress import Progress
from census_builder.soma import consolidation
from census_builder.soma.layout import CENSUS_DATA, CENSUS_SPATIAL, ExperimentLayout
from census_builder.soma.platform import context

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun

logger = logging.getLogger(__name__)

MOVED_NOTE = "release was moved into place by an interrupted run"


def finalize_release(run: BuildRun) -> ReleaseFinalized:
    """Consolidate, check, stamp and move the release into place."""
    import tiledbsoma as soma

    paths = run.paths
    if not paths.partial.exists() and paths.soma.is_dir():
        return ReleaseFinalized(note=MOVED_NOTE)
    tables = run.output(TablesWritten)
    # Nothing reads the release before every fragment's timestamp is in the past (build/timestamps.py).
    Timestamps(run.axes().timestamp_base, run.output(MatricesWritten).chunks).wait_until_past()
    x_uris = [uri for exp in _experiments(run, tables) for uri in exp.x_layers.values()]
    # Spatial images keep their band fragments too: merging a dense 2000 x 2000 x 3 image took ~1 GiB of RSS.
    x_uris += [u for u in consolidation.array_uris(paths.partial) if _is_image(run, tables, u)]
    for uri in x_uris:  # X keeps its per-chunk fragments (disjoint row ranges); see consolidate_metadata
        consolidation.consolidate_metadata(uri)
    uris = [u for u in consolidation.array_uris(paths.partial) if u not in x_uris]
    progress = Progress("finalize_release", len(uris), "arrays consolidated")
    run_tasks(run.client, consolidation.consolidate_and_vacuum, uris, on_result=lambda u, _: progress.update(1))
    _check_nnz(run, tables)
    meta = {
        "census_schema_version": run.schema.version,
        "dataset_schema_version": run.schema.dataset_schema_version,
        "census_build_date": run.build_date,
        "census_version": run.config.version,
        "manifest_sha256": run.manifest.sha256,
        "census_builder_version": __version__,
        "tiledbsoma_version": soma.__version__,
        "anndata_version": _version("anndata"),
        "git_commit": os.environ.get("CENSUS_BUILDER_GIT_COMMIT", ""),
    }
    with soma.Collection.open(run.layout.root, "w", context=context()) as root:  # type: ignore[var-annotated]
        for k, v in meta.items():
            root.metadata[k] = v
    faults.point("before:move_release", paths.partial)
    os.replace(paths.partial, paths.soma)
    return ReleaseFinalized(metadata=meta, totals=tables)


def _check_nnz(run: BuildRun, tables: TablesWritten) -> None:
    """X["raw"], X["normalized"] and the sum of chunk nnz must agree before the release is moved into place.

    Read from fragment metadata: chunks write disjoint row ranges, and a rerun deletes the fragments of
    chunks without a result, so any coordinate written twice shows up here as a surplus.
    """
    for exp in _experiments(run, tables):
        f = (tables.organisms if exp.kind == CENSUS_DATA else tables.spatial)[exp.organism]
        for layer, uri in exp.x_layers.items():
            stored = consolidation.stored_cells(uri)
            if stored != f.nnz:
                where = exp.organism if exp.kind == CENSUS_DATA else f"{exp.kind}/{exp.organism}"
                raise BuildStateError(f"{where} X[{layer!r}] holds {stored} values, chunk results say {f.nnz}")


def _is_image(run: BuildRun, tables: TablesWritten, uri: str) -> bool:
    """Tell whether ``uri`` is a level of a scene's image (``<spatial experiment>/spatial/<scene>/img/...``)."""
    for org in tables.spatial:
        scenes = run.layout.experiment(org, CENSUS_SPATIAL).spatial
        if os.path.commonpath([scenes, uri]) == scenes and os.path.relpath(uri, scenes).split(os.sep)[1:2] == ["img"]:
            return True
    return False


def _experiments(run: BuildRun, tables: TablesWritten) -> list[ExperimentLayout]:
    """Return the release's experiments: census_data's, then census_spatial_sequencing's."""
    data = [run.layout.experiment(org) for org in tables.organisms]
    return data + [run.layout.experiment(org, CENSUS_SPATIAL) for org in tables.spatial]


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return ""

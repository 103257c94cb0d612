"""The build's own copies of its sources, and the manifest that points validation at them.

A release is built from the copies staged under ``DIR/VERSION/h5ads/`` (the datasets that contribute
cells; the release ships them) and ``DIR/VERSION/.build/no_cells/`` (datasets that contribute none: kept
beside the release, not in it, so that validation can still prove they contribute nothing). The build's
``DIR/VERSION/manifest.csv`` names these copies by paths relative to itself, so validating a build needs
neither the original corpus nor its old location.
"""

from __future__ import annotations

import logging
from pathlib import Path

from census_builder.build.state import BuildPaths
from census_builder.sources.manifest import Manifest, load_manifest, write_manifest
from census_builder.sources.staging import move_staged

logger = logging.getLogger(__name__)

VALIDATION_MANIFEST = "validation_manifest.csv"


def no_cells_copy(paths: BuildPaths, dataset_id: str) -> Path:
    """Return where the copy of a dataset without Census cells is kept (``.build/no_cells/``)."""
    return paths.state / "no_cells" / f"{dataset_id}.h5ad"


def staged_uri(paths: BuildPaths, dataset_id: str, contributes: bool) -> str:
    """Where the build's copy of a dataset stays, relative to ``DIR/VERSION`` (the build manifest's directory)."""
    if contributes:
        return paths.h5ad_relative(dataset_id)
    return no_cells_copy(paths, dataset_id).relative_to(paths.root).as_posix()


def set_aside(paths: BuildPaths, records: Path, dataset_ids: set[str]) -> None:
    """Move the staged copies of datasets that contribute no cells from ``h5ads/`` to ``.build/no_cells/``.

    The release ships only its datasets' sources; validation reads the others there. Only copies the
    staging records say this build created are moved (see :func:`census_builder.sources.staging.move_staged`).
    """
    for ds in sorted(dataset_ids):
        move_staged(records, ds, paths.h5ad(ds), no_cells_copy(paths, ds))


def _staged_copy(paths: BuildPaths, dataset_id: str) -> Path | None:
    for p in (paths.h5ad(dataset_id), no_cells_copy(paths, dataset_id)):
        if p.is_file():
            return p
    return None


def validation_manifest(paths: BuildPaths) -> Path:
    """Return the manifest to validate ``paths``' release against.

    That is the build's manifest.csv when every source it names is there; else (a build whose manifest
    names the original corpus, which moved or changed since) a copy, ``.build/validation_manifest.csv``,
    naming the build's staged copies for those sources.
    """
    manifest = load_manifest(paths.manifest)
    replaced: dict[str, str] = {}
    own = 0
    for e in manifest.entries:
        staged = _staged_copy(paths, e.dataset_id)
        if staged is None:
            continue
        if _is_copy(manifest, e.h5ad_uri, staged):
            own += 1
        elif e.is_s3 or not _same_file(manifest.local_path(e), staged):
            replaced[e.dataset_id] = str(staged)
    if not replaced:
        if own == len(manifest.entries):
            logger.info("validation reads the build's own copies of its sources, as %s names them", paths.manifest)
        else:
            logger.info("validation reads the sources named in %s", paths.manifest)
        return paths.manifest
    out = paths.state / VALIDATION_MANIFEST
    write_manifest(out, manifest, {e.dataset_id for e in manifest.entries}, replaced)
    logger.info(
        "%d source(s) named in %s are gone or differ from the build's copies (%s); validation reads the "
        "staged copies under %s instead (manifest: %s)",
        len(replaced),
        paths.manifest,
        ", ".join(sorted(replaced)),
        paths.root,
        out,
    )
    return out


def _is_copy(manifest: Manifest, uri: str, staged: Path) -> bool:
    """Tell whether the manifest row already names the staged copy."""
    if uri.startswith("s3://"):
        return False
    p = Path(uri.removeprefix("file://"))
    p = p if p.is_absolute() else Path(manifest.base_dir) / p
    return p.resolve() == staged.resolve()


def _same_file(source: Path, staged: Path) -> bool:
    try:
        a, b = source.stat(), staged.stat()
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) or (a.st_size == b.st_size and a.st_mtime <= b.st_mtime)

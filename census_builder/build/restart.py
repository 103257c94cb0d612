"""Starting an unfinished build over: what counts as "release objects written", and ``build --restart``.

An unfinished build that wrote no release object yet (``plan_axes`` never finished, no
``.build/soma.partial``, no chunk result) restarts by itself when its inputs change, e.g. after a preflight
failure the user fixed the manifest or added ``--exclude-invalid``. One that did write some is only
discarded on ``--restart``. Either way only what the build created for its run is deleted: everything
under ``DIR/VERSION/.build/`` except the lock the caller holds, and the build's report, manifest and
validation report; never ``soma/`` (refused), never anything outside ``DIR/VERSION``. The staged sources
(``h5ads/``, ``.build/no_cells/``) and their records (``.build/staged/``) are kept and left to the staging
step, which checks them again and stages a changed source anew.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from census_builder.build.state import BuildPaths, StageRecord
from census_builder.errors import BuildStateError, ReleaseExistsError

logger = logging.getLogger(__name__)

# What the build created and still tracks across a restart: the staging records (.build/staged/, which
# name the files under h5ads/ this build made) and the copies of datasets without cells they point at.
KEPT = ("staged", "no_cells")

RELEASE_STAGES = ("plan_axes", "write_matrices", "write_tables", "finalize_release")


def release_started(paths: BuildPaths, stages: StageRecord) -> bool:
    """Tell whether this unfinished build wrote anything of the release (structure, chunks, the release)."""
    if paths.partial.exists() or paths.soma.exists():
        return True
    if any(stages.done(s) for s in RELEASE_STAGES):
        return True
    return paths.chunks.is_dir() and any(paths.chunks.rglob("*.npz"))


def refuse_restart_of(paths: BuildPaths) -> None:
    """Raise ReleaseExistsError: ``--restart`` never discards a complete release."""
    raise ReleaseExistsError(
        f"release {paths.root.name} at {paths.root} is complete and immutable: --restart discards only unfinished "
        "builds. Build another --version, or use --force-rebuild (without --restart) to build it again into a "
        "new directory beside it"
    )


def discard_run_state(paths: BuildPaths, *, reason: str, level: int = logging.WARNING) -> list[str]:
    """Delete the unfinished build's run state (the caller holds the build lock); log what at ``level``.

    Returns what was deleted, relative to ``DIR/VERSION``.
    """
    if paths.soma.exists():
        if paths.is_complete():
            refuse_restart_of(paths)
        raise BuildStateError(
            f"{paths.soma} exists: an interrupted run already moved the finished release into place. Re-run the "
            "same command without --restart to record it complete, or build another --version"
        )
    removed: list[str] = []
    if paths.state.is_dir():
        for child in sorted(paths.state.iterdir()):
            if child.name.startswith(paths.lock.name):  # the lock we hold (and any file of its protocol)
                continue
            if child.name in KEPT:  # staging records and the copies they track: staging checks them again
                continue
            _remove(child)
            removed.append(child.relative_to(paths.root).as_posix())
    for f in (paths.report, paths.manifest, paths.validation_report):
        if f.is_file() or f.is_symlink():
            f.unlink()
            removed.append(f.name)
    logger.log(
        level,
        "%s: discarded the unfinished build's run state (%s): %s; building from scratch",
        paths.root,
        reason,
        ", ".join(removed) or "nothing to discard",
    )
    return removed


def _remove(p: Path) -> None:
    if p.is_symlink() or not p.is_dir():
        p.unlink()  # a link is removed, never followed
    else:
        shutil.rmtree(p)

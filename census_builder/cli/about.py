"""``python -m census_builder --about``: what this census-builder is.

Its version and git commit, the Census schema versions it builds, and the versions of the libraries that
shape a release.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from census_builder import __version__

GIT_COMMIT_ENV = "CENSUS_BUILDER_GIT_COMMIT"
LIBRARIES = ("tiledbsoma", "anndata", "dask", "distributed")
GIT_TIMEOUT = 10  # seconds for `git rev-parse HEAD`


def git_commit(source_dir: Path | None = None) -> str:
    """``$CENSUS_BUILDER_GIT_COMMIT``, else the HEAD of the git checkout the package runs from, else ""."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    tree = (source_dir or Path(__file__).resolve().parents[1]).parent  # the checkout holding census_builder/
    if not (tree / ".git").exists():  # an installed wheel, not a checkout (a worktree's .git is a file)
        return ""
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def about_lines() -> list[str]:
    """Return the lines ``--about`` prints."""
    import census_schema

    return [
        f"census-builder {__version__}",
        f"git commit: {git_commit() or 'unknown (set ' + GIT_COMMIT_ENV + ')'}",
        f"Census schema versions it builds: {', '.join(census_schema.available_versions())}",
        *(f"{lib} {_version(lib)}" for lib in LIBRARIES),
        f"python {platform.python_version()}",
    ]

"""Install the reference builder in its own virtual environment, outside the repository (never in CI).

    python -m benchmarks.reference.install --git-dir GIT_DIR [--src /work/ref-src] [--venv /work/refvenv]
        [--commit HEAD] [--python python3.11]

``GIT_DIR`` is a clone of chanzuckerberg/cellxgene-census (a bare one will do: the ``fetch`` tool of our
sessions gives one without a work tree). This exports ``tools/cellxgene_census_builder`` at ``--commit``
into ``--src`` (``git archive``), records the exact commit in ``SRC/COMMIT`` (``run`` passes it to the
reference as ``COMMIT_SHA``), makes the virtual environment and installs the builder there with
``SETUPTOOLS_SCM_PRETEND_VERSION=1.0.0`` (its version comes from git tags, which an export lacks). Its
dependencies are its own pins (tiledbsoma 1.15, cellxgene-census 1.17...), which differ from our lock: that
is why it never shares our ``.venv``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SUBDIR = "tools/cellxgene_census_builder"


def export(git_dir: Path, commit: str, src: Path) -> str:
    """Export the builder's folder at ``commit`` into ``src``; record and return the full commit id."""
    sha = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", f"{commit}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", sha, SUBDIR], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    (src / "COMMIT").write_text(sha + "\n", encoding="utf-8")
    return sha


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: export, make the virtual environment, pip install the builder."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.reference.install", description=__doc__.split("\n")[0])
    p.add_argument("--git-dir", type=Path, required=True, help="a clone of chanzuckerberg/cellxgene-census")
    p.add_argument("--commit", default="HEAD", help="the commit to install (default: HEAD)")
    p.add_argument("--src", type=Path, default=Path("/work/ref-src"), help="where the source is exported")
    p.add_argument("--venv", type=Path, default=Path("/work/refvenv"), help="the reference's virtual environment")
    p.add_argument("--python", default="python3.11", help="interpreter that makes the venv (the builder needs 3.11)")
    args = p.parse_args(argv)
    sha = export(args.git_dir, args.commit, args.src)
    print(f"reference builder at commit {sha} in {args.src / SUBDIR}")
    if not (args.venv / "bin" / "python").exists():
        subprocess.run([args.python, "-m", "venv", str(args.venv)], check=True)
    env = dict(os.environ, SETUPTOOLS_SCM_PRETEND_VERSION="1.0.0")
    pip = [str(args.venv / "bin" / "pip"), "install", str(args.src / SUBDIR)]
    rc = subprocess.run(pip, env=env, check=False).returncode
    if rc != 0:
        print(f"pip install of the reference builder failed (exit status {rc})", file=sys.stderr)
        return 1
    print(f"installed: {args.venv / 'bin' / 'python'} -m cellxgene_census_builder.build_soma")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

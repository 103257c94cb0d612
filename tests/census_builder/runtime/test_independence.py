"""runtime/ is the one part of census_builder that validation may import: it imports nothing outside runtime/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parents[3] / "census_builder" / "runtime"


def _in_runtime(name: str) -> bool:
    return name == "census_builder.runtime" or name.startswith("census_builder.runtime.")


def test_runtime_imports_nothing_from_census_builder_outside_runtime() -> None:
    files = sorted(RUNTIME_DIR.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "census_builder":
                    assert _in_runtime(name), f"{path.name} imports {name}"
    modules = " ".join(f"census_builder.runtime.{p.stem}" for p in files if p.stem != "__init__")
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {modules.split()!r}]; "
        "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'census_builder'))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert [m for m in loaded if m != "census_builder" and not _in_runtime(m)] == []

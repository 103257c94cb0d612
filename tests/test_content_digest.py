"""The example release holds exactly the content recorded before the package layout changed (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import BuiltRelease
from tests.content_digest import release_digest

RECORDED = Path(__file__).parent / "data" / "example_release_digest.json"


def test_example_release_content_is_unchanged(example_release: BuiltRelease) -> None:
    recorded = json.loads(RECORDED.read_text())
    digest = release_digest(example_release.soma_uri)
    changed = sorted(k for k in recorded.keys() | digest.keys() if recorded.get(k) != digest.get(k))
    assert not changed, f"release content differs from {RECORDED.name} in: {changed}"

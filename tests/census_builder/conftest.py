"""Every census_builder test runs without the site settings of the machine it runs on."""

from __future__ import annotations

import pytest

from census_builder.config import CONFIG_ENV, SETTINGS


@pytest.fixture(autouse=True)
def no_site_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset ``CENSUS_BUILDER_CONFIG`` and every ``CENSUS_BUILDER_<KEY>`` setting variable."""
    for name in (CONFIG_ENV, *(s.env for s in SETTINGS)):
        monkeypatch.delenv(name, raising=False)

"""The example release (Census 1.3.0) is stored with issue 17's settings: X arrays allowing duplicates with
their filters, obs string columns as enumerations. Census 2.4.0's: tests/census_builder/build/test_build_spatial.py."""

from __future__ import annotations

import pytest

from census_builder.census.schema import load_schema
from tests.census_builder.soma.storage_checks import assert_obs_enumerations, assert_x_settings
from tests.conftest import BuiltRelease

ORGANISMS = ["homo_sapiens", "mus_musculus"]


@pytest.mark.parametrize("organism", ORGANISMS)
@pytest.mark.parametrize("layer", ["raw", "normalized"])
def test_x_arrays_allow_duplicates_with_the_chosen_filters(
    example_release: BuiltRelease, organism: str, layer: str
) -> None:
    assert_x_settings(f"{example_release.soma_uri}/census_data/{organism}/ms/RNA/X/{layer}", layer)


@pytest.mark.parametrize("organism", ORGANISMS)
def test_obs_strings_are_enumerations_of_their_values(example_release: BuiltRelease, organism: str) -> None:
    strings = [c.name for c in load_schema("1.3.0").obs if c.encoding == "string"]
    assert_obs_enumerations(f"{example_release.soma_uri}/census_data/{organism}/obs", strings)

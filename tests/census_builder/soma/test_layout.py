"""The release layout: every URI of a release, as the schema names its parts."""

from __future__ import annotations

from census_builder.census.schema import load_schema
from census_builder.soma.layout import ReleaseLayout
from tests.conftest import BuiltRelease


def test_every_uri_of_a_release() -> None:
    layout = ReleaseLayout("/r/soma", load_schema("1.3.0"))
    assert layout.census_info_table("datasets") == "/r/soma/census_info/datasets"
    exp = layout.experiment("homo_sapiens")
    assert exp.uri == "/r/soma/census_data/homo_sapiens"
    assert exp.obs == "/r/soma/census_data/homo_sapiens/obs"
    assert exp.var == "/r/soma/census_data/homo_sapiens/ms/RNA/var"
    assert dict(exp.x_layers) == {
        "raw": "/r/soma/census_data/homo_sapiens/ms/RNA/X/raw",
        "normalized": "/r/soma/census_data/homo_sapiens/ms/RNA/X/normalized",
    }
    assert exp.presence == "/r/soma/census_data/homo_sapiens/ms/RNA/feature_dataset_presence_matrix"


def test_the_built_release_has_every_array_the_layout_names(example_release: BuiltRelease) -> None:
    from pathlib import Path

    from census_builder.soma.consolidation import array_uris

    layout = ReleaseLayout(example_release.soma_uri, load_schema("1.3.0"))
    named = {layout.census_info_table(t) for t in ("datasets", "summary", "summary_cell_counts")}
    organisms = sorted(p.name for p in Path(layout.census_data).iterdir() if (p / "obs").is_dir())
    for exp in layout.experiments(organisms):
        named |= {exp.obs, exp.var, exp.presence, *exp.x_layers.values()}
    assert named == set(array_uris(example_release.paths.soma))


def test_encodings_come_from_the_schema() -> None:
    import pyarrow as pa

    schema = load_schema("1.3.0")
    assert dict(schema.x_layer_encodings) == {"raw": "float32", "normalized": "float32"}
    assert schema.presence_encoding == "bool"
    assert schema.x_layer_arrow_type("raw") == pa.float32() and schema.presence_arrow_type == pa.bool_()

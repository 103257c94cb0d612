"""The validator's Census 2.4.0 pieces that need no build: which schema a release is validated against, the
census_info['organisms'] check, summary_cell_counts' organism labels, and what a release of another tool may
do differently (extra columns, dataset_h5ad_path relative to h5ads/) while our own releases may not."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import tiledbsoma as soma

from validation.census_info import (
    check_h5ad_paths,
    check_organisms_table,
    check_summary_cell_counts,
    organism_key,
)
from validation.expected.dataset import DatasetPlan
from validation.expected.model import Model, build_model
from validation.expected.spec import Column, load_spec
from validation.inputs.manifest import Source
from validation.inputs.schema_version import (
    Recorded,
    SchemaVersionError,
    choose_version,
    read_recorded,
    version_findings,
)
from validation.report import Findings
from validation.structure import check_dataframe_schema

SPEC = load_spec("2.4.0")


def _release(root: Path, summary_version: str | None, metadata: dict[str, str]) -> str:
    """A release root with only what records a schema version: root metadata and census_info['summary']."""
    uri = str(root / "soma")
    with soma.Collection.create(uri) as coll:  # type: ignore[var-annotated]
        for k, v in metadata.items():
            coll.metadata[k] = v
        if summary_version is not None:
            info = coll.add_new_collection("census_info")
            schema = pa.schema([("label", pa.large_string()), ("value", pa.large_string())])
            with info.add_new_dataframe("summary", schema=schema, domain=[(0, 1)]) as df:
                df.write(
                    pa.table(
                        {
                            "soma_joinid": pa.array([0, 1], pa.int64()),
                            "label": ["census_schema_version", "census_build_date"],
                            "value": [summary_version, "2026-11-26"],
                        }
                    )
                )
    return uri


def test_recorded_version_summary_row_first(tmp_path: Path) -> None:
    uri = _release(tmp_path / "a", "2.4.0", {"census_schema_version": "1.3.0", "census_builder_version": "0.3.0"})
    recorded = read_recorded(uri)
    assert recorded == Recorded("2.4.0", "1.3.0", "0.3.0")
    version, how = choose_version(uri, None, recorded)
    assert (version, how) == ("2.4.0", "2.4.0 (recorded in census_info['summary'])")
    [finding] = version_findings(version, how, recorded)
    assert finding.message == (
        "the release's root metadata records Census schema 1.3.0; validated against "
        "2.4.0 (recorded in census_info['summary'])"
    )
    assert (finding.expected, finding.found) == ("2.4.0", "1.3.0")
    assert recorded.writer.startswith("census-builder 0.3.0")


def test_recorded_version_from_metadata_and_default(tmp_path: Path) -> None:
    only_meta = _release(tmp_path / "m", None, {"census_schema_version": "2.4.0"})
    recorded = read_recorded(only_meta)
    assert recorded == Recorded(None, "2.4.0", None) and recorded.writer.startswith("another tool")
    assert choose_version(only_meta, None, recorded) == ("2.4.0", "2.4.0 (recorded in the root collection's metadata)")
    assert version_findings("2.4.0", "", recorded) == []
    nothing = Recorded()
    assert choose_version("x", None, nothing) == (
        "1.3.0",
        "1.3.0 (the default: the release records no census_schema_version)",
    )
    assert read_recorded(str(tmp_path / "absent")) == nothing  # the structure check reports the release


def test_unknown_versions_stop_with_the_known_ones(tmp_path: Path) -> None:
    uri = _release(tmp_path / "u", "9.9.9", {})
    with pytest.raises(SchemaVersionError) as e:
        choose_version(uri, None, read_recorded(uri))
    assert str(e.value) == (
        f"release {uri} records Census schema version '9.9.9' (census_info['summary']), which this validator has no "
        "schema data for (it knows 1.3.0, 2.4.0); run it with --census-schema VERSION to validate against one of those"
    )
    with pytest.raises(SchemaVersionError, match=r"no Census schema data for version '3\.0\.0' \(--census-schema\); "):
        choose_version(uri, "3.0.0", Recorded())
    # asked for a known version: used, whatever the release records (the summary check names both)
    assert choose_version(uri, "2.4.0", read_recorded(uri)) == ("2.4.0", "2.4.0 (--census-schema)")


def _model(*organisms: str) -> Model:
    plans = [
        DatasetPlan(
            f"ds-{name}", f"{name}.h5ad", organism=name, organism_term=SPEC.organism_by_name(name).term, n_cells=3
        )
        for name in organisms
    ]
    return build_model(SPEC, {p.dataset_id: Source(p.dataset_id, p.path, 2) for p in plans}, plans)


def _organisms(rows: list[tuple[str, str, str]]) -> pa.Table:
    return pa.table(
        {
            "soma_joinid": pa.array(range(len(rows)), pa.int64()),
            "organism_ontology_term_id": [r[0] for r in rows],
            "organism_label": [r[1] for r in rows],
            "organism": [r[2] for r in rows],
        }
    )


def test_organism_key_rule() -> None:
    assert organism_key("Homo sapiens") == "homo_sapiens"
    assert organism_key("Pan  troglodytes   x") == "pan_troglodytes_x"
    assert all(organism_key(o.label) == o.name for o in SPEC.organisms)  # the schema data follows the rule


def test_organisms_table_rows() -> None:
    model = _model("homo_sapiens", "mus_musculus")
    good = [
        ("NCBITaxon:9606", "Homo sapiens", "homo_sapiens"),
        ("NCBITaxon:10090", "Mus musculus", "mus_musculus"),
        ("NCBITaxon:9483", "Callithrix jacchus", "callithrix_jacchus"),  # no cells: allowed, checked alike
    ]
    findings = Findings()
    check_organisms_table(findings, SPEC, model, _organisms(good), ["homo_sapiens", "mus_musculus"])
    assert findings.checks["census_info_organisms"].passed
    assert findings.readings["census_info['organisms'] rows without cells"] == (
        "listed, with no cells in census_data: callithrix_jacchus"
    )

    bad = [
        ("NCBITaxon:9606", "Homo Sapiens", "homo_sapiens"),
        ("NCBITaxon:9483", "Callithrix jacchus", "callithrix jacchus"),
        ("NCBITaxon:7955", "Danio rerio", "danio_rerio"),
    ]
    findings = Findings()
    check_organisms_table(findings, SPEC, model, _organisms(bad), ["homo_sapiens", "mus_musculus"])
    got = [
        (f.message, f.organism, f.column, f.expected, f.found)
        for f in findings.checks["census_info_organisms"].findings
    ]
    assert got == [
        ("organism_label is not the organism's", "homo_sapiens", "organism_label", "Homo sapiens", "Homo Sapiens"),
        (
            "organism is not the organism_label lower-cased with runs of spaces replaced by one underscore",
            "callithrix_jacchus",
            "organism",
            "callithrix_jacchus",
            "callithrix jacchus",
        ),
        (
            "organisms has a row of an organism the Census does not include",
            None,
            "organism_ontology_term_id",
            sorted(o.term for o in SPEC.organisms),
            "NCBITaxon:7955",
        ),
        (
            "no organisms row for Mus musculus, whose cells are included",
            "mus_musculus",
            None,
            ["NCBITaxon:10090", "Mus musculus", "mus_musculus"],
            "absent",
        ),
        (
            "census_data['mus_musculus'] matches no organisms row's organism",
            "mus_musculus",
            "organism",
            "mus_musculus",
            ["callithrix jacchus", "danio_rerio", "homo_sapiens"],
        ),
    ]


def test_summary_cell_counts_organism_is_the_label() -> None:
    plan = DatasetPlan("d", "d.h5ad", organism="pan_troglodytes", organism_term="NCBITaxon:9598", n_cells=5)
    plan.cell_counts = {("all", "na", "na"): [5, 4], ("suspension_type", "na", "cell"): [3, 2]}
    plan.cell_counts[("suspension_type", "na", "nucleus")] = [2, 2]
    model = build_model(SPEC, {"d": Source("d", "d.h5ad", 2)}, [plan])

    def table(organism: str, suspension: list[tuple[str, int, int]]) -> pa.Table:
        rows = [("all", "na", "na", 5, 4)] + [("suspension_type", "na", label, t, u) for label, t, u in suspension]
        return pa.table(
            {
                "organism": [organism] * len(rows),
                "category": [r[0] for r in rows],
                "ontology_term_id": [r[1] for r in rows],
                "label": [r[2] for r in rows],
                "total_cell_count": [r[3] for r in rows],
                "unique_cell_count": [r[4] for r in rows],
            }
        )

    findings = Findings()
    check_summary_cell_counts(findings, SPEC, model, table("Pan troglodytes", [("cell", 3, 2), ("nucleus", 2, 2)]))
    assert findings.checks["census_info_summary_cell_counts"].passed

    findings = Findings()  # the census_data key instead of the label, and labels of one "na" term merged
    check_summary_cell_counts(findings, SPEC, model, table("pan_troglodytes", [("cell", 5, 4)]))
    check = findings.checks["census_info_summary_cell_counts"]
    assert [(f.message, f.expected, f.found) for f in check.findings] == [
        (
            "summary_cell_counts organism is the census_data key, not the organism's label as the schema requires "
            "(rows compared under the label)",
            "Pan troglodytes",
            "pan_troglodytes",
        ),
        ("summary_cell_counts ('Pan troglodytes', 'suspension_type', 'na', 'cell') total_cell_count differs", 3, 5),
        ("summary_cell_counts ('Pan troglodytes', 'suspension_type', 'na', 'cell') unique_cell_count differs", 2, 4),
        (
            "summary_cell_counts row ('Pan troglodytes', 'suspension_type', 'na', 'nucleus') is missing (its cells are "
            "counted under the row of the same organism, category and ontology_term_id with label 'cell'; the schema: "
            "a row per combination of organism and metadata values)",
            [2, 2],
            "absent",
        ),
    ]


def test_extra_columns_allowed_only_in_releases_of_other_tools() -> None:
    columns = (Column("feature_id", "string"), Column("nnz", "int64"))
    schema = pa.schema(
        [
            ("feature_id", pa.dictionary(pa.int8(), pa.large_string())),
            ("nnz", pa.int64()),
            ("feature_type", pa.large_string()),
        ]
    )
    ours = Findings()
    check_dataframe_schema(ours, "var", schema, columns)
    [f] = ours.checks["encodings"].findings
    assert (f.message, f.column, f.found) == (
        "var has a column the schema does not define",
        "feature_type",
        "large_string",
    )
    assert ours.readings["string columns stored dictionary-encoded (accepted: their values are strings)"] == "var: 1"
    foreign = Findings()
    check_dataframe_schema(foreign, "var", schema, columns, extra_allowed=True)
    assert foreign.checks["encodings"].passed
    assert foreign.readings["var extra columns"] == (
        "feature_type (large_string): not defined by the schema, allowed (it lists the columns that MUST be included)"
    )
    wrong = pa.schema([("feature_id", pa.large_string()), ("nnz", pa.float64())])
    check_dataframe_schema(foreign, "var", wrong, columns, extra_allowed=True)  # encodings are never relaxed
    [f] = foreign.checks["encodings"].findings
    assert f.message == "var column 'nnz' has the wrong encoding (the schema's table of columns: nnz int64)"


def test_h5ad_paths_relative_to_h5ads_only_for_other_tools(tmp_path: Path) -> None:
    (tmp_path / "h5ads").mkdir()
    (tmp_path / "h5ads" / "d.h5ad").write_bytes(b"x")
    model = _model("homo_sapiens")
    ours = Findings()
    check_h5ad_paths(ours, model, tmp_path, {"d": "d.h5ad", "e": "h5ads/d.h5ad"}, {})
    [f] = ours.checks["dataset_h5ad_paths"].findings
    assert (f.dataset_id, f.message) == ("d", f"dataset_h5ad_path does not exist under {tmp_path}")
    foreign = Findings()
    check_h5ad_paths(foreign, model, tmp_path, {"d": "d.h5ad", "e": "h5ads/d.h5ad"}, {}, foreign=True)
    assert foreign.checks["dataset_h5ad_paths"].passed
    assert foreign.readings["dataset_h5ad_path"].startswith(
        "relative to h5ads/ beside the release for 1 of 2 dataset(s)"
    )


def test_command_refuses_unknown_versions_before_touching_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from validation.__main__ import main

    uri = _release(tmp_path, "9.9.9", {})
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("dataset_id,h5ad_uri\nd,d.h5ad\n", encoding="utf-8")
    assert main([uri, "--manifest", str(manifest)]) == 2
    assert "records Census schema version '9.9.9' (census_info['summary'])" in capsys.readouterr().err
    assert main([uri, "--manifest", str(manifest), "--census-schema", "0.1"]) == 2
    assert capsys.readouterr().err == (
        "error: no Census schema data for version '0.1' (--census-schema); this validator knows 1.3.0, 2.4.0\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv", "soma"]  # no report, no checkpoint


def test_summary_rows_are_exactly_the_schemas() -> None:
    from validation.census_info import check_summary

    plan = DatasetPlan("d", "d.h5ad", organism="homo_sapiens", organism_term="NCBITaxon:9606", n_cells=5, n_primary=4)
    plan.donors = {"a", "b"}
    model = build_model(SPEC, {"d": Source("d", "d.h5ad", 2)}, [plan])
    rows = {
        "census_schema_version": "2.4.0",
        "census_build_date": "2026-11-26",
        "dataset_schema_version": "7.0.0",
        "total_cell_count": "5",
        "unique_cell_count": "4",
    }

    def summary(extra: dict[str, str]) -> pa.Table:
        both = {**rows, **extra}
        return pa.table({"label": list(both), "value": list(both.values())})

    findings = Findings()
    check_summary(findings, SPEC, model, summary({}))
    assert findings.checks["census_info_summary"].passed
    check_summary(findings, SPEC, model, summary({"number_donors_homo_sapiens": "2", "census_schema_version": "1.3.0"}))
    assert [(f.message, f.expected, f.found) for f in findings.checks["census_info_summary"].findings] == [
        ("summary has a row 'number_donors_homo_sapiens' that Census schema 2.4.0 does not list", "absent", "2"),
        (
            "the release records Census schema 1.3.0 in census_info['summary']; validated against 2.4.0",
            "2.4.0",
            "1.3.0",
        ),
    ]

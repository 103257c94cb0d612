"""The validator on our own Census 2.4.0 release of a 7.0.0 corpus: it passes untouched, and each planted fault
fails with the right finding (cells the 2.4.0 filters exclude, a SARS-CoV-2 gene in var, a wrong organisms row,
a missing collection_doi_label column, a recorded schema version other than the one asked for)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import tiledbsoma as soma

from census_builder.build.pipeline import BuildConfig, build
from census_builder.testing.synthetic_7 import MOUSE, SARS_COV_2_GENES, DatasetSpec7, write_corpus_7
from tests.census_builder.build.h5ad_edits import rename_category
from tests.conftest import BuiltRelease
from validation import ValidationReport, validate_release

VISIUM = "EFO:0022857"  # a spatial assay: its cells never go to census_data
SPECS = [
    DatasetSpec7(
        "human-lung",
        n_cells=120,
        n_genes=80,
        assays=("EFO:0009922", "EFO:0009899"),
        tissue_types=("tissue", "organoid", "tissue", "primary cell culture", "cell line"),
        n_sars_cov_2=3,
        doi="10.0000/synthetic.0",
        seed=21,
    ),
    DatasetSpec7(
        "mouse-blood",
        organism=MOUSE,
        n_cells=80,
        n_genes=60,
        use_raw=True,
        tissue_types=("tissue", "organoid"),  # organoid cells become a primary cell culture in a test
        collection_id="collection-1",
        seed=22,
    ),
    DatasetSpec7("human-filtered", n_cells=20, n_genes=30, assays=("EFO:0008992",), seed=23),
]


@pytest.fixture(scope="module")
def release_2_4_0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltRelease]:
    corpus = write_corpus_7(tmp_path_factory.mktemp("corpus7"), SPECS)
    paths = build(
        BuildConfig(
            version="r240",
            manifest=corpus,
            workdir=tmp_path_factory.mktemp("build7"),
            workers=1,
            build_date="2026-11-26",
            schema_version="2.4.0",
        )
    )
    yield BuiltRelease(paths=paths, manifest=corpus, corpus=corpus.parent)


def _copy(release: BuiltRelease, tmp_path: Path) -> Path:
    dest = tmp_path / "r240"
    shutil.copytree(release.paths.root, dest, ignore=shutil.ignore_patterns(".build"))
    return dest / "soma"


def _validate(soma_dir: Path, manifest: Path, client: Any, **kwargs: Any) -> ValidationReport:
    return validate_release(str(soma_dir), manifest, client=client, report_path=soma_dir.parent / "v.json", **kwargs)


def _failed(report: ValidationReport) -> dict[str, list[str]]:
    return {c.name: [f.line() for f in c.findings] for c in report.checks if not c.passed}


def _corpus_copy(release: BuiltRelease, tmp_path: Path) -> Path:
    """A copy of the corpus (H5ADs and manifest) to plant a fault in the sources."""
    dest = tmp_path / "corpus"
    shutil.copytree(release.corpus, dest)
    return dest / release.manifest.name


def test_our_release_passes(release_2_4_0: BuiltRelease, validation_client: Any, tmp_path: Path) -> None:
    soma_dir = _copy(release_2_4_0, tmp_path)
    report = _validate(soma_dir, release_2_4_0.manifest, validation_client)
    assert report.passed, _failed(report)
    assert report.readings["Census schema"] == "2.4.0 (recorded in census_info['summary'])"
    assert report.readings["written by"].startswith("census-builder ")
    asked = _validate(soma_dir, release_2_4_0.manifest, validation_client, schema_version="2.4.0")
    assert asked.passed and asked.readings["Census schema"] == "2.4.0 (--census-schema)"


def test_asking_for_another_schema_names_both(
    release_2_4_0: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    report = _validate(
        _copy(release_2_4_0, tmp_path), release_2_4_0.manifest, validation_client, schema_version="1.3.0"
    )
    summary = [f.line() for f in report.check("census_info_summary").findings]
    assert (
        "column census_schema_version: the release records Census schema 2.4.0 in census_info['summary']; "
        "validated against 1.3.0 (expected '1.3.0', found '2.4.0')"
    ) in summary
    assert any("root metadata records Census schema 2.4.0" in line for line in summary)


@pytest.mark.parametrize(
    ("column", "old", "new", "dataset"),
    [
        ("obs/assay_ontology_term_id", "EFO:0009899", VISIUM, "human-lung"),  # now a spatial assay
        ("obs/tissue_type", "organoid", "primary cell culture", "mouse-blood"),  # now a cell culture
    ],
)
def test_cells_the_filters_exclude_are_found(
    release_2_4_0: BuiltRelease, validation_client: Any, tmp_path: Path, column: str, old: str, new: str, dataset: str
) -> None:
    """The release holds cells that, by the (edited) sources, are of a spatial assay or a primary cell culture."""
    manifest = _corpus_copy(release_2_4_0, tmp_path)
    rename_category(manifest.parent / f"{dataset}.h5ad", column, old, new)
    report = _validate(_copy(release_2_4_0, tmp_path), manifest, validation_client)
    cells = report.check("obs_cells")
    assert not cells.passed
    assert {(f.dataset_id, f.message) for f in cells.findings} == {
        (dataset, "obs has a cell that is not among the dataset's filtered source cells")
    }


def test_sars_cov_2_gene_in_var(release_2_4_0: BuiltRelease, validation_client: Any, tmp_path: Path) -> None:
    soma_dir = _copy(release_2_4_0, tmp_path)
    uri = str(soma_dir / "census_data/homo_sapiens/ms/RNA/var")
    with soma.DataFrame.open(uri) as df:
        row = df.read(coords=(slice(0, 0),)).concat()
        n = int(df.count)
    with soma.DataFrame.open(uri, "w") as df:
        df.change_domain(((0, n),))
    sars_id = SARS_COV_2_GENES[0][0]
    row = row.set_column(row.column_names.index("soma_joinid"), "soma_joinid", pa.array([n], pa.int64()))
    row = row.set_column(row.column_names.index("feature_id"), "feature_id", pa.array([sars_id], pa.large_string()))
    with soma.DataFrame.open(uri, "w") as df:
        df.write(row)
    report = _validate(soma_dir, release_2_4_0.manifest, validation_client)
    var = [(f.feature_id, f.message) for f in report.check("var_features").findings]
    assert var == [(sars_id, "var has a gene that no contributing dataset keeps")]


def test_wrong_organisms_row(release_2_4_0: BuiltRelease, validation_client: Any, tmp_path: Path) -> None:
    soma_dir = _copy(release_2_4_0, tmp_path)
    uri = str(soma_dir / "census_info/organisms")
    with soma.DataFrame.open(uri) as df:
        table = df.read().concat()
    k = table.column("organism").to_pylist().index("mus_musculus")
    row = table.slice(k, 1)
    row = row.set_column(
        row.column_names.index("organism_label"), "organism_label", pa.array(["Mus Musculus"], pa.large_string())
    )
    with soma.DataFrame.open(uri, "w") as df:
        df.write(row)
    report = _validate(soma_dir, release_2_4_0.manifest, validation_client)
    assert _failed(report) == {
        "census_info_organisms": [
            "mus_musculus, column organism_label: organism_label is not the organism's "
            "(expected 'Mus musculus', found 'Mus Musculus')"
        ]
    }


def test_missing_collection_doi_label(release_2_4_0: BuiltRelease, validation_client: Any, tmp_path: Path) -> None:
    soma_dir = _copy(release_2_4_0, tmp_path)
    info_uri = str(soma_dir / "census_info")
    with soma.DataFrame.open(f"{info_uri}/datasets") as df:
        table = df.read().concat().drop_columns(["collection_doi_label"])
    new_uri = f"{info_uri}/datasets_without_label"  # inside the collection: the copy keeps relative members
    with soma.DataFrame.create(new_uri, schema=table.schema, domain=[(0, table.num_rows - 1)]) as df:
        df.write(table)
    with soma.Collection.open(info_uri, "d") as info:  # type: ignore[var-annotated]
        del info["datasets"]
    with soma.Collection.open(info_uri, "w") as info, soma.DataFrame.open(new_uri) as df:  # type: ignore[var-annotated]
        info.set("datasets", df, use_relative_uri=True)
    report = _validate(soma_dir, release_2_4_0.manifest, validation_client)
    encodings = [f.line() for f in report.check("encodings").findings]
    assert encodings == [
        "column collection_doi_label: census_info['datasets'] lacks column 'collection_doi_label' "
        "(expected 'string', found 'absent')"
    ]

"""The Gene Expression stage end to end on a small release built once per module.

The expected cube is computed here independently, in plain pandas/numpy from the release's obs and X raw
(read with tiledbsoma) and the ontology guide; nothing of census_builder.gene_expression is used for it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tiledbsoma as soma
from cellxgene_ontology_guide.ontology_parser import OntologyParser

from census_builder.build.state import BuildPaths
from census_builder.testing.synthetic import MOUSE, TISSUES, DatasetSpec, write_corpus
from tests.conftest import run_main_once
from tests.content_digest import release_digest

# The paper's Table 1 (CELLxGENE Discover, "Data processing and normalization for Gene Expression").
TABLE_1 = {
    "EFO:0010550", "EFO:0009901", "EFO:0011025", "EFO:0009899", "EFO:0009900", "EFO:0009922",
    "EFO:0030003", "EFO:0030004", "EFO:0008995", "EFO:0008919", "EFO:0008722", "EFO:0010010",
}  # fmt: skip
TISSUE, CELL_TYPE = "tissue_general_ontology_term_id", "cell_type_ontology_term_id"
LYMPHOCYTE, B_CELL, T_CELL = "CL:0000542", "CL:0000236", "CL:0000084"
CELL_TYPES = ((B_CELL, "B cell"), (T_CELL, "T cell"), (LYMPHOCYTE, "lymphocyte"), ("CL:0000235", "macrophage"))
CATEGORIES = ("sex", "self_reported_ethnicity", "disease")
VERSION = "v1"


def gene_expression_specs() -> list[DatasetSpec]:
    """Cells with ~500 genes (some below), a parent cell type with its children, a non-Table-1 assay (Smart-seq2)."""
    return [
        DatasetSpec(
            "ge-human",
            n_cells=240,
            n_genes=1200,
            density=0.8,
            assays=("EFO:0009922", "EFO:0008931"),
            cell_types=CELL_TYPES,
            tissues=(TISSUES[0], TISSUES[2]),
            seed=11,
        ),
        DatasetSpec(
            "ge-mouse",
            n_cells=160,
            cell_organisms=(MOUSE,),
            gene_organisms=(MOUSE,),
            n_genes=1200,
            density=0.8,
            assays=("EFO:0009899", "EFO:0030059"),
            cell_types=CELL_TYPES,
            tissues=(TISSUES[0],),
            seed=12,
        ),
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildPaths:
    """``build --gene-expression`` of the small corpus (one CLI run, one local worker)."""
    manifest = write_corpus(tmp_path_factory.mktemp("ge-corpus"), gene_expression_specs())
    workdir = tmp_path_factory.mktemp("ge-build")
    argv = ["build", "--version", VERSION, "--manifest", str(manifest), "--workdir", str(workdir)]
    assert run_main_once([*argv, "--workers", "1", "--no-validate", "--gene-expression"]) == 0
    return BuildPaths.for_version(workdir, VERSION)


@pytest.fixture
def client() -> Iterator[Any]:
    """An in-process dask client (threads): the stage's tasks without starting worker processes."""
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:  # type: ignore[no-untyped-call]
        yield c


# -- the independent computation ---------------------------------------------------------------------------


def _release_frames(soma_uri: str, organism: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    root: Any
    with soma.Collection.open(soma_uri) as root:
        exp = root["census_data"][organism]
        obs = exp.obs.read().concat().to_pandas()
        x = exp.ms["RNA"].X["raw"].read().tables().concat().to_pandas()
        var = exp.ms["RNA"].var.read().concat().to_pandas()
    x.columns = ["soma_joinid", "gene", "count"]
    x["count"] = x["count"].astype(np.float64)
    return obs, x, var.set_index("soma_joinid")["feature_id"]


def _eligible_cells(obs: pd.DataFrame, x: pd.DataFrame) -> pd.DataFrame:
    per_cell = x.groupby("soma_joinid").agg(total=("count", "sum"), genes=("count", lambda c: int((c > 0).sum())))
    cells = obs.set_index("soma_joinid")
    cells = cells[cells["is_primary_data"] & cells["assay_ontology_term_id"].astype(str).isin(TABLE_1)]
    cells = cells.join(per_cell, how="inner")
    return cells[cells["genes"] >= 500]


def expected_cube(soma_uri: str, organism: str, category: str | None = None) -> pd.DataFrame:
    """Per (tissue, labelled cell type[, category value], gene): n_cells, n_expressing, mean_expression."""
    obs, x, features = _release_frames(soma_uri, organism)
    cells = _eligible_cells(obs, x)
    for c in (TISSUE, CELL_TYPE, *(f"{k}_ontology_term_id" for k in CATEGORIES)):
        cells[c] = cells[c].astype(str)
    e = x[x["count"] > 3].join(cells[["total"]], on="soma_joinid", how="inner")
    e["value"] = np.log(e["count"] / e["total"] * 10_000 + 1)
    parser = OntologyParser()
    extra = [f"{category}_ontology_term_id"] if category else []
    out = []
    for tissue, cell_type in cells[[TISSUE, CELL_TYPE]].drop_duplicates().itertuples(index=False):
        below = set(parser.get_term_descendants(cell_type, include_self=True))
        members = cells[(cells[TISSUE] == tissue) & cells[CELL_TYPE].isin(below)]
        ee = e[e["soma_joinid"].isin(members.index)].join(members[extra], on="soma_joinid")
        stats = ee.groupby([*extra, "gene"])["value"].agg(["size", "mean"]).reset_index()
        if extra:
            stats["n_cells"] = members.groupby(extra).size().loc[stats[extra[0]]].to_numpy()
        else:
            stats["n_cells"] = len(members)
        stats[TISSUE], stats[CELL_TYPE] = tissue, cell_type
        out.append(stats)
    frame = pd.concat(out, ignore_index=True).rename(columns={"size": "n_expressing", "mean": "mean_expression"})
    frame["feature_id"] = features.loc[frame["gene"].to_numpy()].to_numpy()
    cols = [TISSUE, CELL_TYPE, "feature_id", "n_cells", "n_expressing", "mean_expression", *extra]
    return _sorted(frame[cols])


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in frame.columns if c.endswith("_id")]
    return frame.sort_values(keys).reset_index(drop=True)


def assert_cube_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = _sorted(got)
    assert list(got.columns) == list(expected.columns)
    keys = [c for c in got.columns if c.endswith("_id")]
    pd.testing.assert_frame_equal(got[keys], expected[keys])
    for c in ("n_cells", "n_expressing"):
        assert got[c].dtype == np.int64
        np.testing.assert_array_equal(got[c].to_numpy(), expected[c].to_numpy())
    np.testing.assert_allclose(got["mean_expression"], expected["mean_expression"], rtol=0, atol=1e-9)


# -- tests -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("organism", ["homo_sapiens", "mus_musculus"])
def test_parquet_equals_an_independent_computation(built: BuildPaths, organism: str) -> None:
    got = pd.read_parquet(built.root / "gene_expression" / f"{organism}.parquet")
    assert_cube_equal(got, expected_cube(str(built.soma), organism))


@pytest.mark.parametrize("category", CATEGORIES)
def test_group_by_parquet_equals_an_independent_computation(built: BuildPaths, category: str) -> None:
    got = pd.read_parquet(built.root / "gene_expression" / f"homo_sapiens_by_{category}.parquet")
    assert_cube_equal(got, expected_cube(str(built.soma), "homo_sapiens", category))


def test_the_data_exercise_every_rule(built: BuildPaths) -> None:
    """The corpus is not trivial: each filter drops cells, the <= 3 rule drops entries, the roll-up adds cells."""
    obs, x, _ = _release_frames(str(built.soma), "homo_sapiens")
    primary = obs["is_primary_data"]
    table1 = obs["assay_ontology_term_id"].astype(str).isin(TABLE_1)
    assert (~primary).sum() > 0 and (primary & ~table1).sum() > 0  # non-primary; primary Smart-seq2
    eligible = _eligible_cells(obs, x)
    assert 0 < len(eligible) < (primary & table1).sum()  # the 500-gene filter drops some cells
    assert ((x["count"] > 0) & (x["count"] <= 3)).mean() > 0.3
    cube = pd.read_parquet(built.root / "gene_expression" / "homo_sapiens.parquet")
    n_cells = cube.groupby([TISSUE, CELL_TYPE])["n_cells"].first()
    own = eligible.groupby([eligible[TISSUE].astype(str), eligible[CELL_TYPE].astype(str)]).size()
    for tissue in ("UBERON:0002048", "UBERON:0000178"):
        assert n_cells[tissue, LYMPHOCYTE] == own[tissue, LYMPHOCYTE] + own[tissue, B_CELL] + own[tissue, T_CELL]
        assert n_cells[tissue, B_CELL] == own[tissue, B_CELL]


def test_summary_json_soma_and_build_report(built: BuildPaths) -> None:
    from census_builder.gene_expression.store import read_organism_stats

    out = built.root / "gene_expression"
    summary = json.loads((out / "gene_expression.json").read_text())
    assert set(summary) == {"census_version", "census_schema_version", "organisms", "method", "cell_ontology_version"}
    assert (summary["census_version"], summary["census_schema_version"]) == (VERSION, "1.3.0")
    assert summary["method"]["min_genes"] == 500 and summary["method"]["missing_max_count"] == 3
    assert summary["cell_ontology_version"].startswith("v20")
    obs, x, _ = _release_frames(str(built.soma), "homo_sapiens")
    human = summary["organisms"]["homo_sapiens"]
    assert human["n_cells"] == len(_eligible_cells(obs, x))
    assert human["n_groups"] == 8  # 2 tissues x 4 cell types
    suffixes = ("", *(f"_by_{c}" for c in CATEGORIES), "_markers")
    assert human["files"] == [f"homo_sapiens{s}.parquet" for s in suffixes]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["gene_expression.json", "soma"] + [f for o in summary["organisms"].values() for f in o["files"]]
    )
    stats = read_organism_stats(str(out / "soma"), "homo_sapiens")
    parquet = pd.read_parquet(out / "homo_sapiens.parquet")
    stats["mean_expression"] = stats["sum"] / stats["n_expressing"]
    assert_cube_equal(stats[list(parquet.columns)], _sorted(parquet))
    report = json.loads(built.report.read_text())["gene_expression"]
    assert report["path"] == str(out) and report["method_version"] == summary["method"]["version"]
    assert report["organisms"]["homo_sapiens"] == {"n_cells": human["n_cells"], "n_groups": 8}


def test_rerun_replaces_its_output_and_leaves_the_release_unchanged(
    built: BuildPaths, tmp_path: Path, client: Any
) -> None:
    from census_builder.gene_expression.stage import run

    copy = BuildPaths(tmp_path / VERSION)
    shutil.copytree(built.root, copy.root)
    before = release_digest(str(copy.soma))
    (copy.root / "gene_expression" / "stale.txt").write_text("from an earlier run")
    run(tmp_path, VERSION, client=client)
    assert release_digest(str(copy.soma)) == before
    assert not (copy.root / "gene_expression" / "stale.txt").exists()
    assert not any(p.name.startswith(".gene_expression") for p in copy.root.iterdir())
    for name in ("homo_sapiens.parquet", "mus_musculus_by_sex.parquet"):
        assert_cube_equal(
            pd.read_parquet(copy.root / "gene_expression" / name),
            _sorted(pd.read_parquet(built.root / "gene_expression" / name)),
        )


@pytest.mark.parametrize(
    "point",
    [pytest.param("gene_expression:write:mus_musculus", marks=pytest.mark.slow), "gene_expression:before_move"],
)
def test_a_failure_leaves_no_output_and_no_partial_files(
    built: BuildPaths, tmp_path: Path, client: Any, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    from census_builder.gene_expression.stage import run

    copy = BuildPaths(tmp_path / VERSION)
    shutil.copytree(built.root, copy.root)
    shutil.rmtree(copy.root / "gene_expression")
    monkeypatch.setenv("CENSUS_BUILDER_FAIL_AT", point)
    with pytest.raises(OSError, match="No space left on device"):
        run(tmp_path, VERSION, client=client)
    assert sorted(p.name for p in copy.root.iterdir()) == sorted(
        p.name for p in built.root.iterdir() if p.name != "gene_expression"
    )
    assert (
        "gene_expression" not in json.loads(copy.report.read_text())
        or json.loads(copy.report.read_text())["gene_expression"]
        == json.loads(built.report.read_text())["gene_expression"]
    )


def test_command_refuses_a_release_that_is_not_complete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from census_builder.cli.main import main

    assert main(["gene-expression", "--version", "nope", "--workdir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"no complete release at {tmp_path.resolve() / 'nope'}; build it first" in err
    assert not (tmp_path / "nope" / "gene_expression").exists()


@pytest.mark.slow
def test_command_then_validation_then_publish_copies_gene_expression(built: BuildPaths, tmp_path: Path) -> None:
    """The gene-expression command on a copy; the release still validates; publish copies gene_expression/."""
    from census_builder.release.publish import publish

    copy = BuildPaths(tmp_path / "work" / VERSION)
    shutil.copytree(built.root, copy.root)
    shutil.rmtree(copy.root / "gene_expression")
    workdir = str(copy.root.parent)
    assert run_main_once(["gene-expression", "--version", VERSION, "--workdir", workdir, "--workers", "1"]) == 0
    assert run_main_once(["validate", "--version", VERSION, "--workdir", workdir, "--workers", "1"]) == 0
    publish(copy.root.parent, VERSION, tmp_path / "dest")
    published = tmp_path / "dest" / VERSION / "gene_expression"
    local = copy.root / "gene_expression"
    files = sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(published) for p in published.rglob("*") if p.is_file())
    for f in files:
        assert (published / f).read_bytes() == (local / f).read_bytes()


@pytest.mark.slow
def test_census_2_4_0_release(tmp_path: Path) -> None:
    """A Census 2.4.0 release (from 7.0.0 H5ADs): the cube equals the independent computation too."""
    from census_builder.testing.synthetic_7 import DatasetSpec7, write_corpus_7

    spec = DatasetSpec7(
        "ge-human-7", n_cells=200, n_genes=1200, density=0.8, assays=("EFO:0009922", "EFO:0008931"), seed=21
    )
    manifest = write_corpus_7(tmp_path / "corpus", [spec])
    workdir = tmp_path / "build"
    argv = ["build", "--census-schema", "2.4.0", "--version", VERSION, "--manifest", str(manifest)]
    assert (
        run_main_once([*argv, "--workdir", str(workdir), "--workers", "1", "--no-validate", "--gene-expression"]) == 0
    )
    paths = BuildPaths.for_version(workdir, VERSION)
    out = paths.root / "gene_expression"
    summary = json.loads((out / "gene_expression.json").read_text())
    assert summary["census_schema_version"] == "2.4.0" and summary["organisms"]["homo_sapiens"]["n_cells"] > 0
    assert_cube_equal(pd.read_parquet(out / "homo_sapiens.parquet"), expected_cube(str(paths.soma), "homo_sapiens"))
    got = pd.read_parquet(out / "homo_sapiens_by_disease.parquet")
    assert_cube_equal(got, expected_cube(str(paths.soma), "homo_sapiens", "disease"))


def test_organism_stats_is_the_markers_input(built: BuildPaths) -> None:
    """organism_stats: the contract of markers.marker_genes' ``stats`` (columns, dtypes, rows), from the chunks."""
    from census_builder.gene_expression import method as gm
    from census_builder.gene_expression.ontology import CellOntology
    from census_builder.gene_expression.stage import aggregate_task, cube_from_sums, organism_stats, plan_organism
    from census_builder.gene_expression.store import read_organism_stats

    root: Any
    with soma.Collection.open(str(built.soma)) as root:
        plan = plan_organism(root["census_data"]["homo_sapiens"], "homo_sapiens", gm.load_method(), chunk_nnz=20_000)
    assert len(plan.chunks) > 1
    reducer = gm.Reducer([len(t) for t in plan.tables.values()], len(plan.feature_ids))
    for task in plan.chunks:
        reducer.add(aggregate_task(task))
    stats = organism_stats(cube_from_sums(plan, reducer.result(), CellOntology()))
    assert list(stats.columns) == [TISSUE, CELL_TYPE, "feature_id", "n_cells", "n_expressing", "sum", "sumsq"]
    assert [str(t) for t in stats.dtypes] == ["object"] * 3 + ["int64"] * 2 + ["float64"] * 2
    assert (stats["n_expressing"] > 0).all() and (stats["n_expressing"] <= stats["n_cells"]).all()
    stored = read_organism_stats(str(built.root / "gene_expression" / "soma"), "homo_sapiens")
    keys = [TISSUE, CELL_TYPE, "feature_id"]
    a, b = stats.sort_values(keys).reset_index(drop=True), stored.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[[*keys, "n_cells", "n_expressing"]], b[[*keys, "n_cells", "n_expressing"]])
    np.testing.assert_allclose(a[["sum", "sumsq"]], b[["sum", "sumsq"]], rtol=1e-12)


def test_markers_parquet_is_marker_genes_of_the_rolled_up_stats(built: BuildPaths) -> None:
    """<organism>_markers.parquet: marker_genes on the stored cube, with the method file's settings and the
    roll-up's ancestor/descendant pairs skipped."""
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    from census_builder.gene_expression.markers import marker_genes
    from census_builder.gene_expression.store import read_organism_stats

    out = built.root / "gene_expression"
    got = pd.read_parquet(out / "homo_sapiens_markers.parquet")
    assert list(got.columns) == [TISSUE, CELL_TYPE, "feature_id", "effect_size", "rank"]
    assert [str(t) for t in got.dtypes] == ["object"] * 3 + ["float64", "int64"]
    assert len(got) > 0 and got.groupby([TISSUE, CELL_TYPE]).size().max() <= 25
    parser = OntologyParser()

    def related(a: str, b: str) -> bool:
        return b in parser.get_term_descendants(a) or a in parser.get_term_descendants(b)

    stats = read_organism_stats(str(out / "soma"), "homo_sapiens")[
        [TISSUE, CELL_TYPE, "feature_id", "n_cells", "n_expressing", "sum", "sumsq"]
    ]
    expected = marker_genes(stats, n_top=25, seed=0, related=related, n_replicates=100, percentile=10)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True), rtol=1e-9)

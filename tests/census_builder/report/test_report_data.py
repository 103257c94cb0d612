"""The report's files: the overview's figures, the data shards' values, sharding and sizes, and its errors."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from census_builder.errors import ReportError
from census_builder.report import write_report
from census_builder.report.expression import BLOCK_SIZE, Inputs, js_assign, write_organism
from tests.census_builder.report.conftest import Report
from tests.conftest import run_main_once

KEYS = ["tissue_general_ontology_term_id", "cell_type_ontology_term_id"]


def _rows(report: Report, organism: str, grouping: str) -> pd.DataFrame:
    """Every row of every shard of ``grouping`` for ``organism``, with its group's keys and n_cells."""
    index = report.read_js(f"{organism}/index")
    size = index["block_size"][grouping]
    out = []
    for t in index["tissues"]:
        for block in t["blocks"].get(grouping, []):
            s = report.read_js(f"{organism}/{t['dir']}/{grouping}_{block}")
            for r, g, e, m in zip(s["r"], s["g"], s["e"], s["m"], strict=True):
                assert g // size == block
                group = t["groups"][grouping][r]
                row = {KEYS[0]: t["id"], KEYS[1]: group[0], "feature_id": index["genes"]["id"][g]}
                if grouping != "none":
                    row[f"{grouping}_ontology_term_id"] = group[1]
                out.append({**row, "n_cells": group[-1], "n_expressing": e, "mean_expression": m})
    return pd.DataFrame(out)


def _same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    got = got.sort_values(keys).reset_index(drop=True)
    want = want.assign(mean_expression=want["mean_expression"].round(4))[list(got.columns)]
    want = want.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("organism", ["homo_sapiens", "mus_musculus"])
def test_shards_hold_every_cube_row(report: Report, organism: str) -> None:
    _same(_rows(report, organism, "none"), report.data.cube[organism], [*KEYS, "feature_id"])


@pytest.mark.parametrize("category", ["sex", "self_reported_ethnicity", "disease"])
def test_group_by_shards_hold_every_row(report: Report, category: str) -> None:
    col = f"{category}_ontology_term_id"
    want = report.data.by_category["homo_sapiens"][category]
    _same(_rows(report, "homo_sapiens", category), want, [*KEYS, col, "feature_id"])
    labels = report.read_js("homo_sapiens/index")["categories"][category]
    assert set(labels) == set(want[col])
    if category == "sex":
        assert labels["PATO:0000383"] == "female" and labels["PATO:0000384"] == "male"


def test_organism_index(report: Report) -> None:
    index = report.read_js("homo_sapiens/index")
    var = report.data.genes["homo_sapiens"]
    assert index["genes"] == {"id": var["feature_id"].tolist(), "name": var["feature_name"].tolist()}
    cube = report.data.cube["homo_sapiens"]
    assert sorted(t["id"] for t in index["tissues"]) == sorted(cube[KEYS[0]].unique())
    assert [t["label"] for t in index["tissues"]] == ["blood", "brain", "heart", "kidney", "lung"]
    assert set(index["cell_types"].values()) == {"B cell", "T cell", "macrophage"}
    kidney = next(t for t in index["tissues"] if t["label"] == "kidney")
    n = cube[cube[KEYS[0]] == kidney["id"]].groupby(KEYS[1])["n_cells"].first().to_dict()
    assert {g[0]: g[1] for g in kidney["groups"]["none"]} == n
    assert [index["cell_types"][g[0]] for g in kidney["groups"]["none"]] == ["B cell", "macrophage", "T cell"]
    assert kidney["blocks"]["none"] == [0, 1, 2, 3]  # 895 genes, every other one expressed: 4 blocks of 256
    # sex has 3 values (85 genes a block), self_reported_ethnicity and disease 2 (128); their 40 genes: block 0
    assert index["block_size"] == {"none": 256, "sex": 85, "self_reported_ethnicity": 128, "disease": 128}
    assert kidney["blocks"]["sex"] == [0]
    assert index["default"]["tissue"] == kidney["id"]  # the tissue with the most cells
    assert 0 < len(index["default"]["genes"]) <= 8


def test_markers_shard(report: Report) -> None:
    index = report.read_js("homo_sapiens/index")
    mk = report.data.markers["homo_sapiens"]
    for t in index["tissues"]:
        got = report.read_js(f"homo_sapiens/{t['dir']}/markers")
        want = mk[mk[KEYS[0]] == t["id"]].sort_values([KEYS[1], "rank"])
        assert sorted(got) == sorted(want[KEYS[1]].unique())
        for ct, rows in want.groupby(KEYS[1]):
            assert [[index["genes"]["id"][g], e, r] for g, e, r in got[ct]] == [
                [f, round(e, 4), r]
                for f, e, r in zip(rows["feature_id"], rows["effect_size"], rows["rank"], strict=True)
            ]


def test_overview_page(report: Report) -> None:
    page = (report.out / "index.html").read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Homo sapiens (homo_sapiens) 720 527 895" in text
    assert "Mus musculus (mus_musculus) 350 259 600" in text
    assert re.search(r"kidney\s+168", text) and re.search(r"diabetes mellitus\s+361", text)
    assert "10x 3' v3 420" in html.unescape(text)
    assert "Datasets (5) and their collections" in text
    assert '<a href="https://doi.org/10.0000/synthetic.1">10.0000/synthetic.1</a>' in page
    assert "Synthetic dataset human-lung-10x (human-lung-10x) 450" in text
    assert re.search(r"census_schema_version\s+1\.3\.0", text)
    for name in ("gene_expression.html", "markers.html", "plotly.min.js", "PLOTLY_LICENSE.txt", "report.js"):
        assert (report.out / name).is_file(), name
    assert "MIT" in (report.out / "PLOTLY_LICENSE.txt").read_text(encoding="utf-8")
    summary = json.loads((report.out / "report.json").read_text(encoding="utf-8"))
    assert summary["organisms"]["homo_sapiens"]["shards"] == 5 * (4 + 3 + 1)  # none blocks, 3 group-bys, markers


def test_without_gene_expression(report_without_ge: Path) -> None:
    index = (report_without_ge / "data" / "index.js").read_text(encoding="ascii")
    assert '"gene_expression":false' in index and '"organisms":[]' in index
    assert sorted(p.name for p in (report_without_ge / "data").iterdir()) == ["index.js"]
    page = (report_without_ge / "index.html").read_text(encoding="utf-8")
    assert "python -m census_builder gene-expression --version example --workdir" in page


def test_a_shard_of_a_dense_tissue_stays_small(tmp_path: Path) -> None:
    """100 cell types x one block of 256 genes, every gene expressed in every cell type (the worst case of a
    1 M-cell release's tissue); and the index of an organism with 40,000 genes."""
    genes = [(f"ENSG{i:011d}", f"GENE{i}") for i in range(40_000)]
    rows = [
        ("UBERON:0000001", f"CL:{c:07d}", genes[g][0], 10_000 + c, 1 + (c * g) % 10_000, 0.123456 + g / 100)
        for c in range(100)
        for g in range(BLOCK_SIZE)
    ]
    cube = pd.DataFrame(rows, columns=[*KEYS, "feature_id", "n_cells", "n_expressing", "mean_expression"])
    cube.to_parquet(tmp_path / "homo_sapiens.parquet", index=False)
    inputs = Inputs(tmp_path, {}, {"homo_sapiens": tmp_path / "homo_sapiens.parquet"}, {}, {})
    out = write_organism(
        tmp_path / "data", inputs, "homo_sapiens", genes=genes, labels={}, label_of=str, organism_label="Homo sapiens"
    )
    assert list(out.shard_bytes) == ["homo_sapiens/t0/none_0"]
    assert out.largest < 600_000  # measured 25,600 rows: see README "Report"
    assert out.index_bytes < 1_500_000


def test_js_assign_escapes_text() -> None:
    text = js_assign("k", {"label": "</script><b>"})
    assert text == '(window.CB_DATA=window.CB_DATA||{})["k"]={"label":"</script><b>"};\n'


def test_malformed_cube_is_refused(report: Report, tmp_path: Path) -> None:
    shutil.copytree(report.workdir / "example" / "soma", tmp_path / "example" / "soma")
    ge = tmp_path / "example" / "gene_expression"
    shutil.copytree(report.workdir / "example" / "gene_expression", ge)
    report.data.cube["homo_sapiens"].drop(columns=["n_expressing"]).to_parquet(ge / "homo_sapiens.parquet")
    with pytest.raises(ReportError) as e:
        write_report(tmp_path, "example")
    assert str(e.value) == (
        f"{ge / 'homo_sapiens.parquet'}: column(s) n_expressing missing (expected tissue_general_ontology_term_id, "
        "cell_type_ontology_term_id, feature_id, n_cells, n_expressing, mean_expression); re-run python -m "
        f"census_builder gene-expression --version example --workdir {tmp_path.resolve()}"
    )
    assert not (tmp_path / "example" / "report").exists()


def test_out_must_be_a_report_or_empty(report: Report, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ReportError, match=r"--out .* exists and is not a report \(no report.json in it\)"):
        write_report(report.workdir, "example", out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_no_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main_once(["report", "--version", "nothing", "--workdir", str(tmp_path)]) == 1
    want = (
        f"no release at {tmp_path.resolve() / 'nothing' / 'soma'}: build it first (python -m census_builder build "
        f"--version nothing --workdir {tmp_path.resolve()} --manifest MANIFEST)"
    )
    assert want in capsys.readouterr().err


def test_report_again_replaces_it(report_without_ge: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    workdir = report_without_ge.parent.parent
    write_report(workdir, "example", out=out)
    (out / "data" / "stale.js").write_text("x", encoding="ascii")
    assert write_report(workdir, "example", out=out) == out / "index.html"
    assert not (out / "data" / "stale.js").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no temporary directory left

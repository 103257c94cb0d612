"""benchmarks.read: the consumer queries are chosen from content and return the same cells and values on a
release and on copies renumbered, consolidated or with obs dictionary-encoded (never timed here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse
import tiledbsoma as soma

from benchmarks.read import QUERIES, Plan, Sink, choose_plan, consolidated_copy, main, report, run_query, storage
from benchmarks.variants import dict_obs, linked_copy, rewrite_x, round_mantissa, x_settings
from tests.conftest import BuiltRelease
from tests.validation.renumber import Numbering, renumber

SHUFFLED = Numbering(cells="shuffled", genes="shuffled", datasets="reversed", seed=5)
HUMAN = "census_data/homo_sapiens"
Triple = tuple[tuple[str, str], str, float]


def _keys(release: str) -> tuple[dict[int, tuple[str, str]], dict[int, str]]:
    """soma_joinid -> (dataset_id, observation_joinid) of the human cells; soma_joinid -> feature_id of the genes."""
    with soma.Experiment.open(f"{release}/{HUMAN}") as exp:
        obs = exp.obs.read(column_names=["soma_joinid", "dataset_id", "observation_joinid"]).concat().to_pydict()
        var = exp.ms["RNA"].var.read(column_names=["soma_joinid", "feature_id"]).concat().to_pydict()
    cells = {j: (str(d), str(o)) for j, d, o in zip(*obs.values(), strict=True)}
    return cells, {j: str(f) for j, f in zip(var["soma_joinid"], var["feature_id"], strict=True)}


def _content(release: str, plan: Plan, query: str) -> tuple[list[tuple[str, str]], list[Triple], dict[str, float]]:
    """What ``query`` read on ``release``, by content: its cells' keys and its X values, both sorted."""
    sink = Sink(keep=True)
    run_query(release, plan, query, sink)
    cells, genes = _keys(release)
    obs_keys: list[tuple[str, str]] = []
    values: list[Triple] = []
    for t in sink.obs:
        d = t.to_pydict()
        obs_keys += [(str(a), str(b)) for a, b in zip(d["dataset_id"], d["observation_joinid"], strict=True)]
    for t in sink.x:
        r, c, v = (t.column(n).to_pylist() for n in ("soma_dim_0", "soma_dim_1", "soma_data"))
        values += [(cells[i], genes[j], float(x)) for i, j, x in zip(r, c, v, strict=True)]
    for ad in sink.anndata:
        obs_keys += [(str(a), str(b)) for a, b in zip(ad.obs["dataset_id"], ad.obs["observation_joinid"], strict=True)]
        coo = scipy.sparse.coo_matrix(ad.X)
        keys = list(zip(ad.obs["dataset_id"].astype(str), ad.obs["observation_joinid"].astype(str), strict=True))
        fids = [str(f) for f in ad.var["feature_id"]]
        values += [(keys[i], fids[j], float(x)) for i, j, x in zip(coo.row, coo.col, coo.data, strict=True)]
    return sorted(obs_keys), sorted(values), sink.summary()


@pytest.fixture(scope="module")
def copies(example_release: BuiltRelease, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example release and three copies of the same content: renumbered, X consolidated, obs dictionary."""
    base = tmp_path_factory.mktemp("read")
    renumbered, _ = renumber(example_release.paths.root, base / "renumbered", SHUFFLED, example_release.manifest)
    consolidated = base / "consolidated"
    consolidated_copy(example_release.paths.soma, consolidated)
    dictionary = base / "dictionary"
    linked_copy(example_release.paths.soma, dictionary)
    dict_obs(dictionary / HUMAN / "obs")
    return {
        "as built": example_release.soma_uri,
        "renumbered": str(renumbered),
        "consolidated": str(consolidated),
        "dictionary": str(dictionary),
    }


def test_the_plan_is_chosen_from_content(copies: dict[str, str]) -> None:
    plan = choose_plan(copies["as built"])
    assert {name: choose_plan(uri) for name, uri in copies.items()} == dict.fromkeys(copies, plan)
    assert len(plan.feature_ids) == 50
    assert list(plan.feature_ids) == sorted(plan.feature_ids)
    assert plan.organism_label == "Homo sapiens"
    assert Plan.from_json(plan.to_json()) == plan
    assert plan.obs_filter == f"cell_type == '{plan.cell_type}' and is_primary_data == True"


@pytest.mark.parametrize("query", list(QUERIES))
def test_every_query_reads_the_same_content_on_every_copy(copies: dict[str, str], query: str) -> None:
    plan = choose_plan(copies["as built"])
    expected = _content(copies["as built"], plan, query)
    cells, values, summary = expected
    assert values, f"{query} read no X value on the example release"
    if query not in ("genes", "scan_raw", "scan_normalized"):
        assert cells and summary["cells"] == len(cells)
    assert summary["values"] == len(values)
    assert summary["sum"] == pytest.approx(sum(v for _, _, v in values))
    for name in ("renumbered", "consolidated", "dictionary"):
        got = _content(copies[name], plan, query)
        assert got[0] == cells, f"{query} on {name}: other cells"
        assert got[1] == values, f"{query} on {name}: other values"


def test_the_queries_select_what_they_say(copies: dict[str, str]) -> None:
    plan = choose_plan(copies["as built"])
    sink = Sink(keep=True)
    run_query(copies["dictionary"], plan, "dataset", sink)
    assert {str(v) for t in sink.obs for v in t.column("dataset_id").to_pylist()} == {plan.dataset_id}
    sink = Sink(keep=True)
    run_query(copies["renumbered"], plan, "genes", sink)
    _, genes = _keys(copies["renumbered"])
    assert {genes[j] for t in sink.x for j in t.column("soma_dim_1").to_pylist()} <= set(plan.feature_ids)
    with pytest.raises(ValueError, match="unknown query 'nope'"):
        run_query(copies["as built"], plan, "nope", Sink())


def test_storage_names_every_object_and_its_settings(copies: dict[str, str]) -> None:
    built, merged, dictionary = (storage(copies[n]) for n in ("as built", "consolidated", "dictionary"))
    assert {"census_info", "homo_sapiens/obs", "homo_sapiens/var", "homo_sapiens/X raw"} <= set(built["objects"])
    assert {"homo_sapiens/X normalized", "homo_sapiens/presence", "mus_musculus/X raw"} <= set(built["objects"])
    raw = f"{HUMAN}/ms/RNA/X/raw"
    assert built["arrays"][raw]["fragments"] > 1
    assert merged["arrays"][raw]["fragments"] == 1
    assert built["arrays"][raw]["capacity"] == 2**17
    assert [d["tile"] for d in built["arrays"][raw]["dims"]] == ["2048", "2048"]
    assert built["arrays"][raw]["attrs"][0]["filters"] == "ByteShuffle+Zstd(level=15)"
    assert built["arrays"][raw]["dims"][1]["filters"] == "ByteShuffle+Zstd(level=9)"
    assert built["arrays"][raw]["allows_duplicates"]
    assert built["arrays"][f"{HUMAN}/ms/RNA/X/normalized"]["attrs"][0]["filters"] == "Zstd(level=15)"
    obs_attrs = {a["name"]: a["enumeration"] for a in built["arrays"][f"{HUMAN}/obs"]["attrs"]}
    assert obs_attrs["dataset_id"] and obs_attrs["tissue_general"] and not obs_attrs["raw_sum"]  # issue 17
    assert not obs_attrs["observation_joinid"]
    obs_attrs = {a["name"]: a["enumeration"] for a in dictionary["arrays"][f"{HUMAN}/obs"]["attrs"]}
    assert obs_attrs["observation_joinid"] and not obs_attrs["raw_sum"]  # every string column
    assert sum(built["objects"].values()) <= built["total_bytes"]


def test_the_report_puts_releases_side_by_side(copies: dict[str, str]) -> None:
    plan = choose_plan(copies["as built"])
    q: dict[str, Any] = {"median": 2.0, "min": 1.0, "runs": [2.0], "cells": 5, "values": 9, "sum": 1.0}
    results: dict[str, Any] = {
        "plan": {"organism": plan.organism},
        "releases": {
            "ours": {"storage": storage(copies["as built"]), "queries": {"dataset": q}},
            "reference": {"storage": storage(copies["dictionary"]), "queries": {"dataset": {**q, "median": 3.0}}},
        },
    }
    lines = report(results, ["dataset"])
    assert lines[0].startswith("| query | ours median (min) s | reference median (min) s | reference / ours |")
    assert lines[2] == f"| {QUERIES['dataset']} | 2.00 (1.00) | 3.00 (1.00) | 1.50 | 5 | 9 |"
    results["releases"]["reference"]["queries"]["dataset"]["values"] = 10
    assert report(results, ["dataset"])[2].endswith("| 5 | 9 (DIFFER) |")
    assert any(line.startswith("| obs | ") and "(dict)" in line for line in lines)


def test_rewriting_x_keeps_the_content_up_to_the_rounding(copies: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "x"
    linked_copy(Path(copies["as built"]), dest)
    uri = dest / HUMAN / "ms/RNA/X/normalized"
    rewrite_x(uri, x_settings("reference", "normalized"), keep_bits=12)  # the build keeps 15: coarser

    def read(root: str | Path) -> pa.Table:
        with soma.SparseNDArray.open(f"{root}/{HUMAN}/ms/RNA/X/normalized") as a:
            return a.read().tables().concat().sort_by([("soma_dim_0", "ascending"), ("soma_dim_1", "ascending")])

    before, after = read(copies["as built"]), read(dest)
    assert before.select(["soma_dim_0", "soma_dim_1"]).equals(after.select(["soma_dim_0", "soma_dim_1"]))
    b, a = (np.asarray(t.column("soma_data").to_numpy(), dtype=np.float64) for t in (before, after))
    assert np.all(np.abs(a - b) <= np.abs(b) * 2.0**-13)
    assert not np.array_equal(a, b)  # the rounding did something
    assert storage(str(dest))["arrays"][f"{HUMAN}/ms/RNA/X/normalized"]["attrs"][0]["filters"] == "Zstd(level=13)"
    assert read(copies["as built"]).num_rows == before.num_rows  # the source was not touched


def test_round_mantissa_rounds_half_to_even() -> None:
    v = np.array([1 + 2**-16, 1 + 3 * 2**-16, 1 + 2**-15 + 2**-17, 2 - 2**-17, 0.0], dtype=np.float32)
    assert round_mantissa(v, 15).tolist() == [1.0, 1 + 2**-14, 1 + 2**-15, 2.0, 0.0]
    assert round_mantissa(v, 23).tolist() == v.tolist()


def test_the_command_times_each_release_and_writes_json(
    copies: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "read.json"
    argv = [copies["as built"], "--compare", copies["renumbered"], "--compare", copies["dictionary"]]
    argv += ["--names", "ours,renumbered,dict", "--queries", "dataset,genes", "--repeats", "1", "--json", str(out)]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert list(results["releases"]) == ["ours", "renumbered", "dict"]
    for q in ("dataset", "genes"):
        got = {(r["queries"][q]["cells"], r["queries"][q]["values"]) for r in results["releases"].values()}
        assert len(got) == 1, f"{q}: the releases returned different content: {got}"
        assert all(len(r["queries"][q]["runs"]) == 1 for r in results["releases"].values())
    assert results["plan"]["dataset_id"] == choose_plan(copies["as built"]).dataset_id
    assert "x_seconds_median" in results["releases"]["dict"]["queries"]["dataset"]
    table = capsys.readouterr().out
    assert "| query | ours median (min) s | renumbered median (min) s | dict median (min) s |" in table
    assert "DIFFER" not in table
    with pytest.raises(SystemExit):
        main([copies["as built"], "--queries", "nope"])

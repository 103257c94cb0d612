"""benchmarks.reference.compare on what Census schema 2.4.0 adds: the organisms table, collection_doi_label, the
summary rows, five experiments (one may be empty or absent on one side), dictionary-encoded columns.

Each test writes two tiny hand-made 2.4.0 releases with tiledbsoma (nothing from census_builder), the second
in another numbering and encoding, plants one change and checks that exactly that difference is listed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import tiledbsoma as soma

from benchmarks.reference.compare import NORMALIZED_RTOL, compare_releases
from benchmarks.reference.diff import Report

HUMAN, CHIMP, MACAQUE = "homo_sapiens", "pan_troglodytes", "macaca_mulatta"
FLOAT32 = pa.float32()
STRINGS = ("dataset_id", "observation_joinid", "cell_type", "feature_id", "feature_name", "feature_type")


@dataclass
class Exp:
    """One experiment's content, by name (no soma_joinids): obs rows, var rows, X entries, presence pairs."""

    cells: list[dict[str, Any]] = field(default_factory=list)  # dataset_id, observation_joinid, cell_type, raw_sum
    genes: list[dict[str, Any]] = field(default_factory=list)  # feature_id, feature_name, feature_type, length
    raw: dict[tuple[str, str], float] = field(default_factory=dict)  # (observation_joinid, feature_id) -> value
    normalized: dict[tuple[str, str], float] = field(default_factory=dict)
    presence: set[tuple[str, str]] = field(default_factory=set)  # (dataset_id, feature_id)


@dataclass
class Mini:
    """A tiny Census 2.4.0 release's content."""

    summary: dict[str, str]
    datasets: list[dict[str, Any]]
    organisms: list[dict[str, str]]
    experiments: dict[str, Exp]


def _content() -> Mini:
    human = Exp(
        cells=[
            {"dataset_id": "d1", "observation_joinid": "a", "cell_type": "T cell", "raw_sum": 5.0},
            {"dataset_id": "d1", "observation_joinid": "b", "cell_type": "B cell", "raw_sum": 2.0},
        ],
        genes=[
            {"feature_id": "ENSG1", "feature_name": "G1", "feature_type": "lncRNA", "feature_length": 100},
            {"feature_id": "ENSG2", "feature_name": "G2", "feature_type": "protein_coding", "feature_length": 200},
            {"feature_id": "ENSG3", "feature_name": "G3", "feature_type": "miRNA", "feature_length": 300},
        ],
        raw={("a", "ENSG1"): 3.0, ("a", "ENSG3"): 2.0, ("b", "ENSG2"): 2.0},
        normalized={("a", "ENSG1"): 0.6, ("a", "ENSG3"): 0.4, ("b", "ENSG2"): 1.0},
        presence={("d1", "ENSG1"), ("d1", "ENSG2"), ("d1", "ENSG3")},
    )
    chimp = Exp(
        cells=[{"dataset_id": "d2", "observation_joinid": "c", "cell_type": "T cell", "raw_sum": 1.0}],
        genes=[{"feature_id": "ENSPTRG1", "feature_name": "P1", "feature_type": "snRNA", "feature_length": 50}],
        raw={("c", "ENSPTRG1"): 1.0},
        normalized={("c", "ENSPTRG1"): 1.0},
        presence={("d2", "ENSPTRG1")},
    )
    return Mini(
        summary={"census_schema_version": "2.4.0", "dataset_schema_version": "7.0.0", "total_cell_count": "3"},
        datasets=[
            {"dataset_id": d, "collection_id": "c", "collection_doi_label": "Doe et al. (2025) Cell", "n": n}
            for d, n in (("d1", 2), ("d2", 1))
        ],
        organisms=[
            {"organism_ontology_term_id": t, "organism_label": label, "organism": name}
            for t, label, name in (
                ("NCBITaxon:9606", "Homo sapiens", HUMAN),
                ("NCBITaxon:9598", "Pan troglodytes", CHIMP),
                ("NCBITaxon:9544", "Macaca mulatta", MACAQUE),
            )
        ],
        experiments={HUMAN: human, CHIMP: chimp, MACAQUE: Exp()},  # the reference writes empty experiments too
    )


def _table(rows: list[dict[str, Any]], order: list[int], encode: bool, types: dict[str, pa.DataType]) -> pa.Table:
    cols: dict[str, Any] = {"soma_joinid": pa.array(order, pa.int64())}
    for name, t in types.items():
        values = pa.array([r[name] for r in rows], t)
        cols[name] = values.dictionary_encode() if encode and name in STRINGS else values
    table = pa.table(cols)
    return table.take(pa.array(np.argsort(order)))


def _df(coll: Any, name: str, table: pa.Table) -> None:
    # created at its URI, then added: the dictionaries written through add_new_dataframe read back empty
    uri, n = f"{coll.uri}/{name}", max(table.num_rows, 1)
    with soma.DataFrame.create(uri, schema=table.schema, index_column_names=["soma_joinid"], domain=[(0, n - 1)]) as df:
        if table.num_rows:
            df.write(table)
    coll.set(name, soma.DataFrame.open(uri), use_relative_uri=True)


def _nd(coll: Any, name: str, entries: list[tuple[int, int, Any]], shape: tuple[int, int], t: pa.DataType) -> None:
    arr = coll.add_new_sparse_ndarray(name, type=t, shape=shape)
    if entries:
        rows, cols, vals = zip(*sorted(entries), strict=True)
        arr.write(
            pa.table(
                {
                    "soma_dim_0": pa.array(rows, pa.int64()),
                    "soma_dim_1": pa.array(cols, pa.int64()),
                    "soma_data": pa.array(vals, t),
                }
            )
        )


def _perm(n: int, reverse: bool) -> list[int]:
    return list(range(n))[::-1] if reverse else list(range(n))


def _write(root: Path, mini: Mini, *, reverse: bool = False, encode: bool = False, stats: pa.DataType = FLOAT32) -> str:
    """Write ``mini`` as a release at ``root``; ``reverse`` numbers everything backwards, ``encode`` makes
    the string columns dictionaries; ``stats`` is the type of obs raw_sum."""
    s = pa.string()
    c: Any
    with soma.Collection.create(str(root)) as c:
        info = c.add_new_collection("census_info")
        summary = [{"label": k, "value": v} for k, v in mini.summary.items()]
        _df(info, "summary", _table(summary, _perm(len(summary), reverse), encode, {"label": s, "value": s}))
        ds_order = _perm(len(mini.datasets), reverse)
        ds_joinid = {d["dataset_id"]: j for d, j in zip(mini.datasets, ds_order, strict=True)}
        ds_types = {"dataset_id": s, "collection_id": s, "collection_doi_label": s, "n": pa.int64()}
        _df(info, "datasets", _table(mini.datasets, ds_order, encode, ds_types))
        org_types = {"organism_ontology_term_id": s, "organism_label": s, "organism": s}
        _df(info, "organisms", _table(mini.organisms, _perm(len(mini.organisms), reverse), encode, org_types))
        data = c.add_new_collection("census_data")
        for name, e in mini.experiments.items():
            exp = data.add_new_collection(name, soma.Experiment)
            cell_order, gene_order = _perm(len(e.cells), reverse), _perm(len(e.genes), reverse)
            obs_types = {"dataset_id": s, "observation_joinid": s, "cell_type": s, "raw_sum": stats}
            _df(exp, "obs", _table(e.cells, cell_order, encode, obs_types))
            rna = exp.add_new_collection("ms").add_new_collection("RNA", soma.Measurement)
            var_types = {"feature_id": s, "feature_name": s, "feature_type": s, "feature_length": pa.int64()}
            _df(rna, "var", _table(e.genes, gene_order, encode, var_types))
            x = rna.add_new_collection("X")
            if not e.cells:  # as the reference: no layers and no presence matrix without cells
                continue
            cell = {r["observation_joinid"]: j for r, j in zip(e.cells, cell_order, strict=True)}
            gene = {r["feature_id"]: j for r, j in zip(e.genes, gene_order, strict=True)}
            shape = (len(e.cells), len(e.genes))
            for layer, values in (("raw", e.raw), ("normalized", e.normalized)):
                entries = [(cell[o], gene[f], v) for (o, f), v in values.items()]
                _nd(x, layer, entries, shape, pa.float32())
            presence = [(ds_joinid[d], gene[f], True) for d, f in e.presence]
            _nd(rna, "feature_dataset_presence_matrix", presence, (len(mini.datasets), len(e.genes)), pa.bool_())
    return str(root)


def _pair(tmp_path: Path, change: Callable[[Mini], Any] | None = None, **kwargs: Any) -> Report:
    ours = _write(tmp_path / "ours", _content())
    ref = _content()
    if change is not None:
        change(ref)
    return compare_releases(ours, _write(tmp_path / "ref", ref, reverse=True, encode=True, **kwargs))


def _diffs(report: Report) -> list[tuple[str, str, str]]:
    assert report.total == len(report.kept), report.counts
    return sorted((d.where, d.key, d.what) for d in report.kept)


def test_the_same_content_in_another_numbering_and_encoding_is_equal(tmp_path: Path) -> None:
    report = _pair(tmp_path)
    assert _diffs(report) == []
    assert dict(report.compared) == {"cells": 3, "genes": 4, "X raw entries": 4, "X normalized entries": 4}


def test_organisms_rows_are_matched_by_term_id(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.organisms[1]["organism_label"] = "chimpanzee"
        m.organisms.append({"organism_ontology_term_id": "NCBITaxon:9483", "organism_label": "x", "organism": "y"})

    assert _diffs(_pair(tmp_path, change)) == [
        (
            "census_info/organisms",
            "organism_ontology_term_id='NCBITaxon:9483'",
            "row only in the reference",
        ),
        (
            "census_info/organisms",
            "organism_ontology_term_id='NCBITaxon:9598'",
            "organism_label: 'Pan troglodytes' (ours) != 'chimpanzee' (reference)",
        ),
    ]


def test_a_different_collection_doi_label_is_that_difference(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.datasets[1]["collection_doi_label"] = "Doe et al. (2026) Cell"

    assert _diffs(_pair(tmp_path, change)) == [
        (
            "census_info/datasets",
            "dataset_id='d2'",
            "collection_doi_label: 'Doe et al. (2025) Cell' (ours) != 'Doe et al. (2026) Cell' (reference)",
        )
    ]


def test_a_summary_row_on_one_side_only_is_listed(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.summary["number_donors_homo_sapiens"] = "3"  # a 1.3.0 row that 2.4.0 no longer has

    assert _diffs(_pair(tmp_path, change)) == [
        ("census_info/summary", "label='number_donors_homo_sapiens'", "row only in the reference")
    ]


def test_an_experiment_on_one_side_only_is_listed_with_its_cells(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.experiments["callithrix_jacchus"] = Exp()
        del m.experiments[CHIMP]

    assert _diffs(_pair(tmp_path, change)) == [
        ("census_data", "", "experiment 'callithrix_jacchus' (0 cells) only in the reference"),
        ("census_data", "", "experiment 'pan_troglodytes' (1 cells) only in ours"),
    ]


def test_an_experiment_empty_on_one_side_is_listed(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.experiments[CHIMP] = Exp()

    place = f"census_data/{CHIMP}"
    assert _diffs(_pair(tmp_path, change)) == [
        (place, "", "experiment empty on one side: 1 cells in ours, 0 in the reference"),
        (f"{place}/ms/RNA", "", "array 'feature_dataset_presence_matrix' only in ours"),
        (f"{place}/ms/RNA/X", "", "layer 'normalized' only in ours"),
        (f"{place}/ms/RNA/X", "", "layer 'raw' only in ours"),
        (f"{place}/ms/RNA/var", "feature_id='ENSPTRG1'", "row only in ours"),
        (f"{place}/obs", "dataset_id='d2' observation_joinid='c'", "cell only in ours"),
    ]


def test_presence_is_compared_by_dataset_and_feature(tmp_path: Path) -> None:
    def change(m: Mini) -> None:
        m.experiments[HUMAN].presence.discard(("d1", "ENSG2"))

    assert _diffs(_pair(tmp_path, change)) == [
        (
            f"census_data/{HUMAN}/ms/RNA/feature_dataset_presence_matrix",
            "dataset_id='d1' feature_id='ENSG2'",
            "present only in ours",
        )
    ]


def test_normalized_beyond_the_reference_precision_is_a_difference(tmp_path: Path) -> None:
    within = float(np.float32(0.6) * np.float32(1 + NORMALIZED_RTOL / 2))
    beyond = float(np.float32(0.4) * np.float32(1 + 4 * NORMALIZED_RTOL))

    def change(m: Mini) -> None:
        m.experiments[HUMAN].normalized[("a", "ENSG1")] = within
        m.experiments[HUMAN].normalized[("a", "ENSG3")] = beyond

    assert _diffs(_pair(tmp_path, change)) == [
        (
            f"census_data/{HUMAN}/ms/RNA/X/normalized",
            "dataset_id='d1' observation_joinid='a' feature_id='ENSG3'",
            f"{float(np.float32(0.4))!r} (ours) != {float(np.float32(beyond))!r} (reference)",
        )
    ]


def test_obs_statistics_of_another_float_type_are_one_difference_per_experiment(tmp_path: Path) -> None:
    report = _pair(tmp_path, stats=pa.float64())
    assert _diffs(report) == [
        (f"census_data/{name}/obs", "", "column 'raw_sum': type float (ours) != double (reference)")
        for name in sorted((CHIMP, HUMAN, MACAQUE))
    ]


@pytest.mark.parametrize("part", ["var", "obs"])
def test_a_part_missing_from_an_empty_experiment_is_listed(tmp_path: Path, part: str) -> None:
    ours = _write(tmp_path / "ours", _content())
    ref = _write(tmp_path / "ref", copy.deepcopy(_content()))
    # remove the part from the reference's empty experiment (a release writer that skips it)
    c: Any
    with soma.Collection.open(ref, "w") as c:
        exp = c["census_data"][MACAQUE]
        target = exp.ms["RNA"] if part == "var" else exp
        del target[part]
    where = f"census_data/{MACAQUE}"
    expected = "ms/RNA/var" if part == "var" else "obs"
    assert _diffs(compare_releases(ours, ref)) == [(where, "", f"{expected} only in ours")]

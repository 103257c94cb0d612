"""Tiny hand-made Census 2.4.0 releases, written with tiledbsoma directly (nothing from census_builder).

``content()`` is a release's content by name (no soma_joinids): census_info tables and three experiments
(human, chimp with cells; macaque empty, as the reference writes empty experiments); a test changes it and
``write_release`` writes it, optionally numbered backwards and with dictionary-encoded string columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import tiledbsoma as soma

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
    cell_counts: list[dict[str, Any]] = field(default_factory=list)  # summary_cell_counts rows


def content() -> Mini:
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
        cell_counts=[
            {"organism": o, "category": c, "ontology_term_id": t, "label": label, "total": n, "unique": n}
            for o, c, t, label, n in (
                ("Homo sapiens", "all", "na", "na", 2),
                ("Homo sapiens", "cell_type", "CL:0000084", "T cell", 1),
                ("Pan troglodytes", "all", "na", "na", 1),
            )
        ],
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


def write_release(
    root: Path, mini: Mini, *, reverse: bool = False, encode: bool = False, stats: pa.DataType = FLOAT32
) -> str:
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
        count_types = {"organism": s, "category": s, "ontology_term_id": s, "label": s}
        count_types |= {"total": pa.int64(), "unique": pa.int64()}
        counts = _table(mini.cell_counts, _perm(len(mini.cell_counts), reverse), encode, count_types)
        _df(info, "summary_cell_counts", counts)
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

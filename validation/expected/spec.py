"""The Census schema as the validator reads it: a small, frozen view of ``census_schema``'s YAML data.

This is deliberately separate from the builder's own schema loader: the validator reads the same data
file with its own code, so a loader bug cannot hide itself in both places.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Literal

import census_schema

Encoding = Literal["string", "bool", "int64", "float32"]
ENCODINGS: tuple[Encoding, ...] = ("string", "bool", "int64", "float32")
PRESENCE_RULES = ("nonzero", "listed")  # presence_matrix.rule: what makes a (dataset, gene) bit True


@dataclass(frozen=True)
class Column:
    """A dataframe column of the schema."""

    name: str
    encoding: Encoding
    origin: str = "derived"  # "source" (copied from the H5AD), "derived" or "statistic"


@dataclass(frozen=True)
class Organism:
    """A Census organism."""

    name: str  # census_data key, e.g. "homo_sapiens"
    label: str  # e.g. "Homo sapiens"
    term: str  # e.g. "NCBITaxon:9606"


@dataclass(frozen=True)
class Category:
    """A summary_cell_counts category and the obs columns of its label and term."""

    name: str
    label_column: str | None  # None: the label is "na"
    term_column: str | None  # None: the ontology_term_id is "na"


@dataclass(frozen=True)
class Spec:
    """The Census schema, as the validator reads it."""

    version: str
    dataset_schema_version: str
    organisms: tuple[Organism, ...]
    included_assays: frozenset[str]
    spatial_assays: frozenset[str]  # accepted for census_spatial_sequencing; never in census_data
    length_normalized_assays: frozenset[str]
    tissue_types_kept: frozenset[str]
    feature_biotype: str
    organism_rule: str  # "multi_species" (1.3.0) or "dataset_organism" (2.4.0)
    other_references: frozenset[str]  # feature_reference values allowed besides the organism's; never included
    organism_in: str  # "obs" (a column, per cell) or "uns" (one per dataset)
    organism_key: str
    uns_schema_version_key: str
    obs: tuple[Column, ...]
    var: tuple[Column, ...]
    tables: dict[str, tuple[Column, ...]]  # census_info dataframe name -> columns
    summary_rows: tuple[str, ...]
    categories: tuple[Category, ...]
    measurement: str
    x_layers: dict[str, Encoding]
    presence_matrix: str
    presence_encoding: Encoding
    presence_rule: str  # "nonzero": a count > 0 in the dataset's Census cells; "listed": in the dataset's var
    spatial_cells: bool = False  # the census_spatial_sequencing view (SPATIAL_SUFFIX): its cells and X['raw'] only

    def organism_by_term(self, term: str) -> Organism | None:
        """Return the organism with ontology term ``term`` (None: not a Census organism)."""
        return next((o for o in self.organisms if o.term == term), None)

    def organism_by_name(self, name: str) -> Organism:
        """Return the organism whose census_data key is ``name``."""
        return next(o for o in self.organisms if o.name == name)

    @property
    def obs_source_columns(self) -> tuple[str, ...]:
        """The obs columns copied from the source H5AD."""
        return tuple(c.name for c in self.obs if c.origin == "source")


def _encoding(value: Any, where: str) -> Encoding:
    if value not in ENCODINGS:
        raise ValueError(f"census schema data: unknown encoding {value!r} for {where}")
    enc: Encoding = value
    return enc


def _columns(items: list[dict[str, Any]], where: str) -> tuple[Column, ...]:
    return tuple(
        Column(str(c["name"]), _encoding(c["encoding"], f"{where}.{c['name']}"), str(c.get("from", "derived")))
        for c in items
    )


def _presence_rule(value: Any) -> str:
    if value not in PRESENCE_RULES:
        raise ValueError(f"census schema data: unknown presence_matrix rule {value!r} (known: {PRESENCE_RULES})")
    return str(value)


SPATIAL_SUFFIX = "+spatial"  # load_spec("2.4.0+spatial"): the census_spatial_sequencing view of 2.4.0


@functools.cache
def load_spec(version: str = census_schema.DEFAULT_VERSION) -> Spec:
    """Read the schema data file for ``version``.

    ``VERSION+spatial`` (SPATIAL_SUFFIX): the same schema seen from ``census_spatial_sequencing``, so that the
    census_data checks run unchanged on its experiments (validation.spatial_contents): its cells are the
    spatial assays' (validation.expected.filters), X has only 'raw', and it has no census_info tables.
    """
    if version.endswith(SPATIAL_SUFFIX):
        base = load_spec(version.removesuffix(SPATIAL_SUFFIX))
        return replace(
            base,
            version=version,
            included_assays=base.spatial_assays,
            x_layers={"raw": base.x_layers["raw"]},
            tables={},
            spatial_cells=True,
        )
    doc = census_schema.load_document(version)
    info = doc["census_info"]
    scc = info["summary_cell_counts"]
    exp = doc["experiment"]
    return Spec(
        version=str(doc["census_schema_version"]),
        dataset_schema_version=str(doc["dataset_schema_version"]),
        organisms=tuple(
            Organism(str(o["name"]), str(o["label"]), str(o["ontology_term_id"])) for o in doc["organisms"]
        ),
        included_assays=frozenset(str(a) for a in doc["assays"]["included"]),
        spatial_assays=frozenset(str(a) for a in doc["assays"]["spatial"]),
        length_normalized_assays=frozenset(str(a) for a in doc["assays"]["feature_length_normalized"]),
        tissue_types_kept=frozenset(str(t) for t in doc["cells"]["tissue_type_kept"]),
        feature_biotype=str(doc["features"]["feature_biotype_kept"]),
        organism_rule=str(doc["features"]["organism_rule"]),
        other_references=frozenset(str(r) for r in doc["features"]["other_references"]),
        organism_in=str(doc["source"]["organism"]["in"]),
        organism_key=str(doc["source"]["organism"]["key"]),
        uns_schema_version_key=str(doc["source"]["uns_schema_version_key"]),
        obs=_columns(doc["obs"], "obs"),
        var=_columns(doc["var"], "var"),
        tables={name: _columns(table["columns"], name) for name, table in info.items()},
        summary_rows=tuple(str(r) for r in info["summary"]["rows"]),
        categories=tuple(
            Category(str(k), v.get("label"), v.get("ontology_term_id")) for k, v in scc["categories"].items()
        ),
        measurement=str(exp["measurement"]),
        x_layers={str(k): _encoding(v, f"x_layers.{k}") for k, v in exp["x_layers"].items()},
        presence_matrix=str(exp["presence_matrix"]["name"]),
        presence_encoding=_encoding(exp["presence_matrix"]["encoding"], "presence_matrix"),
        presence_rule=_presence_rule(exp["presence_matrix"]["rule"]),
    )

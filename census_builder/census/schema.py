"""Frozen, typed view of the Census schema data file (``schema/census_schema_<version>.yaml``).

Nothing in the pipeline hard-codes an assay, an organism or a column: it asks a :class:`CensusSchema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import census_schema
import pyarrow as pa

from census_builder.errors import SchemaError

Encoding = Literal["string", "bool", "int64", "float32"]
ColumnSource = Literal["source", "derived", "statistic"]
OrganismRule = Literal["multi_species", "dataset_organism"]
PresenceRule = Literal["nonzero", "listed"]

_ARROW: dict[str, pa.DataType] = {
    "string": pa.large_string(),
    "bool": pa.bool_(),
    "int64": pa.int64(),
    "float32": pa.float32(),
}


@dataclass(frozen=True)
class Column:
    """A column of a release table: its name, the schema's encoding, and whether it is copied from the source."""

    name: str
    encoding: Encoding
    origin: ColumnSource = "derived"

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type of the column's encoding."""
        return _ARROW[self.encoding]


@dataclass(frozen=True)
class Organism:
    """A Census organism: its census_data key, label and NCBITaxon term."""

    name: str  # census_data key, e.g. "homo_sapiens"
    label: str  # NCBITaxon label, e.g. "Homo sapiens"
    ontology_term_id: str  # e.g. "NCBITaxon:9606"


@dataclass(frozen=True)
class ExcludedAssay:
    """An assay the Census leaves out, with the schema's reason."""

    label: str
    reason: str


@dataclass(frozen=True)
class SummaryCategory:
    """A category of the summary_cell_counts table and the obs columns that hold it."""

    name: str
    label_column: str | None
    ontology_column: str | None


@dataclass(frozen=True)
class CensusSchema:
    """One Census schema version, as its data file (``schema/census_schema_*.yaml``) gives it."""

    version: str
    dataset_schema_version: str
    organisms: tuple[Organism, ...]
    included_assays: Mapping[str, str]
    excluded_assays: Mapping[str, ExcludedAssay]
    spatial_assays: Mapping[str, str]  # accepted, but for census_spatial_sequencing, never census_data
    feature_length_assays: frozenset[str]
    tissue_type_vocabulary: tuple[str, ...]
    tissue_type_kept: frozenset[str]
    feature_biotype_kept: str
    organism_rule: OrganismRule  # how a dataset's organism and genes are chosen (see the schema files)
    other_references: Mapping[str, str]  # feature_reference values allowed besides the organism's; never included
    organism_in: Literal["obs", "uns"]  # where the source holds the organism: an obs column or a uns key
    organism_key: str
    source_obs_columns: tuple[str, ...]
    source_var_columns: tuple[str, ...]
    uns_schema_version_key: str
    obs: tuple[Column, ...]
    var: tuple[Column, ...]
    summary_columns: tuple[Column, ...]
    summary_rows: tuple[str, ...]
    datasets_columns: tuple[Column, ...]
    summary_cell_counts_columns: tuple[Column, ...]
    summary_categories: tuple[SummaryCategory, ...]
    organisms_columns: tuple[Column, ...]  # census_info/organisms (empty: the schema has no such table)
    measurement: str
    x_layers: tuple[str, ...]
    presence_matrix: str
    x_layer_encodings: Mapping[str, Encoding]  # X layer name -> value encoding, e.g. {"raw": "float32"}
    presence_encoding: Encoding  # value encoding of the presence matrix
    presence_rule: PresenceRule  # nonzero: a count > 0 in the dataset's cells; listed: in the dataset's var

    def organism_by_term(self, term_id: str) -> Organism | None:
        """Return the Census organism with NCBITaxon ``term_id``, or None."""
        return next((o for o in self.organisms if o.ontology_term_id == term_id), None)

    @property
    def organism_terms(self) -> frozenset[str]:
        """The NCBITaxon terms of the Census organisms."""
        return frozenset(o.ontology_term_id for o in self.organisms)

    @property
    def obs_source_columns(self) -> tuple[str, ...]:
        """Names of the obs columns copied verbatim from the source H5AD."""
        return tuple(c.name for c in self.obs if c.origin == "source")

    def x_layer_arrow_type(self, layer: str) -> pa.DataType:
        """Return the Arrow value type of X layer ``layer``."""
        return _ARROW[self.x_layer_encodings[layer]]

    @property
    def presence_arrow_type(self) -> pa.DataType:
        """The Arrow value type of the presence matrix."""
        return _ARROW[self.presence_encoding]

    @staticmethod
    def arrow_schema(columns: tuple[Column, ...]) -> pa.Schema:
        """Return the Arrow schema of a table of ``columns`` (none nullable)."""
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=False) for c in columns])


def _columns(items: list[dict[str, Any]]) -> tuple[Column, ...]:
    return tuple(Column(name=i["name"], encoding=i["encoding"], origin=i.get("from", "derived")) for i in items)


def _one_of(value: Any, allowed: tuple[str, ...], what: str) -> Any:
    if value not in allowed:
        raise KeyError(f"unknown {what} {value!r} (known: {', '.join(allowed)})")
    return value


def _encoding(value: Any) -> Encoding:
    if value not in _ARROW:
        raise KeyError(f"unknown encoding {value!r} (known: {', '.join(_ARROW)})")
    return value  # type: ignore[no-any-return]


@cache
def load_schema(version: str = census_schema.DEFAULT_VERSION) -> CensusSchema:
    """Load and check the schema data file for ``version``."""
    try:
        doc = census_schema.load_document(version)
        assays = doc["assays"]
        info = doc["census_info"]
        exp = doc["experiment"]
        spec = CensusSchema(
            version=str(doc["census_schema_version"]),
            dataset_schema_version=str(doc["dataset_schema_version"]),
            organisms=tuple(
                Organism(name=o["name"], label=o["label"], ontology_term_id=o["ontology_term_id"])
                for o in doc["organisms"]
            ),
            included_assays=dict(assays["included"]),
            excluded_assays={k: ExcludedAssay(v["label"], v["reason"]) for k, v in assays["excluded"].items()},
            spatial_assays=dict(assays["spatial"]),
            feature_length_assays=frozenset(assays["feature_length_normalized"]),
            tissue_type_vocabulary=tuple(doc["cells"]["tissue_type_vocabulary"]),
            tissue_type_kept=frozenset(doc["cells"]["tissue_type_kept"]),
            feature_biotype_kept=str(doc["features"]["feature_biotype_kept"]),
            organism_rule=_one_of(doc["features"]["organism_rule"], ("multi_species", "dataset_organism"), "rule"),
            other_references=dict(doc["features"]["other_references"]),
            organism_in=_one_of(doc["source"]["organism"]["in"], ("obs", "uns"), "organism location"),
            organism_key=str(doc["source"]["organism"]["key"]),
            source_obs_columns=tuple(doc["source"]["obs_columns"]),
            source_var_columns=tuple(doc["source"]["var_columns"]),
            uns_schema_version_key=str(doc["source"]["uns_schema_version_key"]),
            obs=_columns(doc["obs"]),
            var=_columns(doc["var"]),
            summary_columns=_columns(info["summary"]["columns"]),
            summary_rows=tuple(info["summary"]["rows"]),
            datasets_columns=_columns(info["datasets"]["columns"]),
            summary_cell_counts_columns=_columns(info["summary_cell_counts"]["columns"]),
            summary_categories=tuple(
                SummaryCategory(name=k, label_column=v["label"], ontology_column=v["ontology_term_id"])
                for k, v in info["summary_cell_counts"]["categories"].items()
            ),
            organisms_columns=_columns(info["organisms"]["columns"]) if "organisms" in info else (),
            measurement=str(exp["measurement"]),
            x_layers=tuple(exp["x_layers"]),
            presence_matrix=str(exp["presence_matrix"]["name"]),
            x_layer_encodings={str(k): _encoding(v) for k, v in exp["x_layers"].items()},
            presence_encoding=_encoding(exp["presence_matrix"]["encoding"]),
            presence_rule=_one_of(exp["presence_matrix"]["rule"], ("nonzero", "listed"), "presence rule"),
        )
    except (KeyError, TypeError, FileNotFoundError) as e:
        raise SchemaError(f"Census schema data for version {version!r} is malformed or missing: {e!r}") from e
    if spec.version != version:
        raise SchemaError(f"schema file for {version!r} declares version {spec.version!r}")
    overlap = (
        (set(spec.included_assays) & set(spec.excluded_assays))
        | (set(spec.included_assays) & set(spec.spatial_assays))
        | (set(spec.spatial_assays) & set(spec.excluded_assays))
    )
    if overlap:
        raise SchemaError(f"assays in more than one of included, spatial and excluded: {sorted(overlap)}")
    if not spec.feature_length_assays <= set(spec.included_assays):
        raise SchemaError("feature_length_normalized assays must be included assays")
    return spec

"""Where everything of a release lives: one frozen object that knows every URI below its root.

    layout = ReleaseLayout(root, schema)
    layout.census_info_table("datasets")      # ROOT/census_info/datasets
    exp = layout.experiment("homo_sapiens")   # ROOT/census_data/homo_sapiens
    exp.obs, exp.var, exp.x_layer("raw"), exp.presence

The names below the root are the Census's fixed structure; the measurement, the X layers and the presence
matrix are named by the :class:`~census_builder.census.schema.CensusSchema`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from census_builder.census.schema import CensusSchema

CENSUS_INFO = "census_info"
CENSUS_DATA = "census_data"
CENSUS_SPATIAL = "census_spatial_sequencing"  # Census 2.4.0: Visium V1 and Slide-seqV2 datasets
SPATIAL_X_LAYERS = ("raw",)  # census_spatial_sequencing's only X layer (Census 2.4.0)
OBS_SPATIAL_PRESENCE = "obs_spatial_presence"
SPATIAL = "spatial"
OBS = "obs"
MS = "ms"
VAR = "var"
X = "X"


@dataclass(frozen=True)
class ExperimentLayout:
    """The URIs of one organism's experiment (``ROOT/census_data/<organism>``)."""

    organism: str
    uri: str
    obs: str
    ms: str  # the collection of measurements
    measurement: str  # ms/<schema measurement>, e.g. ms/RNA
    var: str
    x: str  # the collection of X layers
    x_layers: Mapping[str, str]  # layer name -> URI, in the schema's order
    presence: str  # the feature/dataset presence matrix
    kind: str = CENSUS_DATA  # the collection it lives in: census_data or census_spatial_sequencing

    @property
    def obs_spatial_presence(self) -> str:
        """The obs-to-scene table (census_spatial_sequencing only)."""
        return os.path.join(self.uri, OBS_SPATIAL_PRESENCE)

    @property
    def spatial(self) -> str:
        """The collection of scenes (census_spatial_sequencing only)."""
        return os.path.join(self.uri, SPATIAL)

    def x_layer(self, name: str) -> str:
        """Return the URI of X layer ``name``."""
        return self.x_layers[name]


@dataclass(frozen=True)
class ReleaseLayout:
    """Every URI of the release rooted at ``root``, as the schema shapes it."""

    root: str
    schema: CensusSchema

    @property
    def census_info(self) -> str:
        """The census_info collection."""
        return os.path.join(self.root, CENSUS_INFO)

    @property
    def census_data(self) -> str:
        """The census_data collection (one experiment per organism)."""
        return os.path.join(self.root, CENSUS_DATA)

    def census_info_table(self, name: str) -> str:
        """Return the URI of the census_info dataframe ``name`` (datasets, summary, summary_cell_counts)."""
        return os.path.join(self.census_info, name)

    def experiment(self, organism: str, kind: str = CENSUS_DATA) -> ExperimentLayout:
        """Return the URIs of ``organism``'s experiment in ``kind`` (census_data or census_spatial_sequencing)."""
        uri = os.path.join(self.root, kind, organism)
        layers = SPATIAL_X_LAYERS if kind == CENSUS_SPATIAL else self.schema.x_layers
        ms = os.path.join(uri, MS)
        measurement = os.path.join(ms, self.schema.measurement)
        x = os.path.join(measurement, X)
        return ExperimentLayout(
            organism=organism,
            uri=uri,
            obs=os.path.join(uri, OBS),
            ms=ms,
            measurement=measurement,
            var=os.path.join(measurement, VAR),
            x=x,
            x_layers={layer: os.path.join(x, layer) for layer in layers},
            presence=os.path.join(measurement, self.schema.presence_matrix),
            kind=kind,
        )

    def experiments(self, organisms: list[str] | tuple[str, ...]) -> list[ExperimentLayout]:
        """Return the layouts of these organisms' experiments, in the given order."""
        return [self.experiment(o) for o in organisms]

"""Census 2.4.0's census_spatial_sequencing: the columns and constants its experiments add to census_data's.

Decisions (README, "Census 2.4.0: spatial data"): the obs-to-scene table is ``obs_spatial_presence``; a scene's
id is its dataset_id; points are ``x`` (first column of ``obsm["spatial"]``), ``y`` (second), ``soma_joinid``;
Visium images live at ``img[library_id]["highres_image"]``.
"""

from __future__ import annotations

import pyarrow as pa

from census_builder.census.schema import CensusSchema, Column

SPATIAL_OBS = (  # after census_data's obs columns; int64 (Slide-seqV2: int64's minimum, see build/inspect.py)
    Column("in_tissue", "int64", "source"),
    Column("array_row", "int64", "source"),
    Column("array_col", "int64", "source"),
)
SLIDE_SEQ_RADIUS = 2.0  # Slide-seqV2 point radius: "a small constant" (the text); the reference's value
HIGHRES_IMAGE = "highres_image"  # img[library_id][...]: the MultiscaleImage (the text)
HIGHRES_LEVEL = "hires"  # its one level: the source's images["hires"]
POINTS = "loc"  # obsl["loc"]

OBS_SPATIAL_PRESENCE_SCHEMA = pa.schema(
    [
        pa.field("soma_joinid", pa.int64(), nullable=False),
        pa.field("scene_id", pa.large_string(), nullable=False),
        pa.field("data", pa.bool_(), nullable=False),
    ]
)
POINTS_SCHEMA = pa.schema(
    [
        pa.field("x", pa.float64(), nullable=False),
        pa.field("y", pa.float64(), nullable=False),
        pa.field("soma_joinid", pa.int64(), nullable=False),
    ]
)


def spatial_obs(schema: CensusSchema) -> tuple[Column, ...]:
    """Return the obs columns of a census_spatial_sequencing experiment: census_data's plus the spatial ones."""
    return (*schema.obs, *SPATIAL_OBS)

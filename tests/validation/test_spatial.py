"""The spatial_* checks (validation.spatial) on hand-made census_spatial_sequencing releases with planted faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from census_builder.testing.synthetic_spatial import (
    SLIDE_SEQ_V2,
    SpatialSpec,
    example_spatial_specs,
    write_spatial_corpus,
)
from tests.validation.spatial_release import write_spatial_release
from validation.expected.spec import load_spec
from validation.inputs.manifest import fetch_sources, read_manifest
from validation.report import Findings
from validation.run import Run
from validation.spatial import check_spatial

pytestmark = pytest.mark.filterwarnings("ignore:Support for spatial types is experimental")

SPATIAL_CHECKS = ("spatial_structure", "spatial_obs", "spatial_presence", "spatial_points", "spatial_images")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Visium V1 section (a small non-square hires image, 20 genes) and one Slide-seqV2 puck of 200 beads."""
    visium, slide = example_spatial_specs()
    specs = [
        visium.with_(n_genes=20, hires_shape=(120, 90)),
        slide.with_(n_genes=20, n_spots=200),
        SpatialSpec(
            "mouse-not-single-7",
            assay=SLIDE_SEQ_V2,
            organism=slide.organism,
            n_spots=50,
            n_genes=20,
            tissue=slide.tissue,
            is_single=False,
            collection_id="collection-spatial-2",
            seed=23,
        ),
    ]
    return write_spatial_corpus(tmp_path_factory.mktemp("spatial_corpus"), specs)


ORGANISMS = {"human-brain-visium-7": "homo_sapiens", "mouse-kidney-slideseq-7": "mus_musculus"}


def _check(corpus: Path, out: Path, faults: frozenset[str] = frozenset()) -> Findings:
    sources = [(ds, corpus.parent / f"{ds}.h5ad", org) for ds, org in ORGANISMS.items()]
    uri = write_spatial_release(out, sources, faults)
    manifest = read_manifest(corpus)
    findings = Findings()
    run = Run(load_spec("2.4.0"), manifest, uri, None, 1_000_000, findings)
    run.sources = fetch_sources(manifest, out.parent / "fetched")
    check_spatial(run)
    return findings


def _messages(findings: Findings, check: str) -> list[str]:
    return [f.message for f in findings.checks[check].findings]


@pytest.mark.parametrize("layout", ["channel_y_x", "y_x_channel"])
def test_spatial_release_passes(corpus: Path, tmp_path: Path, layout: str) -> None:
    findings = _check(corpus, tmp_path / "soma", frozenset(["yxc"] if layout == "y_x_channel" else []))
    for check in SPATIAL_CHECKS:
        assert _messages(findings, check) == [], check
    assert findings.readings["spatial dataset mouse-not-single-7"].startswith(
        'not included: uns["spatial"]["is_single"] is False'
    )
    assert findings.readings["spatial obs in_tissue of dataset mouse-kidney-slideseq-7"].startswith("int64 minimum")


FAULTS = {
    "swap_xy": ("spatial_points", 'x and y swapped: x is the second column of obsm["spatial"] and y the first'),
    "int_xy": ("spatial_points", "column 'x' is not a float (the text's table of columns: \"x float\""),
    "pixel": ("spatial_images", "level 0 differs from the source's hires image in 1 pixel(s)"),
    "image_direct": ("spatial_images", "is the MultiscaleImage itself, not a Collection holding 'highres_image'"),
    "slide_img": ("spatial_structure", "has an img collection but its assay is EFO:0030062"),
    "normalized": (
        "spatial_structure",
        "X has a layer other than 'raw' (the text: \"It MUST contain exactly one layer",
    ),
    "presence_row": ("spatial_presence", "1 observation(s) have not exactly one row (data True) for the scene"),
    "in_tissue": ("spatial_obs", "obs in_tissue differs from the source in 1 observation(s)"),
    "radius": ("spatial_points", "soma_geometry is not spot_diameter_fullres / 2"),
    "drop_cell": ("spatial_obs", "1 spatial observation(s) of the source are missing from obs"),
    "no_scene": ("spatial_structure", 'has no scene for a spatial dataset (the text: "There will be as many'),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_fault_is_found(corpus: Path, tmp_path: Path, fault: str) -> None:
    check, message = FAULTS[fault]
    findings = _check(corpus, tmp_path / "soma", frozenset([fault]))
    assert any(message in m for m in _messages(findings, check)), _messages(findings, check)
    # the other spatial checks stay quiet, except where the fault removes what they read
    quiet = {"spatial_structure", "spatial_obs", "spatial_presence", "spatial_points", "spatial_images"} - {check}
    if fault == "drop_cell":
        quiet -= {"spatial_points"}  # the dropped cell's point is gone with it
    if fault == "no_scene":
        quiet -= {"spatial_presence"}  # its rows name a scene that is not there
    for other in sorted(quiet):
        assert _messages(findings, other) == [], (other, _messages(findings, other))


def test_spatial_plan_counts_spatial_cells_for_census_info(corpus: Path) -> None:
    """The spatial plan (census_info's "cells or spatial spots") keeps is_single datasets only; census_data none."""
    from validation.expected.dataset import PlanTask, plan_dataset

    def plan(ds: str, spatial: bool) -> tuple[int, int, str | None, str]:
        p = plan_dataset(PlanTask(ds, str(corpus.parent / f"{ds}.h5ad"), "2.4.0", 1_000_000, spatial=spatial))
        return p.n_cells, p.n_primary, p.organism, p.exclusion

    assert plan("human-brain-visium-7", True) == (4992, 4992, "homo_sapiens", "")
    assert plan("mouse-kidney-slideseq-7", True) == (200, 200, "mus_musculus", "")
    assert plan("mouse-not-single-7", True) == (
        0,
        0,
        None,
        "no spatial cell passes the Census filters (organism, assay, tissue_type, is_single)",
    )
    assert plan("human-brain-visium-7", False)[:3] == (0, 0, None)


def test_spatial_spec_view() -> None:
    """load_spec("2.4.0+spatial"): the census_data checks' view of census_spatial_sequencing."""
    base, view = load_spec("2.4.0"), load_spec("2.4.0+spatial")
    assert view.included_assays == base.spatial_assays == frozenset({"EFO:0022857", "EFO:0030062"})
    assert view.x_layers == {"raw": base.x_layers["raw"]}
    assert view.tables == {}
    assert view.spatial_cells and not base.spatial_cells
    assert view.obs == base.obs and view.var == base.var


def test_validate_release_runs_census_data_checks_on_spatial(
    corpus: Path, tmp_path: Path, validation_client: Any
) -> None:
    """The whole validation: spatial checks pass, and the census_data checks run on the spatial experiments.

    The hand-made release's X['raw'] is empty and its var holds one made-up gene: the census_data checks, run on
    census_spatial_sequencing, must say so (prefixed), while the spatial_* checks pass.
    """
    from validation import validate_release

    sources = [(ds, corpus.parent / f"{ds}.h5ad", org) for ds, org in ORGANISMS.items()]
    uri = write_spatial_release(tmp_path / "soma", sources)
    report = validate_release(
        uri, corpus, client=validation_client, report_path=tmp_path / "report.json", schema_version="2.4.0"
    )
    checks = {c.name: c for c in report.checks}
    for check in SPATIAL_CHECKS:
        assert checks[check].passed, (check, [f.message for f in checks[check].findings])
    for check, message in (
        ("x_raw", "census_spatial_sequencing: source count missing from X['raw']"),
        ("var_features", "census_spatial_sequencing: kept source gene is missing from var"),
        ("shapes", "census_spatial_sequencing: var has the wrong number of genes"),
    ):
        messages = [f.message for f in checks[check].findings]
        assert message in messages, (check, messages[:3])
        assert all(m.startswith("census_spatial_sequencing: ") for m in messages), messages

"""The synthetic 7.0.0 spatial generator writes what the 7.0.0 text requires of Visium V1 and Slide-seqV2 sources.

One test per rule; each names the 7.0.0 (or Census 2.4.0) rule it checks. The cellxgene-schema validator is not in
the venv, so the rules are checked here with h5py and anndata directly.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import anndata
import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import scipy.sparse as sp

from census_builder.errors import UsageError
from census_builder.testing import synthetic_spatial as ss
from census_builder.testing.synthetic_spatial import (
    SLIDE_SEQ_V2,
    VISIUM_V1,
    SpatialSpec,
    example_spatial_specs,
    write_spatial_corpus,
    write_spatial_h5ad,
)

SPECS = {s.dataset_id: s for s in example_spatial_specs()}
VISIUM = "human-brain-visium-7"
SLIDE = "mouse-kidney-slideseq-7"
SPATIAL_OBS = ("in_tissue", "array_row", "array_col")
# A Visium section that writes fast: not all 4992 spots, a small image (both 7.0.0 problems: see planted_problems).
SMALL_VISIUM = SpatialSpec("small", n_spots=600, n_genes=40, hires_shape=(120, 100), seed=5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_spatial_corpus(tmp_path_factory.mktemp("spatial"), example_spatial_specs()).parent


def _read(corpus: Path, dataset_id: str) -> anndata.AnnData:
    return anndata.read_h5ad(corpus / f"{dataset_id}.h5ad")


def _library(ad: anndata.AnnData) -> tuple[str, dict[str, Any]]:
    (library_id,) = [k for k in ad.uns["spatial"] if k != "is_single"]
    return library_id, ad.uns["spatial"][library_id]


def _counts(ad: anndata.AnnData) -> sp.csr_matrix:
    x = ad.raw.X if ad.raw is not None else ad.X
    return sp.csr_matrix(x)


def test_the_example_specs_plant_no_problem_and_cover_both_assays() -> None:
    assert {s.assay for s in SPECS.values()} == {VISIUM_V1, SLIDE_SEQ_V2}
    assert all(s.planted_problems() == [] for s in SPECS.values())


def test_uns_spatial_holds_is_single_and_one_library_only_for_visium(corpus: Path) -> None:
    # 7.0.0 uns['spatial']: "Additional key-value pairs MUST NOT be present"; library_id only for Visium.
    library_id, library = _library(_read(corpus, VISIUM))
    assert set(_read(corpus, VISIUM).uns["spatial"]) == {"is_single", library_id}
    assert library_id == f"{VISIUM}_A1"
    assert set(library) == {"images", "scalefactors"}
    assert set(_read(corpus, SLIDE).uns["spatial"]) == {"is_single"}


@pytest.mark.parametrize("dataset_id", [VISIUM, SLIDE])
def test_is_single_is_a_bool_and_true_for_one_section_or_puck(corpus: Path, dataset_id: str) -> None:
    # 7.0.0 is_single: bool; Census 2.4.0: MUST be True for both spatial assays.
    with h5py.File(corpus / f"{dataset_id}.h5ad", "r") as f:
        ds = f["uns/spatial/is_single"]
        assert ds.dtype == np.bool_ and ds.shape == ()
        assert ds.attrs["encoding-type"] == "numeric-scalar"
        assert bool(ds[()]) is True


def test_hires_is_uint8_height_width_rgb_with_largest_side_2000(corpus: Path) -> None:
    # 7.0.0 images['hires']: shape length 3, uint8, shape[2] 3 or 4, largest of shape[:2] 2000 (V1).
    _, library = _library(_read(corpus, VISIUM))
    hires = library["images"]["hires"]
    assert hires.dtype == np.uint8 and hires.ndim == 3 and hires.shape[2] == 3
    assert max(hires.shape[:2]) == 2000
    assert hires.std() > 10  # not a blank image


def test_fullres_is_optional_absent_by_default_and_uint8_rgb_when_asked(corpus: Path, tmp_path: Path) -> None:
    # 7.0.0 images['fullres']: MAY annotate; shape length 3, uint8, shape[2] 3 or 4.
    _, library = _library(_read(corpus, VISIUM))
    assert set(library["images"]) == {"hires"}
    spec = SMALL_VISIUM.with_(fullres=True, tissue_hires_scalef=0.5)
    _, library = _library(anndata.read_h5ad(write_spatial_h5ad(tmp_path / "f.h5ad", spec)))
    full = library["images"]["fullres"]
    assert full.dtype == np.uint8 and full.shape == (240, 200, 3)


def test_scalefactors_are_floats_and_the_spot_diameter_fits_the_grid(corpus: Path) -> None:
    # 7.0.0 scalefactors: spot_diameter_fullres and tissue_hires_scalef, floats. Visium: 55 um spots, 100 um apart.
    ad = _read(corpus, VISIUM)
    _, library = _library(ad)
    sf = library["scalefactors"]
    assert set(sf) == {"spot_diameter_fullres", "tissue_hires_scalef"}
    assert all(isinstance(v, float) for v in sf.values())
    assert sf["tissue_hires_scalef"] == 0.08
    xy = ad.obsm["spatial"].astype(np.float64)
    same_row = ad.obs["array_row"].to_numpy() == 0
    pitch = np.diff(np.sort(xy[same_row, 0])).mean()  # neighbours in a row are one pitch (100 um) apart
    assert sf["spot_diameter_fullres"] / pitch == pytest.approx(0.55, rel=0.01)


@pytest.mark.parametrize(("dataset_id", "dtype"), [(VISIUM, np.int64), (SLIDE, np.float64)])
def test_obsm_spatial_has_a_row_per_observation_two_columns_and_no_nan(
    corpus: Path, dataset_id: str, dtype: type[np.generic]
) -> None:
    # 7.0.0 obsm['spatial']: same rows as X, at least two columns, kind f/i/u, no inf, no NaN.
    ad = _read(corpus, dataset_id)
    assert set(ad.obsm) == {"spatial"}  # X_{suffix} embeddings: MAY for Visium and Slide-seqV2
    xy = ad.obsm["spatial"]
    assert isinstance(xy, np.ndarray) and xy.shape == (ad.n_obs, 2)
    assert xy.dtype == dtype and xy.dtype.kind in "fiu"
    assert np.isfinite(xy).all()


def test_a_visium_section_holds_the_4992_spots_of_the_unfiltered_matrix(corpus: Path) -> None:
    # 7.0.0 X (Visium, is_single): raw_feature_bc_matrix; "this matrix MUST contain 4992 rows".
    ad = _read(corpus, VISIUM)
    assert ad.n_obs == 4992
    pairs = set(zip(ad.obs["array_row"], ad.obs["array_col"], strict=True))
    assert len(pairs) == 4992


def test_array_row_and_array_col_are_ints_in_the_v1_ranges_on_the_hex_grid(corpus: Path) -> None:
    # 7.0.0 array_row: int, 0..77 (V1); array_col: int, 0..127 (V1). A hexagonal grid: a row's columns share its parity.
    obs = _read(corpus, VISIUM).obs
    row, col = obs["array_row"].to_numpy(), obs["array_col"].to_numpy()
    assert row.dtype == np.int64 and col.dtype == np.int64
    assert (row.min(), row.max(), col.min(), col.max()) == (0, 77, 0, 127)
    assert (row % 2 == col % 2).all()


def test_spot_positions_follow_array_row_and_col(corpus: Path) -> None:
    # 7.0.0 obsm['spatial'] (Visium): from pxl_col/pxl_row_in_fullres, i.e. (x, y) of the spot on the grid.
    ad = _read(corpus, VISIUM)
    xy = ad.obsm["spatial"].astype(np.float64)
    for axis, key in ((0, "array_col"), (1, "array_row")):
        k = ad.obs[key].to_numpy().astype(np.float64)
        slope, intercept = np.polyfit(k, xy[:, axis], 1)
        assert np.abs(xy[:, axis] - (intercept + slope * k)).max() <= 0.6, key  # whole pixels
    dx = np.polyfit(ad.obs["array_col"].to_numpy(), xy[:, 0], 1)[0]
    dy = np.polyfit(ad.obs["array_row"].to_numpy(), xy[:, 1], 1)[0]
    assert dy / dx == pytest.approx(np.sqrt(3), rel=1e-3)  # hexagonal: rows sqrt(3)/2 pitch apart


def test_the_hires_image_shows_a_spot_footprint_at_each_scaled_position(corpus: Path) -> None:
    # Positions, scale factor and image agree: the hires pixel at position * tissue_hires_scalef is a (darker) spot.
    ad = _read(corpus, VISIUM)
    _, library = _library(ad)
    img = library["images"]["hires"].astype(np.int64).sum(axis=2)
    scale = library["scalefactors"]["tissue_hires_scalef"]
    xy = ad.obsm["spatial"].astype(np.float64) * scale
    half_pitch = np.diff(np.sort(xy[ad.obs["array_row"].to_numpy() == 0, 0])).mean() / 2
    centre = img[np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0]).astype(int)]
    between = img[np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0] + half_pitch).astype(int)]
    assert (centre < between).mean() > 0.95  # all but spots at the tissue's edge


def test_in_tissue_is_an_int_0_or_1_with_both_values(corpus: Path) -> None:
    # 7.0.0 in_tissue: int, 0 (outside tissue) or 1 (inside).
    in_tissue = _read(corpus, VISIUM).obs["in_tissue"]
    assert in_tissue.dtype == np.int64
    assert set(in_tissue) == {0, 1}


def test_spatial_obs_columns_exist_only_for_single_visium_sections(corpus: Path, tmp_path: Path) -> None:
    # 7.0.0 in_tissue/array_row/array_col: "otherwise, this key MUST NOT be present" (Slide-seqV2, is_single False).
    assert set(SPATIAL_OBS) <= set(_read(corpus, VISIUM).obs.columns)
    assert not set(SPATIAL_OBS) & set(_read(corpus, SLIDE).obs.columns)
    merged = anndata.read_h5ad(write_spatial_h5ad(tmp_path / "m.h5ad", SMALL_VISIUM.with_(is_single=False)))
    assert not set(SPATIAL_OBS) & set(merged.obs.columns)


def test_cell_type_is_unknown_for_spots_outside_the_tissue(corpus: Path) -> None:
    # 7.0.0 cell_type_ontology_term_id: MUST be "unknown" for a single Visium section's spots with in_tissue 0.
    obs = _read(corpus, VISIUM).obs
    outside = obs["in_tissue"] == 0
    assert set(obs.loc[outside, "cell_type_ontology_term_id"]) == {"unknown"}
    assert set(obs.loc[outside, "cell_type"]) == {"unknown"}
    assert set(obs.loc[~outside, "cell_type_ontology_term_id"].str[:3]) == {"CL:"}


@pytest.mark.parametrize("dataset_id", [VISIUM, SLIDE])
def test_one_assay_suspension_type_na_and_one_section_of_one_donor(corpus: Path, dataset_id: str) -> None:
    # 7.0.0 assay_ontology_term_id: all observations the same value; suspension_type "na" for spatial
    # transcriptomics; Census 2.4.0 keeps tissue_type "tissue".
    spec = SPECS[dataset_id]
    obs = _read(corpus, dataset_id).obs
    assert set(obs["assay_ontology_term_id"]) == {spec.assay}
    assert set(obs["assay"]) == {ss.SPATIAL_ASSAYS[spec.assay]}
    assert set(obs["suspension_type"]) == {"na"}
    assert set(obs["tissue_type"]) == {"tissue"}
    assert set(obs["tissue_ontology_term_id"]) == {spec.tissue[0]}
    for c in ("donor_id", "sex_ontology_term_id", "development_stage_ontology_term_id", "disease_ontology_term_id"):
        assert obs[c].nunique() == 1, c
    for c in obs.columns.difference(["is_primary_data", "observation_joinid", *SPATIAL_OBS]):
        assert isinstance(obs[c].dtype, pd.CategoricalDtype), c
    assert obs.index.is_unique and obs["observation_joinid"].is_unique


def test_is_primary_data_is_true_for_single_sections_and_false_when_is_single_is_false(
    corpus: Path, tmp_path: Path
) -> None:
    # 7.0.0 is_primary_data: "MUST be False if uns['spatial']['is_single'] is False".
    assert _read(corpus, VISIUM).obs["is_primary_data"].all()
    assert _read(corpus, SLIDE).obs["is_primary_data"].all()
    merged = anndata.read_h5ad(write_spatial_h5ad(tmp_path / "m.h5ad", SMALL_VISIUM.with_(is_single=False)))
    assert not merged.obs["is_primary_data"].any()
    assert merged.uns["spatial"] == {"is_single": False}
    assert merged.obsm["spatial"].shape == (600, 2)  # MAY be present when is_single is False
    pucks = SpatialSpec("p", assay=SLIDE_SEQ_V2, n_spots=50, n_genes=20, is_single=False)
    several = anndata.read_h5ad(write_spatial_h5ad(tmp_path / "p.h5ad", pucks))
    assert not several.obs["is_primary_data"].any() and several.uns["spatial"] == {"is_single": False}


def _distinct_rows(m: sp.csr_matrix) -> bool:
    rows = {(tuple(m.indices[a:b]), tuple(m.data[a:b])) for a, b in zip(m.indptr[:-1], m.indptr[1:], strict=True)}
    return bool(len(rows) == m.shape[0])


def test_visium_counts_follow_the_in_tissue_rules(corpus: Path) -> None:
    # 7.0.0 X (Visium): in_tissue 1 spots have a non-zero value and differ from each other; some in_tissue 0 spot
    # has a non-zero value; non-zero values are positive integers stored as float32.
    ad = _read(corpus, VISIUM)
    m = _counts(ad)
    m.sum_duplicates()
    inside = ad.obs["in_tissue"].to_numpy() == 1
    nnz = np.diff(m.indptr)
    assert (nnz[inside] > 0).all()
    assert _distinct_rows(m[inside])
    assert (nnz[~inside] > 0).any()
    assert nnz[0] == 0 and not inside[0]  # a spot outside the tissue with no counts, as real sections have
    assert m.dtype == np.float32 and (m.data > 0).all() and (m.data == np.round(m.data)).all()


def test_slide_seq_counts_follow_the_umi_rules(corpus: Path) -> None:
    # 7.0.0 X (scRNA-seq UMI, e.g. Slide-seqV2): every cell has a non-zero value, no two cells identical.
    ad = _read(corpus, SLIDE)
    assert ad.raw is not None  # this example keeps the counts in raw.X
    m = _counts(ad)
    assert (np.diff(m.indptr) > 0).all()
    assert _distinct_rows(m)
    assert m.dtype == np.float32 and (m.data > 0).all() and (m.data == np.round(m.data)).all()


def test_slide_seq_beads_lie_on_the_puck_and_some_repeat_a_position(corpus: Path) -> None:
    # Issue #16: "Slide-seq datasets may repeat coordinates".
    xy = _read(corpus, SLIDE).obsm["spatial"]
    centre = ss.PUCK_RADIUS + 100
    assert (np.hypot(xy[:, 0] - centre, xy[:, 1] - centre) <= ss.PUCK_RADIUS + 0.01).all()
    repeated = pd.DataFrame(xy).duplicated().sum()
    assert repeated == round(0.02 * 1500)


def test_every_term_is_valid_for_7_0_0_with_its_label(corpus: Path) -> None:
    # 7.0.0: ontology terms known, not deprecated, labels as the ontologies have them; spatial assays are
    # descendants of spatial transcriptomics (EFO:0008994, hence suspension_type "na"), Visium V1 of EFO:0010961.
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    parser = OntologyParser(schema_version="7.0.0")
    pairs: set[tuple[str, str]] = set()
    for d in SPECS:
        obs = _read(corpus, d).obs
        for key in ("assay", "cell_type", "development_stage", "disease", "self_reported_ethnicity", "sex", "tissue"):
            for ids, labels in obs[[f"{key}_ontology_term_id", key]].drop_duplicates().astype(str).to_numpy():
                pairs |= set(zip(ids.split(" || "), labels.split(" || "), strict=True))
    pairs -= {("na", "na"), ("unknown", "unknown")}
    assert {VISIUM_V1, SLIDE_SEQ_V2} <= {t for t, _ in pairs}
    for term, label in sorted(pairs):
        assert not parser.is_term_deprecated(term), term
        assert parser.get_term_label(term) == label, term
    for assay in (VISIUM_V1, SLIDE_SEQ_V2):
        assert "EFO:0008994" in parser.get_term_ancestors(assay), assay
    assert "EFO:0010961" in parser.get_term_ancestors(VISIUM_V1)


# -- planted bad inputs ------------------------------------------------------------------------------------


def _group_keys(path: Path, key: str) -> set[str]:
    with h5py.File(path, "r") as f:
        return set(f[key])


def test_missing_image_leaves_images_without_hires(tmp_path: Path) -> None:
    spec = SMALL_VISIUM.with_(missing_image=True)
    path = write_spatial_h5ad(tmp_path / "x.h5ad", spec)
    assert _group_keys(path, "uns/spatial/small_A1/images") == set()
    assert _group_keys(path, "uns/spatial/small_A1/scalefactors") == {"spot_diameter_fullres", "tissue_hires_scalef"}
    assert "7.0.0 uns['spatial'][library_id]['images']['hires']: Curator MUST annotate" in spec.planted_problems()


def test_several_library_ids_each_with_an_image(tmp_path: Path) -> None:
    spec = SMALL_VISIUM.with_(n_library_ids=3, library_id="V1_A1")
    path = write_spatial_h5ad(tmp_path / "x.h5ad", spec)
    assert _group_keys(path, "uns/spatial") == {"is_single", "V1_A1", "V1_A1_2", "V1_A1_3"}
    assert _group_keys(path, "uns/spatial/V1_A1_3/images") == {"hires"}
    assert "7.0.0 uns['spatial'][library_id]: There MUST be only one library_id" in spec.planted_problems()


@pytest.mark.parametrize(
    ("positions", "shape", "problem"),
    [
        ("one_column", (600, 1), "7.0.0 obsm['spatial']: MUST include at least two columns"),
        ("short", (599, 2), "7.0.0 obsm['spatial']: MUST have the same number of rows as X"),
        ("nan", (600, 2), "7.0.0 obsm['spatial']: MUST NOT contain Not a Number (numpy.nan) values"),
    ],
)
def test_bad_spot_positions(tmp_path: Path, positions: ss.Positions, shape: tuple[int, int], problem: str) -> None:
    spec = SMALL_VISIUM.with_(positions=positions)
    path = write_spatial_h5ad(tmp_path / "x.h5ad", spec)
    with h5py.File(path, "r") as f:
        xy = f["obsm/spatial"][...]
    assert xy.shape == shape
    assert np.isnan(xy).sum() == (1 if positions == "nan" else 0)
    assert problem in spec.planted_problems()


def test_planted_problems_name_each_broken_rule() -> None:
    assert SMALL_VISIUM.planted_problems() == [
        "7.0.0 X: a single Visium V1 section's unfiltered matrix MUST contain 4992 rows",
        "7.0.0 uns['spatial'][library_id]['images']['hires']: largest dimension MUST be 2000 pixels",
    ]
    merged = SMALL_VISIUM.with_(is_single=False)
    assert merged.planted_problems() == ["Census 2.4.0 spatial assays: is_single MUST be True"]
    assert SpatialSpec("s", assay=SLIDE_SEQ_V2, n_spots=30).planted_problems() == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"assay": "EFO:0009922"}, "assay 'EFO:0009922' is not one of EFO:0022857, EFO:0030062"),
        ({"organism": "NCBITaxon:7955"}, "organism 'NCBITaxon:7955' is not one of NCBITaxon:9606, "),
        ({"n_spots": 5000}, "n_spots is 5000, must be 1..4992"),
        ({"positions": "sideways"}, "positions 'sideways' is not one of ok, one_column, short, nan"),
        ({"tissue_hires_scalef": 2.0}, "tissue_hires_scalef is 2.0, must be in (0, 1]"),
        ({"assay": "EFO:0030062", "missing_image": True}, "missing_image, n_library_ids and fullres need a library"),
        ({"is_single": False, "n_library_ids": 2}, "missing_image, n_library_ids and fullres need a library"),
    ],
)
def test_invalid_specs_are_refused_with_the_field_named(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as err:
        write_spatial_h5ad(tmp_path / "x.h5ad", SpatialSpec("bad").with_(**changes))
    assert str(err.value).startswith("synthetic spatial dataset 'bad': ")
    assert message in str(err.value)
    assert not (tmp_path / "x.h5ad").exists()


# -- determinism, memory, corpus ---------------------------------------------------------------------------


def _arrays(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                value = np.asarray(obj[()])
                if value.dtype == object:
                    out[name] = b"\0".join(v if isinstance(v, bytes) else str(v).encode() for v in value.ravel())
                else:
                    out[name] = value.tobytes()

        f.visititems(visit)
    return out


def test_same_seed_same_bytes_other_seed_other_image_and_positions(tmp_path: Path) -> None:
    spec = SMALL_VISIUM
    a = _arrays(write_spatial_h5ad(tmp_path / "a.h5ad", spec))
    b = _arrays(write_spatial_h5ad(tmp_path / "b.h5ad", spec))
    c = _arrays(write_spatial_h5ad(tmp_path / "c.h5ad", spec.with_(seed=6)))
    assert a == b
    image = "uns/spatial/small_A1/images/hires"
    assert {image, "obsm/spatial", "obs/in_tissue", "obs/_index", "X/data"} <= set(a)
    assert a[image] != c[image] and a["obs/_index"] != c["obs/_index"]  # the grid's positions are the same
    slide = SpatialSpec("s", assay=SLIDE_SEQ_V2, n_spots=200, n_genes=30)
    d = _arrays(write_spatial_h5ad(tmp_path / "d.h5ad", slide))
    e = _arrays(write_spatial_h5ad(tmp_path / "e.h5ad", slide.with_(seed=1)))
    assert d["obsm/spatial"] != e["obsm/spatial"]


def test_the_image_is_rendered_and_written_in_bands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Bounded memory: no call renders more than 2**18 pixels; the bands cover the image exactly once.
    calls: list[tuple[int, int, int]] = []
    render = ss._render_rows

    def spy(
        geo: ss.VisiumGeometry, scale: float, width: int, start: int, stop: int, seed: int
    ) -> npt.NDArray[np.uint8]:
        calls.append((width, start, stop))
        return render(geo, scale, width, start, stop, seed)

    monkeypatch.setattr(ss, "_render_rows", spy)
    write_spatial_h5ad(tmp_path / "x.h5ad", SMALL_VISIUM.with_(hires_shape=(2000, 2000)))
    assert all(w * (b - a) <= 1 << 18 for w, a, b in calls)
    assert [(a, b) for _, a, b in calls] == [(a, min(2000, a + 131)) for a in range(0, 2000, 131)]


def test_the_corpus_manifest_lists_each_dataset_like_write_corpus_7(corpus: Path) -> None:
    with (corpus / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["dataset_id"] for r in rows] == list(SPECS)
    assert list(rows[0]) == [
        "dataset_id",
        "h5ad_uri",
        "dataset_version_id",
        "collection_id",
        "collection_name",
        "collection_doi",
    ]
    for r in rows:
        assert (corpus / r["h5ad_uri"]).is_file()
        assert r["collection_doi"] == SPECS[r["dataset_id"]].doi

"""Step check_spatial: ``census_spatial_sequencing`` against the Census schema 2.4.0 text and the source H5ADs.

For each organism with spatial observations (Visium Spatial Gene Expression V1, Slide-seqV2; issue #16):

    spatial_structure  the experiment's members and SOMA types: obs, ms['RNA'] (var, X with exactly one layer
                       'raw', the presence matrix), obs_spatial_presence, spatial[scene_id] Scenes with
                       obsl['loc'] (a PointCloudDataFrame) and, for Visium only, img[library_id]
    spatial_obs        the spatial cells are the source's (dataset_id, observation_joinid): spatial assay,
                       is_single True, kept tissue_type, all of them (primary or not, in tissue or not);
                       is_primary_data, in_tissue, array_row, array_col equal the source
    spatial_presence   obs_spatial_presence: one row (data True) per observation and the scene of its dataset
    spatial_points     obsl['loc']: x, y (float) the first and second column of obsm['spatial'], one point per
                       observation of the scene; soma_geometry_type / soma_geometry
    spatial_images     img[library_id]['highres_image']: the source's hires image pixel for pixel, its shape,
                       the scene-to-image scale (tissue_hires_scalef)

Column sets and encodings go through the census_data checks (validation.structure: ``encodings``) and
soma_joinids through ``check_joinids``. Reads are bounded: obs per dataset, points in the reader's batches,
the image in bands of rows. Every finding that the text forbids quotes the text's sentence.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from validation.expected.dataset import dataset_organism
from validation.expected.spec import Column
from validation.inputs.release import ExperimentUris
from validation.inputs.source import SourceFile
from validation.inputs.spatial import SPATIAL_OBS_COLUMNS, SpatialDataset, hires_bands, positions, read_spatial_dataset
from validation.report import Finding, Findings
from validation.run import Run
from validation.structure import SPATIAL, check_dataframe_schema, check_joinids, check_ndarray_schema

logger = logging.getLogger(__name__)

BAND_ROWS = 256  # image rows compared at a time
INT64_MIN = int(np.iinfo(np.int64).min)
PRESENCE_NAMES = ("obs_spatial_presence", "obs_presence_matrix")  # the text's list, and its section heading

# The text (census_schema_2.4.0.md, "Census Spatial Sequencing Data"), quoted by the findings.
T_ONE_LAYER = 'the text: "It MUST contain exactly one layer: Count matrix ... X["raw"]"'
T_ONLY_RNA = 'the text: "This SOMACollection MUST only contain one SOMAMeasurement in ...ms["RNA"]"'
T_SCENES = 'the text: "There will be as many Spatial Scenes as spatial datasets."'
T_LOC = 'the text: "Positions array - ...spatial[scene_id].obsl["loc"] - SOMAPointCloudDataFrame"'
T_X = 'the text: x "MUST be the corresponding value in the first column of obsm["spatial"]"'
T_Y = 'the text: y "MUST be the corresponding value in the second column of obsm["spatial"]"'
T_XY_FLOAT = 'the text\'s table of columns: "x float", "y float"'
T_EACH = 'the text: "For each observation in each Scene, spatial array positions ... MUST be encoded"'
T_TYPE = 'the text: soma_geometry_type "MUST be "radius""'
T_RADIUS = (
    'the text: soma_geometry "Radius of points: diameter/2. If Visium Spatial Gene Expression V1 ("EFO:0022857") '
    'diameter MUST be .uns["spatial"][library_id][\'spot_diameter_fullres\']"'
)
T_NO_IMG = 'the text: "Other assays MUST NOT have images, and MUST NOT include the img collection."'
T_HIRES = (
    'the text: "The high resolution image of a Visium Spatial Gene Expression V1("EFO:0022857") scene MUST be included"'
)
T_IMG = (
    'the text: "img[library_id] - Collection of MultiscaleImage" and the image at '
    '"img[library_id]["highres_image"] - MultiscaleImage"'
)
T_LIB = 'the text: "library_id MUST be the corresponding value in the source H5AD slot .uns["spatial"][library_id]"'
T_VALUE = "the text: \"Value: the image from uns[\"spatial\"][library_id]['images']['hires']\""
T_ALL = 'the text ("Cell metadata"): "all cells MUST be included in the Census"'
T_NOT_SINGLE = (
    'the text: is_single "MUST be True" ... "Otherwise, Census MUST NOT include the corresponding observations"'
)
T_PRESENCE = (
    'the text: data "MUST be True if the scene contains spatial information about the observation, otherwise it '
    'MUST be False"'
)
T_SPATIAL_OBS = 'the text: "the following spatial obs columns ... MUST be included in this SOMADataFrame"'

PRESENCE_COLUMNS = (Column("soma_joinid", "int64"), Column("scene_id", "string"), Column("data", "bool"))
SPATIAL_OBS = tuple(Column(c, "int64", "source") for c in SPATIAL_OBS_COLUMNS)


@dataclass
class Where:
    """One organism's spatial experiment: its findings sink and the observations per dataset."""

    findings: Findings
    organism: str
    datasets: dict[str, SpatialDataset]
    joinids: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)  # dataset -> obs joinid per kept row
    dataset_of: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # joinid -> ds code
    codes: list[str] = field(default_factory=list)  # ds code -> dataset_id
    n_obs: int = 0
    uris: ExperimentUris | None = None  # what validation.spatial_contents reads
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # dataset -> (obs rows, primary) found

    def add(self, check: str, message: str, **kw: Any) -> None:
        """Record a finding of ``check`` for this organism."""
        self.findings.add(check, Finding(message, organism=self.organism, **kw))


def plan_spatial(run: Run) -> dict[str, dict[str, SpatialDataset]]:
    """Return organism -> dataset_id -> the spatial observations the release must hold (manifest order)."""
    out: dict[str, dict[str, SpatialDataset]] = {}
    for s in run.manifest.sources:
        path = run.sources.get(s.dataset_id, (None, ""))[0]
        if path is None:
            continue  # the sources check reports it
        try:
            with SourceFile(path) as src:
                term = dataset_organism(src, run.spec) or ""
            org = run.spec.organism_by_term(term)
            ds = read_spatial_dataset(run.spec, s.dataset_id, str(path), org.name if org else None, term)
        except Exception as e:
            run.findings.add(
                "spatial_obs",
                Finding(f"source's spatial data cannot be read: {type(e).__name__}: {e}", dataset_id=s.dataset_id),
            )
            continue
        if ds.exclusion:
            run.findings.readings[f"spatial dataset {s.dataset_id}"] = f"not included: {ds.exclusion}"
        if ds.n_cells and ds.organism:
            out.setdefault(ds.organism, {})[s.dataset_id] = ds
    return out


def check_spatial(run: Run) -> None:
    """Step: census_spatial_sequencing's experiments against the sources (see the module docstring)."""
    import tiledbsoma as soma

    if not run.spec.spatial_assays:
        return  # a schema without spatial data (1.3.0): validation.structure rejects the collection
    expected = plan_spatial(run)
    found: dict[str, list[int]] = run.tables.setdefault("spatial_obs", {})  # dataset -> [obs rows, primary]
    try:
        root = soma.open(run.release_uri)
    except Exception:
        return  # check_structure reported it
    with root:
        members: Any = root  # a Collection (check_structure checked its type)
        if SPATIAL not in members:
            for org in expected:
                run.findings.add(
                    "spatial_structure",
                    Finding(
                        f"census_obj['{SPATIAL}'] is missing but the sources have spatial observations",
                        organism=org,
                        expected="SOMACollection",
                        found="absent",
                    ),
                )
            return
        coll = members[SPATIAL]
        if coll.soma_type != "SOMACollection":
            return  # check_structure reported it
        names = {o.name for o in run.spec.organisms}
        for key in sorted(set(coll.keys()) - names):
            run.findings.add(
                "spatial_structure",
                Finding(f"census_obj['{SPATIAL}'] has a member that is not a Census organism", found=key),
            )
        for org in sorted(names):
            datasets = expected.get(org, {})
            w = Where(run.findings, org, datasets)
            if org not in coll:
                if datasets:
                    w.add(
                        "spatial_structure",
                        f"census_obj['{SPATIAL}']['{org}'] is missing but the sources have spatial observations",
                        expected="SOMAExperiment",
                        found="absent",
                    )
                continue
            exp = coll[org]
            if exp.soma_type != "SOMAExperiment":
                w.add(
                    "spatial_structure",
                    f"{SPATIAL}['{org}'] has the wrong type",
                    expected="SOMAExperiment",
                    found=exp.soma_type,
                )
                continue
            w.uris = ExperimentUris(org)
            try:
                _experiment(run, w, exp)
            except Exception as e:  # a malformed release must give a finding, not stop the validation
                logger.exception("census_spatial_sequencing['%s'] could not be checked", org)
                w.add("spatial_structure", f"{SPATIAL}['{org}'] could not be checked: {type(e).__name__}: {e}")
            run.tables.setdefault("spatial_experiments", {})[org] = w.uris
            for ds, (n, primary) in w.counts.items():
                acc = found.setdefault(ds, [0, 0])
                acc[0] += n
                acc[1] += primary


def _member(w: Where, parent: Any, key: str, soma_type: str | tuple[str, ...], what: str, why: str = "") -> Any:
    """parent[key] if it exists with the right SOMA type, else None (with a spatial_structure finding)."""
    types = (soma_type,) if isinstance(soma_type, str) else soma_type
    if key not in parent:
        w.add("spatial_structure", f"{what} is missing{f' ({why})' if why else ''}", expected=types[0], found="absent")
        return None
    obj = parent[key]
    if obj.soma_type not in types:
        w.add(
            "spatial_structure",
            f"{what} has the wrong type{f' ({why})' if why else ''}",
            expected=types[0],
            found=obj.soma_type,
        )
        return None
    return obj


def _experiment(run: Run, w: Where, exp: Any) -> None:
    where = f"{SPATIAL}['{w.organism}']"
    spec = run.spec
    presence_names = [k for k in PRESENCE_NAMES if k in exp]
    allowed = {"obs", "ms", "spatial", *PRESENCE_NAMES}
    for key in sorted(set(exp.keys()) - allowed):
        w.add("spatial_structure", f"{where} has an unexpected member {key!r}", expected=sorted(allowed), found=key)
    obs = _member(w, exp, "obs", "SOMADataFrame", f"{where}.obs")
    if obs is not None:
        if w.uris is not None:
            w.uris.obs = obs.uri
        check_dataframe_schema(
            run.findings, f"{where}.obs", obs.schema, spec.obs + SPATIAL_OBS, w.organism, extra_allowed=run.foreign
        )
        w.n_obs = check_joinids(run.findings, obs.uri, f"{where}.obs", w.organism)
        _check_obs(w, obs)
    _measurement(run, w, exp, where)
    if not presence_names:
        w.add(
            "spatial_structure",
            f"{where}.obs_spatial_presence is missing (the text's list; its heading says obs_presence_matrix)",
            expected="SOMADataFrame",
            found="absent",
        )
    elif len(presence_names) > 1:
        w.add(
            "spatial_structure",
            f"{where} holds both obs_spatial_presence and obs_presence_matrix (one table)",
            found=presence_names,
        )
    scenes: dict[str, Any] = {}
    spatial = _member(w, exp, "spatial", "SOMACollection", f"{where}.spatial")
    if spatial is not None:
        for key in sorted(spatial.keys()):
            scene = _member(w, spatial, key, "SOMAScene", f"{where}.spatial['{key}']")
            if scene is not None:
                scenes[key] = scene
        for ds in w.datasets:
            if ds not in spatial:
                w.add(
                    "spatial_structure",
                    f"{where}.spatial has no scene for a spatial dataset ({T_SCENES})",
                    dataset_id=ds,
                    expected="SOMAScene",
                    found="absent",
                )
        for key in scenes:
            if key not in w.datasets:
                w.add(
                    "spatial_structure",
                    f"{where}.spatial['{key}'] is a scene of no included spatial dataset "
                    f"({T_SCENES}; scene_id is the dataset_id)",
                    dataset_id=key,
                    expected="absent",
                    found="SOMAScene",
                )
    if presence_names:
        table = _member(w, exp, presence_names[0], "SOMADataFrame", f"{where}.{presence_names[0]}")
        if table is not None:
            run.findings.readings[f"{where} obs-to-scene table"] = presence_names[0]
            check_dataframe_schema(
                run.findings,
                f"{where}.{presence_names[0]}",
                table.schema,
                PRESENCE_COLUMNS,
                w.organism,
                extra_allowed=run.foreign,
            )
            _check_presence(w, table, set(scenes))
    for key, scene in scenes.items():
        try:
            _scene(run, w, f"{where}.spatial['{key}']", scene, w.datasets.get(key))
        except Exception as e:  # one unreadable scene: a finding, the other scenes are still checked
            logger.exception("%s.spatial['%s'] could not be checked", where, key)
            w.add(
                "spatial_structure",
                f"{where}.spatial['{key}'] could not be checked: {type(e).__name__}: {e}",
                dataset_id=key,
            )


def _measurement(run: Run, w: Where, exp: Any, where: str) -> None:
    """ms['RNA'] with var, X['raw'] only and the presence matrix: the census_data structure checks."""
    spec = run.spec
    ms = _member(w, exp, "ms", "SOMACollection", f"{where}.ms")
    if ms is None:
        return
    for key in sorted(set(ms.keys()) - {spec.measurement}):
        w.add("spatial_structure", f"{where}.ms has an unexpected member {key!r} ({T_ONLY_RNA})", found=key)
    rna = _member(w, ms, spec.measurement, "SOMAMeasurement", f"{where}.ms['{spec.measurement}']")
    if rna is None:
        return
    where = f"{where}.ms['{spec.measurement}']"
    var = _member(w, rna, "var", "SOMADataFrame", f"{where}.var")
    if var is not None:
        if w.uris is not None:
            w.uris.var = var.uri
        check_dataframe_schema(
            run.findings, f"{where}.var", var.schema, spec.var, w.organism, extra_allowed=run.foreign
        )
        check_joinids(run.findings, var.uri, f"{where}.var", w.organism)
    x = _member(w, rna, "X", "SOMACollection", f"{where}.X")
    if x is not None:
        for key in sorted(set(x.keys()) - {"raw"}):
            w.add(
                "spatial_structure",
                f"{where}.X has a layer other than 'raw' ({T_ONE_LAYER})",
                expected=["raw"],
                found=key,
            )
        raw = _member(w, x, "raw", "SOMASparseNDArray", f"{where}.X['raw']", T_ONE_LAYER)
        if raw is not None:
            check_ndarray_schema(run.findings, f"{where}.X['raw']", raw.schema, spec.x_layers["raw"], w.organism)
            if w.uris is not None:
                w.uris.x["raw"] = raw.uri
    pm = _member(w, rna, spec.presence_matrix, "SOMASparseNDArray", f"{where}['{spec.presence_matrix}']")
    if pm is not None:
        if w.uris is not None:
            w.uris.presence = pm.uri
        check_ndarray_schema(
            run.findings, f"{where}['{spec.presence_matrix}']", pm.schema, spec.presence_encoding, w.organism
        )


def _as_numpy(col: pa.ChunkedArray | pa.Array) -> npt.NDArray[Any]:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _check_obs(w: Where, obs: Any) -> None:
    """Check the spatial cells against the sources, one dataset at a time (see the module docstring)."""
    cols = set(obs.schema.names)
    if not {"soma_joinid", "dataset_id", "observation_joinid"} <= cols:
        return  # the encodings check reported the missing column
    first = ["soma_joinid", "dataset_id", *(["is_primary_data"] if "is_primary_data" in cols else [])]
    ds_col = obs.read(column_names=first).concat()
    joinids = np.asarray(ds_col.column("soma_joinid").to_numpy(), dtype=np.int64)
    ids = _as_numpy(ds_col.column("dataset_id")).astype(str)
    primary = (
        np.asarray(_as_numpy(ds_col.column("is_primary_data")), dtype=bool)
        if "is_primary_data" in cols
        else np.zeros(ids.size, dtype=bool)
    )
    for ds in np.unique(ids):
        mask = ids == ds
        w.counts[str(ds)] = (int(mask.sum()), int(primary[mask].sum()))
    w.codes = sorted(set(ids) | set(w.datasets))
    code = {d: k for k, d in enumerate(w.codes)}
    size = int(joinids.max()) + 1 if joinids.size else 0
    w.dataset_of = np.full(size, -1, dtype=np.int64)
    w.dataset_of[joinids] = np.array([code[d] for d in ids], dtype=np.int64)
    for ds in sorted(set(ids) - set(w.datasets)):
        w.add(
            "spatial_obs",
            "obs holds observations of a dataset with no included spatial observations "
            f"(spatial assay, is_single True, kept tissue_type; {T_NOT_SINGLE})",
            dataset_id=ds,
            expected=0,
            found=int((ids == ds).sum()),
        )
    wanted = [c for c in ("soma_joinid", "observation_joinid", "is_primary_data", *SPATIAL_OBS_COLUMNS) if c in cols]
    for ds_id, ds in w.datasets.items():
        t = obs.read(column_names=wanted, value_filter=f"dataset_id == '{ds_id}'").concat()
        got_j = np.asarray(t.column("soma_joinid").to_numpy(), dtype=np.int64)
        got_oj = _as_numpy(t.column("observation_joinid")).astype(str)
        index = {str(o): k for k, o in enumerate(ds.observation_joinids)}
        pos = np.array([index.get(o, -1) for o in got_oj], dtype=np.int64)
        rows = np.full(ds.n_cells, -1, dtype=np.int64)
        extra = np.nonzero(pos < 0)[0]
        if extra.size:
            k = int(extra[0])
            w.add(
                "spatial_obs",
                f"{extra.size} obs row(s) of the dataset are not spatial observations of the source",
                dataset_id=ds_id,
                soma_joinid=int(got_j[k]),
                observation_joinid=str(got_oj[k]),
                expected="absent",
                found="present",
            )
        ok = pos >= 0
        dup = np.bincount(pos[ok], minlength=ds.n_cells) > 1
        if dup.any():
            w.add(
                "spatial_obs",
                f"{int(dup.sum())} observation(s) appear more than once in obs",
                dataset_id=ds_id,
                observation_joinid=str(ds.observation_joinids[int(np.argmax(dup))]),
                expected=1,
                found=">1",
            )
        rows[pos[ok]] = got_j[ok]
        w.joinids[ds_id] = rows
        missing = np.nonzero(rows < 0)[0]
        if missing.size:
            k = int(missing[0])
            non_primary = int((~ds.is_primary[missing]).sum())
            why = f"; {non_primary} of them have is_primary_data False" if non_primary else ""
            w.add(
                "spatial_obs",
                f"{missing.size} spatial observation(s) of the source are missing from obs{why} ({T_ALL})",
                dataset_id=ds_id,
                observation_joinid=str(ds.observation_joinids[k]),
                expected=ds.n_cells,
                found=ds.n_cells - missing.size,
            )
        _compare_obs_values(w, ds, t, pos, got_j)


def _compare_obs_values(
    w: Where, ds: SpatialDataset, t: pa.Table, pos: npt.NDArray[np.int64], got_j: npt.NDArray[np.int64]
) -> None:
    ok = np.nonzero(pos >= 0)[0]
    if "is_primary_data" in t.column_names:
        found = _as_numpy(t.column("is_primary_data"))[ok]
        bad = np.nonzero(np.asarray(found, dtype=bool) != ds.is_primary[pos[ok]])[0]
        if bad.size:
            k = int(ok[bad[0]])
            w.add(
                "spatial_obs",
                f"is_primary_data differs from the source in {bad.size} observation(s)",
                dataset_id=ds.dataset_id,
                soma_joinid=int(got_j[k]),
                column="is_primary_data",
                expected=bool(ds.is_primary[pos[k]]),
                found=bool(found[bad[0]]),
            )
    for c in SPATIAL_OBS_COLUMNS:
        if c not in t.column_names:
            continue
        arr = t.column(c).combine_chunks()
        nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)[ok]
        values = np.asarray(arr.fill_null(INT64_MIN).to_numpy(), dtype=np.int64)[ok]
        src = ds.spatial_obs.get(c)
        if src is None:  # Slide-seqV2: the source has no such column; null or the int64-minimum placeholder
            bad = np.nonzero(~nulls & (values != INT64_MIN))[0]
            expected: Any = "null or -9223372036854775808 (the source has no such column)"
            if not bad.size and ok.size:
                how = "null" if nulls.all() else "int64 minimum" if not nulls.any() else "null / int64 minimum"
                w.findings.readings[f"spatial obs {c} of dataset {ds.dataset_id}"] = (
                    f"{how} (the source has no {c}: allowed, 7.0.0 forbids the column for this assay)"
                )
        else:
            bad = np.nonzero(nulls | (values != src[pos[ok]]))[0]
            expected = int(src[pos[ok[bad[0]]]]) if bad.size else None
        if bad.size:
            k = int(ok[bad[0]])
            w.add(
                "spatial_obs",
                f"obs {c} differs from the source in {bad.size} observation(s) ({T_SPATIAL_OBS}, "
                '"As defined in CELLxGENE dataset schema")',
                dataset_id=ds.dataset_id,
                soma_joinid=int(got_j[k]),
                column=c,
                expected=expected,
                found=None if nulls[bad[0]] else int(values[bad[0]]),
            )


def _check_presence(w: Where, table: Any, scenes: set[str]) -> None:
    """One row with data True per observation and its dataset's scene; False rows only for other scenes."""
    if not {"soma_joinid", "scene_id", "data"} <= set(table.schema.names):
        return  # the encodings check reported it
    seen = np.zeros(w.dataset_of.size, dtype=np.int64)
    reported: set[str] = set()
    for batch in table.read(column_names=["soma_joinid", "scene_id", "data"]):
        j = np.asarray(batch.column("soma_joinid").to_numpy(), dtype=np.int64)
        scene = _as_numpy(batch.column("scene_id")).astype(str)
        data = np.asarray(_as_numpy(batch.column("data")), dtype=bool)
        valid = (j >= 0) & (j < w.dataset_of.size)
        if (~valid).any() and "joinid" not in reported:
            reported.add("joinid")
            w.add(
                "spatial_presence",
                'soma_joinid is not a soma_joinid of obs (the text: "It MUST be valid soma_joinid from ...obs")',
                soma_joinid=int(j[~valid][0]),
                expected=f"0..{w.dataset_of.size - 1}",
                found=int(j[~valid][0]),
            )
        unknown = ~np.isin(scene, sorted(scenes))
        if unknown.any() and "scene" not in reported:
            reported.add("scene")
            w.add(
                "spatial_presence",
                'scene_id is not a scene of spatial (the text: "It MUST be valid scene_id from ...spatial")',
                soma_joinid=int(j[unknown][0]),
                expected=sorted(scenes),
                found=str(scene[unknown][0]),
            )
        jv = np.where(valid, j, 0)
        own = np.array([w.codes[c] if c >= 0 else "" for c in w.dataset_of[jv]], dtype=object).astype(str)
        own_scene = valid & (scene == own)
        wrong = (data & valid & ~own_scene) | (~data & own_scene)
        if wrong.any() and "data" not in reported:
            reported.add("data")
            k = int(np.nonzero(wrong)[0][0])
            w.add(
                "spatial_presence",
                f"data is {bool(data[k])} for a scene that "
                f"{'does not contain' if data[k] else 'contains'} the observation ({T_PRESENCE}; an observation "
                "is in the scene of its dataset)",
                soma_joinid=int(j[k]),
                dataset_id=str(own[k]),
                expected=not bool(data[k]),
                found=bool(data[k]),
            )
        np.add.at(seen, j[data & own_scene], 1)
    in_obs = w.dataset_of >= 0
    bad = np.nonzero(in_obs & (seen != 1))[0]
    if bad.size:
        k = int(bad[0])
        w.add(
            "spatial_presence",
            f"{bad.size} observation(s) have not exactly one row (data True) for the scene of "
            f"their dataset ({T_PRESENCE})",
            soma_joinid=k,
            dataset_id=w.codes[int(w.dataset_of[k])],
            expected=1,
            found=int(seen[k]),
        )


def _scene(run: Run, w: Where, where: str, scene: Any, ds: SpatialDataset | None) -> None:
    allowed = {"obsl", "img", "varl"}
    for key in sorted(set(scene.keys()) - allowed):
        w.add("spatial_structure", f"{where} has an unexpected member {key!r}", found=key)
    obsl = _member(w, scene, "obsl", "SOMACollection", f"{where}.obsl", T_LOC)
    if obsl is not None:
        loc = _member(w, obsl, "loc", "SOMAPointCloudDataFrame", f"{where}.obsl['loc']", T_LOC)
        if loc is not None and ds is not None:
            _check_points(w, f"{where}.obsl['loc']", loc, ds)
    if ds is None:
        return
    if not ds.is_visium:
        if "img" in scene:
            w.add(
                "spatial_structure",
                f"{where} has an img collection but its assay is {ds.assay} ({T_NO_IMG})",
                dataset_id=ds.dataset_id,
                expected="absent",
                found="img",
            )
        return
    img = _member(w, scene, "img", "SOMACollection", f"{where}.img", T_HIRES)
    if img is not None:
        _check_images(run, w, f"{where}.img", scene, img, ds)


def _check_points(w: Where, where: str, loc: Any, ds: SpatialDataset) -> None:
    names = {f.name: f.type for f in loc.schema}
    for c in ("x", "y", "soma_joinid"):
        if c not in names:
            w.add(
                "spatial_points",
                f"{where} lacks column {c!r} ({T_LOC})",
                dataset_id=ds.dataset_id,
                column=c,
                expected="present",
                found="absent",
            )
    if not {"x", "y", "soma_joinid"} <= set(names):
        return
    for c in ("x", "y"):
        if not pa.types.is_floating(names[c]):
            w.add(
                "spatial_points",
                f"{where} column {c!r} is not a float ({T_XY_FLOAT})",
                dataset_id=ds.dataset_id,
                column=c,
                expected="float",
                found=str(names[c]),
            )
    meta = dict(loc.metadata)
    if meta.get("soma_geometry_type") != "radius":
        w.add(
            "spatial_points",
            f"{where} metadata soma_geometry_type is not 'radius' ({T_TYPE})",
            dataset_id=ds.dataset_id,
            column="soma_geometry_type",
            expected="radius",
            found=meta.get("soma_geometry_type", "absent"),
        )
    radius = meta.get("soma_geometry")
    number = isinstance(radius, float | int) and not isinstance(radius, bool)
    value = float(radius) if number and radius is not None else math.nan
    ok_float = math.isfinite(value) and value > 0
    if ds.is_visium and ds.spot_diameter_fullres is not None:
        want = ds.spot_diameter_fullres / 2
        if not ok_float or not math.isclose(value, want, rel_tol=1e-9):
            w.add(
                "spatial_points",
                f"{where} metadata soma_geometry is not spot_diameter_fullres / 2 ({T_RADIUS})",
                dataset_id=ds.dataset_id,
                column="soma_geometry",
                expected=want,
                found=radius,
            )
    elif not ok_float:
        w.add(
            "spatial_points",
            f"{where} metadata soma_geometry is not a positive float radius ({T_RADIUS}; "
            '"For Slide-seqV2 ("EFO:0030062") the radius is a small constant.")',
            dataset_id=ds.dataset_id,
            column="soma_geometry",
            expected="a positive float",
            found=radius,
        )
    else:
        w.findings.readings[f"{where} soma_geometry"] = f"{radius} (Slide-seqV2: the text's 'small constant')"
    w.findings.readings[f"{where} coordinate space"] = str([(a.name, a.unit) for a in loc.coordinate_space.axes])
    rows = w.joinids.get(ds.dataset_id)
    if rows is None:
        return  # obs could not be read: spatial_obs / encodings said why
    ok = rows >= 0
    order = np.argsort(rows[ok])
    sorted_j = rows[ok][order]
    src_rows = ds.kept_rows[ok][order]
    expected = positions(ds.path, src_rows)  # the dataset's positions, in release joinid order
    seen = np.zeros(sorted_j.size, dtype=np.int64)
    counts = {"swapped": 0, "differ": 0, "foreign": 0}
    first: dict[str, tuple[int, Any, Any]] = {}
    for batch in loc.read(column_names=["x", "y", "soma_joinid"]):
        j = np.asarray(batch.column("soma_joinid").to_numpy(), dtype=np.int64)
        x = np.asarray(batch.column("x").to_numpy(), dtype=np.float64)
        y = np.asarray(batch.column("y").to_numpy(), dtype=np.float64)
        k = np.searchsorted(sorted_j, j)
        k = np.minimum(k, max(sorted_j.size - 1, 0))
        mine = (sorted_j.size > 0) & (sorted_j[k] == j) if sorted_j.size else np.zeros(j.size, bool)
        if (~mine).any():
            counts["foreign"] += int((~mine).sum())
            first.setdefault("foreign", (int(j[~mine][0]), ds.dataset_id, None))
        k, j, x, y = k[mine], j[mine], x[mine], y[mine]
        np.add.at(seen, k, 1)
        ex, ey = expected[k, 0], expected[k, 1]
        right = (x == ex) & (y == ey)
        swapped = ~right & (x == ey) & (y == ex)
        differ = ~right & ~swapped
        for name, mask in (("swapped", swapped), ("differ", differ)):
            if mask.any():
                counts[name] += int(mask.sum())
                i = int(np.nonzero(mask)[0][0])
                first.setdefault(name, (int(j[i]), [float(ex[i]), float(ey[i])], [float(x[i]), float(y[i])]))
    if counts["swapped"]:
        sj, e, f = first["swapped"]
        w.add(
            "spatial_points",
            f"{counts['swapped']} point(s) have x and y swapped: x is the second column of "
            f'obsm["spatial"] and y the first ({T_X}; {T_Y})',
            dataset_id=ds.dataset_id,
            soma_joinid=sj,
            expected={"x": e[0], "y": e[1]},
            found={"x": f[0], "y": f[1]},
        )
    if counts["differ"]:
        sj, e, f = first["differ"]
        w.add(
            "spatial_points",
            f'{counts["differ"]} point(s) are not at the source\'s obsm["spatial"] position ({T_X}; {T_Y})',
            dataset_id=ds.dataset_id,
            soma_joinid=sj,
            expected={"x": e[0], "y": e[1]},
            found={"x": f[0], "y": f[1]},
        )
    if counts["foreign"]:
        w.add(
            "spatial_points",
            f"{counts['foreign']} point(s) name a soma_joinid that is not an observation of the scene's dataset in obs",
            dataset_id=ds.dataset_id,
            soma_joinid=first["foreign"][0],
            expected="an obs soma_joinid of the dataset",
            found=first["foreign"][0],
        )
    bad = np.nonzero(seen != 1)[0]
    if bad.size:
        w.add(
            "spatial_points",
            f"{bad.size} observation(s) of the scene have not exactly one point ({T_EACH})",
            dataset_id=ds.dataset_id,
            soma_joinid=int(sorted_j[bad[0]]),
            expected=1,
            found=int(seen[bad[0]]),
        )


def _check_images(run: Run, w: Where, where: str, scene: Any, img: Any, ds: SpatialDataset) -> None:
    keys = set(img.keys())
    libs = set(ds.library_ids)
    for key in sorted(keys - libs):
        w.add(
            "spatial_images",
            f"{where} has a member that is not the source's library_id ({T_LIB})",
            dataset_id=ds.dataset_id,
            expected=sorted(libs),
            found=key,
        )
    for lib in sorted(libs):
        if lib not in keys:
            w.add(
                "spatial_images",
                f"{where}['{lib}'] is missing ({T_HIRES})",
                dataset_id=ds.dataset_id,
                expected="Collection",
                found="absent",
            )
            continue
        member = img[lib]
        subcollection: str | list[str] = "img"
        key = lib
        if member.soma_type == "SOMAMultiscaleImage":
            w.add(
                "spatial_images",
                f"{where}['{lib}'] is the MultiscaleImage itself, not a Collection holding 'highres_image' ({T_IMG})",
                dataset_id=ds.dataset_id,
                expected="SOMACollection",
                found="SOMAMultiscaleImage",
            )
            image = member
        elif member.soma_type == "SOMACollection":
            image = _member(
                w, member, "highres_image", "SOMAMultiscaleImage", f"{where}['{lib}']['highres_image']", T_IMG
            )
            if image is None:
                continue
            subcollection, key = ["img", lib], "highres_image"
        else:
            w.add(
                "spatial_images",
                f"{where}['{lib}'] has the wrong type ({T_IMG})",
                dataset_id=ds.dataset_id,
                expected="SOMACollection",
                found=member.soma_type,
            )
            continue
        _check_image(w, f"{where}['{lib}']", scene, image, key, subcollection, lib, ds)


def _check_image(
    w: Where, where: str, scene: Any, image: Any, key: str, subcollection: str | list[str], lib: str, ds: SpatialDataset
) -> None:
    order = tuple(str(a) for a in image.data_axis_order)
    w.findings.readings[f"{where} image"] = (
        f"levels {image.level_count}, level 0 shape {tuple(image.level_shape(0))}, data_axis_order {order}"
    )
    if ds.tissue_hires_scalef is not None:
        try:
            tr = scene.get_transform_to_multiscale_image(key, subcollection=subcollection)
            scales = [float(s) for s in np.ravel(getattr(tr, "scale_factors", [np.nan]))]
        except Exception as e:
            scales = [f"{type(e).__name__}: {e}"]  # type: ignore[list-item]
        if not all(isinstance(s, float) and math.isclose(s, ds.tissue_hires_scalef, rel_tol=1e-9) for s in scales):
            w.add(
                "spatial_images",
                f"{where}: the scene-to-image transform is not a scale by tissue_hires_scalef "
                "(decision 4 of issue #16; the text does not place the scale factors)",
                dataset_id=ds.dataset_id,
                expected=ds.tissue_hires_scalef,
                found=scales,
            )
    if ds.hires_shape is None:
        return
    h, wd = ds.hires_shape[0], ds.hires_shape[1]
    c = ds.hires_shape[2] if len(ds.hires_shape) > 2 else 1
    shape = tuple(int(s) for s in image.level_shape(0))
    layouts = {(c, h, wd): (1, 2, 0), (h, wd, c): (0, 1, 2)}  # stored shape -> axes of (row, column, channel)
    if shape not in layouts:
        w.add(
            "spatial_images",
            f"{where} level 0 is not the source's hires image's shape ({T_VALUE})",
            dataset_id=ds.dataset_id,
            expected=f"(channel, y, x) {[c, h, wd]} or (y, x, channel) {[h, wd, c]}",
            found=list(shape),
        )
        return
    perm = layouts[shape]
    level = next(image[k] for k in sorted(image.keys()) if tuple(int(s) for s in image[k].shape) == shape)
    differ, first = 0, None
    for a, band in hires_bands(ds.path, lib, BAND_ROWS):
        b = a + band.shape[0]
        coords: list[slice] = [slice(None)] * 3
        coords[perm[0]] = slice(a, b - 1)
        got = level.read(tuple(coords)).to_numpy()
        got = np.transpose(got, perm)  # -> (row, column, channel)
        pixels = band.reshape(band.shape[0], band.shape[1], -1)
        bad = np.nonzero(np.any(got != pixels, axis=2))
        if bad[0].size:
            differ += int(bad[0].size)
            if first is None:
                r, col = int(bad[0][0]), int(bad[1][0])
                first = ([a + r, col], pixels[r, col].tolist(), got[r, col].tolist())
    if first is not None:
        w.add(
            "spatial_images",
            f"{where} level 0 differs from the source's hires image in {differ} pixel(s) "
            f"({T_VALUE}); first at (y, x) {first[0]}",
            dataset_id=ds.dataset_id,
            expected=first[1],
            found=first[2],
        )

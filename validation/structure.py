"""Step 2, check_structure: what can be checked in the release without the sources.

The object tree and types, column encodings, soma_joinids, and shapes against the expected release. Every
problem becomes a finding; the URIs of the objects that exist are kept (``Run.layout``) for the later steps.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa

from validation.checks.numbering import read_var_numbering
from validation.expected.spec import Column, Encoding, Spec
from validation.inputs.release import ExperimentUris, ReleaseLayout, joinid_batches, read_table
from validation.report import Finding, Findings
from validation.run import Found, Run

logger = logging.getLogger(__name__)

SPATIAL = "census_spatial_sequencing"  # the root member of spatial data (Census schemas with spatial assays)


def _arrow_matches(t: pa.DataType, encoding: Encoding) -> bool:
    if pa.types.is_dictionary(t):
        return encoding == "string" and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))
    if encoding == "string":
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t))
    expected = {"bool": pa.bool_(), "int64": pa.int64(), "float32": pa.float32()}[encoding]
    return bool(t == expected)


def check_dataframe_schema(
    findings: Findings,
    what: str,
    schema: pa.Schema,
    columns: tuple[Column, ...],
    organism: str | None = None,
    *,
    extra_allowed: bool = False,
) -> None:
    """Check a dataframe's columns against the schema's: none missing, each of its encoding, none extra.

    ``extra_allowed`` (a release another tool wrote): columns the schema does not define are recorded as a
    reading, not a finding (the schema lists the columns a dataframe MUST include); our own releases hold
    exactly the schema's columns.
    """
    wanted = {c.name: c for c in columns}
    have = {f.name: f.type for f in schema}
    encoded = sum(1 for name, t in have.items() if name in wanted and pa.types.is_dictionary(t))
    if encoded:  # strings all the same (the schema names no storage); the report says where
        key = "string columns stored dictionary-encoded (accepted: their values are strings)"
        listed = findings.readings.get(key)
        findings.readings[key] = f"{listed}; " if listed else ""
        findings.readings[key] += f"{what}: {encoded}"
    if extra_allowed:
        extra = [f"{name} ({t})" for name, t in have.items() if name not in wanted]
        if extra:
            findings.readings[f"{what} extra columns"] = (
                f"{', '.join(extra)}: not defined by the schema, allowed (it lists the columns that MUST be included)"
            )
        have = {name: t for name, t in have.items() if name in wanted}
    for name, col in wanted.items():
        if name not in have:
            findings.add(
                "encodings",
                Finding(
                    f"{what} lacks column {name!r}",
                    organism=organism,
                    column=name,
                    expected=col.encoding,
                    found="absent",
                ),
            )
        elif not _arrow_matches(have[name], col.encoding):
            findings.add(
                "encodings",
                Finding(
                    f"{what} column {name!r} has the wrong encoding (the schema's table of columns: {name} "
                    f"{col.encoding})",
                    organism=organism,
                    column=name,
                    expected=col.encoding,
                    found=str(have[name]),
                ),
            )
    for name, t in have.items():
        if name not in wanted:
            findings.add(
                "encodings",
                Finding(
                    f"{what} has a column the schema does not define",
                    organism=organism,
                    column=name,
                    expected="absent",
                    found=str(t),
                ),
            )


def check_ndarray_schema(
    findings: Findings, what: str, schema: pa.Schema, value: Encoding, organism: str | None
) -> None:
    """Check a sparse array's type: 2-D, int64 dimensions, values of encoding ``value``."""
    types = {f.name: f.type for f in schema}
    for dim in ("soma_dim_0", "soma_dim_1"):
        t = types.get(dim)
        if t != pa.int64():
            findings.add(
                "encodings",
                Finding(
                    f"{what} dimension {dim} is not int64",
                    organism=organism,
                    expected="int64",
                    found=str(t) if t is not None else "absent",
                ),
            )
    t = types.get("soma_data")
    if t is None or not _arrow_matches(t, value):
        findings.add(
            "encodings",
            Finding(
                f"{what} values have the wrong type",
                organism=organism,
                expected=value,
                found=str(t) if t is not None else "absent",
            ),
        )
    if len(types) != 3:
        findings.add(
            "encodings",
            Finding(
                f"{what} is not a 2-D sparse array",
                organism=organism,
                expected=["soma_dim_0", "soma_dim_1", "soma_data"],
                found=sorted(types),
            ),
        )


def _member(findings: Findings, parent: Any, key: str, soma_type: str, what: str, organism: str | None = None) -> Any:
    """parent[key] if it exists with the right SOMA type, else None (with a finding)."""
    if key not in parent:
        findings.add("structure", Finding(f"{what} is missing", organism=organism, expected=soma_type, found="absent"))
        return None
    try:
        obj = parent[key]
    except Exception as e:
        findings.add("structure", Finding(f"{what} cannot be opened: {type(e).__name__}: {e}", organism=organism))
        return None
    if obj.soma_type != soma_type:
        findings.add(
            "structure",
            Finding(f"{what} has the wrong type", organism=organism, expected=soma_type, found=obj.soma_type),
        )
        return None
    return obj


def _extra_keys(findings: Findings, parent: Any, allowed: set[str], what: str, organism: str | None = None) -> None:
    for key in sorted(set(parent.keys()) - allowed):
        findings.add(
            "structure",
            Finding(f"{what} has an unexpected member {key!r}", organism=organism, expected=sorted(allowed), found=key),
        )


def open_layout(
    uri: str, spec: Spec, expected_organisms: list[str], findings: Findings, *, foreign: bool = False
) -> ReleaseLayout:
    """Check the release's structure and types; return the URIs of what exists.

    ``foreign``: the release was written by another tool (dataframe columns beyond the schema's are allowed,
    see :func:`check_dataframe_schema`). A schema with spatial assays (2.4.0) describes
    ``census_spatial_sequencing`` beside census_info and census_data: a SOMACollection here, its
    contents checked by validation.spatial. A schema with an organisms table (2.4.0) requires an experiment's contents
    "for each organism with qualifying data": an experiment of a Census organism without cells is accepted
    (and checked like any other: it must be well-formed and empty).
    """
    import tiledbsoma as soma

    layout = ReleaseLayout(uri)
    try:
        root = soma.open(uri)
    except Exception as e:
        findings.add("structure", Finding(f"the release root {uri} cannot be opened: {type(e).__name__}: {e}"))
        return layout
    with root:
        if root.soma_type != "SOMACollection":
            findings.add(
                "structure",
                Finding("the release root is not a SOMACollection", expected="SOMACollection", found=root.soma_type),
            )
            return layout
        layout.opened = True
        root_keys = {"census_info", "census_data"} | ({SPATIAL} if spec.spatial_assays else set())
        _extra_keys(findings, root, root_keys, "census_obj")
        members: Any = root  # a Collection (its soma_type was checked above)
        if SPATIAL in root_keys and SPATIAL in members:
            spatial = _member(findings, members, SPATIAL, "SOMACollection", f"census_obj['{SPATIAL}']")
            if spatial is not None:
                findings.readings[SPATIAL] = (
                    f"present (experiments: {', '.join(sorted(spatial.keys())) or 'none'}); its contents are "
                    "checked by validation.spatial (the spatial_* checks)"
                )
        info = _member(findings, root, "census_info", "SOMACollection", "census_obj['census_info']")
        if info is not None:
            for name, columns in spec.tables.items():
                df = _member(findings, info, name, "SOMADataFrame", f"census_info['{name}']")
                if df is not None:
                    layout.tables[name] = df.uri
                    check_dataframe_schema(
                        findings, f"census_info['{name}']", df.schema, columns, extra_allowed=foreign
                    )
            _extra_keys(findings, info, set(spec.tables), "census_obj['census_info']")
        data = _member(findings, root, "census_data", "SOMACollection", "census_obj['census_data']")
        if data is None:
            return layout
        for organism in spec.organisms:
            name = organism.name
            if name not in data:
                if name in expected_organisms:
                    findings.add(
                        "structure",
                        Finding(
                            f"census_data['{name}'] is missing but the sources have {organism.label} cells",
                            organism=name,
                            expected="SOMAExperiment",
                            found="absent",
                        ),
                    )
                continue
            if name not in expected_organisms and "organisms" in spec.tables:
                findings.readings[f"census_data['{name}']"] = (
                    f"an experiment although no source has {organism.label} cells that pass the filters (allowed: "
                    "the schema requires its contents 'for each organism with qualifying data'); checked to be empty"
                )
            elif name not in expected_organisms:
                findings.add(
                    "structure",
                    Finding(
                        f"census_data['{name}'] exists but no source has {organism.label} cells that pass the filters",
                        organism=name,
                        expected="absent",
                        found="SOMAExperiment",
                    ),
                )
            exp = _member(findings, data, name, "SOMAExperiment", f"census_data['{name}']", name)
            if exp is not None:
                layout.experiments[name] = _experiment(findings, exp, spec, name, foreign)
        _extra_keys(findings, data, {o.name for o in spec.organisms}, "census_obj['census_data']")
    return layout


def _experiment(findings: Findings, exp: Any, spec: Spec, organism: str, foreign: bool) -> ExperimentUris:
    out = ExperimentUris(organism)
    where = f"census_data['{organism}']"
    obs = _member(findings, exp, "obs", "SOMADataFrame", f"{where}.obs", organism)
    if obs is not None:
        out.obs = obs.uri
        check_dataframe_schema(findings, f"{where}.obs", obs.schema, spec.obs, organism, extra_allowed=foreign)
    ms = _member(findings, exp, "ms", "SOMACollection", f"{where}.ms", organism)
    if ms is None:
        return out
    _extra_keys(findings, ms, {spec.measurement}, f"{where}.ms", organism)
    rna = _member(findings, ms, spec.measurement, "SOMAMeasurement", f"{where}.ms['{spec.measurement}']", organism)
    if rna is None:
        return out
    where = f"{where}.ms['{spec.measurement}']"
    var = _member(findings, rna, "var", "SOMADataFrame", f"{where}.var", organism)
    if var is not None:
        out.var = var.uri
        check_dataframe_schema(findings, f"{where}.var", var.schema, spec.var, organism, extra_allowed=foreign)
    x = _member(findings, rna, "X", "SOMACollection", f"{where}.X", organism)
    if x is not None:
        _extra_keys(findings, x, set(spec.x_layers), f"{where}.X", organism)
        for layer, encoding in spec.x_layers.items():
            arr = _member(findings, x, layer, "SOMASparseNDArray", f"{where}.X['{layer}']", organism)
            if arr is not None:
                out.x[layer] = arr.uri
                check_ndarray_schema(findings, f"{where}.X['{layer}']", arr.schema, encoding, organism)
    pm = _member(
        findings, rna, spec.presence_matrix, "SOMASparseNDArray", f"{where}['{spec.presence_matrix}']", organism
    )
    if pm is not None:
        out.presence = pm.uri
        check_ndarray_schema(
            findings, f"{where}['{spec.presence_matrix}']", pm.schema, spec.presence_encoding, organism
        )
    return out


def check_joinids(findings: Findings, uri: str, what: str, organism: str | None = None) -> int:
    """Check that soma_joinid is exactly 0..n-1; return n (rows found).

    One finding per dataframe: after the first gap or duplicate every later joinid is off too.
    """
    n = 0
    reported = False
    try:
        for col in joinid_batches(uri):
            values = np.asarray(col.to_numpy(), dtype=np.int64)
            bad = np.nonzero(values != np.arange(n, n + values.size))[0]
            if bad.size and not reported:
                k = int(bad[0])
                findings.add(
                    "soma_joinids",
                    Finding(
                        f"{what} soma_joinids are not 0..n-1 (a row is missing, added or duplicated)",
                        organism=organism,
                        expected=n + k,
                        found=int(values[k]),
                    ),
                )
                reported = True
            n += int(values.size)
    except Exception as e:
        findings.add("soma_joinids", Finding(f"{what} cannot be read: {type(e).__name__}: {e}", organism=organism))
    return n


def check_structure(run: Run) -> None:
    """Step 2: the object tree, types and encodings; soma_joinids; shapes against the expected release."""
    model = run.planned()
    run.layout = layout = open_layout(
        run.release_uri, run.spec, list(model.organisms), run.findings, foreign=run.foreign
    )
    for name, uri in layout.tables.items():
        check_joinids(run.findings, uri, f"census_info['{name}']")
    if "datasets" in layout.tables:  # the presence matrix's rows are the datasets table's soma_joinids
        try:
            t = read_table(layout.tables["datasets"], ["soma_joinid", "dataset_id"])
            model.number_datasets(t.column("dataset_id").to_pylist(), t.column("soma_joinid").to_pylist())
        except Exception as e:
            logger.warning("datasets table numbering not readable (%s): manifest order assumed", e)
    check_experiment_shapes(run)


def check_experiment_shapes(run: Run) -> None:
    """Each experiment of ``run.layout``: obs / var soma_joinids and lengths, X and presence matrix shapes."""
    import tiledbsoma as soma

    model, layout = run.planned(), run.release_layout()
    for name, exp in layout.experiments.items():
        org = model.organisms.get(name)
        found = run.found.setdefault(name, Found())
        n_obs, n_var = (org.n_obs, len(org.var)) if org else (0, 0)
        if exp.obs:
            found.obs_count = check_joinids(run.findings, exp.obs, f"census_data['{name}'].obs", name)
            if found.obs_count != n_obs:
                run.findings.add(
                    "shapes",
                    Finding("obs has the wrong number of cells", organism=name, expected=n_obs, found=found.obs_count),
                )
        if exp.var:
            got = check_joinids(run.findings, exp.var, f"census_data['{name}'].var", name)
            if got != n_var:
                run.findings.add(
                    "shapes", Finding("var has the wrong number of genes", organism=name, expected=n_var, found=got)
                )
            if org is not None:
                try:
                    found.var_numbering = read_var_numbering(exp.var, org.var.feature_ids)
                except Exception as e:
                    logger.warning("%s var not readable (%s): feature_id order assumed", name, e)
        arrays = {f"X['{k}']": (uri, (n_obs, n_var)) for k, uri in exp.x.items()}
        if exp.presence:  # its height is checked with the datasets table (check_tables)
            arrays[run.spec.presence_matrix] = (exp.presence, (-1, n_var))
        for what, (uri, wanted) in arrays.items():
            try:
                with soma.SparseNDArray.open(uri) as arr:
                    shape = tuple(int(s) for s in arr.shape)
            except Exception as e:
                run.findings.add("shapes", Finding(f"{what} cannot be opened: {type(e).__name__}: {e}", organism=name))
                continue
            want = wanted
            if want[0] < 0:
                found.presence_shape = (shape[0], shape[1]) if len(shape) == 2 else None
                want = (shape[0], n_var) if len(shape) == 2 else want
            if shape != want:
                run.findings.add(
                    "shapes",
                    Finding(f"{what} has the wrong shape", organism=name, expected=list(want), found=list(shape)),
                )

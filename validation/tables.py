"""Step 4, check_tables: var, the presence matrix, census_info and the dataset_h5ad_path files.

Each is checked against the expected release; each reads its release table whole (they are small: genes,
datasets, rows of counts) and returns what the consistency check needs.

Rows are matched by content: genes by feature_id, datasets by dataset_id, summary_cell_counts rows by
(organism, category, ontology_term_id, label); the presence matrix is read through the datasets table's
and var's soma_joinids. Where the schema text allows more than one reading, every reading is accepted and
the one the release uses is recorded (``Findings.readings``):

- presence-matrix height: "N is the number of datasets in the SOMAExperiment", yet the matrix "is indexed
  by the soma_joinid value of census_info['datasets']": one row per datasets-table row, or one row per
  dataset with cells of the organism (then those datasets' soma_joinids must be below that height);
- datasets that contribute no cells: left out of census_info['datasets'] or listed with
  dataset_total_cell_count 0;
- the row order of summary_cell_counts: free.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from validation.checks.numbering import VarNumbering
from validation.expected.model import Model, OrganismModel
from validation.expected.spec import Spec
from validation.inputs.release import read_table
from validation.report import Finding, Findings
from validation.run import Run

logger = logging.getLogger(__name__)

PRESENCE_ROWS = 64  # datasets read at a time from the presence matrix
MAX_GENES_LISTED = 20  # differing presence bits named per dataset (the rest are counted)
MAX_BEYOND_LISTED = 5  # presence bits past the last gene named per dataset (only these are counted)


def _column(table: pa.Table, name: str) -> list[Any] | None:
    if name not in table.column_names:
        return None
    col = table.column(name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    values: list[Any] = col.to_pylist()
    return values


def check_var(findings: Findings, model: OrganismModel, uri: str) -> pa.Table | None:
    """Check an organism's var against the expected genes; return the table (None if unreadable)."""
    org = model.organism.name
    try:
        table = read_table(uri)
    except Exception as e:
        findings.add("var_features", Finding(f"var cannot be read: {type(e).__name__}: {e}", organism=org))
        return None
    ids = _column(table, "feature_id")
    if ids is None:
        findings.add("var_features", Finding("var has no feature_id column", organism=org))
        return table
    found_set = set(ids)
    for fid in model.var.feature_ids:
        if fid not in found_set:
            findings.add(
                "var_features",
                Finding(
                    "kept source gene is missing from var",
                    organism=org,
                    feature_id=fid,
                    expected="present",
                    found="absent",
                ),
            )
    expected_set = set(model.var.index)
    for j, fid in enumerate(ids):
        if fid not in expected_set:
            findings.add(
                "var_features",
                Finding(
                    "var has a gene that no contributing dataset keeps",
                    organism=org,
                    feature_id=fid,
                    var_joinid=j,
                    expected="absent",
                    found="present",
                ),
            )
    for fid, n in Counter(ids).items():
        if n > 1:
            findings.add(
                "var_features",
                Finding("gene appears more than once in var", organism=org, feature_id=fid, expected=1, found=n),
            )
    joinids = _column(table, "soma_joinid") or list(range(len(ids)))
    by_id: dict[str, int] = {}
    for j, fid in enumerate(ids):
        by_id.setdefault(fid, j)
    names, lengths = _column(table, "feature_name"), _column(table, "feature_length")
    nnz, n_obs = _column(table, "nnz"), _column(table, "n_measured_obs")
    expected_n_obs = model.n_measured_obs()
    for k, fid in enumerate(model.var.feature_ids):
        if fid not in by_id:
            continue
        j = by_id[fid]
        checks: list[tuple[str, str, Any, list[Any] | None]] = [
            ("var_features", "feature_name", model.var.names[k], names),
            ("var_features", "feature_length", int(model.var.lengths[k]), lengths),
            ("var_statistics", "nnz", int(model.var_nnz[k]), nnz),
            ("var_statistics", "n_measured_obs", int(expected_n_obs[k]), n_obs),
        ]
        for check, column, expected, values in checks:
            if values is not None and values[j] != expected:
                findings.add(
                    check,
                    Finding(
                        f"var {column} differs from the sources",
                        organism=org,
                        feature_id=fid,
                        var_joinid=int(joinids[j]),
                        column=column,
                        expected=expected,
                        found=values[j],
                    ),
                )
    return table


def read_presence(uri: str, n_datasets: int) -> dict[int, npt.NDArray[np.int64]]:
    """Read dataset joinid -> var joinids whose presence value is True (stored False counts as False)."""
    import tiledbsoma as soma

    out: dict[int, npt.NDArray[np.int64]] = {}
    with soma.SparseNDArray.open(uri) as arr:
        last = max(n_datasets, int(arr.shape[0])) - 1
        for lo in range(0, last + 1, PRESENCE_ROWS):
            t = arr.read(coords=(slice(lo, min(last, lo + PRESENCE_ROWS - 1)),)).tables().concat()
            rows = np.asarray(t.column("soma_dim_0").to_numpy(), dtype=np.int64)
            cols = np.asarray(t.column("soma_dim_1").to_numpy(), dtype=np.int64)
            vals = np.asarray(t.column("soma_data").to_numpy(zero_copy_only=False)).astype(bool)
            for r in np.unique(rows[vals]):
                out[int(r)] = np.unique(cols[vals & (rows == r)])
    return out


def check_presence_shape(findings: Findings, model: Model, org: OrganismModel, shape: tuple[int, int]) -> None:
    """Check the presence matrix's height, under either reading of the schema (see the module docstring)."""
    name = org.organism.name
    n_table = len(model.dataset_rows) if model.dataset_rows else len(model.contributing)
    joinids = [model.dataset_joinid.get(p.dataset_id, -1) for p in org.datasets]
    needed = max(joinids, default=-1) + 1
    height = shape[0]
    if height == n_table and needed <= height:
        reading = f"{height} rows: one per census_info['datasets'] row (every dataset of the Census)"
    elif height == len(org.datasets) and needed <= height:
        reading = f"{height} rows: one per dataset with {org.organism.label} cells"
    else:
        findings.add(
            "shapes",
            Finding(
                f"presence matrix height is neither the number of census_info['datasets'] rows ({n_table}) nor of "
                f"datasets with {org.organism.label} cells ({len(org.datasets)}), or too low for their datasets "
                f"soma_joinids (up to {needed - 1})",
                organism=name,
                expected=sorted({n_table, len(org.datasets)}),
                found=height,
            ),
        )
        return
    findings.readings[f"{name} presence matrix height"] = reading


def check_presence(
    findings: Findings,
    model: Model,
    org: OrganismModel,
    found: dict[int, npt.NDArray[np.int64]],
    numbering: VarNumbering,
) -> None:
    """Rows by the datasets table's soma_joinid of each dataset, columns by var soma_joinid (``numbering``)."""
    name = org.organism.name
    members = {
        model.dataset_joinid[p.dataset_id]: p.dataset_id
        for p in org.datasets
        if model.dataset_joinid.get(p.dataset_id, -1) >= 0
    }
    for joinid, cols in sorted(found.items()):
        if joinid not in members:
            findings.add(
                "presence_matrix",
                Finding(
                    f"presence row {joinid} has True values but that dataset has no {org.organism.label} cells",
                    organism=name,
                    dataset_id=model.dataset_at(joinid),
                    var_joinid=int(cols[0]),
                    expected=0,
                    found=int(cols.size),
                ),
            )
    for joinid, ds in members.items():
        expected = org.presence[ds]
        got = np.zeros(len(org.var), dtype=bool)
        cols = found.get(joinid, np.zeros(0, np.int64))
        beyond = cols[cols >= numbering.n_release]
        genes = numbering.expected(cols[cols < numbering.n_release])
        got[genes[genes >= 0]] = True  # True for a gene no dataset keeps: var_features reports that gene
        for j in np.nonzero(expected != got)[0][:MAX_GENES_LISTED]:
            at = int(numbering.release_of_expected[j])
            findings.add(
                "presence_matrix",
                Finding(
                    "presence bit differs from the source "
                    "(True iff the gene has a count > 0 in the dataset's kept cells)",
                    organism=name,
                    dataset_id=ds,
                    feature_id=org.var.feature_ids[j],
                    var_joinid=at if at >= 0 else None,
                    expected=bool(expected[j]),
                    found=bool(got[j]),
                ),
            )
        n_bad = int((expected != got).sum())
        if n_bad > MAX_GENES_LISTED:
            findings.merge("presence_matrix", [], n_bad - MAX_GENES_LISTED)
        for j in beyond[:MAX_BEYOND_LISTED]:
            findings.add(
                "presence_matrix",
                Finding("presence True beyond the last gene", organism=name, dataset_id=ds, var_joinid=int(j)),
            )


def check_datasets_table(findings: Findings, model: Model, table: pa.Table) -> dict[str, str]:
    """Check census_info['datasets'] rows; return dataset_id -> dataset_h5ad_path as found."""
    check = "census_info_datasets"
    ids = _column(table, "dataset_id") or []
    rows = {ds: k for k, ds in enumerate(ids)}
    for ds, n in Counter(ids).items():
        if n > 1:
            findings.add(check, Finding("dataset listed more than once", dataset_id=ds, expected=1, found=n))
    expected_ids = {p.dataset_id for p in model.contributing}
    counts = _column(table, "dataset_total_cell_count") or [None] * len(ids)
    empty: list[str] = []
    for ds, count in zip(ids, counts, strict=True):
        if ds not in expected_ids:
            plan = next((p for p in model.plans if p.dataset_id == ds), None)
            if plan is not None and plan.readable and count == 0:
                empty.append(ds)  # a dataset without cells, listed with 0 cells: the schema allows either
                continue
            why = (
                f"it contributes no cells ({plan.exclusion or 'unreadable source'})"
                if plan
                else "it is not in the manifest"
            )
            findings.add(
                check,
                Finding(
                    f"datasets table lists a dataset but {why}",
                    dataset_id=ds,
                    column="dataset_total_cell_count",
                    expected="absent or 0 cells",
                    found=count,
                ),
            )
    findings.readings["datasets without cells"] = (
        f"listed in census_info['datasets'] with 0 cells: {', '.join(empty)}"
        if empty
        else "not listed in census_info['datasets']"
    )
    for p in model.contributing:
        k = rows.get(p.dataset_id)
        if k is None:
            findings.add(
                check,
                Finding(
                    f"dataset contributes {p.n_cells} cells but has no datasets row",
                    dataset_id=p.dataset_id,
                    expected="present",
                    found="absent",
                ),
            )
            continue
        s = model.sources[p.dataset_id]
        expected: dict[str, Any] = {
            "citation": s.citation or p.citation,
            "collection_id": s.collection_id,
            "collection_name": s.collection_name,
            "collection_doi": s.collection_doi,
            "collection_doi_label": s.collection_doi_label,
            "dataset_id": p.dataset_id,
            "dataset_version_id": s.dataset_version_id,
            "dataset_title": s.dataset_title or p.title,
            "dataset_total_cell_count": p.n_cells,
        }
        for column, value in expected.items():
            values = _column(table, column)
            if values is not None and values[k] != value:
                findings.add(
                    check,
                    Finding(
                        f"datasets {column} differs from the manifest / source",
                        dataset_id=p.dataset_id,
                        column=column,
                        expected=value,
                        found=values[k],
                    ),
                )
    paths = _column(table, "dataset_h5ad_path")
    return {ds: str(paths[k]) for ds, k in rows.items()} if paths is not None else {}


def check_summary(findings: Findings, spec: Spec, model: Model, table: pa.Table) -> dict[str, str]:
    """Check census_info['summary'] rows; return label -> value as found."""
    check = "census_info_summary"
    labels, values = _column(table, "label") or [], _column(table, "value") or []
    found: dict[str, str] = {}
    for label, value in zip(labels, values, strict=True):
        if label in found:
            findings.add(check, Finding(f"summary row {label!r} appears more than once", column=label))
        found[label] = value
    donors = {
        o.name: len({(p.dataset_id, d) for p in model.contributing if p.organism == o.name for d in p.donors})
        for o in spec.organisms
    }
    expected: dict[str, str | None] = {
        "census_schema_version": spec.version,
        "census_build_date": None,  # checked as an ISO 8601 date below
        "dataset_schema_version": spec.dataset_schema_version,
        "total_cell_count": str(sum(p.n_cells for p in model.contributing)),
        "unique_cell_count": str(sum(p.n_primary for p in model.contributing)),
        **{f"number_donors_{o.name}": str(donors[o.name]) for o in spec.organisms},
    }
    for label in spec.summary_rows:
        if label not in found:
            findings.add(
                check,
                Finding(
                    f"summary row {label!r} is missing", column=label, expected=expected.get(label), found="absent"
                ),
            )
            continue
        want = expected.get(label)
        if label == "census_build_date":
            try:
                dt.date.fromisoformat(found[label])
            except ValueError:
                findings.add(
                    check,
                    Finding(
                        "census_build_date is not an ISO 8601 date",
                        column=label,
                        expected="YYYY-MM-DD",
                        found=found[label],
                    ),
                )
        elif want is not None and found[label] != want:
            findings.add(
                check,
                Finding(f"summary {label} differs from the sources", column=label, expected=want, found=found[label]),
            )
    return found


def expected_cell_counts(spec: Spec, model: Model) -> dict[tuple[str, str, str, str], list[int]]:
    """Return (organism, category, term, label) -> [cells, primary cells] of the contributing datasets."""
    out: dict[tuple[str, str, str, str], list[int]] = {}
    for p in model.contributing:
        label = spec.organism_by_name(str(p.organism)).label
        for (category, term, name), (total, unique) in p.cell_counts.items():
            acc = out.setdefault((label, category, term, name), [0, 0])
            acc[0] += total
            acc[1] += unique
    return out


def check_summary_cell_counts(findings: Findings, spec: Spec, model: Model, table: pa.Table) -> None:
    """Check census_info['summary_cell_counts'] rows (matched by content, in any order)."""
    check = "census_info_summary_cell_counts"
    expected = expected_cell_counts(spec, model)
    cols = {
        c: _column(table, c)
        for c in ("organism", "category", "ontology_term_id", "label", "total_cell_count", "unique_cell_count")
    }
    if any(v is None for v in cols.values()):
        findings.add(
            check, Finding("summary_cell_counts lacks columns; rows not compared", found=sorted(table.column_names))
        )
        return
    found: dict[tuple[str, str, str, str], tuple[int, int]] = {}
    keys = [
        tuple(map(str, k))
        for k in zip(*(cols[c] or [] for c in ("organism", "category", "ontology_term_id", "label")), strict=True)
    ]
    findings.readings["summary_cell_counts row order"] = (
        "sorted by (organism, category, ontology_term_id, label)"
        if keys == sorted(keys)
        else "another order (rows are matched by organism, category, ontology_term_id, label)"
    )
    for org, cat, term, label, total, unique in zip(*cols.values(), strict=True):
        key = (str(org), str(cat), str(term), str(label))
        if key in found:
            findings.add(check, Finding(f"summary_cell_counts row {key} appears more than once", expected=1, found=2))
        found[key] = (int(total), int(unique))
    for key, (total, unique) in sorted(expected.items()):
        if key not in found:
            findings.add(
                check, Finding(f"summary_cell_counts row {key} is missing", expected=[total, unique], found="absent")
            )
            continue
        got_total, got_unique = found[key]
        if got_total != total:
            findings.add(
                check,
                Finding(
                    f"summary_cell_counts {key} total_cell_count differs",
                    column="total_cell_count",
                    expected=total,
                    found=got_total,
                ),
            )
        if got_unique != unique:
            findings.add(
                check,
                Finding(
                    f"summary_cell_counts {key} unique_cell_count differs",
                    column="unique_cell_count",
                    expected=unique,
                    found=got_unique,
                ),
            )
    for key in sorted(set(found) - set(expected)):
        findings.add(
            check,
            Finding(
                f"summary_cell_counts has a row {key} that the sources do not give",
                expected="absent",
                found=list(found[key]),
            ),
        )


def check_h5ad_paths(
    findings: Findings, model: Model, release_dir: Path, paths: dict[str, str], source_paths: dict[str, Path | None]
) -> None:
    """Check that each dataset_h5ad_path is relative and names an existing file of the source's size."""
    check = "dataset_h5ad_paths"
    for ds, rel in paths.items():
        if not rel or Path(rel).is_absolute() or "://" in rel:
            findings.add(
                check,
                Finding(
                    "dataset_h5ad_path is not a relative path",
                    dataset_id=ds,
                    expected="h5ads/<dataset_id>.h5ad",
                    found=rel,
                ),
            )
            continue
        full = release_dir / rel
        if not full.is_file():
            findings.add(
                check, Finding(f"dataset_h5ad_path does not exist under {release_dir}", dataset_id=ds, found=rel)
            )
            continue
        src = source_paths.get(ds)
        if src is not None and src.is_file() and src.stat().st_size != full.stat().st_size:
            findings.add(
                check,
                Finding(
                    "dataset_h5ad_path file differs in size from the manifest's source",
                    dataset_id=ds,
                    expected=src.stat().st_size,
                    found=full.stat().st_size,
                ),
            )


def check_tables(run: Run) -> None:
    """Step 4: var and the presence matrix per organism, the census_info tables, the dataset_h5ad_path files."""
    model, layout = run.planned(), run.release_layout()
    if not layout.opened:
        return
    for name, org in model.organisms.items():
        exp = layout.experiments.get(name)
        if exp is None:
            continue
        found = run.found[name]
        if exp.var:
            var = check_var(run.findings, org, exp.var)
            if var is not None and "nnz" in var.column_names:
                found.var_nnz = int(np.asarray(var.column("nnz").to_numpy()).sum())
            if var is not None and "n_measured_obs" in var.column_names:
                found.var_n_measured_obs = np.asarray(var.column("n_measured_obs").to_numpy(), dtype=np.int64)
        if exp.presence:
            try:
                found.presence = read_presence(exp.presence, len(model.contributing))
            except Exception as e:
                run.findings.add("presence_matrix", Finding(f"cannot be read: {type(e).__name__}: {e}", organism=name))
            else:
                check_presence(run.findings, model, org, found.presence, run.var_numbering(org))
            if found.presence_shape is not None:
                check_presence_shape(run.findings, model, org, found.presence_shape)
    for name, check in (
        ("datasets", "census_info_datasets"),
        ("summary", "census_info_summary"),
        ("summary_cell_counts", "census_info_summary_cell_counts"),
    ):
        uri = layout.tables.get(name)
        if uri is None:
            run.findings.add(check, Finding(f"census_info['{name}'] is missing: rows not checked"))
            continue
        try:
            run.tables[name] = read_table(uri)
        except Exception as e:
            run.findings.add(check, Finding(f"census_info['{name}'] cannot be read: {type(e).__name__}: {e}"))
    paths: dict[str, str] = {}
    if "datasets" in run.tables:
        paths = check_datasets_table(run.findings, model, run.tables["datasets"])
    if "summary" in run.tables:
        check_summary(run.findings, run.spec, model, run.tables["summary"])
    if "summary_cell_counts" in run.tables:
        check_summary_cell_counts(run.findings, run.spec, model, run.tables["summary_cell_counts"])
    release_dir = Path(run.release_uri.removeprefix("file://")).resolve().parent
    check_h5ad_paths(run.findings, model, release_dir, paths, {k: v[0] for k, v in run.sources.items()})

"""Step 4, check_tables: var, the presence matrix, census_info and the dataset_h5ad_path files.

var and the presence matrix are checked here; census_info's tables and the files in validation.census_info.

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

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from validation.census_info import (
    check_datasets_table,
    check_h5ad_paths,
    check_organisms_table,
    check_summary,
    check_summary_cell_counts,
)
from validation.checks.numbering import VarNumbering
from validation.expected.model import Model, OrganismModel
from validation.inputs.release import read_table, table_column
from validation.report import Finding, Findings
from validation.run import Run

logger = logging.getLogger(__name__)

PRESENCE_ROWS = 64  # datasets read at a time from the presence matrix
MAX_GENES_LISTED = 20  # differing presence bits named per dataset (the rest are counted)
MAX_BEYOND_LISTED = 5  # presence bits past the last gene named per dataset (only these are counted)
# The presence rules of the schema data (presence_matrix.rule), as findings state them, with the schema's words.
PRESENCE_RULES = {
    "nonzero": "True iff the gene has a count > 0 in the dataset's kept cells; the schema: 'If the feature has at "
    "least one cell with a value greater than zero in the count data matrix X in the dataset of origin, the "
    "value MUST be True; otherwise, it MUST be False'",
    "listed": "True iff the dataset's var has the gene, counts or not (schema data rule 'listed'); the schema: "
    "'True indicates the feature was included in the dataset, False otherwise'",
}
NOTES = {"n_measured_obs": " (the schema: 'sum of feature presence matrix'; see presence_matrix)"}


def check_var(findings: Findings, model: OrganismModel, uri: str) -> pa.Table | None:
    """Check an organism's var against the expected genes; return the table (None if unreadable)."""
    org = model.organism.name
    try:
        table = read_table(uri)
    except Exception as e:
        findings.add("var_features", Finding(f"var cannot be read: {type(e).__name__}: {e}", organism=org))
        return None
    ids = table_column(table, "feature_id")
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
    joinids = table_column(table, "soma_joinid") or list(range(len(ids)))
    by_id: dict[str, int] = {}
    for j, fid in enumerate(ids):
        by_id.setdefault(fid, j)
    names, lengths = table_column(table, "feature_name"), table_column(table, "feature_length")
    nnz, n_obs = table_column(table, "nnz"), table_column(table, "n_measured_obs")
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
                        f"var {column} differs from the sources{NOTES.get(column, '')}",
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
                    f"presence bit differs from the source ({PRESENCE_RULES[org.presence_rule]})",
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


def check_experiment_tables(run: Run) -> None:
    """Each experiment of ``run.layout``: var against the expected genes, the presence matrix recomputed."""
    model, layout = run.planned(), run.release_layout()
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


def check_tables(run: Run) -> None:
    """Step 4: var and the presence matrix per organism, the census_info tables, the dataset_h5ad_path files."""
    model, layout = run.planned(), run.release_layout()
    if not layout.opened:
        return
    check_experiment_tables(run)
    for name, check in (
        ("datasets", "census_info_datasets"),
        ("summary", "census_info_summary"),
        ("summary_cell_counts", "census_info_summary_cell_counts"),
        ("organisms", "census_info_organisms"),
    ):
        if name not in run.spec.tables:
            continue  # not a table of this schema (organisms: 2.4.0)
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
    if "organisms" in run.tables:
        check_organisms_table(run.findings, run.spec, model, run.tables["organisms"], list(layout.experiments))
    release_dir = Path(run.release_uri.removeprefix("file://")).resolve().parent
    check_h5ad_paths(
        run.findings, model, release_dir, paths, {k: v[0] for k, v in run.sources.items()}, foreign=run.foreign
    )

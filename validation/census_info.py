"""census_info's tables (datasets, summary, summary_cell_counts) and the dataset_h5ad_path files, for step 4.

Rows are matched by content: datasets by dataset_id, summary rows by label, summary_cell_counts rows by
(organism, category, ontology_term_id, label); their row order is free. Datasets that contribute no cells
may be left out of census_info['datasets'] or listed with dataset_total_cell_count 0 (both readings are
accepted and the one the release uses is recorded).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from validation.expected.model import Model
from validation.expected.spec import Spec
from validation.inputs.release import table_column
from validation.report import Finding, Findings

logger = logging.getLogger(__name__)

H5ADS = "h5ads"  # the folder of the source copies beside a release


def check_datasets_table(findings: Findings, model: Model, table: pa.Table) -> dict[str, str]:
    """Check census_info['datasets'] rows; return dataset_id -> dataset_h5ad_path as found."""
    check = "census_info_datasets"
    ids = table_column(table, "dataset_id") or []
    rows = {ds: k for k, ds in enumerate(ids)}
    for ds, n in Counter(ids).items():
        if n > 1:
            findings.add(check, Finding("dataset listed more than once", dataset_id=ds, expected=1, found=n))
    expected_ids = {p.dataset_id for p in model.listed}
    counts = table_column(table, "dataset_total_cell_count") or [None] * len(ids)
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
    done: set[str] = set()
    for p in model.listed:
        if p.dataset_id in done:
            continue  # a dataset with census_data and spatial cells: one row
        done.add(p.dataset_id)
        k = rows.get(p.dataset_id)
        if k is None:
            findings.add(
                check,
                Finding(
                    f"dataset contributes {model.cells_of(p.dataset_id)} cells but has no datasets row",
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
            "dataset_total_cell_count": model.cells_of(p.dataset_id),
        }
        for column, value in expected.items():
            values = table_column(table, column)
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
    paths = table_column(table, "dataset_h5ad_path")
    return {ds: str(paths[k]) for ds, k in rows.items()} if paths is not None else {}


def check_summary(findings: Findings, spec: Spec, model: Model, table: pa.Table) -> dict[str, str]:
    """Check census_info['summary'] rows; return label -> value as found."""
    check = "census_info_summary"
    labels, values = table_column(table, "label") or [], table_column(table, "value") or []
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
        "total_cell_count": str(sum(p.n_cells for p in model.listed)),  # "cells or spatial spots"
        "unique_cell_count": str(sum(p.n_primary for p in model.listed)),
        **{f"number_donors_{o.name}": str(donors[o.name]) for o in spec.organisms},
    }
    for label in sorted(set(found) - set(spec.summary_rows)):  # e.g. 1.3.0's number_donors_* in a 2.4.0 release
        findings.add(
            check,
            Finding(
                f"summary has a row {label!r} that Census schema {spec.version} does not list",
                column=label,
                expected="absent",
                found=found[label],
            ),
        )
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
        elif label == "census_schema_version" and found[label] != want:
            findings.add(
                check,
                Finding(
                    f"the release records Census schema {found[label]} in census_info['summary']; validated "
                    f"against {want}",
                    column=label,
                    expected=want,
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
    """Return (organism, category, term, label) -> [cells, primary cells] of the contributing datasets.

    census_data's and census_spatial_sequencing's cells alike (Census 2.4.0 counts "cells or spatial spots").
    """
    out: dict[tuple[str, str, str, str], list[int]] = {}
    for p in model.listed:
        label = spec.organism_by_name(str(p.organism)).label
        for (category, term, name), (total, unique) in p.cell_counts.items():
            acc = out.setdefault((label, category, term, name), [0, 0])
            acc[0] += total
            acc[1] += unique
    return out


def _organism_labels(findings: Findings, spec: Spec, values: list[Any]) -> list[Any]:
    """Return summary_cell_counts' organism column with census_data keys replaced by their labels.

    The schema's organism is the organism's label ("Homo sapiens"); a census_data key ("homo_sapiens") in its
    place is one finding per key, and its rows are then compared under the label.
    """
    labels = {o.name: o.label for o in spec.organisms}
    used = sorted({str(v) for v in values} & (set(labels) - set(labels.values())))
    for key in used:
        findings.add(
            "census_info_summary_cell_counts",
            Finding(
                "summary_cell_counts organism is the census_data key, not the organism's label as the schema "
                "requires (rows compared under the label)",
                organism=key,
                column="organism",
                expected=labels[key],
                found=key,
            ),
        )
    if not used:
        return values
    return [labels.get(str(v), v) if str(v) in used else v for v in values]


def check_summary_cell_counts(findings: Findings, spec: Spec, model: Model, table: pa.Table) -> None:
    """Check census_info['summary_cell_counts'] rows (matched by content, in any order)."""
    check = "census_info_summary_cell_counts"
    expected = expected_cell_counts(spec, model)
    cols = {
        c: table_column(table, c)
        for c in ("organism", "category", "ontology_term_id", "label", "total_cell_count", "unique_cell_count")
    }
    if any(v is None for v in cols.values()):
        findings.add(
            check, Finding("summary_cell_counts lacks columns; rows not compared", found=sorted(table.column_names))
        )
        return
    cols["organism"] = _organism_labels(findings, spec, cols["organism"] or [])
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
            merged = sorted(  # a row of the same term holding more cells than its label has: labels merged
                k[3]
                for k, (n, _) in found.items()
                if k[:3] == key[:3] and k[3] != key[3] and n > expected.get(k, [0, 0])[0]
            )
            why = (
                f" (its cells are counted under the row of the same organism, category and ontology_term_id with "
                f"label {merged[0]!r}; the schema: a row per combination of organism and metadata values)"
                if merged
                else ""
            )
            findings.add(
                check,
                Finding(f"summary_cell_counts row {key} is missing{why}", expected=[total, unique], found="absent"),
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
    findings: Findings,
    model: Model,
    release_dir: Path,
    paths: dict[str, str],
    source_paths: dict[str, Path | None],
    *,
    foreign: bool = False,
) -> None:
    """Check that each dataset_h5ad_path is relative and names an existing file of the source's size.

    Relative to the release's folder (``h5ads/<dataset_id>.h5ad``, as census-builder writes it); for a
    release another tool wrote (``foreign``) also relative to ``h5ads/`` there (the reference builder writes
    ``<dataset_id>.h5ad``): the schema says only "Relative path to the source h5ad file in the Census storage
    bucket", and the reading is recorded.
    """
    check = "dataset_h5ad_paths"
    in_h5ads: list[str] = []
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
        if foreign and not full.is_file() and (release_dir / H5ADS / rel).is_file():
            full = release_dir / H5ADS / rel
            in_h5ads.append(ds)
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
    if in_h5ads:
        findings.readings["dataset_h5ad_path"] = (
            f"relative to {H5ADS}/ beside the release for {len(in_h5ads)} of {len(paths)} dataset(s) (the schema: "
            "'Relative path to the source h5ad file in the Census storage bucket')"
        )


def organism_key(label: str) -> str:
    """Return the census_data key of an organism label: lower-cased, runs of spaces replaced by one underscore."""
    return re.sub(" +", "_", label.lower())


def check_organisms_table(
    findings: Findings, spec: Spec, model: Model, table: pa.Table, experiments: list[str]
) -> None:
    """Check census_info['organisms'] rows (matched by organism_ontology_term_id, in any order).

    A row per organism with cells (the schema: "Information about organisms whose cells are included in the
    Census MUST be included"), each with the schema's label and ``organism`` = the label lower-cased with runs
    of spaces replaced by one underscore; rows of Census organisms without cells are accepted (and checked
    alike); every census_data experiment must match a row's ``organism``.
    """
    check = "census_info_organisms"
    columns = ("organism_ontology_term_id", "organism_label", "organism")
    cols = {c: table_column(table, c) for c in columns}
    if any(v is None for v in cols.values()):
        findings.add(check, Finding("organisms lacks columns; rows not compared", found=sorted(table.column_names)))
        return
    seen: set[str] = set()
    without_cells: list[str] = []
    for term, label, key in zip(*(cols[c] or [] for c in columns), strict=True):
        org = spec.organism_by_term(str(term))
        if term in seen:
            findings.add(check, Finding("organism listed more than once", column=columns[0], expected=1, found=term))
            continue
        seen.add(str(term))
        if org is None:
            findings.add(
                check,
                Finding(
                    "organisms has a row of an organism the Census does not include",
                    column=columns[0],
                    expected=sorted(o.term for o in spec.organisms),
                    found=term,
                ),
            )
            continue
        if label != org.label:
            findings.add(
                check,
                Finding(
                    "organism_label is not the organism's",
                    organism=org.name,
                    column=columns[1],
                    expected=org.label,
                    found=label,
                ),
            )
        if key != organism_key(org.label):
            findings.add(
                check,
                Finding(
                    "organism is not the organism_label lower-cased with runs of spaces replaced by one underscore",
                    organism=org.name,
                    column=columns[2],
                    expected=organism_key(org.label),
                    found=key,
                ),
            )
        if org.name not in model.organisms and org.name not in {p.organism for p in model.spatial}:
            without_cells.append(org.name)
    with_cells = {o.name: o for o in spec.organisms if o.name in model.organisms}
    with_cells.update({str(p.organism): spec.organism_by_name(str(p.organism)) for p in model.spatial})
    for name, o in with_cells.items():
        if o.term not in seen:
            findings.add(
                check,
                Finding(
                    f"no organisms row for {o.label}, whose cells are included",
                    organism=name,
                    expected=[o.term, o.label, organism_key(o.label)],
                    found="absent",
                ),
            )
    keys = {str(k) for k in cols["organism"] or []}
    for name in experiments:
        if name not in keys:
            findings.add(
                check,
                Finding(
                    f"census_data['{name}'] matches no organisms row's organism",
                    organism=name,
                    column="organism",
                    expected=name,
                    found=sorted(keys),
                ),
            )
    findings.readings["census_info['organisms'] rows without cells"] = (
        f"listed, with no cells in census_data: {', '.join(sorted(without_cells))}" if without_cells else "none"
    )

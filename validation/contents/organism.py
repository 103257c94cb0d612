"""Step 3's checks per organism, after its tasks.

How the release numbers the cells, n_measured_vars against the recomputed presence, and the release rows no
task reads (past the expected cells, or of other datasets).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from validation.contents.cells import CellSetResult, foreign_cells
from validation.expected.model import OrganismModel
from validation.report import Finding
from validation.run import Run


def cell_reading(run: Run, org: OrganismModel, placed: dict[str, CellSetResult]) -> None:
    """Say in the report how the release numbers the organism's cells."""
    results = [placed[p.dataset_id] for p in org.datasets if p.dataset_id in placed]
    runs = [r for r in results if r.start is not None]
    if len(runs) == len(org.datasets) and all(r.start == org.offsets[r.dataset_id] for r in runs):
        text = "each dataset's cells consecutive, in source order, datasets in manifest order (as our builder)"
    elif len(runs) == len(results):
        text = "each dataset's cells consecutive, in source order, datasets in another order"
    else:
        text = (
            f"cells of {len(results) - len(runs)} of {len(org.datasets)} dataset(s) not one consecutive run "
            "in source order (compared through the (dataset_id, observation_joinid) map)"
        )
    run.findings.readings[f"{org.organism.name} cells"] = text


def n_measured_vars(run: Run, org: OrganismModel) -> None:
    """Check obs n_measured_vars of each dataset's cells against the dataset's recomputed presence count."""
    found = run.found[org.organism.name].n_measured_vars
    for p in org.datasets:
        want = org.n_measured_vars(p.dataset_id)
        for value, (n, sj, oj) in sorted(found.get(p.dataset_id, {}).items()):
            if value != want:
                run.findings.merge(
                    "obs_statistics",
                    [
                        Finding(
                            f"obs n_measured_vars differs from the dataset's recomputed presence count ({n} cell(s); "
                            "the schema: 'sum of feature presence matrix'; see presence_matrix)",
                            dataset_id=p.dataset_id,
                            organism=org.organism.name,
                            soma_joinid=sj,
                            observation_joinid=oj,
                            column="n_measured_vars",
                            expected=want,
                            found=value,
                        )
                    ],
                    n,
                )


def beyond_expected_rows(run: Run, org: OrganismModel) -> None:
    """Check for obs rows and X values at soma_joinids past the expected cells (the chunk tasks never read them)."""
    import tiledbsoma as soma

    name = org.organism.name
    exp = run.release_layout().experiments[name]
    found = run.found[name]
    n_obs = max(org.n_obs, found.scanned)  # rows the content tasks read
    if exp.obs:
        t: Any = None
        try:
            with soma.DataFrame.open(exp.obs) as df:
                written = df.non_empty_domain()[0]
                t = (
                    df.read(coords=(slice(n_obs, int(written[1])),)).concat()
                    if written is not None and int(written[1]) >= n_obs
                    else None
                )
        except Exception as e:
            run.findings.add("obs_cells", Finding(f"obs rows past {n_obs - 1} cannot be read: {e}", organism=name))
        # rows of known datasets are reported by the per-dataset cell check, others by other_datasets_cells
        if t is not None and "nnz" in t.column_names:
            found.obs_nnz += int(np.asarray(t.column("nnz").to_numpy()).sum())
    for layer, check in (("raw", "x_raw"), ("normalized", "x_normalized")):
        uri = exp.x.get(layer)
        if uri is None:
            continue
        try:
            with soma.SparseNDArray.open(uri) as arr:
                written = arr.non_empty_domain()[0]
                if written is None or int(written[1]) < n_obs:
                    continue
                t = arr.read(coords=(slice(n_obs, int(written[1])),)).tables().concat()
        except Exception as e:
            run.findings.add(check, Finding(f"X['{layer}'] rows past {n_obs - 1} cannot be read: {e}", organism=name))
            continue
        rows = t.column("soma_dim_0").to_numpy()
        if layer == "raw":
            found.raw_nnz += int(rows.size)
        else:
            found.normalized_nnz += int(rows.size)
        if rows.size:
            run.findings.merge(
                check,
                [
                    Finding(
                        f"X['{layer}'] stores values for rows past the last expected cell ({n_obs - 1})",
                        organism=name,
                        soma_joinid=int(rows[0]),
                        found=int(rows.size),
                    )
                ],
                int(rows.size),
            )


def other_datasets_cells(run: Run, org: OrganismModel) -> None:
    """Check for obs rows of datasets with no cells of the organism, wherever the release numbers them."""
    name, exp = org.organism.name, run.release_layout().experiments[org.organism.name]
    found = run.found[name]
    members = [p.dataset_id for p in org.datasets]
    if not exp.obs or found.obs_count <= sum(found.cells.get(d, 0) for d in members):
        return
    try:
        n, first = foreign_cells(exp.obs, members)
    except Exception as e:
        run.findings.add("obs_cells", Finding(f"obs rows of other datasets cannot be listed: {e}", organism=name))
        return
    run.findings.merge(
        "obs_cells",
        [
            Finding(
                f"obs row of a dataset with no {org.organism.label} cells (not a contributing dataset of this "
                "organism)",
                organism=name,
                dataset_id=r["dataset_id"],
                soma_joinid=r["soma_joinid"],
                observation_joinid=r["observation_joinid"],
                expected="absent",
                found="present",
            )
            for r in first
        ],
        n,
    )

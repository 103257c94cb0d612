"""Step 5, check_consistency: the release's own figures agree with each other.

obs nnz, var nnz and the X layers' value counts; n_measured_vars and n_measured_obs against the release's
presence matrix; dataset_total_cell_count and the summary's cell counts against the obs rows found.
"""

from __future__ import annotations

import numpy as np

from validation.report import Finding
from validation.run import Run

MAX_GENES_LISTED = 20  # genes named per organism when var n_measured_obs disagrees (all are counted)


def check_consistency(run: Run) -> None:
    """Step 5 (see the module docstring)."""
    model, layout = run.planned(), run.release_layout()
    if not layout.opened:
        return
    add = run.findings.add
    spatial: dict[str, list[int]] = run.tables.get("spatial_obs", {})  # validation.spatial: dataset -> [rows, primary]
    total_cells = sum(n for n, _ in spatial.values())  # census_info counts "cells or spatial spots"
    total_primary = sum(p for _, p in spatial.values())
    for name, f in run.found.items():
        total_cells += f.obs_count
        total_primary += sum(f.primary.values())
        sums = {
            "sum of obs nnz": f.obs_nnz,
            "sum of var nnz": f.var_nnz,
            "X['raw'] values": f.raw_nnz,
            # census_spatial_sequencing has X['raw'] only (validation.spatial_contents)
            "X['normalized'] values": f.normalized_nnz if "normalized" in run.spec.x_layers else None,
        }
        known = {k: v for k, v in sums.items() if v is not None}
        if len(set(known.values())) > 1:
            add(
                "consistency",
                Finding(
                    "obs nnz, var nnz and the X layers' value counts disagree",
                    organism=name,
                    expected="all equal",
                    found=known,
                ),
            )
        if f.presence is None:
            continue
        org = model.organisms.get(name)
        for p in org.datasets if org else []:
            row_sum = int(f.presence.get(model.dataset_joinid[p.dataset_id], np.zeros(0)).size)
            for value, (n, sj, oj) in sorted(f.n_measured_vars.get(p.dataset_id, {}).items()):
                if value != row_sum:
                    run.findings.merge(
                        "consistency",
                        [
                            Finding(
                                f"obs n_measured_vars is not the release's presence row sum ({n} cell(s))",
                                organism=name,
                                dataset_id=p.dataset_id,
                                soma_joinid=sj,
                                observation_joinid=oj,
                                expected=row_sum,
                                found=value,
                            )
                        ],
                        n,
                    )
        if f.var_n_measured_obs is not None:
            weighted = np.zeros(f.var_n_measured_obs.size, dtype=np.int64)
            for joinid, present in f.presence.items():
                ds = model.dataset_at(joinid)
                weighted[present[present < weighted.size]] += f.cells.get(ds, 0) if ds else 0
            bad = np.nonzero(weighted != f.var_n_measured_obs)[0]
            names = list(run.var_numbering(org).release_ids) if org else []
            run.findings.merge(
                "consistency",
                [
                    Finding(
                        "var n_measured_obs is not the presence-weighted cell count of the release",
                        organism=name,
                        var_joinid=int(j),
                        feature_id=names[j] if j < len(names) else None,
                        expected=int(weighted[j]),
                        found=int(f.var_n_measured_obs[j]),
                    )
                    for j in bad[:MAX_GENES_LISTED]
                ],
                int(bad.size),
            )
    datasets = run.tables.get("datasets")
    if datasets is not None and {"dataset_id", "dataset_total_cell_count"} <= set(datasets.column_names):
        obs_cells = {ds: n for f in run.found.values() for ds, n in f.cells.items()}
        for ds, (n, _) in spatial.items():
            obs_cells[ds] = obs_cells.get(ds, 0) + n
        for ds, n in zip(
            datasets.column("dataset_id").to_pylist(),
            datasets.column("dataset_total_cell_count").to_pylist(),
            strict=True,
        ):
            if ds in obs_cells and obs_cells[ds] != n:
                add(
                    "consistency",
                    Finding(
                        "dataset_total_cell_count is not the number of obs rows of the dataset",
                        dataset_id=ds,
                        expected=obs_cells[ds],
                        found=n,
                    ),
                )
    summary = run.tables.get("summary")
    if summary is not None and {"label", "value"} <= set(summary.column_names):
        rows = dict(zip(summary.column("label").to_pylist(), summary.column("value").to_pylist(), strict=True))
        for label, n in (("total_cell_count", total_cells), ("unique_cell_count", total_primary)):
            if label in rows and rows[label] != str(n):
                add(
                    "consistency",
                    Finding(
                        f"summary {label} is not the release's obs count",
                        column=label,
                        expected=str(n),
                        found=rows[label],
                    ),
                )

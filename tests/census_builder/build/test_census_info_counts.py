"""census_info's cell counts: counted per (term, label) pair with integer codes, equal to counting cell by cell."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from census_builder.build.census_info import CellCounts, count_columns
from census_builder.census.schema import load_schema

SCHEMA = load_schema()


def _obs(rng: np.random.Generator, n: int, *, categorical: bool) -> pd.DataFrame:
    data: dict[str, object] = {"is_primary_data": rng.random(n) < 0.6}
    for c in sorted(count_columns(SCHEMA) - {"is_primary_data"}):
        values = np.array([f"{c}-{k}" for k in rng.integers(0, 7, n)], dtype=object)
        values[rng.random(n) < 0.05] = None  # missing: left out of the counts (as pandas' groupby does)
        data[c] = (
            pd.Categorical(values, categories=[*sorted({v for v in values if v}), "unused"]) if categorical else values
        )
    return pd.DataFrame(data)


def _cell_by_cell(frames: list[pd.DataFrame]) -> dict[tuple[str, str, str, str], list[int]]:
    out: Counter[tuple[str, str, str, str, bool]] = Counter()
    for obs in frames:
        for cat in SCHEMA.summary_categories:
            terms = obs[cat.ontology_column] if cat.ontology_column else pd.Series(["na"] * len(obs))
            labels = obs[cat.label_column] if cat.label_column else pd.Series(["na"] * len(obs))
            for t, lab, p in zip(terms, labels, obs["is_primary_data"], strict=True):
                if isinstance(t, str) and isinstance(lab, str):
                    out[("Homo sapiens", cat.name, t, lab, bool(p))] += 1
    keys = {k[:4] for k in out}
    return {k: [out[(*k, True)] + out[(*k, False)], out[(*k, True)]] for k in keys}


def test_counts_equal_cell_by_cell_counts_for_categorical_and_plain_columns() -> None:
    rng = np.random.default_rng(3)
    frames = [_obs(rng, 500, categorical=True), _obs(rng, 300, categorical=False), _obs(rng, 0, categorical=True)]
    counts = CellCounts(SCHEMA)
    for i, obs in enumerate(frames):
        counts.add("Homo sapiens", "homo_sapiens", f"ds{i}", obs)
    assert counts.counts == _cell_by_cell(frames)
    assert not any(k[2] == "unused" or k[3] == "unused" for k in counts.counts)  # unobserved categories: no row
    donors = {(f"ds{i}", d) for i, f in enumerate(frames) for d in f["donor_id"].dropna().unique()}
    assert counts.donors["homo_sapiens"] >= donors

"""Marker genes (issue 18): against an independent cell-level computation, properties, and the decided edge cases."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from census_builder.errors import GeneExpressionError
from census_builder.gene_expression.markers import SD_FLOOR, bootstrap_weights, marker_genes

T, C, F = "tissue_general_ontology_term_id", "cell_type_ontology_term_id", "feature_id"
COLUMNS = [T, C, F, "n_cells", "n_expressing", "sum", "sumsq"]
Cells = dict[str, npt.NDArray[np.float64]]  # group -> cells x genes, NaN = missing


# --- (1) an independent computation on cells -------------------------------------------------------------------


def _cells(rng: np.random.Generator, n: int, n_genes: int, level: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """ln(CPTT+1)-like values, about half of them missing (NaN)."""
    values = rng.gamma(4.0, level / 4.0, size=(n, n_genes)) + 0.5
    values[rng.random((n, n_genes)) < 0.5] = np.nan
    return values


def _stats_from_cells(groups: dict[tuple[str, str], npt.NDArray[np.float64]], genes: list[str]) -> pd.DataFrame:
    """The cube's rows for these groups: only genes with an expressing cell; sums over the expressing cells."""
    rows = []
    for (tissue, cell_type), x in groups.items():
        for j, gene in enumerate(genes):
            v = x[:, j][~np.isnan(x[:, j])]
            if v.size:
                rows.append((tissue, cell_type, gene, x.shape[0], v.size, float(v.sum()), float((v * v).sum())))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"n_cells": np.int64, "n_expressing": np.int64})


def _reference(
    groups: dict[tuple[str, str], npt.NDArray[np.float64]],
    genes: list[str],
    *,
    related: Callable[[str, str], bool],
    seed: int,
    n_replicates: int,
    n_top: int,
) -> pd.DataFrame:
    """Straight from the cells and the documented procedure: scipy's Welch test, numpy statistics, loops."""
    out = []
    for (tissue, target), xa_raw in sorted(groups.items()):
        xa = np.nan_to_num(xa_raw)  # missing counts as 0, over all the group's cells
        if xa.shape[0] < 2:
            continue
        others = [
            np.nan_to_num(x)
            for (t, ct), x in sorted(groups.items())
            if t == tissue and ct != target and x.shape[0] >= 2 and not related(target, ct)
        ]
        if not others:
            continue
        effects = np.empty((len(genes), len(others)))
        for k, xb in enumerate(others):
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                welch = scipy.stats.ttest_ind(xa, xb, axis=0, equal_var=False)
            ma, mb = xa.mean(axis=0), xb.mean(axis=0)
            va, vb = xa.var(axis=0, ddof=1), xb.var(axis=0, ddof=1)
            # the effect size uses the very means and variances of scipy's Welch statistic
            t_stat = (ma - mb) / np.sqrt(va / xa.shape[0] + vb / xb.shape[0])
            finite = np.isfinite(welch.statistic)
            np.testing.assert_allclose(welch.statistic[finite], t_stat[finite], rtol=1e-10)
            effects[:, k] = (ma - mb) / np.maximum(np.sqrt((va + vb) / 2), SD_FLOOR)
        draws = np.random.default_rng(seed).integers(0, len(others), size=(n_replicates, len(others)))
        for j, gene in enumerate(genes):
            if np.isnan(xa_raw[:, j]).all():
                continue  # no row: not a candidate
            ranked = np.sort(effects[j])
            score = float(np.mean([np.percentile(ranked[d], 10) for d in draws]))
            if score > 0:
                out.append((tissue, target, gene, score))
    df = pd.DataFrame(out, columns=[T, C, F, "effect_size"])
    df = df.sort_values([T, C, "effect_size", F], ascending=[True, True, False, True])
    df["rank"] = df.groupby([T, C]).cumcount().astype(np.int64) + 1
    return df[df["rank"] <= n_top].reset_index(drop=True)


def test_marker_genes_equal_an_independent_cell_level_computation() -> None:
    rng = np.random.default_rng(7)
    genes = [f"ENSG{j:05d}" for j in range(12)]
    leaves: dict[tuple[str, str], npt.NDArray[np.float64]] = {}
    sizes = {"CL:1": 9, "CL:2": 14, "CL:3": 6, "CL:4": 11, "CL:5": 1, "CL:6": 8}
    for tissue, types in (("UBERON:A", ["CL:1", "CL:2", "CL:3", "CL:4", "CL:5"]), ("UBERON:B", ["CL:2", "CL:6"])):
        for cell_type in types:
            level = rng.uniform(0.5, 4.0, size=len(genes))
            leaves[tissue, cell_type] = _cells(rng, sizes[cell_type], len(genes), level)
    # the roll-up: CL:0 (no cells of its own) is the parent of CL:1 and CL:2 in tissue A
    groups = dict(leaves)
    groups["UBERON:A", "CL:0"] = np.vstack([leaves["UBERON:A", "CL:1"], leaves["UBERON:A", "CL:2"]])
    family = {frozenset({"CL:0", "CL:1"}), frozenset({"CL:0", "CL:2"})}

    def related(a: str, b: str) -> bool:
        return frozenset({a, b}) in family

    stats = _stats_from_cells(groups, genes)
    expected = _reference(groups, genes, related=related, seed=3, n_replicates=50, n_top=5)
    got = marker_genes(stats, n_top=5, seed=3, related=related, n_replicates=50)

    assert set(expected[C]) == {"CL:0", "CL:1", "CL:2", "CL:3", "CL:4", "CL:6"}  # CL:5 has one cell
    pd.testing.assert_frame_equal(got[[T, C, F, "rank"]], expected[[T, C, F, "rank"]])
    np.testing.assert_allclose(got["effect_size"], expected["effect_size"], rtol=1e-9)
    assert got.dtypes.to_dict() == {T: object, C: object, F: object, "effect_size": np.float64, "rank": np.int64}


def test_bootstrap_weights_are_the_mean_of_replicate_percentiles() -> None:
    for k in (1, 2, 7, 31):
        w = bootstrap_weights(k, 40, 10.0, 5)
        assert w.shape == (k,) and math.isclose(w.sum(), 1.0) and (w >= 0).all()
        values = np.sort(np.random.default_rng(k).normal(size=k))
        draws = np.random.default_rng(5).integers(0, k, size=(40, k))
        assert math.isclose(values @ w, np.mean([np.percentile(values[d], 10) for d in draws]), rel_tol=1e-12)
    assert bootstrap_weights(1, 100, 10.0, 0).tolist() == [1.0]


# --- (2) properties --------------------------------------------------------------------------------------------


@st.composite
def cubes(draw: st.DrawFn, tissues: tuple[str, ...] = ("UBERON:1", "UBERON:2")) -> pd.DataFrame:
    """A small valid stats frame: per tissue 2-4 cell types, genes drawn from 6, consistent sums."""
    rows = []
    for tissue in tissues:
        for c in range(draw(st.integers(2, 4))):
            n = draw(st.integers(1, 30))
            for g in draw(st.sets(st.integers(0, 5), min_size=1)):
                ne = draw(st.integers(1, n))
                mean = draw(st.floats(0.5, 5.0))
                sd = draw(st.floats(0.0, 2.0))
                rows.append((tissue, f"CL:{c}", f"G{g}", n, ne, ne * mean, ne * (mean * mean + sd * sd)))
    return pd.DataFrame(rows, columns=COLUMNS).astype({"n_cells": np.int64, "n_expressing": np.int64})


@settings(max_examples=40, deadline=None)
@given(cubes(), st.data())
def test_the_order_of_the_rows_changes_nothing(stats: pd.DataFrame, data: st.DataObject) -> None:
    order = data.draw(st.permutations(range(len(stats))))
    shuffled = stats.iloc[list(order)].reset_index(drop=True)
    pd.testing.assert_frame_equal(marker_genes(stats, n_top=3), marker_genes(shuffled, n_top=3))


@settings(max_examples=40, deadline=None)
@given(cubes(tissues=("UBERON:1",)), cubes(tissues=("UBERON:2",)))
def test_another_tissue_changes_nothing_in_this_one(this: pd.DataFrame, other: pd.DataFrame) -> None:
    alone = marker_genes(this, n_top=4)
    together = marker_genes(pd.concat([other, this], ignore_index=True), n_top=4)
    pd.testing.assert_frame_equal(together[together[T] == "UBERON:1"].reset_index(drop=True), alone)


@settings(max_examples=40, deadline=None)
@given(cubes(tissues=("UBERON:1",)), st.integers(0, 3))
def test_a_gene_only_in_one_cell_type_as_strong_as_its_best_ranks_first(stats: pd.DataFrame, pick: int) -> None:
    # Values are >= 0, so a copy of the target's best gene that no other cell type expresses has, in every
    # comparison, a larger difference of means over a smaller sd: it is at least as good; "A_ONLY" wins ties.
    types = sorted(set(stats[C]))
    target = types[pick % len(types)]
    mine = stats[(stats[C] == target)]
    best = marker_genes(stats, n_top=1)
    best = best[best[C] == target]
    template = mine[mine[F] == best[F].iloc[0]] if len(best) else mine.iloc[:1]
    only = template.assign(**{F: "A_ONLY"})
    result = marker_genes(pd.concat([stats, only], ignore_index=True), n_top=3)
    first = result[(result[C] == target) & (result["rank"] == 1)]
    if int(mine["n_cells"].iloc[0]) < 2 or (stats.drop_duplicates(C)["n_cells"] >= 2).sum() < 2:
        assert first.empty  # one-cell target, or nothing to compare with
    else:
        assert first[F].tolist() == ["A_ONLY"]
        assert (result[F] == "A_ONLY").sum() == 1  # a marker of its cell type only


@settings(max_examples=30, deadline=None)
@given(cubes(), st.integers(0, 2**31))
def test_deterministic_for_a_seed_and_at_most_n_top_per_group(stats: pd.DataFrame, seed: int) -> None:
    first = marker_genes(stats, n_top=2, seed=seed)
    pd.testing.assert_frame_equal(first, marker_genes(stats, n_top=2, seed=seed))
    assert first.groupby([T, C])["rank"].apply(list).map(lambda r: r == list(range(1, len(r) + 1))).all()
    assert (first["effect_size"] > 0).all()


# --- (3) the decided edge cases --------------------------------------------------------------------------------


def _frame(rows: list[tuple[str, str, str, int, int, float, float]]) -> pd.DataFrame:
    types = {"n_cells": np.int64, "n_expressing": np.int64, "sum": np.float64, "sumsq": np.float64}
    return pd.DataFrame(rows, columns=COLUMNS).astype(types)


def test_missing_values_count_as_zero_over_all_cells_and_an_absent_gene_has_mean_and_variance_zero() -> None:
    # A: 4 cells, G expressed in 2 of them at 2.0 -> mean 1, var (8 - 16/4) / 3 = 4/3; B: 2 cells, G absent
    stats = _frame([("T", "A", "G", 4, 2, 4.0, 8.0), ("T", "B", "H", 2, 2, 2.0, 2.5)])
    got = marker_genes(stats)
    assert got[[C, F, "rank"]].values.tolist() == [["A", "G", 1], ["B", "H", 1]]
    # one comparison: the bootstrap is the comparison itself; H: B mean 1, var (2.5 - 2) / 1 = 0.5; A: 0, 0
    np.testing.assert_allclose(got["effect_size"], [1 / math.sqrt(2 / 3), 1 / math.sqrt(0.25)], rtol=1e-12)


def test_two_constant_groups_are_separated_by_the_sd_floor() -> None:
    stats = _frame([("T", "A", "G", 3, 3, 6.0, 12.0), ("T", "B", "G", 5, 5, 5.0, 5.0)])
    got = marker_genes(stats)
    assert got[[C, F]].values.tolist() == [["A", "G"]]
    assert got["effect_size"].tolist() == [(2.0 - 1.0) / SD_FLOOR]


def test_one_cell_groups_are_neither_targets_nor_comparisons() -> None:
    base = [("T", "A", "G", 4, 2, 4.0, 8.0), ("T", "B", "G", 3, 1, 1.0, 1.0), ("T", "B", "H", 3, 3, 3.0, 3.5)]
    one_cell = [("T", "C", "G", 1, 1, 9.0, 81.0), ("T", "C", "H", 1, 1, 9.0, 81.0)]
    without, with_one = marker_genes(_frame(base)), marker_genes(_frame(base + one_cell))
    assert "C" not in set(with_one[C])
    pd.testing.assert_frame_equal(with_one, without)
    assert marker_genes(_frame([base[0], *one_cell])).empty  # A alone has nothing to be compared with


def test_related_pairs_are_skipped_and_asked_with_target_first() -> None:
    # P is the roll-up parent of K; compared with K, P's marker G would be K's own expression.
    stats = _frame(
        [
            ("T", "P", "G", 10, 8, 16.0, 34.0),
            ("T", "K", "G", 6, 6, 12.0, 25.0),
            ("T", "O", "G", 5, 1, 0.5, 0.25),
            ("T", "O", "H", 5, 5, 10.0, 21.0),
        ]
    )
    asked: list[tuple[str, str]] = []

    def related(a: str, b: str) -> bool:
        asked.append((a, b))
        return {a, b} == {"P", "K"}

    got = marker_genes(stats, related=related)
    assert sorted(asked) == sorted((a, b) for a in "PKO" for b in "PKO" if a != b)
    # P and K are each compared with O only: one comparison, so the effect is that comparison's
    p_vs_o = (1.6 - 0.1) / math.sqrt(((34 - 25.6) / 9 + (0.25 - 0.05) / 4) / 2)
    row = got[(got[C] == "P") & (got[F] == "G")]
    np.testing.assert_allclose(row["effect_size"], [p_vs_o], rtol=1e-12)
    unrelated = marker_genes(stats)
    assert unrelated[(unrelated[C] == "P") & (unrelated[F] == "G")]["effect_size"].iloc[0] < p_vs_o
    only_family = stats[stats[C] != "O"]
    assert marker_genes(only_family, related=related).empty  # nothing left to compare with


def test_genes_not_higher_than_the_others_are_not_markers_and_ties_go_by_feature_id() -> None:
    stats = _frame(
        [
            ("T", "A", "Z2", 4, 4, 8.0, 17.0),
            ("T", "A", "Z1", 4, 4, 8.0, 17.0),  # the same figures: rank by feature_id
            ("T", "A", "E", 4, 4, 4.0, 5.0),  # equal in A and B: effect 0, not a marker of either
            ("T", "B", "E", 6, 6, 6.0, 7.5),
            ("T", "B", "Y", 6, 3, 3.0, 3.5),
        ]
    )
    got = marker_genes(stats)
    assert got[[C, F, "rank"]].values.tolist() == [["A", "Z1", 1], ["A", "Z2", 2], ["B", "Y", 1]]
    assert marker_genes(stats, n_top=1)[F].tolist() == ["Z1", "Y"]
    assert marker_genes(stats, min_effect=100.0).empty
    assert marker_genes(stats, min_expressing=4)[F].tolist() == ["Z1", "Z2"]  # Y: 3 expressing cells in B


def test_an_empty_cube_gives_an_empty_result_with_the_columns() -> None:
    got = marker_genes(_frame([]))
    assert got.empty and list(got.columns) == [T, C, F, "effect_size", "rank"]
    assert got["rank"].dtype == np.int64 and got["effect_size"].dtype == np.float64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda df: df.drop(columns=["sumsq"]),
            "marker_genes: the stats frame lacks the column(s) ['sumsq']; it needs ['tissue_general_ontology_term_id', "
            "'cell_type_ontology_term_id', 'feature_id', 'n_cells', 'n_expressing', 'sum', 'sumsq'] (one organism's "
            "rolled-up Gene Expression cube)",
        ),
        (
            lambda df: df.assign(n_expressing=[2, 7, 1]),
            "marker_genes: n_expressing must be within [1, n_cells] (only expressed genes have rows), not so at "
            "tissue 'T', cell type 'B', gene 'G'",
        ),
        (
            lambda df: df.assign(n_cells=[4, 5, 6]),
            "marker_genes: n_cells differs between the rows of one tissue x cell type, at tissue 'T', cell type 'B', "
            "gene 'H'",
        ),
        (
            lambda df: df.assign(feature_id=["G", "G", "G"]),
            "marker_genes: a tissue x cell type x gene appears twice, at tissue 'T', cell type 'B', gene 'G'",
        ),
        (
            lambda df: df.assign(sum=[1.0, np.nan, 1.0]),
            "marker_genes: column 'sum' has missing values, first at tissue 'T', cell type 'B', gene 'G'",
        ),
        (
            lambda df: df.assign(n_cells=[4.0, 5.0, 5.0]),
            "marker_genes: column 'n_cells' must be integers, not float64",
        ),
    ],
)
def test_a_frame_off_the_contract_is_refused(change: Callable[[pd.DataFrame], pd.DataFrame], message: str) -> None:
    stats = _frame([("T", "A", "G", 4, 2, 4.0, 8.0), ("T", "B", "G", 5, 1, 1.0, 1.0), ("T", "B", "H", 5, 5, 5.0, 6.0)])
    with pytest.raises(GeneExpressionError) as err:
        marker_genes(change(stats))
    assert str(err.value) == message


def test_bad_arguments_are_refused() -> None:
    stats = _frame([("T", "A", "G", 4, 2, 4.0, 8.0)])
    with pytest.raises(GeneExpressionError) as err:
        marker_genes(stats, n_top=0)
    assert str(err.value) == (
        "marker_genes: n_top (0), n_replicates (100) and min_expressing (1) must be >= 1 and percentile (10.0) "
        "within [0, 100]"
    )


def test_categorical_id_columns_in_any_category_order_give_the_same_result() -> None:
    stats = _frame(
        [
            ("T", "A", "Z", 4, 4, 8.0, 17.0),
            ("T", "A", "Y", 4, 4, 8.0, 17.0),
            ("T", "B", "Y", 6, 3, 3.0, 3.5),
            ("S", "A", "Y", 3, 3, 3.0, 3.5),
            ("S", "B", "X", 5, 5, 5.0, 6.0),
        ]
    )
    categorical = stats.copy()
    for column in (T, C, F):
        reverse = sorted(set(stats[column]), reverse=True)
        categorical[column] = pd.Categorical(stats[column], categories=[*reverse, "unused"])
    expected = marker_genes(stats)
    assert expected[[T, C, F, "rank"]].values.tolist() == [
        ["S", "A", "Y", 1],
        ["S", "B", "X", 1],
        ["T", "A", "Z", 1],  # B expresses Y, not Z
        ["T", "A", "Y", 2],
    ]
    pd.testing.assert_frame_equal(marker_genes(categorical), expected)

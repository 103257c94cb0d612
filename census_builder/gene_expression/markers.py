"""Marker genes per tissue x cell type, computed from the Gene Expression cube's sums (issue 18).

The CELLxGENE Discover paper ("Data-generated marker genes"): per tissue and cell type, a Welch's t-test of
each gene's normalized expression in the cell type against each OTHER cell type of the same tissue; the
reported effect size of a gene is the 10th percentile of its per-comparison effect sizes, bootstrapped (the
comparisons resampled, the 10th percentile of each replicate, the replicates averaged); the top 25 genes.
:func:`marker_genes` does this for one organism from the cube's per-group sums alone (no cell-level data).
Where the paper is silent we decided as follows (the reasons: ``docs/gene-expression-markers.md``):

- Values: a cell whose value is missing (raw count <= 3, or the gene not measured) counts as 0. A group's
  mean and variance are over ALL its ``n_cells`` cells: ``mean = sum / n``,
  ``var = (sumsq - sum**2 / n) / (n - 1)`` (ddof 1, as Welch's test uses; negatives from rounding become 0).
  A gene without a row in a group (``n_expressing`` 0) has mean 0 and variance 0 there.
- Effect size of target ``a`` against another cell type ``b``, per gene:
  ``(mean_a - mean_b) / max(sqrt((var_a + var_b) / 2), SD_FLOOR)``: the difference of means over the
  unweighted average of the two variances (Welch's test does not pool by group size, neither does this; unlike
  the t statistic it does not grow with the number of cells). ``SD_FLOOR`` (1e-3, far below the spread of
  ln(CPTT+1) data) keeps a perfect separation of two constant groups finite and rounding noise out.
- Groups of one cell have no variance (Welch's test is undefined for them): they are neither targets nor
  comparisons. No p-value filter (with Census-sized groups every visible difference has p ~ 0, and the paper
  reports effect sizes); ``min_expressing`` (default 1) and ``min_effect`` (default 0) are the filters.
- ``related(a, b)`` (optional) names comparisons to skip: the roll-up puts a descendant's cells inside its
  ancestors, so comparing a cell type with its own ancestor or descendant is meaningless. ``b`` is skipped as a
  comparison for the target ``a`` when ``related(a, b)`` is true.
- Bootstrap: ``n_replicates`` (100) replicates. For a target with ``K`` comparisons, a fresh
  ``numpy.random.default_rng(seed)`` (PCG64) draws ``integers(0, K, size=(n_replicates, K))``; replicate ``r``
  of gene ``g`` is ``numpy.percentile(sorted_effects_g[draws[r]], percentile)`` (the default "linear" method),
  where ``sorted_effects_g`` are gene ``g``'s K effect sizes in ascending order; the effect size is the mean
  over replicates. Each gene is so resampled with replacement (the same draws index each gene's own sorted
  effects: common random numbers across genes); this equals a weighted sum of each gene's sorted effects with
  weights that depend only on K, which is how it is computed (no loop over genes, replicates or comparisons).
- A gene is a candidate for a target when it has a row there (``n_expressing >= min_expressing``), and is
  kept when its effect size is > ``min_effect``. Ranking: effect size descending, then ``feature_id``
  ascending; the first ``n_top`` get ranks 1..n_top.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd

from census_builder.errors import GeneExpressionError

logger = logging.getLogger(__name__)

TISSUE = "tissue_general_ontology_term_id"
CELL_TYPE = "cell_type_ontology_term_id"
FEATURE = "feature_id"
STATS_COLUMNS = (TISSUE, CELL_TYPE, FEATURE, "n_cells", "n_expressing", "sum", "sumsq")
RESULT_COLUMNS = (TISSUE, CELL_TYPE, FEATURE, "effect_size", "rank")

N_REPLICATES = 100
PERCENTILE = 10.0
SD_FLOOR = 1e-3

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def marker_genes(
    stats: pd.DataFrame,
    *,
    n_top: int = 25,
    seed: int = 0,
    related: Callable[[str, str], bool] | None = None,
    n_replicates: int = N_REPLICATES,
    percentile: float = PERCENTILE,
    min_expressing: int = 1,
    min_effect: float = 0.0,
) -> pd.DataFrame:
    """Return the top ``n_top`` marker genes of every tissue x cell type of one organism's rolled-up cube.

    ``stats`` has the columns of :data:`STATS_COLUMNS`, one row per tissue x cell type x gene with
    ``n_expressing > 0`` (see the module docstring for the method). The result has the columns of
    :data:`RESULT_COLUMNS` (ids as str, ``effect_size`` float64, ``rank`` int64 from 1), sorted by tissue, cell
    type and rank; the same for any order of the rows of ``stats`` and, for a given ``seed``, on every run.
    """
    if n_top < 1 or n_replicates < 1 or min_expressing < 1 or not 0 <= percentile <= 100:
        raise GeneExpressionError(
            f"marker_genes: n_top ({n_top}), n_replicates ({n_replicates}) and min_expressing ({min_expressing}) "
            f"must be >= 1 and percentile ({percentile}) within [0, 100]"
        )
    _check_stats(stats)
    tissue_codes, tissues = _factorize(stats[TISSUE])
    type_codes, cell_types = _factorize(stats[CELL_TYPE])
    gene_codes, genes = _factorize(stats[FEATURE])
    n_cells = stats["n_cells"].to_numpy(dtype=np.int64)
    n_expressing = stats["n_expressing"].to_numpy(dtype=np.int64)
    sums = stats["sum"].to_numpy(dtype=np.float64)
    sumsqs = stats["sumsq"].to_numpy(dtype=np.float64)

    order = np.lexsort((gene_codes, type_codes, tissue_codes))
    _check_groups(stats, order, tissue_codes, type_codes, gene_codes, n_cells)
    bounds = np.flatnonzero(np.diff(tissue_codes[order])) + 1
    is_related = _RelatedCache(related, cell_types)
    parts: list[tuple[I64, I64, I64, F64]] = []
    for rows in np.split(order, bounds) if order.size else []:
        tissue = int(tissue_codes[rows[0]])
        for type_code, candidates, candidate_effects in _tissue_markers(
            type_codes[rows],
            gene_codes[rows],
            n_cells[rows],
            n_expressing[rows],
            sums[rows],
            sumsqs[rows],
            is_related=is_related,
            seed=seed,
            n_replicates=n_replicates,
            percentile=percentile,
            min_expressing=min_expressing,
        ):
            keep = candidate_effects > min_effect
            gene_sel, effects = candidates[keep], candidate_effects[keep]
            # gene codes are in feature_id order (sorted factorize): the tie-break is feature_id ascending
            top = np.lexsort((gene_sel, -effects))[:n_top]
            k = top.size
            parts.append((np.full(k, tissue), np.full(k, type_code), gene_sel[top], effects[top]))

    logger.info(
        "marker genes: %d tissue x cell type groups of %d tissues have markers (%d rows of stats)",
        len(parts),
        tissues.size,
        len(stats),
    )
    return _result(parts, tissues, cell_types, genes)


def _result(
    parts: list[tuple[I64, I64, I64, F64]],
    tissues: npt.NDArray[np.object_],
    cell_types: npt.NDArray[np.object_],
    genes: npt.NDArray[np.object_],
) -> pd.DataFrame:
    """Build the result frame; ``parts`` come in tissue and cell type order (sorted codes), each ranked."""

    def column(i: int, dtype: type) -> npt.NDArray[np.generic]:
        return np.concatenate([p[i] for p in parts]) if parts else np.array([], dtype=dtype)

    rank = [np.arange(1, p[3].size + 1, dtype=np.int64) for p in parts]
    return pd.DataFrame(
        {
            TISSUE: pd.Series(tissues[column(0, np.int64)], dtype=object),
            CELL_TYPE: pd.Series(cell_types[column(1, np.int64)], dtype=object),
            FEATURE: pd.Series(genes[column(2, np.int64)], dtype=object),
            "effect_size": pd.Series(column(3, np.float64), dtype=np.float64),
            "rank": pd.Series(np.concatenate(rank) if rank else np.array([], dtype=np.int64), dtype=np.int64),
        }
    )


def _tissue_markers(
    types: I64,
    genes: I64,
    n_cells: I64,
    n_expressing: I64,
    sums: F64,
    sumsqs: F64,
    *,
    is_related: _RelatedCache,
    seed: int,
    n_replicates: int,
    percentile: float,
    min_expressing: int,
) -> list[tuple[int, I64, F64]]:
    """Per cell type of one tissue with comparisons: (its code, candidate gene codes, their effect sizes)."""
    type_ids, row_type = np.unique(types, return_inverse=True)
    gene_ids, row_gene = np.unique(genes, return_inverse=True)
    n = np.zeros(type_ids.size, dtype=np.float64)
    n[row_type] = n_cells
    eligible = np.flatnonzero(n >= 2)  # a one-cell group has no variance: neither target nor comparison
    if eligible.size < 2:
        return []
    # genes x eligible cell types, contiguous per gene: a target's comparisons of one gene are one row
    column = np.full(type_ids.size, -1, dtype=np.int64)
    column[eligible] = np.arange(eligible.size)
    keep = column[row_type] >= 0
    rows, cols, n_kept = row_gene[keep], column[row_type[keep]], n_cells[keep]
    mean = np.zeros((gene_ids.size, eligible.size), dtype=np.float64)
    var = np.zeros((gene_ids.size, eligible.size), dtype=np.float64)
    expressing = np.zeros((gene_ids.size, eligible.size), dtype=np.int64)
    mean[rows, cols] = sums[keep] / n_kept
    var[rows, cols] = np.maximum(sumsqs[keep] - sums[keep] * sums[keep] / n_kept, 0.0) / (n_kept - 1)
    expressing[rows, cols] = n_expressing[keep]

    out: list[tuple[int, I64, F64]] = []
    for p, target in enumerate(type_ids[eligible]):
        # the target itself and its related cell types are not comparisons: +inf sorts them past the K others
        skip = [q for q, other in enumerate(type_ids[eligible]) if q == p or is_related(int(target), int(other))]
        k = eligible.size - len(skip)
        cand = np.flatnonzero(expressing[:, p] >= min_expressing)
        if k == 0 or cand.size == 0:
            continue
        effects = comparison_effects(mean[cand], var[cand], p)
        effects[:, skip] = np.inf
        weights = bootstrap_weights(k, n_replicates, percentile, seed)
        m = int(np.flatnonzero(weights)[-1]) + 1  # the highest rank with a weight: sort only that far
        if m < effects.shape[1]:
            effects = np.partition(effects, m - 1, axis=1)[:, :m]
        effects.sort(axis=1)
        out.append((int(target), gene_ids[cand], effects[:, :m] @ weights[:m]))
    return out


def comparison_effects(mean: F64, var: F64, target: int) -> F64:
    """Effect sizes, per gene (row), of column ``target`` against each column of ``mean`` / ``var`` (itself: 0)."""
    sd = var + var[:, target : target + 1]
    sd *= 0.5
    np.sqrt(sd, out=sd)
    np.maximum(sd, SD_FLOOR, out=sd)
    effects = mean[:, target : target + 1] - mean
    effects /= sd
    return effects


@lru_cache(maxsize=1024)
def bootstrap_weights(k: int, n_replicates: int, percentile: float, seed: int) -> F64:
    """Weights ``w`` (length ``k``) with ``sorted_effects @ w`` = the bootstrapped percentile of the module doc.

    Replicate ``r`` resamples ranks ``draws[r]``; its percentile (numpy's "linear" method) interpolates between
    two order statistics of the resample, which are the ranks ``sorted(draws[r])[lo]`` and ``[lo + 1]`` of the
    gene's sorted effects. The average over replicates is therefore linear in the sorted effects.
    """
    draws = np.random.default_rng(seed).integers(0, k, size=(n_replicates, k))
    draws.sort(axis=1)
    position = (k - 1) * (percentile / 100.0)
    lo = int(np.floor(position))
    frac = position - lo
    weights = np.bincount(draws[:, lo], minlength=k) * (1.0 - frac)
    if frac > 0:
        weights = weights + np.bincount(draws[:, lo + 1], minlength=k) * frac
    result: F64 = weights / n_replicates
    result.setflags(write=False)
    return result


class _RelatedCache:
    """``related`` on cell type codes, each ordered pair asked once (the same pairs recur in every tissue)."""

    def __init__(self, related: Callable[[str, str], bool] | None, names: npt.NDArray[np.object_]) -> None:
        self._related = related
        self._names = names
        self._seen: dict[tuple[int, int], bool] = {}

    def __call__(self, a: int, b: int) -> bool:
        if self._related is None:
            return False
        key = (a, b)
        if key not in self._seen:
            self._seen[key] = bool(self._related(str(self._names[a]), str(self._names[b])))
        return self._seen[key]


def _factorize(column: pd.Series) -> tuple[I64, npt.NDArray[np.object_]]:
    """Codes in sorted order of the values (so the result does not depend on the order of the rows).

    Object, string or categorical columns alike; a categorical one is factorized through its codes.
    """
    codes, uniques = pd.factorize(column)
    names = np.asarray(uniques, dtype=object).astype(str)
    order = np.argsort(names, kind="stable")  # a categorical's own category order is not the ids' order
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size, dtype=np.int64)
    return rank[codes], names[order].astype(object)


def _check_stats(stats: pd.DataFrame) -> None:
    """Refuse a frame that is not the cube's contract, naming the column and a group."""
    missing = [c for c in STATS_COLUMNS if c not in stats.columns]
    if missing:
        raise GeneExpressionError(
            f"marker_genes: the stats frame lacks the column(s) {missing}; it needs {list(STATS_COLUMNS)} "
            "(one organism's rolled-up Gene Expression cube)"
        )
    for column in STATS_COLUMNS:
        if stats[column].isna().any():
            raise GeneExpressionError(
                f"marker_genes: column {column!r} has missing values, first at {_where(stats, stats[column].isna())}"
            )
    for column in ("n_cells", "n_expressing"):
        if not pd.api.types.is_integer_dtype(stats[column]):
            raise GeneExpressionError(f"marker_genes: column {column!r} must be integers, not {stats[column].dtype}")
    for column in ("sum", "sumsq"):
        if not pd.api.types.is_numeric_dtype(stats[column]) or not np.isfinite(stats[column].to_numpy(float)).all():
            raise GeneExpressionError(f"marker_genes: column {column!r} must be finite numbers")
    bad = (stats["n_expressing"] < 1) | (stats["n_expressing"] > stats["n_cells"])
    if bad.any():
        raise GeneExpressionError(
            f"marker_genes: n_expressing must be within [1, n_cells] (only expressed genes have rows), "
            f"not so at {_where(stats, bad)}"
        )


def _check_groups(stats: pd.DataFrame, order: I64, tissue: I64, cell_type: I64, gene: I64, n_cells: I64) -> None:
    """Refuse a gene twice in a group, or a group whose rows disagree on n_cells (rows sorted by ``order``)."""
    t, c, g, n = tissue[order], cell_type[order], gene[order], n_cells[order]
    same_group = (t[1:] == t[:-1]) & (c[1:] == c[:-1])
    twice = np.flatnonzero(same_group & (g[1:] == g[:-1]))
    if twice.size:
        raise GeneExpressionError(
            f"marker_genes: a tissue x cell type x gene appears twice, at {_where(stats, int(order[twice[0] + 1]))}"
        )
    differ = np.flatnonzero(same_group & (n[1:] != n[:-1]))
    if differ.size:
        raise GeneExpressionError(
            "marker_genes: n_cells differs between the rows of one tissue x cell type, at "
            + _where(stats, int(order[differ[0] + 1]))
        )


def _where(stats: pd.DataFrame, position: int | pd.Series) -> str:
    if isinstance(position, pd.Series):
        position = int(np.flatnonzero(position.to_numpy())[0])
    row = stats.iloc[position]
    return f"tissue {row[TISSUE]!r}, cell type {row[CELL_TYPE]!r}, gene {row[FEATURE]!r}"

"""How a release numbers its cells, genes and datasets, matched to the sources by content.

The Census schema identifies a cell by (``dataset_id``, ``observation_joinid``), a gene by ``feature_id`` and a
dataset by ``dataset_id``; it requires every soma_joinid column to be 0..n-1 and unique but leaves their order
free. So the validator never assumes an order: it reads the release's numbering and matches it to the sources.

- Genes (``VarNumbering``): the release's var feature_ids, matched to the expected genes with sorted arrays.
- Cells (``cell_joinids``): per dataset, the release soma_joinid of each kept source cell, in source order, by
  matching 64-bit hashes of the observation_joinids with sorted arrays and searchsorted (8 bytes per cell, no
  Python dict). A dataset whose cells are one consecutive joinid run in source order (as our builder writes
  them, whatever the dataset order) is compared through the fast path: one joinid range per task.
- Datasets: the datasets table's soma_joinid of each dataset_id (the presence matrix's row index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class VarNumbering:
    """An organism's release var (feature_id per var soma_joinid) matched to the expected genes.

    Expected genes the release lacks get a virtual joinid ``n_release + k`` (k: their expected index), so their
    source counts are still compared (and reported as missing) instead of silently dropped.
    """

    release_ids: npt.NDArray[np.object_]  # feature_id of each release var soma_joinid (None: no row there)
    release_of_expected: npt.NDArray[np.int64]  # expected gene index -> release var soma_joinid, -1 if absent
    expected_of_release: npt.NDArray[np.int64]  # release var soma_joinid -> expected gene index, -1 if unexpected
    expected_ids: tuple[str, ...]

    @property
    def n_release(self) -> int:
        """The release's var soma_joinids (virtual ones start here)."""
        return int(self.release_ids.size)

    @property
    def in_order(self) -> bool:
        """The release numbers the genes as our builder does (sorted by feature_id, nothing else)."""
        n = len(self.expected_ids)
        return self.n_release == n and bool(np.array_equal(self.release_of_expected, np.arange(n)))

    def joinids(self, expected: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Release var soma_joinids (virtual ones for genes the release lacks) of expected gene indices."""
        out = self.release_of_expected[expected]
        missing = out < 0
        if missing.any():
            out = out.copy()
            out[missing] = self.n_release + expected[missing]
        return out

    def expected(self, joinids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Return the expected gene index of release var soma_joinids (virtual ones too); -1: an unexpected gene."""
        joinids = np.asarray(joinids, dtype=np.int64)
        out = np.full(joinids.size, -1, dtype=np.int64)
        inside = (joinids >= 0) & (joinids < self.n_release)
        out[inside] = self.expected_of_release[joinids[inside]]
        virtual = joinids >= self.n_release
        out[virtual] = joinids[virtual] - self.n_release
        out[out >= len(self.expected_ids)] = -1
        return out

    def name(self, joinid: int) -> tuple[int | None, str | None]:
        """(release var soma_joinid or None for a virtual one, feature_id) of a joinid used in the comparison."""
        if 0 <= joinid < self.n_release:
            fid = self.release_ids[joinid]
            return joinid, None if fid is None else str(fid)
        k = joinid - self.n_release
        return None, self.expected_ids[k] if 0 <= k < len(self.expected_ids) else None


def match_var(expected_ids: list[str], joinids: npt.NDArray[np.int64], feature_ids: list[Any]) -> VarNumbering:
    """Match the release's var rows (soma_joinid, feature_id) to the expected genes.

    A duplicated feature_id maps to its first row (var_features reports the duplicate).
    """
    n = int(joinids.max(initial=-1)) + 1
    release_ids = np.full(n, None, dtype=object)
    release_ids[joinids] = feature_ids
    expected = np.asarray(expected_ids, dtype=object)
    release_of_expected = np.full(expected.size, -1, dtype=np.int64)
    present = np.flatnonzero(np.array([f is not None for f in release_ids], dtype=bool))
    if present.size and expected.size:
        found = release_ids[present].astype(str)
        order = np.argsort(found, kind="stable")  # stable: the first of duplicates comes first
        found_sorted = found[order]
        pos = np.minimum(np.searchsorted(found_sorted, expected.astype(str)), found_sorted.size - 1)
        hit = found_sorted[pos] == expected.astype(str)
        release_of_expected[hit] = present[order[pos[hit]]]
    expected_of_release = np.full(n, -1, dtype=np.int64)
    hit_ids = np.flatnonzero(release_of_expected >= 0)
    expected_of_release[release_of_expected[hit_ids]] = hit_ids
    return VarNumbering(release_ids, release_of_expected, expected_of_release, tuple(expected_ids))


def read_var_numbering(uri: str, expected_ids: list[str]) -> VarNumbering:
    """Read the release's var at ``uri`` and match it to the expected genes."""
    import tiledbsoma as soma

    with soma.DataFrame.open(uri) as df:
        t = df.read(column_names=["soma_joinid", "feature_id"]).concat()
    ids = t.column("feature_id").combine_chunks()
    if hasattr(ids, "dictionary_decode"):
        ids = ids.dictionary_decode()
    return match_var(expected_ids, np.asarray(t.column("soma_joinid").to_numpy(), dtype=np.int64), ids.to_pylist())


def cell_joinids(
    expected: npt.NDArray[np.uint64], found: npt.NDArray[np.uint64], found_joinids: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Return the release soma_joinid of each expected cell (hashes of observation_joinids, source order).

    -1 if the release has no row for it; a cell the release holds twice maps to its lowest soma_joinid.
    """
    out = np.full(expected.size, -1, dtype=np.int64)
    if found.size == 0 or expected.size == 0:
        return out
    order = np.lexsort((found_joinids, found))  # by hash, then joinid: the lowest joinid of a hash first
    keys = found[order]
    pos = np.minimum(np.searchsorted(keys, expected), keys.size - 1)
    hit = keys[pos] == expected
    out[hit] = found_joinids[order[pos[hit]]]
    return out


def contiguous_start(joinids: npt.NDArray[np.int64]) -> int | None:
    """Return the first joinid if ``joinids`` is one consecutive run (start, start + 1, ...), else None."""
    if joinids.size == 0:
        return None
    start = int(joinids[0])
    if start < 0 or not np.array_equal(joinids, np.arange(start, start + joinids.size, dtype=np.int64)):
        return None
    return start

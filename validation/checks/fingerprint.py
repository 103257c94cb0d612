"""Order-free 64-bit fingerprints of a cell's X row and obs metadata, for the general path.

When a release numbers its cells in another order than the sources (validation.checks.numbering), reading the
release at each source chunk's cells would touch every X tile once per chunk. Instead each side is read once,
in its own order: the source chunks fingerprint each kept cell's expected row, a scan of the release in
soma_joinid order fingerprints each stored row, and the two are compared cell by cell through the
(dataset_id, observation_joinid) -> soma_joinid map. Cells whose fingerprints differ are compared again value by
value (validation.contents.chunks, ``mode="detail"``) to name every difference.

A row's fingerprint is the sum (mod 2^64) of a mixed hash of each stored (var soma_joinid, float32 value)
pair: independent of the order entries are stored or read in; any difference (a value, a column, a missing or
extra entry, an explicit zero) changes it except with probability ~2^-64. The metadata fingerprint hashes each
column's value as text, the same way on both sides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finalizer, elementwise (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _C1
        z = (z ^ (z >> np.uint64(27))) * _C2
    out: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return out


def entry_hashes(var_joinids: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """Hash of each (var soma_joinid, value as float32) pair."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return mix((var_joinids.astype(np.uint64) << np.uint64(32)) | bits)


def row_fingerprints(hashes: npt.NDArray[np.uint64], bounds: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """Per row (entries [bounds[i], bounds[i + 1]) of ``hashes``), the sum of its hashes; 0 for an empty row."""
    out = np.zeros(bounds.size - 1, dtype=np.uint64)
    filled = bounds[1:] > bounds[:-1]
    if filled.any():
        out[filled] = np.add.reduceat(hashes, bounds[:-1][filled])
    return out


def as_text(values: npt.NDArray[Any]) -> npt.NDArray[np.object_]:
    """Return a column's values as the text both sides hash (bools as True/False, a missing value as None)."""
    arr = np.asarray(values)
    if arr.dtype == object:
        return np.array([v if isinstance(v, str) else str(v) for v in arr], dtype=object)
    return arr.astype(str).astype(object)


def _text_hashes(values: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """Hash of each value as text; each distinct value is hashed once (obs columns repeat a few values)."""
    codes, uniques = pd.factorize(np.asarray(values))
    hashed = np.asarray(pd.util.hash_array(as_text(np.asarray(uniques, dtype=object))), dtype=np.uint64)
    return np.append(hashed, _GOLDEN)[codes]  # code -1 (a missing value): a hash no text has in practice


def metadata_fingerprints(columns: list[npt.NDArray[Any]], n: int) -> npt.NDArray[np.uint64]:
    """Per row, a fingerprint of the values of ``columns`` (in this order) as text."""
    out = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, values in enumerate(columns):
            out += mix(_text_hashes(values) + np.uint64(i + 1) * _GOLDEN)
    return out

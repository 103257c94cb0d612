"""A content digest of a whole release: every SOMA object's type, metadata, Arrow schema, storage
settings (tiles, filters, capacity, orders), shape/domain and every value, one SHA-256 per object.

Two releases with equal digests hold the same data in the same storage layout, whatever their fragment
files, timestamps or UUIDs. ``tests/data/example_release_digest.json`` records the digests of the example
release as built before the package layout changed (issue 14); a test compares each build with it.

Regenerate (only when a release's content is meant to change, and say so in the commit):
``python -m tests.content_digest RELEASE_SOMA_URI > tests/data/example_release_digest.json``
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import pandas as pd
import pyarrow as pa
import tiledbsoma as soma

# Root metadata that legitimately differs between two builds of the same content.
VOLATILE_METADATA = frozenset({"git_commit"})


def _table_digest(table: pa.Table, sort_by: list[str]) -> str:
    df = table.to_pandas().sort_values(sort_by).reset_index(drop=True)
    h = hashlib.sha256()
    h.update(json.dumps([[c, str(t)] for c, t in zip(df.columns, df.dtypes, strict=True)]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _storage(obj: soma.DataFrame | soma.SparseNDArray | soma.DenseNDArray) -> dict[str, Any]:
    opts = obj.schema_config_options()
    return {k: getattr(opts, k) for k in dir(opts) if not k.startswith("_")}


def _walk(obj: Any, path: str, out: dict[str, str]) -> None:
    meta = {k: v for k, v in obj.metadata.items() if not (path == "" and k in VOLATILE_METADATA)}
    desc: dict[str, Any] = {"type": type(obj).__name__, "metadata": meta}
    if isinstance(obj, soma.Collection | soma.Experiment | soma.Measurement):
        desc["members"] = sorted(obj)
        for key in sorted(obj):
            _walk(obj[key], f"{path}/{key}", out)
    else:
        desc["schema"] = str(obj.schema)
        desc["storage"] = _storage(obj)
        if isinstance(obj, soma.DataFrame):
            desc["domain"] = str(obj.domain)
            desc["values"] = _table_digest(obj.read().concat(), ["soma_joinid"])
        else:
            desc["shape"] = str(obj.shape)
            dims = [f"soma_dim_{i}" for i in range(len(obj.shape))]
            desc["values"] = _table_digest(obj.read().tables().concat(), dims)
    out[path or "/"] = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


def release_digest(uri: str) -> dict[str, str]:
    """One SHA-256 per SOMA object of the release at ``uri``, keyed by its path inside the release."""
    out: dict[str, str] = {}
    with soma.open(uri) as root:
        _walk(root, "", out)
    return out


if __name__ == "__main__":
    json.dump(release_digest(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")

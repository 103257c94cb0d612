"""benchmarks.corpus_7: the consumer-read corpus is written (in worker processes) in a form both builders take."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py

from benchmarks.corpus_7 import write_corpus_7_parallel
from census_builder.testing.synthetic_7 import MOUSE, DatasetSpec7


def test_corpus_is_written_once_with_its_manifest_and_int64_feature_lengths(tmp_path: Path) -> None:
    specs = [DatasetSpec7("a", n_cells=20, n_genes=20), DatasetSpec7("b", organism=MOUSE, n_cells=20, n_genes=20)]
    manifest = write_corpus_7_parallel(tmp_path, specs, processes=1)
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["dataset_id"], r["h5ad_uri"]) for r in rows] == [("a", "a.h5ad"), ("b", "b.h5ad")]
    for spec in specs:
        with h5py.File(tmp_path / f"{spec.dataset_id}.h5ad", "r") as f:
            node = f["var/feature_length"]
            # a categorical (real 7.0.0 files) of int64 lengths: the reference builder refuses unsigned ones
            stored = node["categories"] if isinstance(node, h5py.Group) else node
            assert stored.dtype.kind == "i"
    before = (tmp_path / "a.h5ad").stat().st_mtime_ns
    write_corpus_7_parallel(tmp_path, specs, processes=1)  # datasets already written are kept
    assert (tmp_path / "a.h5ad").stat().st_mtime_ns == before

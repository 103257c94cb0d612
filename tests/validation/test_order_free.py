"""X compared without a sort: on a sound release every part's X["raw"] and X["normalized"] are proven right
order-free (validation.checks.multiset); the sorted comparison is only the fallback that names differences."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BuiltRelease
from tests.validation import corruptions as c
from validation import ValidationReport, validate_release
from validation.contents import chunks


@pytest.fixture(scope="module")
def in_process_client() -> Iterator[Any]:
    """One worker thread in this process, so that a monkeypatch of validation.contents.chunks applies to it."""
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=logging.WARNING
    )
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client


def test_sound_release_validates_without_sorting_x(
    example_release: BuiltRelease, in_process_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sort(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("X was sorted")

    monkeypatch.setattr(chunks, "sorted_entries", no_sort)
    before = chunks.ORDER_FREE.copy()
    report = validate_release(
        example_release.soma_uri,
        example_release.manifest,
        client=in_process_client,
        report_path=tmp_path / "report.json",
        chunk_entries=2000,  # many parts per dataset
    )
    failed = {ch.name: [f.line() for f in ch.findings[:3]] for ch in report.checks if not ch.passed}
    assert report.passed, failed
    raw = chunks.ORDER_FREE["raw"] - before["raw"]
    assert raw > 10
    assert chunks.ORDER_FREE["normalized"] - before["normalized"] == raw


def _findings(report: ValidationReport) -> list[tuple[str, int, list[str]]]:
    return [(ch.name, ch.n_findings, [f.line() for f in ch.findings]) for ch in report.checks]


@pytest.mark.parametrize(
    "corrupt",
    [c.perturb_raw, c.duplicate_raw, c.explicit_zero, c.stray_value, c.normalized_off, c.normalized_slightly_off],
    ids=lambda f: f.__name__,
)
def test_a_corrupt_part_falls_back_to_the_sorted_comparison_with_the_same_findings(
    corrupt: Callable[[Path], c.Changed],
    example_release: BuiltRelease,
    in_process_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The findings are exactly those of the sorted comparison alone (order-free checks switched off)."""
    dest = tmp_path / "example"
    shutil.copytree(example_release.paths.root, dest, ignore=shutil.ignore_patterns(".build"))
    corrupt(dest / "soma")

    def validate(name: str) -> ValidationReport:
        return validate_release(
            str(dest / "soma"), example_release.manifest, client=in_process_client, report_path=tmp_path / name
        )

    before = chunks.ORDER_FREE.copy()
    report = validate("fast.json")
    raw, norm = (chunks.ORDER_FREE[k] - before[k] for k in ("raw", "normalized"))
    assert not report.passed
    assert raw > 0 and norm > 0  # the other parts took the order-free path
    if corrupt in (c.normalized_off, c.normalized_slightly_off):
        assert norm == raw - 1  # raw proven right, normalized of that part compared sorted
    else:
        assert norm == raw  # raw of the corrupt part compared sorted (and normalized with it)
    monkeypatch.setattr(chunks, "_inside", lambda *args: False)  # every part sorted, as before
    before = chunks.ORDER_FREE.copy()
    sorted_only = validate("sorted.json")
    assert before == chunks.ORDER_FREE
    assert _findings(report) == _findings(sorted_only)

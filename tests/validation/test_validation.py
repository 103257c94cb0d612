"""The validator on the example release: the untouched release passes; each single corruption is caught by the
right check, with a finding that names what is wrong and where."""

from __future__ import annotations

import ast
import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import tiledbsoma
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import BuiltRelease
from tests.validation import corruptions as c
from validation import CHECKS, ValidationReport, validate_release
from validation.__main__ import main, parse_args
from validation.contents.step import task_groups
from validation.inputs.manifest import ManifestError
from validation.run import DEFAULT_CHUNK_ENTRIES

VALIDATION_DIR = Path(__file__).resolve().parents[2] / "validation"


def _copy(release: BuiltRelease, tmp_path: Path) -> Path:
    """A private copy of the release's DIR/VERSION; returns its soma/ directory."""
    dest = tmp_path / "example"
    shutil.copytree(release.paths.root, dest, ignore=shutil.ignore_patterns(".build"))
    return dest / "soma"


def _validate(soma: Path, release: BuiltRelease, client: Any, **kwargs: Any) -> ValidationReport:
    return validate_release(str(soma), release.manifest, client=client, **kwargs)


@pytest.fixture(scope="module")
def good_report(
    example_release: BuiltRelease, validation_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ValidationReport, Path]:
    path = tmp_path_factory.mktemp("report") / "report.json"
    report = validate_release(
        example_release.soma_uri, example_release.manifest, client=validation_client, report_path=path
    )
    return report, path


def test_untouched_release_passes(good_report: tuple[ValidationReport, Path]) -> None:
    report, path = good_report
    failed = {ch.name: [f.line() for f in ch.findings[:5]] for ch in report.checks if not ch.passed}
    assert report.passed, failed
    assert [ch.name for ch in report.checks] == list(CHECKS)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["passed"] is True
    assert set(doc) >= {"passed", "release", "manifest", "checks", "seconds"}
    assert all(
        {"name", "passed", "findings"} <= set(ch) and ch["passed"] and ch["findings"] == [] for ch in doc["checks"]
    )
    assert doc == report.to_json()


@pytest.mark.parametrize("task_rows", [1, 16_384])
def test_small_chunks_and_default_report_path(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path, task_rows: int
) -> None:
    """Chunks of ~2000 source entries split every dataset (CSR, CSC, dense, raw.X) into many row ranges,
    compared one task per chunk, or several chunks per task (obs read once)."""
    soma = _copy(example_release, tmp_path)
    report = _validate(soma, example_release, validation_client, chunk_entries=2000, task_rows=task_rows)
    assert report.passed, report.failed
    doc = json.loads((soma.parent / "validation_report.json").read_text(encoding="utf-8"))
    assert doc["passed"] is True and doc["release"] == str(soma)


def _manifest(release: BuiltRelease, tmp_path: Path, text: str) -> Path:
    """An edited manifest in tmp_path, its relative paths resolving to the corpus's files (symlinked)."""
    for h5ad in release.corpus.glob("*.h5ad"):
        (tmp_path / h5ad.name).symlink_to(h5ad)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text + "\n", encoding="utf-8")
    return manifest


Corruption = Callable[[Path], c.Changed]


def _finding_named(report: ValidationReport, check: str, **where: Any) -> dict[str, Any]:
    """The first finding of ``check`` whose fields match ``where`` (fails listing the findings if none)."""
    result = report.check(check)
    assert not result.passed, f"{check} passed; failed: {report.failed}"
    for f in result.findings:
        doc = f.to_json()
        if all(doc.get(k) == v for k, v in where.items() if v is not None):
            return doc
    raise AssertionError(f"no {check} finding with {where}: {[f.line() for f in result.findings]}")


CASES: list[tuple[str, Corruption, str, Callable[[c.Changed], dict[str, Any]]]] = [
    (
        "drop_cell",
        c.drop_cell,
        "obs_cells",
        lambda ch: {"dataset_id": ch.dataset_id, "observation_joinid": ch.observation_joinid, "found": "absent"},
    ),
    (
        "add_cell",
        c.add_cell,
        "obs_cells",
        lambda ch: {
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "soma_joinid": ch.soma_joinid,
        },
    ),
    (
        "perturb_raw",
        c.perturb_raw,
        "x_raw",
        lambda ch: {
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "feature_id": ch.feature_id,
            "expected": ch.expected,
            "found": ch.found,
        },
    ),
    (
        "stray_value",
        c.stray_value,
        "x_raw",
        lambda ch: {
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "feature_id": ch.feature_id,
            "expected": "absent",
            "found": 5.0,
        },
    ),
    (  # X arrays allow duplicate coordinates: a second copy of an entry is an entry the source lacks
        "duplicate_raw",
        c.duplicate_raw,
        "x_raw",
        lambda ch: {
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "feature_id": ch.feature_id,
            "found": ch.found,
        },
    ),
    (
        "explicit_zero",
        c.explicit_zero,
        "x_raw_explicit_zeros",
        lambda ch: {
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "feature_id": ch.feature_id,
            "found": 0.0,
        },
    ),
    # genes are matched by feature_id: two var rows swapped put X's values under the other gene
    ("swap_var_genes", c.swap_var_genes, "x_raw", lambda ch: {"feature_id": ch.feature_id, "var_joinid": 4}),
    (
        "raw_as_float64",
        c.raw_as_float64,
        "encodings",
        lambda ch: {"organism": "homo_sapiens", "expected": ch.expected, "found": ch.found},
    ),
    (
        "drop_summary_row",
        c.drop_summary_row,
        "census_info_summary",
        lambda ch: {"column": "unique_cell_count", "found": "absent"},
    ),
    (
        "flip_presence_bit",
        c.flip_presence_bit,
        "presence_matrix",
        lambda ch: {"dataset_id": ch.dataset_id, "feature_id": ch.feature_id, "expected": True, "found": False},
    ),
    (
        "normalized_off_by_one",
        c.normalized_off,
        "x_normalized",
        lambda ch: {
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "feature_id": ch.feature_id,
        },
    ),
    (
        "normalized_slightly_off",
        c.normalized_slightly_off,
        "x_normalized",
        lambda ch: {
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "feature_id": ch.feature_id,
        },
    ),
    (
        "mouse_raw",
        c.perturb_mouse_raw,
        "x_raw",
        lambda ch: {
            "organism": "mus_musculus",
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "feature_id": ch.feature_id,
            "expected": ch.expected,
            "found": ch.found,
        },
    ),
    (
        "mouse_cell_type",
        c.change_cell_type,
        "obs_metadata",
        lambda ch: {
            "organism": "mus_musculus",
            "dataset_id": ch.dataset_id,
            "observation_joinid": ch.observation_joinid,
            "column": "cell_type",
            "expected": ch.expected,
            "found": ch.found,
        },
    ),
    (
        "raw_sum",
        c.change_raw_sum,
        "obs_statistics",
        lambda ch: {"dataset_id": ch.dataset_id, "observation_joinid": ch.observation_joinid, "column": "raw_sum"},
    ),
    (
        "summary_cell_count",
        c.change_cell_count,
        "census_info_summary_cell_counts",
        lambda ch: {"column": "total_cell_count", "expected": ch.expected, "found": ch.found},
    ),
    (
        "h5ad_copy_missing",
        c.remove_h5ad_copy,
        "dataset_h5ad_paths",
        lambda ch: {"dataset_id": ch.dataset_id, "found": ch.found},
    ),
    (
        "mouse_experiment_missing",
        c.drop_mouse_experiment,
        "structure",
        lambda ch: {"organism": "mus_musculus", "expected": ch.expected, "found": ch.found},
    ),
]


@pytest.mark.parametrize(("name", "corrupt", "check", "where"), CASES, ids=[x[0] for x in CASES])
def test_corruption_is_caught(
    name: str,
    corrupt: Corruption,
    check: str,
    where: Callable[[c.Changed], dict[str, Any]],
    example_release: BuiltRelease,
    validation_client: Any,
    tmp_path: Path,
) -> None:
    soma = _copy(example_release, tmp_path)
    changed = corrupt(soma)
    report = _validate(soma, example_release, validation_client)
    assert not report.passed
    finding = _finding_named(report, check, **where(changed))
    assert finding["message"]
    doc = json.loads((soma.parent / "validation_report.json").read_text(encoding="utf-8"))
    assert doc["passed"] is False
    assert any(ch["name"] == check and not ch["passed"] and ch["findings"] for ch in doc["checks"])


SMALL_CHUNK_CASES = [
    x
    for x in CASES
    if x[0] in ("perturb_raw", "normalized_off_by_one", "raw_sum", "mouse_cell_type", "explicit_zero", "stray_value")
]


@pytest.mark.parametrize(
    ("name", "corrupt", "check", "where"), SMALL_CHUNK_CASES, ids=[x[0] for x in SMALL_CHUNK_CASES]
)
def test_corruption_is_located_in_a_task_of_many_chunks(
    name: str,
    corrupt: Corruption,
    check: str,
    where: Callable[[c.Changed], dict[str, Any]],
    example_release: BuiltRelease,
    validation_client: Any,
    tmp_path: Path,
) -> None:
    """The same cell and gene are named when a task compares X in many row chunks."""
    soma = _copy(example_release, tmp_path)
    changed = corrupt(soma)
    report = _validate(soma, example_release, validation_client, chunk_entries=2000)
    assert not report.passed
    _finding_named(report, check, **where(changed))


def test_dictionary_encoded_obs_is_accepted_and_named_in_the_readings(
    good_report: tuple[ValidationReport, Path],
) -> None:
    """Our own releases store obs strings as enumerations (issue 17): accepted, their values compared (the
    corruption cases above change one), and the report says where they are."""
    report, _ = good_report
    assert report.passed
    reading = report.readings["string columns stored dictionary-encoded (accepted: their values are strings)"]
    assert "obs" in reading, reading


def test_plain_string_obs_is_accepted_and_its_values_checked(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    """Our releases store obs strings dictionary-encoded; a release whose obs holds plain strings (another
    tool's) passes on the same values, and a changed value is found in plain storage as in encoded."""
    soma = _copy(example_release, tmp_path)
    c.plain_string_obs(soma)
    changed = c.change_cell_type(soma)
    with tiledbsoma.DataFrame.open(str(soma / c.MOUSE / "obs")) as df:
        assert df.schema.field("cell_type").type == pa.large_string()
    report = _validate(soma, example_release, validation_client)
    assert report.failed == ["obs_metadata"]
    finding = _finding_named(report, "obs_metadata", observation_joinid=changed.observation_joinid)
    assert (finding["column"], finding["expected"], finding["found"]) == ("cell_type", changed.expected, changed.found)
    assert not any("dictionary" in key for key in report.readings)


def test_mouse_only_corruption_leaves_human_clean(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    soma = _copy(example_release, tmp_path)
    c.perturb_mouse_raw(soma)
    report = _validate(soma, example_release, validation_client)
    assert report.failed == ["x_raw"]
    assert report.check("x_raw").n_findings == 1
    assert all(f.organism == "mus_musculus" for f in report.check("x_raw").findings)


def test_release_from_another_manifest_fails(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path
) -> None:
    """Validating against a manifest without one contributing dataset: its cells and row are unexpected."""
    lines = example_release.manifest.read_text(encoding="utf-8").splitlines()
    kept = "\n".join(ln for ln in lines if not ln.startswith("human-smartseq,"))
    manifest = _manifest(example_release, tmp_path, kept)
    report = validate_release(
        example_release.soma_uri, manifest, client=validation_client, report_path=tmp_path / "r.json"
    )
    assert not report.passed
    _finding_named(report, "census_info_datasets", dataset_id="human-smartseq", column="dataset_total_cell_count")
    _finding_named(report, "shapes", organism="homo_sapiens")


def test_missing_source_is_a_finding(example_release: BuiltRelease, validation_client: Any, tmp_path: Path) -> None:
    text = example_release.manifest.read_text(encoding="utf-8")
    moved = text.replace("mouse-brain-csc.h5ad", "nowhere/mouse-brain-csc.h5ad")
    manifest = _manifest(example_release, tmp_path, moved)
    report = validate_release(
        example_release.soma_uri, manifest, client=validation_client, report_path=tmp_path / "r.json"
    )
    finding = _finding_named(report, "sources", dataset_id="mouse-brain-csc")
    assert "not found" in finding["message"]


def test_cli_exit_codes_and_output(
    example_release: BuiltRelease, validation_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soma = _copy(example_release, tmp_path)
    address = validation_client.scheduler.address
    assert main([str(soma), "--manifest", str(example_release.manifest), "--scheduler", address]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS ") == len(CHECKS) and "FAIL" not in out
    changed = c.perturb_raw(soma)
    report = tmp_path / "elsewhere.json"
    assert (
        main([str(soma), "--manifest", str(example_release.manifest), "--scheduler", address, "--report", str(report)])
        == 1
    )
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("FAIL x_raw"))
    detail = out.splitlines()[out.splitlines().index(line) + 1]
    assert str(changed.dataset_id) in detail and str(changed.observation_joinid) in detail
    assert str(changed.feature_id) in detail and f"expected {changed.expected!r}, found {changed.found!r}" in detail
    assert json.loads(report.read_text(encoding="utf-8"))["passed"] is False
    assert main([str(soma), "--manifest", str(tmp_path / "absent.csv"), "--scheduler", address]) == 2


def test_python_m_validation_with_workers(example_release: BuiltRelease, tmp_path: Path) -> None:
    """The exact command form CI uses, in a fresh process with its own local cluster."""
    soma = _copy(example_release, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "validation", str(soma), "--manifest", str(example_release.manifest), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validation PASSED" in proc.stdout
    assert json.loads((soma.parent / "validation_report.json").read_text(encoding="utf-8"))["passed"] is True


def _imported(path: Path) -> list[str]:
    """Every module an import statement of ``path`` names (``from a import b`` names ``a.b`` as well as ``a``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


def _runtime(name: str) -> bool:
    return name == "census_builder.runtime" or name.startswith("census_builder.runtime.")


def test_validation_imports_only_census_builder_runtime() -> None:
    """The rules stay independent: validation may import census_builder's infrastructure (runtime) only."""
    files = sorted(VALIDATION_DIR.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for name in _imported(path):
            if name.split(".")[0] == "census_builder" and name != "census_builder":
                assert _runtime(name), f"{path.relative_to(VALIDATION_DIR)} imports {name}"
            assert name != "census_builder", f"{path.relative_to(VALIDATION_DIR)} imports census_builder itself"
    code = (
        "import sys, validation, validation.core, validation.__main__; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'census_builder')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = proc.stdout.split()
    assert "census_builder.runtime" in loaded  # the check sees the runtime it allows
    assert [m for m in loaded if m != "census_builder" and not _runtime(m)] == []


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 30)), max_size=40), st.integers(1, 120))
def test_task_groups_cover_the_chunks_in_order(spans: list[tuple[int, int]], max_rows: int) -> None:
    chunks, start, before = [], 0, 0
    for rows, gap in spans:  # chunks with kept cells, sometimes after rows that have none
        start += gap
        chunks.append((start, start + rows, before, rows))
        start, before = start + rows, before + rows
    groups = task_groups(chunks, max_rows)
    assert [c for g in groups for c in g] == chunks
    assert all(len(g) == 1 or g[-1][1] - g[0][0] <= max_rows for g in groups)
    assert all(nxt[0][1] - g[0][0] > max_rows for g, nxt in itertools.pairwise(groups))  # groups are full


def test_chunk_entries_reaches_the_validation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--chunk-entries`` is passed on (default: DEFAULT_CHUNK_ENTRIES, as the help says); below 1 is a usage
    error."""
    import validation.core

    seen: list[int] = []

    def stop(*args: object, chunk_entries: int, **kwargs: object) -> object:
        seen.append(chunk_entries)
        raise ManifestError("stopped by the test")

    monkeypatch.setattr(validation.core, "validate_release", stop)
    manifest = str(tmp_path / "m.csv")
    assert main(["soma", "--manifest", manifest, "--chunk-entries", "1000"]) == 2
    assert main(["soma", "--manifest", manifest]) == 2
    assert seen == [1000, DEFAULT_CHUNK_ENTRIES]
    for bad in (["--chunk-entries", "0"], ["--help"]):
        with pytest.raises(SystemExit) as e:
            parse_args(["soma", "--manifest", manifest, *bad])
        assert e.value.code == (2 if bad[0] != "--help" else 0)
    assert f"(default: {DEFAULT_CHUNK_ENTRIES:,})" in " ".join(capsys.readouterr().out.split())

"""benchmarks.driver_scale: its driver steps are the build's (on a real build's inspection records and chunk
results they give what the build wrote), and the simulation runs end to end at a tiny size (never timed here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
import pytest
import tiledbsoma as soma

from benchmarks.driver_scale import STEPS, Driver, DriverRun, main
from census_builder.build.census_info import count_columns
from census_builder.build.inspect import PlanFiles
from census_builder.build.outputs import AxesPlan, Inspected, MatricesWritten, read_output
from census_builder.build.plan_axes import var_path
from census_builder.build.state import BuildPaths, StageRecord
from census_builder.build.write_matrices import load_result, result_exists
from census_builder.census.schema import load_schema
from census_builder.soma.layout import ReleaseLayout
from census_builder.sources.manifest import load_manifest
from tests.conftest import BuiltRelease

if TYPE_CHECKING:
    from census_builder.build.pipeline import BuildRun


@pytest.fixture(scope="module")
def driven(example_release: BuiltRelease, tmp_path_factory: pytest.TempPathFactory) -> tuple[Driver, BuiltRelease]:
    """The driver steps run on a copy of the example build's run state (plans and chunk results)."""
    root = tmp_path_factory.mktemp("driven") / "example"
    real = example_release.paths
    copy = BuildPaths(root)
    shutil.copytree(real.plans, copy.plans)
    shutil.copytree(real.chunks, copy.chunks)
    stages = StageRecord(real)
    schema = load_schema()
    run = DriverRun(copy, schema, list(read_output(stages, Inspected).datasets))
    columns = list(count_columns(schema))
    driver = Driver(
        run,
        results=lambda t: load_result(t.result_path),
        obs=lambda ds: pd.read_parquet(PlanFiles(copy.plans, ds).obs, columns=columns),
    )
    for step in STEPS:
        getattr(driver, step)()
    driver.census_info({e.dataset_id: e for e in load_manifest(example_release.manifest).entries})
    return driver, example_release


def _read(uri: str) -> pd.DataFrame:
    with soma.DataFrame.open(uri) as df:
        out: pd.DataFrame = df.read().concat().to_pandas()
    return out


def _read_coo(uri: str) -> pd.DataFrame:
    with soma.SparseNDArray.open(uri) as a:
        out: pd.DataFrame = a.read().tables().concat().to_pandas()
    return out


def test_plan_axes_steps_equal_the_build(driven: tuple[Driver, BuiltRelease]) -> None:
    driver, release = driven
    real = read_output(StageRecord(release.paths), AxesPlan)
    axes = driver.run.axes()
    assert axes.datasets == real.datasets
    assert dict(axes.organisms) == dict(real.organisms)
    built_run = cast("BuildRun", DriverRun(release.paths, driver.run.schema, []))
    for org in real.organisms:
        pd.testing.assert_frame_equal(driver.var[org], pd.read_parquet(var_path(built_run, "census_data", org)))
    for d in real.datasets:
        with (
            np.load(driver.run.paths.state / "axes" / f"{d.dataset_id}.npz") as ours,
            np.load(release.paths.state / "axes" / f"{d.dataset_id}.npz") as built,
        ):
            assert sorted(ours.files) == sorted(built.files)
            for k in built.files:
                np.testing.assert_array_equal(ours[k], built[k], err_msg=f"{d.dataset_id} {k}")


def test_chunk_tasks_are_the_builds_chunks(driven: tuple[Driver, BuiltRelease]) -> None:
    driver, release = driven
    assert len(driver.tasks) == read_output(StageRecord(release.paths), MatricesWritten).chunks
    assert all(result_exists(t) for t in driver.tasks)  # the very result files the build's chunks wrote
    assert driver.n_obs_tasks == len(driver.run.axes().datasets)


def test_reduction_and_presence_equal_the_release(driven: tuple[Driver, BuiltRelease]) -> None:
    driver, release = driven
    layout = ReleaseLayout(release.soma_uri, driver.run.schema)
    for org in driver.run.axes().organisms:
        exp = layout.experiment(org)
        var = _read(exp.var).sort_values("soma_joinid")
        np.testing.assert_array_equal(driver.reducers[("census_data", org)].var_nnz, var["nnz"])
        np.testing.assert_array_equal(driver.n_measured_obs[org], var["n_measured_obs"])
        presence = _read_coo(exp.presence).sort_values(["soma_dim_0", "soma_dim_1"])
        rows, cols = driver.entries[org]
        assert rows.size > 0
        np.testing.assert_array_equal(rows, presence["soma_dim_0"])
        np.testing.assert_array_equal(cols, presence["soma_dim_1"])


def test_census_info_equals_the_release(driven: tuple[Driver, BuiltRelease]) -> None:
    driver, release = driven
    layout = ReleaseLayout(release.soma_uri, driver.run.schema)
    for name in ("summary_cell_counts", "datasets"):
        stored = _read(layout.census_info_table(name)).sort_values("soma_joinid", ignore_index=True)
        ours = pd.DataFrame(driver.tables[name])
        assert len(ours) > 0
        for column in ours.columns:
            assert stored[column].tolist() == ours[column].tolist(), (name, column)
    stored_summary = dict(zip(*_read(layout.census_info_table("summary"))[["label", "value"]].T.values, strict=True))
    ours_summary = dict(zip(driver.tables["summary"]["label"], driver.tables["summary"]["value"], strict=True))
    ours_summary.pop("census_build_date")
    assert {k: stored_summary[k] for k in ours_summary} == ours_summary


def test_simulation_runs_end_to_end_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "driver.json"
    argv = ["--cells", "20000", "--datasets", "6", "--genes", "3000", "--nnz-per-cell", "500"]
    assert main([*argv, "--chunk-nnz", "1000000", "--workdir", str(tmp_path), "--json", str(out)]) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    c = r["corpus"]
    assert c["cells"] == 20_000 and c["datasets"] == 6 and c["cells_per_chunk"] == 2_000
    assert c["obs_tasks"] == 6 and c["chunks"] >= 10  # at least ceil(20,000 / 2,000)
    assert c["var"] == {"homo_sapiens": 3000, "mus_musculus": 3000}  # 3,000 of 3,000 genes in every dataset
    assert c["presence_entries"] == {"homo_sapiens": 5 * 3000, "mus_musculus": 1 * 3000}  # every gene stored
    assert set(r["steps"]) == {*STEPS, "census_info"}
    assert all(s["seconds"] >= 0 and s["traced_peak_mib"] >= 0 for s in r["steps"].values())
    assert r["steps"]["union_var"]["traced_peak_mib"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["driver.json"]  # the fabricated corpus is removed
    assert main(["--table", str(out)]) == 0
    assert main(["--model", str(out)]) == 0

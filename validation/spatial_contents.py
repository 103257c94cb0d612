"""Step check_spatial_contents: the census_data content checks, run unchanged on census_spatial_sequencing.

The spatial experiments share census_data's requirements for obs, X['raw'], var and the presence matrix (the
text: "Spatial and non-spatial data share the same requirements"). So this step does not copy those checks:
it runs the same steps (validation.structure's shapes, validation.contents, validation.tables' var and
presence, validation.consistency's sums) on a second ``Run`` whose Census schema is the spatial view of the
release's (``load_spec("2.4.0+spatial")``: the spatial assays' cells, X['raw'] only, no census_info), whose
expected release is built from the spatial plans (``Model.spatial``) and whose layout is the spatial
experiments validation.spatial found. Its findings join the validation's under the same checks, each message
prefixed with ``census_spatial_sequencing:``.
"""

from __future__ import annotations

from dataclasses import replace

from validation.consistency import check_consistency
from validation.contents.step import check_contents
from validation.expected.model import build_model
from validation.expected.spec import SPATIAL_SUFFIX, load_spec
from validation.inputs.release import ExperimentUris, ReleaseLayout
from validation.report import Findings
from validation.run import Run
from validation.structure import SPATIAL, check_experiment_shapes
from validation.tables import check_experiment_tables


def check_spatial_contents(run: Run) -> None:
    """Run the census_data content checks on the spatial experiments (see the module docstring)."""
    experiments: dict[str, ExperimentUris] = run.tables.get("spatial_experiments") or {}
    model = run.planned()
    if not experiments or not run.spec.spatial_assays:
        return
    spec = load_spec(run.spec.version + SPATIAL_SUFFIX)
    spatial = build_model(spec, model.sources, model.spatial)
    if model.dataset_rows:  # the presence matrix's rows: the datasets table's soma_joinids, as census_data's
        spatial.number_datasets(list(model.dataset_rows.values()), list(model.dataset_rows.keys()))
    findings = Findings()
    sub = Run(
        spec,
        run.manifest,
        run.release_uri,
        run.client,
        run.chunk_entries,
        findings,
        task_rows=run.task_rows,
        checkpoint=run.checkpoint,
        foreign=run.foreign,
        sources=run.sources,
        model=spatial,
        layout=ReleaseLayout(run.release_uri, opened=True, experiments=experiments),
    )
    check_experiment_shapes(sub)
    check_contents(sub)
    check_experiment_tables(sub)
    check_consistency(sub)
    for name, result in findings.checks.items():
        if result.n_findings:
            kept = [replace(f, message=f"{SPATIAL}: {f.message}") for f in result.findings]
            run.findings.merge(name, kept, result.n_findings)
    for key, value in findings.readings.items():
        run.findings.readings[f"{SPATIAL}: {key}"] = value

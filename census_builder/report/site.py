"""Writing the report directory: release facts and labels read, data files, pages and static files copied.

The directory is written beside its final place and swapped in at the end, so an interrupted run leaves the
previous report (or none), never half of one.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from census_builder.build.state import BuildPaths
from census_builder.errors import ReportError
from census_builder.report import pages
from census_builder.report.expression import (
    CATEGORIES,
    GE_JSON,
    OrganismShards,
    find_inputs,
    produce_command,
    write_js,
    write_organism,
)

logger = logging.getLogger(__name__)

REPORT_JSON = "report.json"
STATIC = ("report.css", "report.js", "gene_expression.js", "markers.js")
LABEL_CATEGORIES = ("cell_type", "tissue_general", *CATEGORIES)


@dataclass(frozen=True)
class ReleaseLabels:
    """Per organism: obs label per ontology term id, by category; the genes (feature_id, feature_name)."""

    labels: Mapping[str, Mapping[str, Mapping[str, str]]]
    genes: Mapping[str, list[tuple[str, str]]]


def read_labels(uri: str, organisms: list[str], schema_version: str) -> ReleaseLabels:
    """Read obs's term id and label columns and var's feature_id / feature_name (columns only, never X)."""
    import tiledbsoma as soma

    from census_builder.release.notes_compare import release_schema
    from census_builder.soma.layout import ReleaseLayout

    layout = ReleaseLayout(uri.rstrip("/"), release_schema(schema_version))
    labels: dict[str, dict[str, dict[str, str]]] = {}
    genes: dict[str, list[tuple[str, str]]] = {}
    for organism in organisms:
        exp = layout.experiment(organism)
        mine: dict[str, dict[str, str]] = {c: {} for c in LABEL_CATEGORIES}
        with soma.DataFrame.open(exp.obs) as obs:
            names = set(obs.schema.names)
            cats = [c for c in LABEL_CATEGORIES if c in names and f"{c}_ontology_term_id" in names]
            columns = [x for c in cats for x in (f"{c}_ontology_term_id", c)]
            for batch in obs.read(column_names=columns) if columns else ():
                for c in cats:
                    ids = batch.column(f"{c}_ontology_term_id").to_pylist()
                    for term, label in zip(ids, batch.column(c).to_pylist(), strict=True):
                        mine[c].setdefault(str(term), str(label))
        labels[organism] = mine
        with soma.DataFrame.open(exp.var) as var:
            table = var.read(column_names=["soma_joinid", "feature_id", "feature_name"]).concat()
        rows = sorted(
            zip(
                table.column("soma_joinid").to_pylist(),
                table.column("feature_id").to_pylist(),
                table.column("feature_name").to_pylist(),
                strict=True,
            )
        )
        genes[organism] = [(str(f), str(n)) for _, f, n in rows]
    return ReleaseLabels(labels, genes)


@cache
def _ontology_label(term: str) -> str | None:
    """Return the label cellxgene-ontology-guide (shipped, offline) has for ``term``, or None."""
    try:
        from cellxgene_ontology_guide.ontology_parser import OntologyParser

        return str(OntologyParser().get_term_label(term))
    except Exception:  # an unknown prefix or term: the id is the label
        return None


def label_function(labels: Mapping[str, Mapping[str, str]]) -> Callable[[str], str]:
    """Return a function term id -> label: obs's label, else the ontology's, else the id."""

    def label_of(term: str) -> str:
        for by_term in labels.values():
            if term in by_term:
                return by_term[term]
        return _ontology_label(term) or term

    return label_of


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_JSON).is_file())):
        raise ReportError(
            f"--out {out} exists and is not a report (no {REPORT_JSON} in it): name an empty or new directory"
        )


def write_report(workdir: str | Path, version: str, out: Path | None = None) -> Path:
    """Write the report of build ``version`` in ``workdir`` to ``out`` (default ``DIR/VERSION/report``).

    Returns the path of ``index.html``. Raises :class:`ReportError` when there is no release, when
    ``gene_expression/`` is malformed, or when ``out`` is a directory that is not a report.
    """
    from census_builder.release.notes_compare import read_release

    paths = BuildPaths.for_version(workdir, version)
    wd = paths.root.parent
    if not (paths.soma / "census_data").is_dir():
        raise ReportError(
            f"no release at {paths.soma}: build it first (python -m census_builder build --version {version} "
            f"--workdir {wd} --manifest MANIFEST)"
        )
    out = (out or paths.root / "report").resolve()
    _prepare_out(out)
    facts = read_release(str(paths.soma), version=version)
    inputs = find_inputs(paths.root / "gene_expression", version, wd)
    schema_version = facts.metadata.get("census_schema_version") or facts.summary.get("census_schema_version", "")
    organisms = [o for o in facts.organisms if inputs is not None and o in inputs.cube]
    release_labels = read_labels(str(paths.soma), organisms, schema_version)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a report is for reading
    try:
        data = tmp / "data"
        data.mkdir()
        written: dict[str, OrganismShards] = {}
        for organism in organisms:
            if inputs is None:  # organisms is empty then
                break
            org_labels = release_labels.labels[organism]
            written[organism] = write_organism(
                data,
                inputs,
                organism,
                genes=release_labels.genes[organism],
                labels=org_labels,
                label_of=label_function(org_labels),
                organism_label=facts.organisms[organism].label,
            )
        index: dict[str, Any] = {
            "census_version": version,
            "census_schema_version": schema_version,
            "gene_expression": inputs is not None,
            "produce": produce_command(version, wd),
            "organisms": [{"name": o, "label": facts.organisms[o].label} for o in organisms],
            "categories": list(CATEGORIES),
            "method": dict(inputs.meta.get("method") or {}) if inputs else {},
            "cell_ontology_version": str(inputs.meta.get("cell_ontology_version", "")) if inputs else "",
        }
        write_js(data, "index", index)
        pages.write_pages(tmp, facts, index)
        _copy_static(tmp)
        summary = {
            "census_version": version,
            "gene_expression": str(inputs.directory / GE_JSON) if inputs else None,
            "organisms": {
                o: {"index_bytes": w.index_bytes, "shards": len(w.shard_bytes), "largest_shard_bytes": w.largest}
                for o, w in written.items()
            },
        }
        (tmp / REPORT_JSON).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name[-8:]}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if inputs is None:
        logger.info("report: no gene_expression/ for %s; write it with %s", version, produce_command(version, wd))
    return out / "index.html"


def _copy_static(out: Path) -> None:
    import plotly  # type: ignore[import-untyped]

    static = Path(__file__).parent / "static"
    for name in STATIC:
        shutil.copyfile(static / name, out / name)
    plotly_dir = Path(plotly.__file__).parent
    shutil.copyfile(plotly_dir / "package_data" / "plotly.min.js", out / "plotly.min.js")
    licenses = sorted(Path(plotly_dir.parent).glob("plotly-*.dist-info/licenses/LICENSE*")) or sorted(
        Path(plotly_dir.parent).glob("plotly-*.dist-info/LICENSE*")
    )
    notice = (
        "plotly.min.js is plotly.js as the Python package plotly "
        f"{plotly.__version__} ships it (plotly/package_data/plotly.min.js). plotly.js is released under the MIT "
        "license; its copyright notice is at the top of plotly.min.js. The plotly package's license:\n\n"
    )
    text = licenses[0].read_text(encoding="utf-8") if licenses else "MIT License, Copyright (c) Plotly, Inc.\n"
    (out / "PLOTLY_LICENSE.txt").write_text(notice + text, encoding="utf-8")

"""The report's Gene Expression data: ``DIR/VERSION/gene_expression/`` read, written as small ``.js`` shards.

Input (the ``gene-expression`` command's output, per organism = the release's experiment name):

    <organism>.parquet              tissue_general_ontology_term_id, cell_type_ontology_term_id, feature_id,
                                    n_cells, n_expressing, mean_expression (rows with n_expressing > 0)
    <organism>_by_<category>.parquet  the same plus <category>_ontology_term_id (sex, self_reported_ethnicity,
                                    disease); optional: a missing one disables that group-by
    <organism>_markers.parquet      tissue_general_ontology_term_id, cell_type_ontology_term_id, feature_id,
                                    effect_size, rank; optional
    gene_expression.json            census_version, census_schema_version, organisms {<organism>: {n_cells,
                                    n_groups, files}}, method, cell_ontology_version

Output under ``data/`` (each file ``(window.CB_DATA=window.CB_DATA||{})[KEY]=JSON;``, KEY its path without .js):

    <organism>/index.js             genes (the release's var: feature_id, feature_name), cell type labels,
                                    category value labels, and per tissue its groups (cell type [, category
                                    value], n_cells) per grouping and which gene blocks have rows; the default
                                    tissue and genes
    <organism>/t<i>/<grouping>_<block>.js   rows of one tissue x grouping (none or a category) x block of
                                    block_size[grouping] genes (by position in genes; BLOCK_SIZE without a
                                    category, BLOCK_SIZE / the category's number of values with one, at
                                    least MIN_BLOCK_SIZE): group index, gene index,
                                    n_expressing, mean_expression (4 decimals); fraction = n_expressing / n_cells
    <organism>/t<i>/markers.js      per cell type its markers: gene index, effect_size, rank

A 1 M-cell release (~20 tissues x ~100 cell types x ~40,000 genes) gives shards of at most 100 x BLOCK_SIZE rows
(with the group-bys, x the category's values); a page loads only the shards of its tissue and genes.
Parquet is read one tissue at a time (a filter on tissue_general_ontology_term_id).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from census_builder.errors import ReportError

logger = logging.getLogger(__name__)

BLOCK_SIZE = 256  # genes per shard without a category
MIN_BLOCK_SIZE = 8  # genes per shard of a category with many values
CATEGORIES = ("sex", "self_reported_ethnicity", "disease")
NONE = "none"  # the grouping without a category
TISSUE = "tissue_general_ontology_term_id"
CELL_TYPE = "cell_type_ontology_term_id"
FEATURE = "feature_id"
CUBE_COLUMNS = (TISSUE, CELL_TYPE, FEATURE, "n_cells", "n_expressing", "mean_expression")
MARKER_COLUMNS = (TISSUE, CELL_TYPE, FEATURE, "effect_size", "rank")
GE_JSON = "gene_expression.json"
DEFAULT_GENES = 8  # genes shown when the page opens


def produce_command(version: str, workdir: Path) -> str:
    """Return the command that writes ``gene_expression/`` for ``version``."""
    return f"python -m census_builder gene-expression --version {version} --workdir {workdir}"


def js_assign(key: str, value: object) -> str:
    """Return a data file's text: it assigns ``value`` (as JSON) to ``window.CB_DATA[key]``."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return f"(window.CB_DATA=window.CB_DATA||{{}})[{json.dumps(key)}]={text};\n"


def write_js(data_dir: Path, key: str, value: object) -> int:
    """Write ``data_dir/KEY.js``; returns its size in bytes."""
    path = data_dir / f"{key}.js"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = js_assign(key, value)
    path.write_text(text, encoding="ascii")
    return len(text)


@dataclass(frozen=True)
class Inputs:
    """What ``gene_expression/`` holds for the report."""

    directory: Path
    meta: Mapping[str, Any]
    cube: Mapping[str, Path]  # organism -> <organism>.parquet
    by_category: Mapping[str, Mapping[str, Path]]  # organism -> category -> file
    markers: Mapping[str, Path]  # organism -> <organism>_markers.parquet


def find_inputs(directory: Path, version: str, workdir: Path) -> Inputs | None:
    """Return the files of ``directory`` (``DIR/VERSION/gene_expression``), or None when there is none.

    Raises :class:`ReportError` for an unreadable gene_expression.json or a listed organism without its file.
    """
    meta_path = directory / GE_JSON
    if not meta_path.is_file():
        if directory.is_dir():
            logger.warning("%s has no %s: the report leaves Gene Expression out", directory, GE_JSON)
        return None
    fix = f"re-run {produce_command(version, workdir)}"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReportError(f"{meta_path}: cannot read it as JSON ({e}); {fix}") from e
    organisms = meta.get("organisms") if isinstance(meta, dict) else None
    if not isinstance(organisms, dict):
        raise ReportError(f"{meta_path}: field 'organisms' is missing or not an object; {fix}")
    cube: dict[str, Path] = {}
    by_category: dict[str, dict[str, Path]] = {}
    markers: dict[str, Path] = {}
    for organism in sorted(organisms):
        path = directory / f"{organism}.parquet"
        if not path.is_file():
            # an organism with no eligible cells has no file (gene_expression.json: files []): nothing to show
            listed = organisms[organism].get("files") if isinstance(organisms[organism], dict) else None
            if listed:
                logger.info("%s lists organism %s but there is no %s: left out", meta_path, organism, path.name)
            else:
                logger.info("%s: no Gene Expression data (no eligible cells); left out", organism)
            continue
        _check_columns(path, CUBE_COLUMNS, fix)
        cube[organism] = path
        by_category[organism] = {}
        for cat in CATEGORIES:
            p = directory / f"{organism}_by_{cat}.parquet"
            if p.is_file():
                _check_columns(p, (*CUBE_COLUMNS, f"{cat}_ontology_term_id"), fix)
                by_category[organism][cat] = p
        m = directory / f"{organism}_markers.parquet"
        if m.is_file():
            _check_columns(m, MARKER_COLUMNS, fix)
            markers[organism] = m
    return Inputs(directory, meta, cube, by_category, markers)


def _check_columns(path: Path, columns: Sequence[str], fix: str) -> None:
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ReportError(f"{path}: cannot read it as Parquet ({e}); {fix}") from e
    missing = [c for c in columns if c not in names]
    if missing:
        raise ReportError(f"{path}: column(s) {', '.join(missing)} missing (expected {', '.join(columns)}); {fix}")


def _tissues(path: Path) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=[TISSUE]).column(TISSUE)
    return sorted(str(v) for v in pc.unique(col).to_pylist() if v is not None)


def block_size(path: Path, grouping: str) -> int:
    """Return the genes per shard of ``grouping``: BLOCK_SIZE, divided by the category's number of values."""
    if grouping == NONE:
        return BLOCK_SIZE
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = f"{grouping}_ontology_term_id"
    values = len(pc.unique(pq.read_table(path, columns=[column]).column(column)))
    return max(MIN_BLOCK_SIZE, BLOCK_SIZE // max(values, 1))


def _read_tissue(path: Path, tissue: str, columns: Sequence[str]) -> Any:
    """Return the rows of one tissue as a pandas DataFrame."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet").to_table(columns=list(columns), filter=ds.field(TISSUE) == tissue)
    for i, name in enumerate(table.column_names):  # term ids as categoricals: a tissue has millions of rows
        col = table.column(i)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            table = table.set_column(i, name, pc.dictionary_encode(col))
    return table.to_pandas()


def _round(values: Any, digits: int = 4) -> list[float | None]:
    """Return ``values`` (a float Series) rounded, non-finite ones as None (JSON null)."""
    import numpy as np

    arr = np.round(np.asarray(values, dtype=float), digits)
    finite = np.isfinite(arr)
    if finite.all():
        return list(arr.tolist())
    return [v if ok else None for v, ok in zip(arr.tolist(), finite.tolist(), strict=True)]


@dataclass
class OrganismShards:
    """What :func:`write_organism` wrote for one organism (sizes in bytes, for tests and the log)."""

    organism: str
    index_bytes: int = 0
    shard_bytes: dict[str, int] = field(default_factory=dict)  # key -> size

    @property
    def largest(self) -> int:
        """The size of the largest shard."""
        return max(self.shard_bytes.values(), default=0)


def write_organism(
    data_dir: Path,
    inputs: Inputs,
    organism: str,
    *,
    genes: Sequence[tuple[str, str]],
    labels: Mapping[str, Mapping[str, str]],
    label_of: Any,
    organism_label: str,
) -> OrganismShards:
    """Write ``data/<organism>/`` from the organism's Parquet files.

    ``genes``: (feature_id, feature_name) in the release's var order; ``labels``: obs label per term id, by
    category (cell_type, tissue_general, sex, ...); ``label_of(term_id)``: a label for a term not in obs.
    """
    import pandas as pd

    out = OrganismShards(organism)
    fix = produce_command(inputs.directory.parent.name, inputs.directory.parent.parent)
    gene_ids = [g for g, _ in genes]
    names = [n for _, n in genes]
    position = {g: i for i, g in enumerate(gene_ids)}

    def gene_index(feature_ids: Any, path: Path) -> Any:
        """Return the positions in ``genes`` of a Series of feature ids (categorical or str)."""
        import numpy as np

        ids = feature_ids if isinstance(feature_ids.dtype, pd.CategoricalDtype) else feature_ids.astype("category")
        codes = ids.cat.codes.to_numpy()
        if (codes < 0).any():
            raise ReportError(f"{path}: feature_id is empty in some rows; re-run {fix}")
        categories = [str(c) for c in ids.cat.categories]
        for f in categories:
            if f not in position:  # not in the release's var: shown by its id
                position[f] = len(gene_ids)
                gene_ids.append(f)
                names.append(f)
        lut = np.array([position[c] for c in categories], dtype=np.int64)
        return pd.Series(lut[codes], index=ids.index)

    cube = inputs.cube[organism]
    groupings: dict[str, Path] = {NONE: cube, **inputs.by_category.get(organism, {})}
    sizes = {grouping: block_size(path, grouping) for grouping, path in groupings.items()}
    cell_types: set[str] = set()
    values: dict[str, set[str]] = {cat: set() for cat in groupings if cat != NONE}
    tissues_out: list[dict[str, Any]] = []
    default: dict[str, Any] = {}
    best_cells = -1
    markers_path = inputs.markers.get(organism)
    marker_tissues = set(_tissues(markers_path)) if markers_path else set()
    for ti, tissue in enumerate(_tissues(cube)):
        tdir = f"{organism}/t{ti}"
        entry: dict[str, Any] = {
            "id": tissue,
            "label": labels.get("tissue_general", {}).get(tissue) or label_of(tissue),
            "dir": f"t{ti}",
            "groups": {},
            "blocks": {},
            "markers": tissue in marker_tissues,
        }
        for grouping, path in groupings.items():
            keys = [CELL_TYPE] if grouping == NONE else [CELL_TYPE, f"{grouping}_ontology_term_id"]
            df = _read_tissue(path, tissue, [*keys, *CUBE_COLUMNS[2:]])
            if not len(df):
                continue
            groups = df.groupby(keys, sort=False, observed=True)["n_cells"].max().reset_index()
            for k in keys:
                groups[k] = groups[k].astype(str)
            groups = groups.sort_values(keys, key=lambda s: s.map(label_of).str.lower(), kind="stable")
            groups = groups.reset_index(drop=True)
            cell_types.update(groups[CELL_TYPE])
            if grouping != NONE:
                values[grouping].update(groups[keys[1]])
            entry["groups"][grouping] = [[*(str(r[k]) for k in keys), int(r["n_cells"])] for _, r in groups.iterrows()]
            df["g"] = gene_index(df[FEATURE], path)
            for k in keys:
                if not isinstance(df[k].dtype, pd.CategoricalDtype):
                    df[k] = df[k].astype(str).astype("category")
            rows_of = groups[keys].assign(r=range(len(groups)))
            for k in keys:
                rows_of[k] = rows_of[k].astype(df[k].dtype)
            df = df.merge(rows_of, on=keys, how="left", validate="many_to_one")
            df["block"] = df["g"] // sizes[grouping]
            blocks = []
            for block, rows in df.sort_values(["g", "r"]).groupby("block", sort=True):
                key = f"{tdir}/{grouping}_{int(block)}"
                out.shard_bytes[key] = write_js(
                    data_dir,
                    key,
                    {
                        "r": rows["r"].astype(int).tolist(),
                        "g": rows["g"].astype(int).tolist(),
                        "e": rows["n_expressing"].astype(int).tolist(),
                        "m": _round(rows["mean_expression"].astype(float)),
                    },
                )
                blocks.append(int(block))
            entry["blocks"][grouping] = blocks
            if grouping == NONE:
                cells = int(groups["n_cells"].sum())
                if cells > best_cells:
                    best_cells = cells
                    top = df.groupby("g")["n_expressing"].sum().sort_values(ascending=False, kind="stable")
                    default = {"tissue": tissue, "genes": [gene_ids[g] for g in top.index[:DEFAULT_GENES]]}
        if entry["markers"] and markers_path is not None:
            mk = _read_tissue(markers_path, tissue, MARKER_COLUMNS[1:])
            mk[CELL_TYPE] = mk[CELL_TYPE].astype(str)
            cell_types.update(mk[CELL_TYPE])
            mk["g"] = gene_index(mk[FEATURE], markers_path)
            per_type: dict[str, list[list[Any]]] = {}
            for ct, rows in mk.sort_values([CELL_TYPE, "rank", "g"]).groupby(CELL_TYPE, sort=True):
                per_type[str(ct)] = [
                    [int(g), e, int(r)]
                    for g, e, r in zip(rows["g"], _round(rows["effect_size"].astype(float)), rows["rank"], strict=True)
                ]
            key = f"{tdir}/markers"
            out.shard_bytes[key] = write_js(data_dir, key, per_type)
            if default.get("tissue") == tissue:
                picked: list[str] = []
                for markers in per_type.values():  # the top two markers of each cell type
                    for g, _, _ in markers[:2]:
                        if gene_ids[g] not in picked:
                            picked.append(gene_ids[g])
                default["genes"] = picked[:DEFAULT_GENES] or default["genes"]
        tissues_out.append(entry)
    tissues_out.sort(key=lambda t: str(t["label"]).lower())
    index = {
        "organism": organism,
        "label": organism_label,
        "block_size": sizes,
        "genes": {"id": gene_ids, "name": names},
        "cell_types": {ct: labels.get("cell_type", {}).get(ct) or label_of(ct) for ct in sorted(cell_types)},
        "categories": {
            cat: {v: labels.get(cat, {}).get(v) or label_of(v) for v in sorted(vs)} for cat, vs in values.items()
        },
        "tissues": tissues_out,
        "default": default,
    }
    out.index_bytes = write_js(data_dir, f"{organism}/index", index)
    logger.info(
        "report: %s: %d tissue(s), %d shard(s), largest %d bytes, index %d bytes",
        organism,
        len(tissues_out),
        len(out.shard_bytes),
        out.largest,
        out.index_bytes,
    )
    return out

"""Realistic synthetic CELLxGENE schema 4.0.0 H5AD files, for tests, the example corpus and benchmarks.

Files are written row-chunk by row-chunk with h5py (dataframes with anndata's element writer), so a
benchmark corpus of millions of cells is generated in bounded memory. Every edge case the build must
handle can be switched on per dataset: CSR/CSC/dense, raw layer or not, non-canonical CSR (duplicate
entries), explicitly stored zeros, multi-species cells and genes, excluded assays, organoid / cell
culture cells, spike-ins, an all-zero cell, a gene expressed only in filtered-out cells, Smart-seq.

``DatasetSpec.compression`` writes the file as CELLxGENE's curation tools do (``write_h5ad(compression=
"gzip")``): every array gzip- (or lzf-) compressed in the chunks h5py's ``guess_chunk`` picks, which is what
anndata's writer gets (it passes no chunk shape). The default, ``"none"``, writes what it always wrote.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from anndata.io import write_elem
from h5py._hl.filters import guess_chunk

HUMAN = "NCBITaxon:9606"
MOUSE = "NCBITaxon:10090"
ERCC = "NCBITaxon:32630"

# (term id, label) pairs that exist in the ontologies cellxgene-ontology-guide ships.
TISSUES = (
    ("UBERON:0002048", "lung"),
    ("UBERON:0002082", "cardiac ventricle"),
    ("UBERON:0000178", "blood"),
    ("UBERON:0002113", "kidney"),
    ("UBERON:0000955", "brain"),
)
CELL_TYPES = (("CL:0000236", "B cell"), ("CL:0000084", "T cell"), ("CL:0000235", "macrophage"))
DISEASES = (("PATO:0000461", "normal"), ("MONDO:0005015", "diabetes mellitus"))
SEXES = (("PATO:0000383", "female"), ("PATO:0000384", "male"), ("unknown", "unknown"))
ETHNICITY = {HUMAN: (("HANCESTRO:0005", "European"), ("unknown", "unknown")), MOUSE: (("na", "na"),)}
DEV_STAGE = {HUMAN: (("HsapDv:0000087", "human adult stage"),), MOUSE: (("MmusDv:0000110", "mature stage"),)}
ASSAY_LABELS = {
    "EFO:0009922": "10x 3' v3",
    "EFO:0009899": "10x 3' v2",
    "EFO:0011025": "10x 5' v1",
    "EFO:0008931": "Smart-seq2",
    "EFO:0700016": "Smart-seq v4",
    "EFO:0030059": "10x multiome",
    "EFO:0008992": "MERFISH",
}
GENE_PREFIX = {HUMAN: "ENSG", MOUSE: "ENSMUSG"}
GENE_POOL = 40_000  # genes per organism available to datasets


def gene_ids(organism: str, n: int = GENE_POOL) -> list[str]:
    """Return the first ``n`` gene ids of ``organism``'s pool (Ensembl-like, with the organism's prefix)."""
    return [f"{GENE_PREFIX[organism]}{i:011d}" for i in range(n)]


def feature_length_of(feature_id: str) -> int:
    """Return a stable, gene-specific length (as the dataset schema pins gene annotations across datasets)."""
    return 200 + (sum(ord(c) * (i + 1) for i, c in enumerate(feature_id)) * 7919) % 9800


Layout = Literal["csr", "csc", "dense"]
Compression = Literal["none", "gzip", "lzf"]
COMPRESSIONS: tuple[Compression, ...] = ("none", "gzip", "lzf")


@dataclass(frozen=True)
class DatasetSpec:
    """What one synthetic H5AD holds: size, organisms, layout, obs values and the edge cases to plant."""

    dataset_id: str
    n_cells: int = 200
    cell_organisms: tuple[str, ...] = (HUMAN,)
    gene_organisms: tuple[str, ...] = (HUMAN,)
    n_genes: int = 300  # per gene organism, drawn from the pool
    n_spike_ins: int = 3
    layout: Layout = "csr"
    use_raw: bool = False
    assays: tuple[str, ...] = ("EFO:0009922",)
    tissue_types: tuple[str, ...] = ("tissue",)
    tissues: tuple[tuple[str, str], ...] = TISSUES
    cell_types: tuple[tuple[str, str], ...] = CELL_TYPES
    density: float = 0.1
    explicit_zeros: bool = False
    duplicates: bool = False  # non-canonical CSR: some counts split into two stored entries
    zero_cell: bool = True  # one kept cell with no counts at all
    excluded_only_gene: bool = True  # one gene with counts only in filtered-out cells
    n_donors: int = 3
    primary_fraction: float = 0.75
    title: str = ""
    citation: str = ""
    schema_version: str = "4.0.0"
    feature_lengths: bool = True
    seed: int = 0
    chunk_cells: int = 20_000  # rows generated and written at a time
    extra_uns: dict[str, str] = field(default_factory=dict)
    compression: Compression = "none"  # HDF5 filter of every array, in anndata's (h5py's guessed) chunks

    def with_(self, **changes: object) -> DatasetSpec:
        """Return a copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _var_frame(spec: DatasetSpec, rng: np.random.Generator) -> pd.DataFrame:
    ids: list[str] = []
    refs: list[str] = []
    for org in spec.gene_organisms:
        pool = gene_ids(org)
        chosen = rng.choice(len(pool), size=min(spec.n_genes, len(pool)), replace=False)
        ids += [pool[i] for i in chosen]
        refs += [org] * len(chosen)
    ids += [f"ERCC-{i + 1:05d}" for i in range(spec.n_spike_ins)]
    refs += [ERCC] * spec.n_spike_ins
    order = rng.permutation(len(ids))  # files do not keep genes sorted
    ids = [ids[i] for i in order]
    refs = [refs[i] for i in order]
    var = pd.DataFrame(
        {
            "feature_is_filtered": np.zeros(len(ids), dtype=bool),
            "feature_name": pd.Categorical([("SYM_" + i[-6:]) if not i.startswith("ERCC") else i for i in ids]),
            "feature_reference": pd.Categorical(refs),
            "feature_biotype": pd.Categorical(["spike-in" if r == ERCC else "gene" for r in refs]),
        },
        index=pd.Index(ids),
    )
    if spec.feature_lengths:
        var["feature_length"] = np.array([feature_length_of(i) for i in ids], dtype=np.int64)
    return var


def _obs_frame(spec: DatasetSpec, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.n_cells
    idx = np.arange(n)
    organisms = np.array(spec.cell_organisms)[idx % len(spec.cell_organisms)]

    def pick(choices: Sequence[tuple[str, str]], k: npt.NDArray[np.int64]) -> tuple[list[str], list[str]]:
        return [choices[i % len(choices)][0] for i in k], [choices[i % len(choices)][1] for i in k]

    r = rng.integers(0, 1 << 30, size=(8, n))
    cols: dict[str, object] = {}
    cols["assay_ontology_term_id"] = [spec.assays[i % len(spec.assays)] for i in (idx // 2)]
    cols["assay"] = [ASSAY_LABELS.get(a, a) for a in cols["assay_ontology_term_id"]]  # type: ignore[attr-defined]
    cols["cell_type_ontology_term_id"], cols["cell_type"] = pick(spec.cell_types, r[0])
    dev = [DEV_STAGE.get(o, DEV_STAGE[HUMAN])[0] for o in organisms]
    cols["development_stage_ontology_term_id"] = [d[0] for d in dev]
    cols["development_stage"] = [d[1] for d in dev]
    cols["disease_ontology_term_id"], cols["disease"] = pick(DISEASES, r[1])
    cols["donor_id"] = [f"{spec.dataset_id}-donor{i % spec.n_donors}" for i in r[2]]
    cols["is_primary_data"] = rng.random(n) < spec.primary_fraction
    cols["organism_ontology_term_id"] = list(organisms)
    cols["organism"] = ["Homo sapiens" if o == HUMAN else "Mus musculus" for o in organisms]
    eth = [
        ETHNICITY.get(o, ETHNICITY[HUMAN])[k % len(ETHNICITY.get(o, ETHNICITY[HUMAN]))]
        for o, k in zip(organisms, r[3], strict=True)
    ]
    cols["self_reported_ethnicity_ontology_term_id"] = [e[0] for e in eth]
    cols["self_reported_ethnicity"] = [e[1] for e in eth]
    cols["sex_ontology_term_id"], cols["sex"] = pick(SEXES, r[4])
    cols["suspension_type"] = ["cell" if k % 3 else "nucleus" for k in r[5]]
    cols["tissue_ontology_term_id"], cols["tissue"] = pick(spec.tissues, r[6])
    cols["tissue_type"] = [spec.tissue_types[i % len(spec.tissue_types)] for i in idx]
    cols["observation_joinid"] = [f"{spec.dataset_id[:4]}{k:09d}_{i}" for i, k in zip(idx, r[7], strict=True)]
    obs = pd.DataFrame(cols, index=pd.Index([f"{spec.dataset_id}-cell{i}" for i in idx]))
    for c in obs.columns:
        if c not in {"is_primary_data", "observation_joinid"}:
            obs[c] = pd.Categorical(obs[c])
    return obs


def _excluded_rows(spec: DatasetSpec, obs: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows a Census build filters out for reasons visible in obs alone (tissue type, assay)."""
    from census_builder.census.schema import load_schema  # local: the generator must not need the schema to import

    s = load_schema()
    return ~(
        obs["tissue_type"].isin(s.tissue_type_kept) & obs["assay_ontology_term_id"].isin(s.included_assays)
    ).to_numpy()


def _count_rows(
    spec: DatasetSpec, rng: np.random.Generator, start: int, stop: int, n_var: int, excluded: npt.NDArray[np.bool_]
) -> sp.csr_matrix:
    """Integer counts for rows [start, stop), canonical CSR: genes drawn from a skewed, dataset-specific
    expression profile; mostly small counts with a heavy tail."""
    n = stop - start
    usable = n_var - 1 if spec.excluded_only_gene else n_var  # the last gene is seen only in filtered-out cells
    profile = np.random.default_rng(spec.seed + 7919).permutation(1.0 / (1.0 + np.arange(max(usable, 1))) ** 0.7)
    cdf = np.cumsum(profile)
    nnz_per_row = rng.binomial(max(usable, 0), spec.density, size=n)
    if spec.zero_cell and start == 0 and n > 0:
        nnz_per_row[0] = 0
    rows = np.repeat(np.arange(n, dtype=np.int64), nnz_per_row)
    cols = np.minimum(np.searchsorted(cdf, rng.random(rows.size) * cdf[-1], side="right"), max(usable - 1, 0))
    keys = np.sort(rows * n_var + cols)
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]  # a gene drawn twice for a cell counts once
    rows, cols = keys // n_var, keys % n_var
    vals = (
        rng.geometric(0.35, size=rows.size) + (rng.random(rows.size) < 0.02) * rng.integers(20, 400, rows.size)
    ).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n, n_var))
    if spec.excluded_only_gene:
        ex = np.nonzero(excluded[start:stop])[0]
        if ex.size:
            extra = sp.csr_matrix(
                (np.full(ex.size, 3.0, np.float32), (ex, np.full(ex.size, n_var - 1))), shape=(n, n_var)
            )
            m = (m + extra).tocsr()
    m.sort_indices()
    return m


def _noncanonical(m: sp.csr_matrix, spec: DatasetSpec, rng: np.random.Generator) -> sp.csr_matrix:
    """Explicit zeros and split duplicates, as found in real submissions."""
    if not (spec.explicit_zeros or spec.duplicates):
        return m
    indptr, indices, data = m.indptr, m.indices, m.data
    new_rows: list[npt.NDArray[np.int64]] = []
    new_cols: list[npt.NDArray[np.int32]] = []
    new_vals: list[npt.NDArray[np.float32]] = []
    for r in range(m.shape[0]):
        lo, hi = indptr[r], indptr[r + 1]
        c, v = indices[lo:hi].copy(), data[lo:hi].copy()
        if spec.duplicates and c.size >= 2:
            j = rng.integers(0, c.size)
            if v[j] >= 2:
                half = np.floor(v[j] / 2)
                v[j] -= half
                c, v = np.append(c, c[j]), np.append(v, half)  # duplicate entry, after the row's sorted part
        if spec.explicit_zeros and r % 4 == 1:
            zc = np.setdiff1d(np.arange(min(m.shape[1], 5)), c)[:2]
            c, v = np.append(c, zc), np.append(v, np.zeros(zc.size, np.float32))
        new_rows.append(np.full(c.size, r, dtype=np.int64))
        new_cols.append(c.astype(np.int32))
        new_vals.append(v.astype(np.float32))
    ptr = np.concatenate([[0], np.cumsum([x.size for x in new_cols])]).astype(np.int64)
    out = sp.csr_matrix(
        (np.concatenate(new_vals), np.concatenate(new_cols), ptr), shape=m.shape
    )  # scipy keeps duplicates and explicit zeros as given
    return out


def write_h5ad(path: str | Path, spec: DatasetSpec) -> Path:
    """Write one synthetic dataset; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    var = _var_frame(spec, rng)
    obs = _obs_frame(spec, rng)
    excluded = _excluded_rows(spec, obs)
    uns = {
        "schema_version": spec.schema_version,
        "title": spec.title or f"Synthetic dataset {spec.dataset_id}",
        "citation": spec.citation or f"Publication: synthetic; Dataset Version: {spec.dataset_id}",
        **spec.extra_uns,
    }
    write_anndata(path, obs, var, uns, spec, rng, excluded)
    return path


def write_anndata(
    path: Path,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    uns: dict[str, Any],
    spec: DatasetSpec,
    rng: np.random.Generator,
    excluded: npt.NDArray[np.bool_],
) -> None:
    """Write an H5AD laid out as CELLxGENE's are: obs, var, uns, empty obsm/varm/obsp/varp/layers, and the counts.

    The counts (``spec``'s layout, chunk by chunk) go to ``raw/X`` with ``raw/var`` (without
    ``feature_is_filtered``) when ``spec.use_raw``, and X then holds author-normalized values; else to X.
    """
    n_obs, n_var = len(obs), len(var)
    kw = filter_kwargs(spec.compression)
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "obs", obs, dataset_kwargs=kw)
        write_elem(f, "var", var, dataset_kwargs=kw)
        write_elem(f, "uns", uns, dataset_kwargs=kw)
        for key in ("obsm", "varm", "obsp", "varp", "layers"):
            write_elem(f, key, {})
        counts_key = "raw/X" if spec.use_raw else "X"
        if spec.use_raw:
            raw = f.create_group("raw")
            raw.attrs["encoding-type"] = "raw"
            raw.attrs["encoding-version"] = "0.1.0"
            # feature_is_filtered is not allowed in raw.var
            write_elem(raw, "var", var.drop(columns=["feature_is_filtered"]), dataset_kwargs=kw)
            write_elem(raw, "varm", {})
        _write_counts(f, counts_key, spec, rng, n_obs, n_var, excluded)
        if spec.use_raw:  # X holds author-normalized values, which the Census must never use
            _write_normalized_x(f, f[counts_key], spec.layout, n_obs, n_var, spec.compression)


def filter_kwargs(compression: Compression) -> dict[str, Any]:
    """Return h5py's ``create_dataset`` keywords for ``compression`` (none: no filter; gzip: level 4, h5py's
    default, as ``write_h5ad(compression="gzip")`` gets)."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
    return {} if compression == "none" else {"compression": compression}


def anndata_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Return the chunk shape anndata's writer gets for an array of ``shape`` (h5py's ``guess_chunk``)."""
    chunks: tuple[int, ...] = guess_chunk(shape, None, itemsize)
    return chunks


def _write_counts(
    f: h5py.File,
    key: str,
    spec: DatasetSpec,
    rng: np.random.Generator,
    n_obs: int,
    n_var: int,
    excluded: npt.NDArray[np.bool_],
) -> None:
    chunks = [(s, min(n_obs, s + spec.chunk_cells)) for s in range(0, n_obs, spec.chunk_cells)] or [(0, 0)]
    kw = filter_kwargs(spec.compression)
    if spec.layout == "csc":  # small datasets only: assemble, transpose, write
        m = sp.vstack([_noncanonical(_count_rows(spec, rng, a, b, n_var, excluded), spec, rng) for a, b in chunks])
        csc = sp.csc_matrix(m.tocsc()) if not spec.duplicates else _to_noncanonical_csc(m)
        write_elem(f, key, csc, dataset_kwargs=kw)
        return
    if spec.layout == "dense":
        if kw and n_obs:
            kw["chunks"] = anndata_chunks((n_obs, n_var), 4)
        else:
            kw["chunks"] = (max(1, min(n_obs, 1024)), n_var) if n_obs else None
        ds = f.create_dataset(key, shape=(n_obs, n_var), dtype=np.float32, **kw)
        ds.attrs["encoding-type"] = "array"
        ds.attrs["encoding-version"] = "0.2.0"
        for a, b in chunks:
            if b > a:
                ds[a:b, :] = _count_rows(spec, rng, a, b, n_var, excluded).toarray()
        return
    g = f.create_group(key)
    g.attrs["encoding-type"] = "csr_matrix"
    g.attrs["encoding-version"] = "0.1.0"
    g.attrs["shape"] = (n_obs, n_var)
    blocks = (_noncanonical(_count_rows(spec, rng, a, b, n_var, excluded), spec, rng) for a, b in chunks)
    first = next(blocks)
    chunk: tuple[int, ...] = (1 << 18,)
    if kw:  # anndata would write the whole array: h5py guesses chunks from its length, extrapolated here
        expected = first.nnz * n_obs // max(1, first.shape[0])
        chunk = anndata_chunks((max(1, expected),), 4)
    data = g.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=chunk, **kw)
    indices = g.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=chunk, **kw)
    indptr = [np.zeros(1, dtype=np.int64)]
    total = 0
    for m in itertools.chain([first], blocks):
        k = m.data.size
        data.resize((total + k,))
        indices.resize((total + k,))
        data[total:] = m.data
        indices[total:] = m.indices
        indptr.append(m.indptr[1:].astype(np.int64) + total)
        total += k
    g.create_dataset("indptr", data=np.concatenate(indptr), **_whole(kw))


def _to_noncanonical_csc(m: sp.csr_matrix) -> sp.csc_matrix:
    coo = m.tocoo()
    order = np.lexsort((coo.row, coo.col))
    rows, cols, vals = coo.row[order], coo.col[order], coo.data[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=m.shape[1]))])
    return sp.csc_matrix((vals, rows, indptr), shape=m.shape)


def _whole(kw: dict[str, Any]) -> dict[str, Any]:
    """Keywords for an array written whole, as anndata writes a sparse matrix's arrays (resizable, chunks
    left to h5py) when compressed; none otherwise."""
    return {**kw, "maxshape": (None,)} if kw else {}


def _write_normalized_x(
    f: h5py.File,
    counts: h5py.Group | h5py.Dataset,
    layout: Layout,
    n_obs: int,
    n_var: int,
    compression: Compression = "none",
) -> None:
    kw = filter_kwargs(compression)
    if layout == "dense":
        ds = f.create_dataset("X", data=np.log1p(np.asarray(counts[...])).astype(np.float32), **kw)
        ds.attrs["encoding-type"] = "array"
        ds.attrs["encoding-version"] = "0.2.0"
        return
    g = f.create_group("X")
    for k in ("encoding-type", "encoding-version", "shape"):
        g.attrs[k] = counts.attrs[k]
    g.create_dataset("indices", data=counts["indices"][...], **_whole(kw))
    g.create_dataset("indptr", data=counts["indptr"][...], **_whole(kw))
    g.create_dataset("data", data=np.log1p(counts["data"][...]).astype(np.float32), **_whole(kw))


# -- corpora -----------------------------------------------------------------------------------------------


def example_specs() -> list[DatasetSpec]:
    """Return the small example corpus: both organisms and every edge case, built in seconds."""
    return [
        DatasetSpec(
            "human-lung-10x",
            n_cells=600,
            assays=("EFO:0009922", "EFO:0009899"),
            seed=1,
            tissue_types=("tissue", "tissue", "tissue", "organoid"),
            explicit_zeros=True,
        ),
        DatasetSpec(
            "human-smartseq",
            n_cells=150,
            assays=("EFO:0008931", "EFO:0700016"),
            layout="dense",
            use_raw=True,
            seed=2,
            density=0.2,
        ),
        DatasetSpec(
            "mouse-brain-csc",
            n_cells=300,
            cell_organisms=(MOUSE,),
            gene_organisms=(MOUSE,),
            layout="csc",
            assays=("EFO:0009922", "EFO:0030059"),
            seed=3,
            duplicates=True,
        ),
        DatasetSpec(
            "mouse-blood-raw",
            n_cells=400,
            cell_organisms=(MOUSE,),
            gene_organisms=(MOUSE,),
            use_raw=True,
            duplicates=True,
            tissue_types=("tissue", "cell culture"),
            seed=4,
        ),
        DatasetSpec("mixed-cells-human-genes", n_cells=240, cell_organisms=(HUMAN, MOUSE), seed=5),
        DatasetSpec(
            "mixed-cells-mixed-genes", n_cells=120, cell_organisms=(HUMAN, MOUSE), gene_organisms=(HUMAN, MOUSE), seed=6
        ),
        DatasetSpec("human-all-filtered", n_cells=50, assays=("EFO:0008992",), seed=7),
    ]


def write_corpus(out_dir: str | Path, specs: Sequence[DatasetSpec], *, manifest_name: str = "manifest.csv") -> Path:
    """Write each dataset as ``<out_dir>/<dataset_id>.h5ad`` and a manifest listing them; returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / manifest_name
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["dataset_id", "h5ad_uri", "dataset_version_id", "collection_id", "collection_name", "collection_doi"]
        )
        for i, s in enumerate(specs):
            p = write_h5ad(out / f"{s.dataset_id}.h5ad", s)
            w.writerow(
                [
                    s.dataset_id,
                    p.name,
                    f"{s.dataset_id}-v1",
                    f"collection-{i % 2}",
                    f"Synthetic collection {i % 2}",
                    f"10.0000/synthetic.{i % 2}",
                ]
            )
    return manifest

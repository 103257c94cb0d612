"""Realistic synthetic CELLxGENE dataset schema 7.0.0 H5AD files (the inputs of a Census schema 2.4.0 build).

The 7.0.0 counterpart of :mod:`census_builder.testing.synthetic` (which writes 4.0.0 and stays unchanged). The count
matrices come from the same chunked writer (bounded memory, CSR/CSC/dense, raw.X + X or X only, explicit zeros,
duplicate entries, an all-zero cell, a gene seen only in filtered-out cells); what differs is the metadata:

- ``uns`` carries the organism (``organism_ontology_term_id`` and its label ``organism``), one per dataset; ``obs``
  has no organism columns (reserved names since 6.0.0). ``uns`` also holds ``schema_version`` "7.0.0",
  ``schema_reference``, ``title``, ``citation`` (the Discover template) and, optionally, ``batch_condition``.
- Five organisms (the Census 2.4.0 ones), each with its own Ensembl gene id prefix; SARS-CoV-2 and ERCC features
  may be added to any dataset. ``var`` has ``feature_reference``, ``feature_biotype``, ``feature_length``,
  ``feature_name`` (spike-ins end in " (spike-in control)") and ``feature_type`` ("synthetic" for spike-ins).
- ``feature_length`` is stored as real CELLxGENE files store it: a categorical whose categories are int64
  (``DatasetSpec7.feature_length_dtype`` "category"). The 7.0.0 text says "uint number of base-pairs", but
  Discover writes the column with cellxgene-schema's ``AnnDataLabelAppender`` (``write_labels.py``):
  ``_get_mapping_dict_feature_length`` maps each id to the Python ``int`` of ``GeneChecker.get_length``
  (``gencode.py``, ``int()`` of the gene CSV's length field), and ``_get_labels`` stores every added label
  column with ``.map(mapping_dict).astype("category")``; pandas infers int64 categories. "int64", "uint64" and
  "uint32" write a plain column of that type instead (the reference builder refuses uint64).
- ``tissue_type`` is one of "tissue", "organoid", "primary cell culture" (4.0.0's "cell culture") or "cell line";
  a primary cell culture's tissue is a CL term, a cell line's a Cellosaurus term, and cell-line cells have "na"
  donor, development stage, sex and ethnicity, as 7.0.0 requires.
- Multi-term diseases and ethnicities (" || "-joined, ascending), as allowed since 6.0.0.

Every ontology term and label here is one the cellxgene-ontology-guide knows for schema 7.0.0 (the tests check it).

Like the 4.0.0 generator, some switches plant what 7.0.0 forbids but real files and a robust build meet anyway:
the all-zero cell (``zero_cell``), CSC and mostly-zero dense matrices (7.0.0 requires CSR once half the values
are zeros), explicit zeros and duplicate entries. Spatial assays (``uns['spatial']``, ``in_tissue``) are not
generated.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from census_builder.errors import UsageError
from census_builder.testing.synthetic import (
    CELL_TYPES,
    TISSUES,
    Compression,
    DatasetSpec,
    Layout,
    feature_length_of,
    write_anndata,
)

SCHEMA_VERSION = "7.0.0"
SCHEMA_REFERENCE = "https://github.com/chanzuckerberg/single-cell-curation/blob/main/schema/7.0.0/schema.md"

HUMAN = "NCBITaxon:9606"
MOUSE = "NCBITaxon:10090"
MARMOSET = "NCBITaxon:9483"
RHESUS = "NCBITaxon:9544"
CHIMP = "NCBITaxon:9598"
SARS_COV_2 = "NCBITaxon:2697049"
ERCC = "NCBITaxon:32630"

#: The Census 2.4.0 organisms: term id -> (label, Ensembl gene id prefix of its 7.0.0 gene reference).
ORGANISMS: dict[str, tuple[str, str]] = {
    HUMAN: ("Homo sapiens", "ENSG"),  # GENCODE v48
    MOUSE: ("Mus musculus", "ENSMUSG"),  # GENCODE vM37
    MARMOSET: ("Callithrix jacchus", "ENSCJAG"),  # Ensembl 114, mCalJac1.pat.X
    RHESUS: ("Macaca mulatta", "ENSMMUG"),  # Ensembl 114, Mmul_10
    CHIMP: ("Pan troglodytes", "ENSPTRG"),  # Ensembl 114, Pan_tro_3.0
}
GENE_POOL = 40_000  # genes per organism available to datasets
#: The SARS-CoV-2 reference's genes (ASM985889v3): Ensembl ids and gene names.
SARS_COV_2_GENES = tuple(
    (f"ENSSASG{5000002 + i:011d}", name)
    for i, name in enumerate(("ORF1ab", "S", "ORF3a", "E", "M", "ORF6", "ORF7a", "ORF7b", "ORF8", "N", "ORF10"))
)
FEATURE_TYPES = ("protein_coding", "protein_coding", "protein_coding", "lncRNA", "miRNA", "snRNA")

#: Assays: term id -> (label, included in Census 2.4.0's allowlist, allowed suspension types).
ASSAYS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "EFO:0009922": ("10x 3' v3", True, ("cell", "nucleus")),
    "EFO:0009899": ("10x 3' v2", True, ("cell", "nucleus")),
    "EFO:0022604": ("10x 3' v4", True, ("cell", "nucleus")),
    "EFO:0011025": ("10x 5' v1", True, ("cell", "nucleus")),
    "EFO:0009900": ("10x 5' v2", True, ("cell", "nucleus")),
    "EFO:0030059": ("10x multiome", True, ("nucleus",)),
    "EFO:0008931": ("Smart-seq2", True, ("cell",)),
    "EFO:0700016": ("Smart-seq v4", True, ("cell",)),
    "EFO:0008992": ("MERFISH", False, ("na",)),
}
TISSUE_TYPES = ("tissue", "organoid", "primary cell culture", "cell line")
#: How ``var.feature_length`` is stored: "category" (int64 categories, as Discover writes it) or a plain dtype.
FeatureLengthDtype = Literal["category", "int64", "uint64", "uint32"]
FEATURE_LENGTH_DTYPES: tuple[FeatureLengthDtype, ...] = ("category", "int64", "uint64", "uint32")
CENSUS_TISSUE_TYPES = ("tissue", "organoid")  # the ones Census 2.4.0 keeps

# (term id, label) pairs, labels exactly as the 7.0.0 ontologies (cellxgene-ontology-guide) have them.
# TISSUES and CELL_TYPES: the 4.0.0 generator's, valid in 7.0.0 too.
CULTURED_CELL_TYPES = (("CL:0000057", "fibroblast"), ("CL:0000127", "astrocyte"))  # primary cell culture tissues
CELL_LINES: dict[str, tuple[tuple[str, str], ...]] = {
    HUMAN: (("CVCL_0030", "HeLa"), ("CVCL_0063", "HEK293T")),
    MOUSE: (("CVCL_0594", "NIH 3T3"),),
}
DISEASES = (
    ("PATO:0000461", "normal"),
    ("MONDO:0005015", "diabetes mellitus"),
    ("MONDO:0004975 || MONDO:0005015", "Alzheimer disease || diabetes mellitus"),
)
SEXES = (("PATO:0000383", "female"), ("PATO:0000384", "male"), ("unknown", "unknown"))
HUMAN_ETHNICITIES = (
    ("HANCESTRO:0590", "European American"),
    ("HANCESTRO:0021", "Chinese"),
    ("HANCESTRO:0568 || HANCESTRO:0590", "African American || European American"),
    ("unknown", "unknown"),
)
DEV_STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    HUMAN: (("HsapDv:0000258", "adult stage"),),
    MOUSE: (("MmusDv:0000110", "mature stage"),),
}
OTHER_DEV_STAGES = (("UBERON:0018241", "prime adult stage"), ("UBERON:0000113", "post-juvenile adult stage"))
NA = ("na", "na")


def gene_ids(organism: str, n: int = GENE_POOL) -> list[str]:
    """Return the first ``n`` gene ids of ``organism``'s pool (Ensembl-like, with the organism's prefix)."""
    return [f"{ORGANISMS[organism][1]}{i:011d}" for i in range(n)]


@dataclass(frozen=True)
class DatasetSpec7:
    """What one synthetic 7.0.0 H5AD holds: its organism, size, layout, obs values and the edge cases to plant."""

    dataset_id: str
    organism: str = HUMAN
    n_cells: int = 200
    n_genes: int = 300  # drawn from the organism's pool
    n_spike_ins: int = 3  # ERCC features
    n_sars_cov_2: int = 0  # SARS-CoV-2 features (at most len(SARS_COV_2_GENES))
    layout: Layout = "csr"
    use_raw: bool = False  # raw.X holds the counts and X author-normalized values; else X holds the counts
    assays: tuple[str, ...] = ("EFO:0009922",)
    tissue_types: tuple[str, ...] = ("tissue",)  # cycled over the cells
    tissues: tuple[tuple[str, str], ...] = TISSUES
    cell_types: tuple[tuple[str, str], ...] = CELL_TYPES  # cycled over the cells like the other obs terms
    density: float = 0.1
    explicit_zeros: bool = False
    duplicates: bool = False  # non-canonical CSR: some counts split into two stored entries
    zero_cell: bool = True  # one kept cell with no counts at all
    excluded_only_gene: bool = True  # one gene with counts only in cells a Census 2.4.0 build filters out
    n_donors: int = 3
    primary_fraction: float = 0.75
    title: str = ""
    citation: str = ""
    collection_id: str = "collection-0"
    doi: str = ""  # publication DOI in the citation; none if empty
    batch_condition: tuple[str, ...] = ()  # optional uns key; written only when not empty
    feature_length_dtype: FeatureLengthDtype = "category"  # categorical of int64, as real 7.0.0 files
    seed: int = 0
    chunk_cells: int = 20_000  # rows generated and written at a time
    extra_uns: dict[str, str] = field(default_factory=dict)
    compression: Compression = "none"  # as synthetic.DatasetSpec.compression

    def with_(self, **changes: object) -> DatasetSpec7:
        """Return a copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def check(self) -> None:
        """Raise :class:`UsageError` naming the dataset and field if this spec cannot describe a 7.0.0 dataset."""
        where = f"synthetic 7.0.0 dataset {self.dataset_id!r}"
        if self.organism not in ORGANISMS:
            raise UsageError(f"{where}: organism {self.organism!r} is not one of {', '.join(ORGANISMS)}")
        unknown = [a for a in self.assays if a not in ASSAYS]
        if unknown or not self.assays:
            raise UsageError(f"{where}: assays {unknown or '(none)'} are not in synthetic_7.ASSAYS; add them there")
        bad = [t for t in self.tissue_types if t not in TISSUE_TYPES]
        if bad or not self.tissue_types:
            raise UsageError(f"{where}: tissue_types {bad or '(none)'} are not among {', '.join(TISSUE_TYPES)}")
        if "cell line" in self.tissue_types and self.organism not in CELL_LINES:
            raise UsageError(f"{where}: tissue_type 'cell line' needs a cell line of {self.organism} in CELL_LINES")
        if not 0 <= self.n_sars_cov_2 <= len(SARS_COV_2_GENES):
            raise UsageError(f"{where}: n_sars_cov_2 is {self.n_sars_cov_2}, must be 0..{len(SARS_COV_2_GENES)}")
        if self.n_donors < 1:
            raise UsageError(f"{where}: n_donors is {self.n_donors}, must be at least 1")
        if self.feature_length_dtype not in FEATURE_LENGTH_DTYPES:
            raise UsageError(
                f"{where}: feature_length_dtype {self.feature_length_dtype!r} is not one of "
                f"{', '.join(FEATURE_LENGTH_DTYPES)}"
            )

    def matrix_spec(self) -> DatasetSpec:
        """Return the 4.0.0 spec whose count-matrix settings equal these (the matrix writer is shared)."""
        return DatasetSpec(
            self.dataset_id,
            n_cells=self.n_cells,
            layout=self.layout,
            use_raw=self.use_raw,
            density=self.density,
            explicit_zeros=self.explicit_zeros,
            duplicates=self.duplicates,
            zero_cell=self.zero_cell,
            excluded_only_gene=self.excluded_only_gene,
            seed=self.seed,
            chunk_cells=self.chunk_cells,
            compression=self.compression,
        )


def _feature_type(feature_id: str) -> str:
    return FEATURE_TYPES[sum(map(ord, feature_id)) % len(FEATURE_TYPES)]


def _feature_lengths(ids: Sequence[str], dtype: FeatureLengthDtype) -> pd.Categorical[Any] | npt.NDArray[Any]:
    lengths = np.array([feature_length_of(i) for i in ids], dtype=np.int64)
    if dtype == "category":  # cellxgene-schema's write_labels: .map(lengths).astype("category")
        return pd.Categorical(lengths)
    return lengths.astype(dtype)


def _var_frame(spec: DatasetSpec7, rng: np.random.Generator) -> pd.DataFrame:
    pool = gene_ids(spec.organism)
    chosen = rng.choice(len(pool), size=min(spec.n_genes, len(pool)), replace=False)
    ids = [pool[i] for i in chosen]
    names = ["SYM_" + i[-6:] for i in ids]
    refs = [spec.organism] * len(ids)
    types = [_feature_type(i) for i in ids]
    for gid, name in SARS_COV_2_GENES[: spec.n_sars_cov_2]:
        ids.append(gid)
        names.append(name)
        refs.append(SARS_COV_2)
        types.append("protein_coding")
    for k in range(spec.n_spike_ins):
        ercc = f"ERCC-{k + 1:05d}"
        ids.append(ercc)
        names.append(f"{ercc} (spike-in control)")
        refs.append(ERCC)
        types.append("synthetic")
    order = rng.permutation(len(ids))  # files do not keep genes sorted
    ids = [ids[i] for i in order]
    refs = [refs[i] for i in order]
    return pd.DataFrame(
        {
            "feature_is_filtered": np.zeros(len(ids), dtype=bool),
            "feature_name": pd.Categorical([names[i] for i in order]),
            "feature_reference": pd.Categorical(refs),
            "feature_biotype": pd.Categorical(["spike-in" if r == ERCC else "gene" for r in refs]),
            "feature_length": _feature_lengths(ids, spec.feature_length_dtype),
            "feature_type": pd.Categorical([types[i] for i in order]),
        },
        index=pd.Index(ids),
    )


def _obs_frame(spec: DatasetSpec7, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.n_cells
    idx = np.arange(n)
    r = rng.integers(0, 1 << 30, size=(9, n))
    tissue_type = [spec.tissue_types[i % len(spec.tissue_types)] for i in idx]
    cell_line = np.array([t == "cell line" for t in tissue_type], dtype=bool)

    def pick(choices: Sequence[tuple[str, str]], k: npt.NDArray[np.int64]) -> list[tuple[str, str]]:
        return [choices[int(i) % len(choices)] for i in k]

    assays = [spec.assays[i % len(spec.assays)] for i in (idx // 2)]
    dev_choices = DEV_STAGES.get(spec.organism, OTHER_DEV_STAGES)
    eth_choices = HUMAN_ETHNICITIES if spec.organism == HUMAN else (NA,)
    line_choices = CELL_LINES.get(spec.organism, ())
    tissues: list[tuple[str, str]] = []
    for t, k in zip(tissue_type, r[6], strict=True):
        if t == "primary cell culture":  # 7.0.0: the tissue is then a cell type term
            tissues.append(CULTURED_CELL_TYPES[int(k) % len(CULTURED_CELL_TYPES)])
        elif t == "cell line":  # 7.0.0: the tissue is then a Cellosaurus term
            tissues.append(line_choices[int(k) % len(line_choices)])
        else:
            tissues.append(spec.tissues[int(k) % len(spec.tissues)])
    pairs: dict[str, list[tuple[str, str]]] = {
        "assay": [(a, ASSAYS[a][0]) for a in assays],
        "cell_type": pick(spec.cell_types, r[0]),
        "development_stage": pick(dev_choices, r[1]),
        "disease": pick(DISEASES, r[2]),
        "self_reported_ethnicity": pick(eth_choices, r[3]),
        "sex": pick(SEXES, r[4]),
        "tissue": tissues,
    }
    for key in ("development_stage", "self_reported_ethnicity", "sex"):  # "na" for cell lines (7.0.0)
        pairs[key] = [NA if cl else p for p, cl in zip(pairs[key], cell_line, strict=True)]
    cols: dict[str, object] = {}
    for key in ("assay", "cell_type", "development_stage", "disease", "self_reported_ethnicity", "sex", "tissue"):
        cols[f"{key}_ontology_term_id"] = [p[0] for p in pairs[key]]
    cols["donor_id"] = [
        "na" if cl else f"{spec.dataset_id}-donor{int(k) % spec.n_donors}"
        for cl, k in zip(cell_line, r[5], strict=True)
    ]
    cols["is_primary_data"] = rng.random(n) < spec.primary_fraction
    cols["suspension_type"] = [ASSAYS[a][2][int(k) % len(ASSAYS[a][2])] for a, k in zip(assays, r[7], strict=True)]
    cols["tissue_type"] = tissue_type
    for key in ("assay", "cell_type", "development_stage", "disease", "self_reported_ethnicity", "sex", "tissue"):
        cols[key] = [p[1] for p in pairs[key]]
    cols["observation_joinid"] = [f"{spec.dataset_id[:4]}{k:09d}_{i}" for i, k in zip(idx, r[8], strict=True)]
    obs = pd.DataFrame(cols, index=pd.Index([f"{spec.dataset_id}-cell{i}" for i in idx]))
    for c in obs.columns:
        if c not in {"is_primary_data", "observation_joinid"}:
            obs[c] = pd.Categorical(obs[c])
    return obs


def census_excluded_rows(obs: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Return the rows a Census 2.4.0 build filters out for reasons visible in obs alone (tissue type, assay)."""
    included = [a for a, (_, keep, _) in ASSAYS.items() if keep]
    return ~(obs["tissue_type"].isin(CENSUS_TISSUE_TYPES) & obs["assay_ontology_term_id"].isin(included)).to_numpy()


def citation_of(spec: DatasetSpec7) -> str:
    """Return the dataset's ``uns["citation"]``: the 7.0.0 template (Publication part only with a DOI)."""
    if spec.citation:
        return spec.citation
    publication = f"Publication: https://doi.org/{spec.doi} " if spec.doi else ""
    return (
        f"{publication}Dataset Version: https://datasets.cellxgene.cziscience.com/{spec.dataset_id}.h5ad "
        "curated and distributed by CZ CELLxGENE Discover in Collection: "
        f"https://cellxgene.cziscience.com/collections/{spec.collection_id}"
    )


def write_h5ad_7(path: str | Path, spec: DatasetSpec7) -> Path:
    """Write one synthetic dataset schema 7.0.0 H5AD; returns the path.

    Raises :class:`UsageError` if ``spec`` cannot describe a valid 7.0.0 dataset (see :meth:`DatasetSpec7.check`).
    """
    spec.check()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    var = _var_frame(spec, rng)
    obs = _obs_frame(spec, rng)
    excluded = census_excluded_rows(obs)
    uns: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "schema_reference": SCHEMA_REFERENCE,
        "title": spec.title or f"Synthetic dataset {spec.dataset_id}",
        "citation": citation_of(spec),
        "organism_ontology_term_id": spec.organism,
        "organism": ORGANISMS[spec.organism][0],
    }
    if spec.batch_condition:
        uns["batch_condition"] = np.array(spec.batch_condition, dtype=object)
    uns.update(spec.extra_uns)
    write_anndata(path, obs, var, uns, spec.matrix_spec(), rng, excluded)
    return path


# -- corpora -----------------------------------------------------------------------------------------------


def example_specs_7() -> list[DatasetSpec7]:
    """Return the small 7.0.0 example corpus: the five Census 2.4.0 organisms and every edge case, in seconds."""
    return [
        DatasetSpec7(
            "human-lung-10x-7",
            n_cells=600,
            assays=("EFO:0009922", "EFO:0009899"),
            tissue_types=("tissue", "tissue", "tissue", "organoid"),
            explicit_zeros=True,
            n_sars_cov_2=4,
            doi="10.0000/synthetic.0",
            batch_condition=("donor_id",),
            seed=11,
        ),
        DatasetSpec7(
            "human-smartseq-7",
            n_cells=150,
            assays=("EFO:0008931", "EFO:0700016"),
            layout="dense",
            use_raw=True,
            density=0.2,
            tissue_types=("tissue", "cell line"),
            seed=12,
        ),
        DatasetSpec7(
            "mouse-brain-csc-7",
            organism=MOUSE,
            n_cells=300,
            layout="csc",
            assays=("EFO:0009922", "EFO:0030059"),
            duplicates=True,
            collection_id="collection-1",
            seed=13,
        ),
        DatasetSpec7(
            "mouse-blood-raw-7",
            organism=MOUSE,
            n_cells=400,
            use_raw=True,
            duplicates=True,
            tissue_types=("tissue", "primary cell culture"),
            n_spike_ins=0,
            collection_id="collection-1",
            seed=14,
        ),
        DatasetSpec7(
            "marmoset-brain-7",
            organism=MARMOSET,
            n_cells=200,
            assays=("EFO:0022604", "EFO:0011025"),
            tissue_types=("tissue", "organoid"),
            tissues=(("UBERON:0000955", "brain"),),
            collection_id="collection-2",
            seed=15,
        ),
        DatasetSpec7(
            "macaque-kidney-raw-7",
            organism=RHESUS,
            n_cells=240,
            layout="csc",
            use_raw=True,
            assays=("EFO:0009900",),
            n_sars_cov_2=2,
            collection_id="collection-2",
            seed=16,
        ),
        DatasetSpec7(
            "chimp-heart-dense-7",
            organism=CHIMP,
            n_cells=120,
            layout="dense",
            tissues=(("UBERON:0002082", "cardiac ventricle"),),
            n_spike_ins=2,
            collection_id="collection-3",
            seed=17,
        ),
        DatasetSpec7("human-all-filtered-7", n_cells=50, assays=("EFO:0008992",), seed=18),
    ]


LYMPHOCYTE = ("CL:0000542", "lymphocyte")  # the Cell Ontology parent of B cell and T cell


def example_gene_expression_specs_7() -> list[DatasetSpec7]:
    """Return the example corpus's dataset for Gene Expression: cells with >= 500 genes (the paper's filter).

    The other example datasets have 300 genes each, so none of their cells is eligible. This one has 1,500 genes
    at density 0.8 (590 to 680 genes with a count per cell, about a quarter of the counts above the "<= 3 is
    missing" threshold), two tissues, B cells, T cells and their parent lymphocyte (the roll-up), and a quarter
    non-primary cells.
    """
    return [
        DatasetSpec7(
            "human-blood-gene-expression-7",
            n_cells=600,
            n_genes=1500,
            density=0.8,
            assays=("EFO:0009922", "EFO:0009899"),
            tissues=(("UBERON:0000178", "blood"), ("UBERON:0002048", "lung")),
            cell_types=(*CELL_TYPES, LYMPHOCYTE),
            zero_cell=False,
            excluded_only_gene=False,
            collection_id="collection-4",
            seed=19,
        )
    ]


class CorpusSpec(Protocol):
    """What a corpus manifest row needs of a dataset spec (7.0.0 and spatial specs alike)."""

    @property
    def dataset_id(self) -> str: ...  # noqa: D102
    @property
    def collection_id(self) -> str: ...  # noqa: D102
    @property
    def doi(self) -> str: ...  # noqa: D102


SpecT = TypeVar("SpecT", bound=CorpusSpec)


def write_corpus_with(
    out_dir: str | Path,
    specs: Sequence[SpecT],
    write: Callable[[Path, SpecT], Path],
    *,
    manifest_name: str = "manifest.csv",
) -> Path:
    """Write each dataset with ``write`` as ``<out_dir>/<dataset_id>.h5ad`` and a manifest listing them.

    The manifest has the columns of :func:`census_builder.testing.synthetic.write_corpus`'s; returns its path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / manifest_name
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["dataset_id", "h5ad_uri", "dataset_version_id", "collection_id", "collection_name", "collection_doi"]
        )
        for s in specs:
            p = write(out / f"{s.dataset_id}.h5ad", s)
            w.writerow(
                [s.dataset_id, p.name, f"{s.dataset_id}-v1", s.collection_id, f"Synthetic {s.collection_id}", s.doi]
            )
    return manifest


def write_corpus_7(out_dir: str | Path, specs: Sequence[DatasetSpec7], *, manifest_name: str = "manifest.csv") -> Path:
    """Write each dataset as ``<out_dir>/<dataset_id>.h5ad`` and a manifest listing them; returns the manifest."""
    return write_corpus_with(out_dir, specs, write_h5ad_7, manifest_name=manifest_name)

"""The Cell Ontology relation of the roll-up, from the ontologies cellxgene-ontology-guide ships (no network).

A cell type's descendants are the guide's ``get_term_descendants`` (the guide derives them from the CL
release its schema pins, over is_a and part_of); a term the shipped ontology does not know (e.g. ``unknown``)
has only itself.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

logger = logging.getLogger(__name__)


class CellOntology:
    """Descendants of Cell Ontology terms, cached per term."""

    def __init__(self) -> None:
        self._cache: dict[str, frozenset[str]] = {}

    @cached_property
    def _parser(self) -> Any:
        from cellxgene_ontology_guide.ontology_parser import OntologyParser

        return OntologyParser()

    @property
    def version(self) -> str:
        """The CL release the guide ships (e.g. ``v2026-03-26``)."""
        return str(self._parser.cxg_schema.supported_ontologies["CL"]["version"])

    def descendants(self, term_id: str) -> frozenset[str]:
        """Return ``term_id`` and every term below it."""
        hit = self._cache.get(term_id)
        if hit is None:
            try:
                hit = frozenset(self._parser.get_term_descendants(term_id, include_self=True)) | {term_id}
            except (KeyError, ValueError):
                logger.info("cell type %s is not in the shipped Cell Ontology: it rolls up only itself", term_id)
                hit = frozenset({term_id})
            self._cache[term_id] = hit
        return hit

    def is_related(self, a: str, b: str) -> bool:
        """Tell whether ``a`` and ``b`` differ and one is a descendant of the other (markers skip such pairs)."""
        return a != b and (b in self.descendants(a) or a in self.descendants(b))

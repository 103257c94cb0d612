"""tissue -> tissue_general, through UBERON ancestors, with the ontologies cellxgene-ontology-guide ships."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TissueGeneral:
    """The tissue_general of a tissue term: its term id and label."""

    ontology_term_id: str
    label: str
    known: bool  # False: the term is not in the shipped ontology and was mapped to itself


class TissueMapper:
    """Maps a tissue term to the first high-level tissue (in the guide's priority order) among its ancestors.

    Terms the shipped ontology does not know map to themselves; ``unknown`` collects them for the report.
    """

    def __init__(self) -> None:
        self._cache: dict[str, TissueGeneral] = {}
        self.unknown: set[str] = set()

    @cached_property
    def _parser(self) -> Any:
        from cellxgene_ontology_guide.ontology_parser import OntologyParser

        return OntologyParser()

    @cached_property
    def _high_level(self) -> list[str]:
        from cellxgene_ontology_guide.curated_ontology_term_lists import get_curated_ontology_term_list
        from cellxgene_ontology_guide.entities import CuratedOntologyTermList

        return list(get_curated_ontology_term_list(CuratedOntologyTermList.TISSUE_GENERAL))

    def map(self, term_id: str, source_label: str) -> TissueGeneral:
        """Return the tissue_general of ``term_id`` (itself, labelled ``source_label``, if unknown)."""
        if term_id in self.unknown:  # maps to itself, labelled as this dataset labels it: never cached
            return TissueGeneral(term_id, source_label, known=False)
        hit = self._cache.get(term_id)
        if hit is None:
            hit = self._lookup(term_id, source_label)
            if hit.known:
                self._cache[term_id] = hit
        return hit

    def _lookup(self, term_id: str, source_label: str) -> TissueGeneral:
        try:
            general = self._parser.get_high_level_terms(term_id, self._high_level)
        except (KeyError, ValueError):
            self.unknown.add(term_id)
            logger.warning("tissue term %s is not in the shipped ontology; tissue_general maps it to itself", term_id)
            return TissueGeneral(term_id, source_label, known=False)
        target = general[0] if general else term_id
        return TissueGeneral(target, str(self._parser.get_term_label(target)), known=True)

"""tissue_general, the validator's own derivation: from the ontology guide's curated high-level tissues."""

from __future__ import annotations

from functools import cache
from typing import Any


class TissueGeneral:
    """tissue term -> (tissue_general term, label).

    The first of the guide's high-level tissues that the term is, or descends from; a term the shipped
    ontology does not know maps to itself with its source label.
    """

    def __init__(self) -> None:
        from cellxgene_ontology_guide.curated_ontology_term_lists import get_curated_ontology_term_list
        from cellxgene_ontology_guide.entities import CuratedOntologyTermList
        from cellxgene_ontology_guide.ontology_parser import OntologyParser

        self.parser: Any = OntologyParser()
        self.high_level = list(get_curated_ontology_term_list(CuratedOntologyTermList.TISSUE_GENERAL))

    def lookup(self, term: str, source_label: str) -> tuple[str, str, bool]:
        """(tissue_general term, its label, whether the ontology knows ``term``)."""
        try:
            hits = self.parser.get_high_level_terms(term, self.high_level)
        except (KeyError, ValueError):
            return term, source_label, False
        general = str(hits[0]) if hits else term
        return general, str(self.parser.get_term_label(general)), True


@cache
def tissue_general() -> TissueGeneral:
    """Return the process's one TissueGeneral (loading the ontology takes a while)."""
    return TissueGeneral()

"""Deterministic checks of Korean statute citations, hotline numbers and institution names.

See docs/citations.md. The pipeline's rejection rule is :func:`rejection_reasons` with a set of
verdict names (:data:`VERDICTS`; default :data:`DEFAULT_REJECT`).

>>> from koalign.cite import check_text, rejection_reasons
>>> report = check_text("형법 제307조와 109", load_locale("ko"))  # doctest: +SKIP
>>> rejection_reasons(report)  # doctest: +SKIP
{}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from koalign.cite.index import (
        CitationIndex,
        KnownLaw,
        check_text,
        index_for,
        load_statute_index,
    )
    from koalign.cite.report import (
        CITATION_STATUSES,
        CONTACT_STATUSES,
        DEFAULT_REJECT,
        INSTITUTION_STATUSES,
        PROBLEM_CITATIONS,
        PROBLEM_CONTACTS,
        VERDICTS,
        CitationReport,
        CitationStatus,
        CitationVerdict,
        ContactStatus,
        ContactVerdict,
        InstitutionStatus,
        InstitutionVerdict,
        Verdict,
        check_reject,
        rejection_reasons,
    )
    from koalign.cite.statute_index import StatuteIndex

#: Where each public name lives. The scanners and the index load on first use, so a module
#: that only needs the verdict names (a stage's config) does not import them.
_HOMES = {
    **dict.fromkeys(
        ("CitationIndex", "KnownLaw", "check_text", "index_for", "load_statute_index"), "index"
    ),
    **dict.fromkeys(
        (
            "CITATION_STATUSES",
            "CONTACT_STATUSES",
            "DEFAULT_REJECT",
            "INSTITUTION_STATUSES",
            "PROBLEM_CITATIONS",
            "PROBLEM_CONTACTS",
            "VERDICTS",
            "CitationReport",
            "CitationStatus",
            "CitationVerdict",
            "ContactStatus",
            "ContactVerdict",
            "InstitutionStatus",
            "InstitutionVerdict",
            "Verdict",
            "check_reject",
            "rejection_reasons",
        ),
        "report",
    ),
    "StatuteIndex": "statute_index",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'koalign.cite' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"koalign.cite.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CITATION_STATUSES",
    "CONTACT_STATUSES",
    "DEFAULT_REJECT",
    "INSTITUTION_STATUSES",
    "PROBLEM_CITATIONS",
    "PROBLEM_CONTACTS",
    "VERDICTS",
    "CitationIndex",
    "CitationReport",
    "CitationStatus",
    "CitationVerdict",
    "ContactStatus",
    "ContactVerdict",
    "InstitutionStatus",
    "InstitutionVerdict",
    "KnownLaw",
    "StatuteIndex",
    "Verdict",
    "check_reject",
    "check_text",
    "index_for",
    "load_statute_index",
    "rejection_reasons",
]

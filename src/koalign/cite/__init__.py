"""Deterministic checks of Korean statute citations, hotline numbers and institution names.

See docs/citations.md. The pipeline's rejection rule is :func:`rejection_reasons` with a set of
verdict names (:data:`VERDICTS`; default :data:`DEFAULT_REJECT`).

>>> from koalign.cite import check_text, rejection_reasons
>>> report = check_text("형법 제307조와 109", load_locale("ko"))  # doctest: +SKIP
>>> rejection_reasons(report)  # doctest: +SKIP
{}
"""

from koalign.cite.index import CitationIndex, KnownLaw, check_text, index_for, load_statute_index
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

"""Deterministic checks of Korean statute citations and hotline numbers (docs/citations.md).

>>> from koalign.cite import check_text
>>> report = check_text("형법 제307조와 109", load_locale("ko"))  # doctest: +SKIP
"""

from koalign.cite.index import CitationIndex, check_text, index_for
from koalign.cite.report import (
    PROBLEM_CITATIONS,
    PROBLEM_CONTACTS,
    CitationReport,
    CitationStatus,
    CitationVerdict,
    ContactStatus,
    ContactVerdict,
)

__all__ = [
    "PROBLEM_CITATIONS",
    "PROBLEM_CONTACTS",
    "CitationIndex",
    "CitationReport",
    "CitationStatus",
    "CitationVerdict",
    "ContactStatus",
    "ContactVerdict",
    "check_text",
    "index_for",
]

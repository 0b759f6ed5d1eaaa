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

#: The submodules that hold the public names, the lightest first: the scanners and the index
#: load on first use, so a module that only needs the verdict names (a stage's config) does not
#: import them.
_PARTS = ("report", "statute_index", "index")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for part in _PARTS:
            module = importlib.import_module(f"koalign.cite.{part}")
            if hasattr(module, name):
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module 'koalign.cite' has no attribute {name!r}")


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

"""Verdicts returned by the citation checker (see docs/citations.md).

The verdicts are frozen slotted dataclasses rather than pydantic models: a pipeline builds
hundreds of thousands of them, and they are only ever created by the checker from values it
has already validated. ``to_dict()`` gives the JSON shape; ``from_dict()`` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CitationStatus = Literal["verified", "outdated", "unverified", "nonexistent", "unknown_law"]
ContactStatus = Literal["current", "retired", "unknown"]
CITATION_STATUSES: tuple[str, ...] = (
    "verified", "outdated", "unverified", "nonexistent", "unknown_law",
)  # fmt: skip
CONTACT_STATUSES: tuple[str, ...] = ("current", "retired", "unknown")
PROBLEM_CITATIONS: frozenset[str] = frozenset({"outdated", "nonexistent", "unknown_law"})
PROBLEM_CONTACTS: frozenset[str] = frozenset({"retired"})


@dataclass(frozen=True, slots=True)
class CitationVerdict:
    """One statute citation found in a text and what the registry says about it.

    ``law``: canonical full official name of a known law, the name as written otherwise.
    ``law_id``: registry id, None for an unknown law. ``article``: ``"307"`` or ``"14의2"``,
    None for a bare mention of a law. ``paragraph`` (항) and ``item`` (호): numbers as text.
    ``span``: character offsets [start, end) in the checked text; ``text`` is that slice.
    ``replacement``: for an outdated article, the current article (None when repealed).
    ``relevant``: with a category, whether its policy lists the law (None without a category
    and for unknown laws).
    """

    law: str
    law_id: str | None
    article: str | None
    paragraph: str | None
    item: str | None
    status: CitationStatus
    span: tuple[int, int]
    text: str
    replacement: str | None = None
    relevant: bool | None = None

    @property
    def is_problem(self) -> bool:
        return self.status in PROBLEM_CITATIONS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "law": self.law,
            "law_id": self.law_id,
            "article": self.article,
            "paragraph": self.paragraph,
            "item": self.item,
            "status": self.status,
            "span": [self.span[0], self.span[1]],
            "text": self.text,
        }
        if self.replacement is not None:
            out["replacement"] = self.replacement
        if self.relevant is not None:
            out["relevant"] = self.relevant
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CitationVerdict:
        if data.get("status") not in CITATION_STATUSES:
            raise ValueError(f"unknown citation status {data.get('status')!r}")
        start, end = data["span"]
        return cls(
            law=data["law"],
            law_id=data.get("law_id"),
            article=data.get("article"),
            paragraph=data.get("paragraph"),
            item=data.get("item"),
            status=data["status"],
            span=(int(start), int(end)),
            text=data.get("text", ""),
            replacement=data.get("replacement"),
            relevant=data.get("relevant"),
        )


@dataclass(frozen=True, slots=True)
class ContactVerdict:
    """One hotline or phone number found in a text.

    ``number``: as written (``"109"``, ``"1577-1366"``, ``"#1388"``). ``name``/``contact_id``:
    the registry entry, None for an unknown number. ``replacement``: for a retired number,
    the number to use now.
    """

    number: str
    status: ContactStatus
    span: tuple[int, int]
    name: str | None = None
    contact_id: str | None = None
    replacement: str | None = None

    @property
    def is_problem(self) -> bool:
        return self.status in PROBLEM_CONTACTS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"number": self.number, "status": self.status}
        if self.name is not None:
            out["name"] = self.name
        if self.contact_id is not None:
            out["contact_id"] = self.contact_id
        out["span"] = [self.span[0], self.span[1]]
        if self.replacement is not None:
            out["replacement"] = self.replacement
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContactVerdict:
        if data.get("status") not in CONTACT_STATUSES:
            raise ValueError(f"unknown contact status {data.get('status')!r}")
        start, end = data["span"]
        return cls(
            number=data["number"],
            status=data["status"],
            span=(int(start), int(end)),
            name=data.get("name"),
            contact_id=data.get("contact_id"),
            replacement=data.get("replacement"),
        )


@dataclass(frozen=True, slots=True)
class CitationReport:
    """Everything the checker found in one text, in text order."""

    citations: list[CitationVerdict] = field(default_factory=list)
    contacts: list[ContactVerdict] = field(default_factory=list)

    @property
    def problems(self) -> list[CitationVerdict | ContactVerdict]:
        """Outdated, nonexistent and unknown-law citations, and retired numbers, in text order."""
        found: list[CitationVerdict | ContactVerdict] = [c for c in self.citations if c.is_problem]
        found += [c for c in self.contacts if c.is_problem]
        return sorted(found, key=lambda v: v.span)

    @property
    def ok(self) -> bool:
        """True when nothing in the text is a problem."""
        return not any(c.is_problem for c in self.citations) and not any(
            c.is_problem for c in self.contacts
        )

    def counts(self) -> dict[str, int]:
        """Citations per status and contacts per status (keys ``contact_<status>``)."""
        out: dict[str, int] = {}
        for c in self.citations:
            out[c.status] = out.get(c.status, 0) + 1
        for k in self.contacts:
            key = f"contact_{k.status}"
            out[key] = out.get(key, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"citations": [...], "contacts": [...]}`` (the shape of ``koalign cite check --json``)."""
        return {
            "citations": [c.to_dict() for c in self.citations],
            "contacts": [c.to_dict() for c in self.contacts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CitationReport:
        return cls(
            citations=[CitationVerdict.from_dict(c) for c in data.get("citations", [])],
            contacts=[ContactVerdict.from_dict(c) for c in data.get("contacts", [])],
        )

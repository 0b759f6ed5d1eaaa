"""Verdicts returned by the citation checker, and the rule that rejects answers (docs/citations.md).

The verdicts are frozen slotted dataclasses rather than pydantic models: a pipeline builds
hundreds of thousands of them, and they are only ever created by the checker from values it
has already validated. ``to_dict()`` gives the JSON shape; ``from_dict()`` reads it back.

Every finding has one *verdict name* in a single namespace, used for counts and for the
rejection rule: the citation statuses as they are (``"verified"``, ``"outdated"`` ...), and
``"contact_<status>"`` / ``"institution_<status>"`` for numbers and institution names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from koalign.errors import KoalignError, did_you_mean

CitationStatus = Literal[
    "verified", "unregistered", "nonexistent", "outdated", "unknown_law", "unverified"
]
ContactStatus = Literal["current", "retired", "unknown"]
InstitutionStatus = Literal["renamed", "historical", "mentioned"]
Verdict = Literal[
    "verified", "unregistered", "nonexistent", "outdated", "unknown_law", "unverified",
    "contact_current", "contact_retired", "contact_unknown",
    "institution_renamed", "institution_historical", "institution_mentioned",
]  # fmt: skip
CITATION_STATUSES: tuple[str, ...] = get_args(CitationStatus)
CONTACT_STATUSES: tuple[str, ...] = get_args(ContactStatus)
INSTITUTION_STATUSES: tuple[str, ...] = get_args(InstitutionStatus)
VERDICTS: tuple[str, ...] = get_args(Verdict)

DEFAULT_REJECT: frozenset[str] = frozenset(
    {"outdated", "nonexistent", "unknown_law", "contact_retired", "institution_renamed"}
)
"""Verdicts that reject an answer by default: a wrong or stale citation, a law that does not
exist, a retired hotline, and a renamed institution named as today's body. ``unregistered``
(real, but not curated) and ``unverified`` (curated, not confirmed) are kept and counted."""
PROBLEM_CITATIONS: frozenset[str] = frozenset(v for v in DEFAULT_REJECT if v in CITATION_STATUSES)
PROBLEM_CONTACTS: frozenset[str] = frozenset({"retired"})


def check_reject(names: Iterable[str]) -> frozenset[str]:
    """Validate a set of verdict names (e.g. from a config); KoalignError naming a bad one."""
    out = frozenset(names)
    for name in sorted(out):
        if name not in VERDICTS:
            raise KoalignError(
                f"unknown citation verdict '{name}'{did_you_mean(name, VERDICTS)}",
                hint=f"verdicts: {', '.join(VERDICTS)}",
            )
    return out


@dataclass(frozen=True, slots=True)
class CitationVerdict:
    """One statute citation found in a text and what the registry and the statute index say.

    ``law``: canonical full official name of a known law, the name as written otherwise.
    ``law_id``: registry id (None when the law is not in the hand registry). ``article``:
    ``"307"`` or ``"14의2"``, None for a bare mention of a law. ``paragraph`` (항) and ``item``
    (호, ``"2의2"`` for a branch item): numbers as text. ``span``: character offsets [start, end)
    in the checked text; ``text`` is that slice. ``replacement``: for an outdated article, the
    current article (None when repealed or deleted). ``relevant``: with a category, whether its
    policy lists the law (None without a category, and for laws not in the registry).
    ``confidence``: the registry entry's confidence (``verified``/``high``/``unverified``), None
    when the registry has no entry for the article. ``inferred``: the article was written
    without a law name and attached to the law named last in the sentence (carry-forward).
    ``reason``: a short English explanation of a verdict other than verified (e.g.
    ``"paragraph 3 deleted 2023-07-11"``).
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
    confidence: str | None = None
    inferred: bool = False
    reason: str | None = None

    @property
    def verdict(self) -> str:
        """The verdict name: the citation status itself (``verified``, ``outdated`` ...)."""
        return self.status

    @property
    def is_problem(self) -> bool:
        """True when the status rejects an answer by default (``outdated``, ``nonexistent``,
        ``unknown_law``)."""
        return self.status in PROBLEM_CITATIONS

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: always law, law_id, article, paragraph, item, status, ``span`` as
        ``[start, end]`` and text; the optional fields only when set."""
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
        if self.confidence is not None:
            out["confidence"] = self.confidence
        if self.inferred:
            out["inferred"] = True
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CitationVerdict:
        """Read back :meth:`to_dict`'s shape.

        Raises:
            ValueError: ``status`` is not a citation status.
            KeyError: ``law`` or ``span`` is missing.
        """
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
            confidence=data.get("confidence"),
            inferred=bool(data.get("inferred", False)),
            reason=data.get("reason"),
        )


@dataclass(frozen=True, slots=True)
class ContactVerdict:
    """One hotline or phone number found in a text.

    ``number``: as written (``"109"``, ``"1577-1366"``, ``"#1388"``, ``"041-1366"``).
    ``name``/``contact_id``: the registry entry, None for an unknown number. ``replacement``:
    for a retired number, the number to use now. ``confidence``: the registry entry's
    confidence (an ``unverified`` entry is reported with its status and this signal).
    """

    number: str
    status: ContactStatus
    span: tuple[int, int]
    name: str | None = None
    contact_id: str | None = None
    replacement: str | None = None
    confidence: str | None = None

    @property
    def verdict(self) -> str:
        """The verdict name: ``contact_<status>`` (``contact_current``, ``contact_retired``,
        ``contact_unknown``)."""
        return f"contact_{self.status}"

    @property
    def is_problem(self) -> bool:
        """True for a retired number."""
        return self.status in PROBLEM_CONTACTS

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: number, status, ``span`` as ``[start, end]``; name, contact_id,
        replacement and confidence only when set."""
        out: dict[str, Any] = {"number": self.number, "status": self.status}
        if self.name is not None:
            out["name"] = self.name
        if self.contact_id is not None:
            out["contact_id"] = self.contact_id
        out["span"] = [self.span[0], self.span[1]]
        if self.replacement is not None:
            out["replacement"] = self.replacement
        if self.confidence is not None:
            out["confidence"] = self.confidence
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContactVerdict:
        """Read back :meth:`to_dict`'s shape.

        Raises:
            ValueError: ``status`` is not a contact status.
            KeyError: ``number`` or ``span`` is missing.
        """
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
            confidence=data.get("confidence"),
        )


@dataclass(frozen=True, slots=True)
class InstitutionVerdict:
    """A former name of a renamed institution found in a text.

    ``status``: ``renamed`` when the text names the old body as one that acts or is contacted
    today, ``historical`` when the sentence marks it as past (a year before the rename,
    구/옛/당시, a past-tense verb, or the current name beside it), ``mentioned`` otherwise
    (see :mod:`koalign.cite.institutions`). ``current_name``: the name since ``renamed_on``.
    """

    name: str
    status: InstitutionStatus
    span: tuple[int, int]
    institution_id: str
    current_name: str
    renamed_on: str | None = None
    confidence: str | None = None

    @property
    def verdict(self) -> str:
        """The verdict name: ``institution_<status>`` (``institution_renamed``,
        ``institution_historical``, ``institution_mentioned``)."""
        return f"institution_{self.status}"

    @property
    def is_problem(self) -> bool:
        """True when the verdict rejects an answer by default (``institution_renamed``)."""
        return self.verdict in DEFAULT_REJECT

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: name, status, institution_id, current_name, ``span`` as ``[start, end]``;
        renamed_on and confidence only when set."""
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "institution_id": self.institution_id,
            "current_name": self.current_name,
            "span": [self.span[0], self.span[1]],
        }
        if self.renamed_on is not None:
            out["renamed_on"] = self.renamed_on
        if self.confidence is not None:
            out["confidence"] = self.confidence
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstitutionVerdict:
        """Read back :meth:`to_dict`'s shape.

        Raises:
            ValueError: ``status`` is not an institution status.
            KeyError: a required field (name, span, institution_id, current_name) is missing.
        """
        if data.get("status") not in INSTITUTION_STATUSES:
            raise ValueError(f"unknown institution status {data.get('status')!r}")
        start, end = data["span"]
        return cls(
            name=data["name"],
            status=data["status"],
            span=(int(start), int(end)),
            institution_id=data["institution_id"],
            current_name=data["current_name"],
            renamed_on=data.get("renamed_on"),
            confidence=data.get("confidence"),
        )


Finding = CitationVerdict | ContactVerdict | InstitutionVerdict


@dataclass(frozen=True, slots=True)
class CitationReport:
    """Everything the checker found in one text, in text order."""

    citations: list[CitationVerdict] = field(default_factory=list)
    contacts: list[ContactVerdict] = field(default_factory=list)
    institutions: list[InstitutionVerdict] = field(default_factory=list)

    def findings(self) -> list[Finding]:
        """All verdicts in text order."""
        found: list[Finding] = [*self.citations, *self.contacts, *self.institutions]
        return sorted(found, key=lambda v: v.span)

    @property
    def problems(self) -> list[Finding]:
        """Findings whose verdict is in :data:`DEFAULT_REJECT`, in text order."""
        return [f for f in self.findings() if f.verdict in DEFAULT_REJECT]

    @property
    def ok(self) -> bool:
        """True when nothing in the text is in :data:`DEFAULT_REJECT`."""
        return not rejection_reasons(self)

    def counts(self) -> dict[str, int]:
        """Findings per verdict name (``verified``, ``contact_retired``, ``institution_renamed``...)."""
        out: dict[str, int] = {}
        for f in self.findings():
            out[f.verdict] = out.get(f.verdict, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"citations": [...], "contacts": [...], "institutions": [...]}``."""
        return {
            "citations": [c.to_dict() for c in self.citations],
            "contacts": [c.to_dict() for c in self.contacts],
            "institutions": [i.to_dict() for i in self.institutions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CitationReport:
        """Read back :meth:`to_dict`'s shape (missing lists are empty).

        Raises:
            ValueError: a finding has an unknown status.
        """
        return cls(
            citations=[CitationVerdict.from_dict(c) for c in data.get("citations", [])],
            contacts=[ContactVerdict.from_dict(c) for c in data.get("contacts", [])],
            institutions=[InstitutionVerdict.from_dict(i) for i in data.get("institutions", [])],
        )


def _verdict_counts(report: CitationReport | Mapping[str, Any]) -> dict[str, int]:
    if isinstance(report, CitationReport):
        return report.counts()
    out: dict[str, int] = {}
    for key, prefix in (
        ("citations", ""),
        ("contacts", "contact_"),
        ("institutions", "institution_"),
    ):
        for row in report.get(key, []) or []:
            name = prefix + str(row.get("status"))
            out[name] = out.get(name, 0) + 1
    return out


def rejection_reasons(
    report: CitationReport | Mapping[str, Any], reject: Iterable[str] = DEFAULT_REJECT
) -> dict[str, int]:
    """The verdicts that reject an answer, with how many times each occurs (empty: keep it).

    ``report`` is a :class:`CitationReport` or its ``to_dict()`` form (as stored in a stage's
    JSONL). ``reject`` is a set of verdict names from :data:`VERDICTS`; the default is
    :data:`DEFAULT_REJECT`. Pure: it reads the report and nothing else. Example::

        rejection_reasons(report)                              # {"outdated": 1}
        rejection_reasons(report, DEFAULT_REJECT | {"unregistered"})
    """
    wanted = reject if reject is DEFAULT_REJECT else check_reject(reject)
    return {k: n for k, n in sorted(_verdict_counts(report).items()) if k in wanted}

"""The citation index: registries compiled once, then used to check any number of texts."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from koalign.cite.contacts import find_numbers
from koalign.cite.contacts import number_key as _number_key
from koalign.cite.grammar import Ref
from koalign.cite.report import CitationReport, CitationStatus, CitationVerdict, ContactVerdict
from koalign.cite.statutes import StatuteScanner
from koalign.errors import KoalignError, did_you_mean
from koalign.locale_schema import Article, Contact, Contacts, Law, Policy, Statutes

if TYPE_CHECKING:
    from koalign.locale import Locale

log = logging.getLogger(__name__)
_CACHE_SIZE = 8


class CitationIndex:
    """Statute names, articles, contact numbers and category relevance, compiled once.

    Build it from registry models directly (``CitationIndex(statutes, contacts, policy)``)
    or from a locale (``CitationIndex.from_locale(loc)``); then call :meth:`check`.
    """

    def __init__(
        self, statutes: Statutes, contacts: Contacts, policy: Policy | None = None
    ) -> None:
        self.statutes = statutes
        self.contacts = contacts
        self._laws: dict[str, Law] = {law.id: law for law in statutes.laws}
        self._articles: dict[str, dict[str, Article]] = {
            law.id: {a.article: a for a in law.articles} for law in statutes.laws
        }
        names: dict[str, str] = {}
        for law in statutes.laws:
            for name in (law.name, *law.aliases):
                names[name] = law.id
        self._scanner = StatuteScanner(names)
        self._numbers: dict[str, list[Contact]] = {}
        for c in contacts.contacts:
            if c.number:
                self._numbers.setdefault(_number_key(c.number), []).append(c)
        self._short_keys = frozenset(k for k in self._numbers if len(k) <= 4)
        self._relevant: dict[str, frozenset[str]] = {}
        if policy is not None:
            for cid, cp in policy.policies.items():
                refs = [s.ref for s in cp.p1_statutes]
                refs += [r for pop in cp.p2_populations for r in pop.refs]
                self._relevant[cid] = frozenset(r.partition(":")[0] for r in refs)

    @classmethod
    def from_locale(cls, loc: Locale) -> CitationIndex:
        return cls(loc.statutes, loc.contacts, loc.policy)

    @property
    def categories(self) -> list[str]:
        """Categories whose policy can be used for relevance hints."""
        return sorted(self._relevant)

    # ------------------------------------------------------------------ checking
    def check(self, text: str, *, category: str | None = None) -> CitationReport:
        """Find and judge every statute citation and phone number in ``text``."""
        relevant = self.relevant_laws(category)
        citations = self._citations(text, relevant)
        contacts = self._contacts(text)
        return CitationReport(citations=citations, contacts=contacts)

    def check_many(
        self, texts: Iterable[str], *, category: str | None = None
    ) -> list[CitationReport]:
        """:meth:`check` for each text, in order."""
        return [self.check(t, category=category) for t in texts]

    def relevant_laws(self, category: str | None) -> frozenset[str] | None:
        """Law ids the category's policy lists (None without a category); unknown: KoalignError."""
        if category is None:
            return None
        if category not in self._relevant:
            known = self.categories
            raise KoalignError(
                f"no policy for category '{category}'{did_you_mean(category, known)}",
                hint=f"categories: {', '.join(known) or 'none (no policy given)'}",
            )
        return self._relevant[category]

    def _citations(self, text: str, relevant: frozenset[str] | None) -> list[CitationVerdict]:
        out: list[CitationVerdict] = []
        last_law: tuple[str | None, str] | None = None  # (law id, name) of the last law named
        cited_law: tuple[str | None, str] | None = None  # the law of the last article cited
        for mention in self._scanner.scan(text):
            if mention.kind in ("law", "unknown"):
                law_ref: tuple[str | None, str] = (mention.key, mention.name)
                last_law = law_ref
            elif mention.kind == "article_anaphor" and cited_law is not None:
                law_ref = cited_law  # 같은 조: the article cited last, in its own law
            elif last_law is None:
                continue  # an anaphor with nothing to point back to
            else:
                law_ref = last_law
            if mention.refs:
                cited_law = law_ref
            if not mention.refs:
                out.append(self._verdict(law_ref, None, mention.start, mention.end, text, relevant))
                continue
            for i, ref in enumerate(mention.refs):
                start = mention.start if i == 0 else ref.start
                out.append(self._verdict(law_ref, ref, start, ref.end, text, relevant))
        return out

    def _verdict(
        self,
        law_ref: tuple[str | None, str],
        ref: Ref | None,
        start: int,
        end: int,
        text: str,
        relevant: frozenset[str] | None,
    ) -> CitationVerdict:
        law_id, written = law_ref
        law = self._laws.get(law_id) if law_id else None
        article = ref.article if ref else None
        status: CitationStatus
        replacement = None
        if law is None:
            status = "unknown_law"
        elif ref is None:
            status = "verified"
        else:
            status, replacement = self._judge(law, ref)
        return CitationVerdict(
            law=law.name if law else written.strip(),
            law_id=law.id if law else None,
            article=article,
            paragraph=ref.paragraph if ref else None,
            item=ref.item if ref else None,
            status=status,
            span=(start, end),
            text=text[start:end],
            replacement=replacement,
            relevant=(law.id in relevant) if (relevant is not None and law) else None,
        )

    def _judge(self, law: Law, ref: Ref) -> tuple[CitationStatus, str | None]:
        entry = self._articles[law.id].get(ref.article or "")
        if entry is None:
            main = ref.main or 0
            if main == 0 or (law.last_article is not None and main > law.last_article):
                return "nonexistent", None
            return "unverified", None
        if entry.status != "current":
            return "outdated", entry.replaced_by
        if entry.confidence == "unverified":
            return "unverified", None
        if ref.paragraph is not None and entry.paragraphs and ref.paragraph not in entry.paragraphs:
            return "unverified", None
        return "verified", None

    def _contacts(self, text: str) -> list[ContactVerdict]:
        out: list[ContactVerdict] = []
        for f in find_numbers(text, self._short_keys):
            known = self._numbers.get(f.key)
            if not known:
                if f.registry_only:
                    continue
                out.append(ContactVerdict(number=f.number, status="unknown", span=(f.start, f.end)))
                continue
            current = [c for c in known if c.status == "current"]
            chosen = current[0] if current else known[0]
            replacement = None
            if not current and chosen.replaced_by:
                repl = self.contacts.contact(chosen.replaced_by)
                replacement = repl.number if repl else None
            out.append(
                ContactVerdict(
                    number=f.number,
                    status="current" if current else "retired",
                    name=chosen.name,
                    contact_id=chosen.id,
                    span=(f.start, f.end),
                    replacement=replacement,
                )
            )
        return out


_INDEXES: OrderedDict[str, CitationIndex] = OrderedDict()


def index_for(loc: Locale | CitationIndex) -> CitationIndex:
    """The index of a locale, built on first use and kept (keyed by the pack's digest)."""
    if isinstance(loc, CitationIndex):
        return loc
    index = _INDEXES.get(loc.digest)
    if index is None:
        log.debug("building citation index for locale %s", loc.id)
        index = CitationIndex.from_locale(loc)
        _INDEXES[loc.digest] = index
        while len(_INDEXES) > _CACHE_SIZE:
            _INDEXES.popitem(last=False)
    else:
        _INDEXES.move_to_end(loc.digest)
    return index


def check_text(
    text: str, loc: Locale | CitationIndex, *, category: str | None = None
) -> CitationReport:
    """Check the statute citations and phone numbers in ``text`` against a locale's registries.

    ``category`` (e.g. ``"G"``) adds a relevance hint per citation: whether the category's
    policy (p1_statutes and p2_populations refs) lists the cited law.
    """
    return index_for(loc).check(text, category=category)


__all__ = ["CitationIndex", "check_text", "index_for"]

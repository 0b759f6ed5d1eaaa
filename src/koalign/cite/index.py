"""The citation index: registries and the statute index compiled once, then used on any text."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from koalign.cite.contacts import find_numbers
from koalign.cite.contacts import number_key as _number_key
from koalign.cite.grammar import Ref
from koalign.cite.institutions import InstitutionScanner
from koalign.cite.report import CitationReport, CitationStatus, CitationVerdict, ContactVerdict
from koalign.cite.statute_index import INDEX_FILE, LawFacts, StatuteIndex, item_key, name_key
from koalign.cite.statutes import StatuteScanner
from koalign.errors import KoalignError, did_you_mean
from koalign.locale_schema import Article, Contact, Contacts, Law, Policy, Statutes

if TYPE_CHECKING:
    from koalign.locale import Locale

log = logging.getLogger(__name__)
_CACHE_SIZE = 8


# Corpus texts promulgated before this date are suspected to be historical versions (the
# snapshot holds 방송법 of 1980 and 헌법재판소법 of 1997): only existence is asserted from them.
OLD_TEXT_BEFORE = date(2005, 1, 1)


@dataclass(frozen=True)
class KnownLaw:
    """A law the checker knows: from the hand registry, the statute index, or both."""

    key: str  # name key of the official name
    name: str  # official name
    registry: Law | None
    facts: LawFacts | None

    @property
    def text_usable(self) -> bool:
        """The corpus holds the Act's text (not a repeal notice, not an article-less file)."""
        return self.facts is not None and self.facts.checkable

    @property
    def absence_trusted(self) -> bool:
        """A provision missing from the corpus text really does not exist: the text is not
        older than the version the registry was checked against, and not a suspected historical
        version (see OLD_TEXT_BEFORE) unless the registry was checked against that very text."""
        if self.facts is None or self.facts.promulgated is None:
            return False
        corpus = self.facts.promulgated
        reg = self.registry.promulgated if self.registry else None
        if reg and reg > corpus:
            return False
        return corpus >= OLD_TEXT_BEFORE or reg == corpus


@dataclass(frozen=True)
class _Judgement:
    status: CitationStatus
    replacement: str | None = None
    confidence: str | None = None
    reason: str | None = None


def statute_index_path(loc: Locale) -> Path:
    """Where a locale keeps its statute index (``<pack>/statute_index.json.gz``)."""
    return Path(loc.path) / INDEX_FILE


def load_statute_index(loc: Locale) -> StatuteIndex | None:
    """The locale's statute index, or None when the pack ships none."""
    path = statute_index_path(loc)
    return StatuteIndex.load(path) if path.is_file() else None


class CitationIndex:
    """Statute names, articles, contact numbers, institutions and category relevance.

    Build it from registry models directly (``CitationIndex(statutes, contacts, policy,
    statute_index)``) or from a locale (``CitationIndex.from_locale(loc)``, which loads the
    pack's ``statute_index.json.gz`` when there is one); then call :meth:`check`. Without a
    statute index only the hand registry is consulted (docs/citations.md, "Verdicts").
    ``today`` (default: the current date) decides whether a deletion is already in force.
    """

    def __init__(
        self,
        statutes: Statutes,
        contacts: Contacts,
        policy: Policy | None = None,
        statute_index: StatuteIndex | None = None,
        *,
        today: date | None = None,
    ) -> None:
        self.statutes = statutes
        self.contacts = contacts
        self.statute_index = statute_index
        self.today = today or date.today()
        self.laws: dict[str, KnownLaw] = {}
        names: dict[str, str] = {}
        for law in statutes.laws:
            facts = statute_index.law(law.name) if statute_index else None
            key = name_key(law.name)
            self.laws[key] = KnownLaw(key, law.name, law, facts)
            for name in (law.name, *law.aliases):
                names[name] = key
        extra: list[str] = []
        if statute_index is not None:
            for facts in statute_index.laws:
                key = name_key(facts.name)
                if key not in self.laws:
                    self.laws[key] = KnownLaw(key, facts.name, None, facts)
                    extra.append(key)
        self._registry_articles: dict[str, dict[str, Article]] = {
            law.id: {a.article: a for a in law.articles} for law in statutes.laws
        }
        self._scanner = StatuteScanner(names, extra)
        self._institutions = InstitutionScanner(contacts.institutions)
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
        """The index of a locale pack: its statutes, contacts and policy, and its
        ``statute_index.json.gz`` when the pack ships one."""
        return cls(loc.statutes, loc.contacts, loc.policy, load_statute_index(loc))

    @property
    def categories(self) -> list[str]:
        """Categories whose policy can be used for relevance hints."""
        return sorted(self._relevant)

    def known_law(self, name: str) -> KnownLaw | None:
        """The law a name or alias refers to (registry or statute index), None if unknown."""
        key = self._scanner.law_key(name)
        return self.laws.get(key) if key else None

    # ------------------------------------------------------------------ checking
    def check(self, text: str, *, category: str | None = None) -> CitationReport:
        """Find and judge every statute citation, phone number and former institution name."""
        relevant = self.relevant_laws(category)
        return CitationReport(
            citations=self._citations(text, relevant),
            contacts=self._contacts(text),
            institutions=self._institutions.scan(text),
        )

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
        last_law: tuple[KnownLaw | None, str] | None = None  # the law named last
        cited_law: tuple[KnownLaw | None, str] | None = None  # the law of the last article cited
        for mention in self._scanner.scan(text):
            if mention.kind == "blocked":
                continue
            if mention.kind in ("law", "unknown"):
                law_ref = (self.laws.get(mention.key) if mention.key else None, mention.name)
                last_law = law_ref
            elif mention.kind == "article_anaphor" and cited_law is not None:
                law_ref = cited_law  # 같은 조: the article cited last, in its own law
            elif last_law is None:
                continue  # an anaphor with nothing to point back to
            else:
                law_ref = last_law
            if mention.refs:
                cited_law = law_ref
            inferred = mention.kind == "inferred"
            if not mention.refs:
                out.append(self._verdict(law_ref, None, mention.start, mention.end, text, relevant))
                continue
            for i, ref in enumerate(mention.refs):
                start = mention.start if i == 0 else ref.start
                out.append(
                    self._verdict(law_ref, ref, start, ref.end, text, relevant, inferred=inferred)
                )
        return out

    def _verdict(
        self,
        law_ref: tuple[KnownLaw | None, str],
        ref: Ref | None,
        start: int,
        end: int,
        text: str,
        relevant: frozenset[str] | None,
        *,
        inferred: bool = False,
    ) -> CitationVerdict:
        law, written = law_ref
        if law is None:
            judged = _Judgement(
                "unknown_law", reason="not a Korean Act the index or registry knows"
            )
        elif ref is None:
            judged = _Judgement("verified" if law.registry else "unregistered")
        else:
            judged = self.judge(law, ref.article or "0", ref.paragraph, ref.item)
        registry_id = law.registry.id if law and law.registry else None
        return CitationVerdict(
            law=law.name if law else written.strip(),
            law_id=registry_id,
            article=ref.article if ref else None,
            paragraph=ref.paragraph if ref else None,
            item=ref.item if ref else None,
            status=judged.status,
            span=(start, end),
            text=text[start:end],
            replacement=judged.replacement,
            relevant=(registry_id in relevant) if (relevant is not None and registry_id) else None,
            confidence=judged.confidence,
            inferred=inferred,
            reason=judged.reason,
        )

    # ------------------------------------------------------------------ judging
    def judge(
        self, law: KnownLaw, article: str, paragraph: str | None = None, item: str | None = None
    ) -> _Judgement:
        """The verdict on one provision of a known law (docs/citations.md, "Verdicts")."""
        entry = self._registry_articles[law.registry.id].get(article) if law.registry else None
        confidence = entry.confidence if entry else None
        if entry is not None and entry.status != "current":
            reason = f"registry: {entry.status}"
            if entry.replaced_by:
                reason += f"; now 제{_art(entry.replaced_by)}"
            if entry.effective:
                reason += f" (since {entry.effective.isoformat()})"
            return _Judgement("outdated", entry.replaced_by, confidence, reason)
        main = int(article.split("의")[0])
        if main == 0:
            return _Judgement("nonexistent", confidence=confidence, reason="article 0")
        if law.text_usable:
            return self._judge_text(law, entry, article, paragraph, item)
        repealed = self._repealed(law)
        if repealed is not None:
            return _Judgement(
                "outdated", confidence=confidence, reason=f"the Act was repealed ({repealed})"
            )
        if law.registry is None:
            return _Judgement("unverified", reason=self._no_text(law))
        return self._judge_registry(law, entry, main, paragraph, item)

    def _repealed(self, law: KnownLaw) -> date | None:
        """The date a recent repeal notice took effect (an Act repealed, not a stale file)."""
        facts = law.facts
        if facts is None or "repeal_notice" not in facts.flags or law.registry is not None:
            return None
        if facts.promulgated is None or facts.promulgated < OLD_TEXT_BEFORE:
            return None
        when = facts.effective or facts.promulgated
        return when if when <= self.today else None

    def _absent(self, law: KnownLaw, entry: Article | None, what: str) -> _Judgement:
        """A provision the corpus text lacks: nonexistent, unless the registry follows a newer
        amendment or the corpus text may be an old version (then nothing is asserted)."""
        assert law.facts is not None
        confidence = entry.confidence if entry else None
        if entry is not None and _newer_than(entry, law.facts.promulgated):
            return _Judgement(
                "unverified" if confidence == "unverified" else "verified",
                confidence=confidence,
                reason="registry entry newer than the statute corpus",
            )
        if not law.absence_trusted:
            return _Judgement(
                "unverified",
                confidence=confidence,
                reason=f"{what} not in the corpus text of {law.facts.promulgated}, "
                "which may be older than the Act in force",
            )
        return _Judgement("nonexistent", confidence=confidence, reason=f"{what} the statute text")

    def _judge_text(
        self,
        law: KnownLaw,
        entry: Article | None,
        article: str,
        paragraph: str | None,
        item: str | None,
    ) -> _Judgement:
        assert law.facts is not None
        confidence = entry.confidence if entry else None
        facts = law.facts.article(article)
        if facts is None:
            last = law.facts.last_article
            judged = self._absent(law, entry, f"no 제{_art(article)} in")
            if judged.status == "nonexistent":
                return _Judgement(
                    "nonexistent",
                    confidence=confidence,
                    reason=f"no 제{_art(article)} in the statute text (last article 제{last}조)",
                )
            return judged
        if facts.deleted and self._in_force(facts, facts.deleted):
            return _Judgement(
                "outdated", confidence=confidence, reason=f"article deleted {facts.deleted}"
            )
        p = int(paragraph) if paragraph else None
        if p is not None:
            if not facts.has_paragraph(p):
                judged = self._absent(law, entry, f"paragraph {p} not in")
                if judged.status != "nonexistent":
                    return judged
                shape = f"{facts.paragraphs} paragraphs" if facts.paragraphs else "one paragraph"
                return _Judgement(
                    "nonexistent",
                    confidence=confidence,
                    reason=f"paragraph {p} not in the statute text ({shape})",
                )
            deleted = facts.deleted_paragraphs.get(p)
            if deleted and self._in_force(facts, deleted):
                return _Judgement(
                    "outdated", confidence=confidence, reason=f"paragraph {p} deleted {deleted}"
                )
        if item is not None:
            group = facts.item_group(p)
            groups = [group] if group is not None else list(facts.items)
            key = item_key(item)
            if not any(key in g for g in groups):
                where = f"paragraph {p}" if p else f"제{_art(article)}"
                judged = self._absent(law, entry, f"item {item} not in {where} of")
                return judged
            deleted = next(
                (
                    when
                    for (in_para, label), when in facts.deleted_items.items()
                    if label == item and (p is None or in_para in (p, 0))
                ),
                None,
            )
            if deleted and self._in_force(facts, deleted):
                return _Judgement(
                    "outdated", confidence=confidence, reason=f"item {item} deleted {deleted}"
                )
        pending = (
            f"; its latest amendment takes effect {facts.effective}"
            if facts.effective and facts.effective > self.today
            else ""
        )
        if entry is None:
            return _Judgement(
                "unregistered", reason="in the statute text; no registry entry" + pending
            )
        if entry.confidence == "unverified":
            return _Judgement(
                "unverified", confidence=confidence, reason="registry entry unverified" + pending
            )
        if p is not None and entry.paragraphs and str(p) not in entry.paragraphs:
            return _Judgement(
                "unregistered",
                confidence=confidence,
                reason=f"paragraph {p} exists; the registry entry covers {entry.paragraphs}"
                + pending,
            )
        return _Judgement("verified", confidence=confidence, reason=pending[2:] or None)

    def _judge_registry(
        self,
        law: KnownLaw,
        entry: Article | None,
        main: int,
        paragraph: str | None,
        item: str | None,
    ) -> _Judgement:
        """No statute text for this law: the hand registry alone."""
        assert law.registry is not None
        if entry is None:
            last = law.registry.last_article
            if last is not None and main > last:
                return _Judgement("nonexistent", reason=f"beyond the last article ({last})")
            return _Judgement(
                "unverified", reason=f"article not in the registry; {self._no_text(law)}"
            )
        confidence = entry.confidence
        if confidence == "unverified":
            return _Judgement(
                "unverified", confidence=confidence, reason="registry entry unverified"
            )
        if paragraph is not None and paragraph not in entry.paragraphs:
            return _Judgement(
                "unverified",
                confidence=confidence,
                reason=f"paragraph {paragraph} not listed by the registry; {self._no_text(law)}",
            )
        if item is not None:
            return _Judgement(
                "unverified",
                confidence=confidence,
                reason=f"items need the statute text; {self._no_text(law)}",
            )
        return _Judgement("verified", confidence=confidence)

    def _no_text(self, law: KnownLaw) -> str:
        """Why the statute text cannot judge ``law``: no index at all, no entry for the law, or
        an entry whose corpus file is a repeal notice or has no numbered articles."""
        facts = law.facts
        if self.statute_index is None:
            return "no statute index"
        if facts is None:
            return "the statute index has no text of this Act"
        return f"the statute index has {facts.unchecked_reason}"

    def _in_force(self, facts: object, deleted: date) -> bool:
        """A deletion counts once its amendment is in force (its effective date has passed)."""
        effective = getattr(facts, "effective", None)
        amended = getattr(facts, "amended", ())
        pending = effective and amended and max(amended) == deleted and effective > self.today
        return not pending

    # ------------------------------------------------------------------ contacts
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
                    confidence=chosen.confidence,
                )
            )
        return out


def _art(article: str) -> str:
    main, _, branch = article.partition("의")
    return f"{main}조" + (f"의{branch}" if branch else "")


def _newer_than(entry: Article, corpus: date | None) -> bool:
    """The entry follows an amendment promulgated after the corpus text of its law."""
    return bool(corpus and entry.promulgated and entry.promulgated > corpus)


_INDEXES: OrderedDict[tuple[str, str], CitationIndex] = OrderedDict()
_BUILD = threading.Lock()  # one build at a time: a second caller waits for the first one's index


def _index_stamp(loc: Locale) -> str:
    path = statute_index_path(loc)
    try:
        st = path.stat()
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}"


def index_for(loc: Locale | CitationIndex) -> CitationIndex:
    """The index of a locale, built on first use and kept (keyed by the pack's digest and the
    statute index file's size and modification time). Thread-safe: a caller that arrives while
    another thread builds the same index waits for it."""
    if isinstance(loc, CitationIndex):
        return loc
    key = (loc.digest, _index_stamp(loc))
    index = _INDEXES.get(key)
    if index is not None:
        return index
    with _BUILD:
        index = _INDEXES.get(key)
        if index is None:
            log.debug("building citation index for locale %s", loc.id)
            index = CitationIndex.from_locale(loc)
            _INDEXES[key] = index
            while len(_INDEXES) > _CACHE_SIZE:
                _INDEXES.popitem(last=False)
        else:
            _INDEXES.move_to_end(key)
    return index


def check_text(
    text: str, loc: Locale | CitationIndex, *, category: str | None = None
) -> CitationReport:
    """Check the statute citations, phone numbers and institution names in ``text``.

    ``loc`` is a locale (its registries and statute index) or a prebuilt
    :class:`CitationIndex`. ``category`` (e.g. ``"G"``) adds a relevance hint per citation:
    whether the category's policy (p1_statutes and p2_populations refs) lists the cited law.
    The report is JSON-serialisable through ``to_dict()``; see :func:`rejection_reasons`.
    """
    return index_for(loc).check(text, category=category)


__all__ = ["CitationIndex", "KnownLaw", "check_text", "index_for", "load_statute_index"]

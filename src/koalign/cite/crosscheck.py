"""Cross-checks of the hand registry (statutes.yaml) against the statutes themselves.

Two levels:

* :func:`check_against_index` (what ``koalign locale check`` runs, from the shipped index):
  every registry law is in the index; every current article, and every paragraph an entry
  lists, exists in the statute text and is not deleted; ``last_article`` agrees.
* :func:`check_against_text` (``koalign statutes check --from DIR``): the same, plus every
  penalty the registry states is compared with the statute text: the prison terms
  (``N년 이하/이상``) and fine amounts (``N원 이하/이상``) the registry gives must all appear in
  the text of the article or of the penalty articles its penalty names (``(49조④)``, ``58조``).

Each finding has a ``level``: ``error`` (the registry contradicts the text: fix the pack),
``newer`` (the registry follows an amendment promulgated after the corpus text of that law, so
the newer source wins and nothing is wrong), ``info`` (the text cannot judge: a repeal notice
or a suspected historical version in the corpus).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from koalign.cite.statute_build import LawText, build_index
from koalign.cite.statute_index import ArticleFacts, LawFacts, StatuteIndex, name_key
from koalign.locale_schema import Article, Law, Statutes

Level = Literal["error", "newer", "info"]
OLD_TEXT_BEFORE = date(2005, 1, 1)


@dataclass(frozen=True)
class Finding:
    """One difference between the registry and the statutes."""

    level: Level
    law_id: str
    article: str | None
    message: str

    def render(self) -> str:
        """``statutes.yaml:laws[<law_id>][.articles[<article>]]: <message>``."""
        where = f"statutes.yaml:laws[{self.law_id}]"
        if self.article:
            where += f".articles[{self.article}]"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, str | None]:
        """``{level, law_id, article, message}`` (JSON shape)."""
        return {
            "level": self.level,
            "law_id": self.law_id,
            "article": self.article,
            "message": self.message,
        }


def _newer(law: Law, entry: Article | None, corpus: date | None) -> date | None:
    """The registry's date when it follows an amendment newer than the corpus text."""
    for when in ((entry.promulgated if entry else None), law.promulgated):
        if when and corpus and when > corpus:
            return when
    return None


def _art_facts(
    law: Law, facts: LawFacts, entry: Article
) -> tuple[ArticleFacts | None, list[Finding]]:
    out: list[Finding] = []
    art = facts.article(entry.article)
    newer = _newer(law, entry, facts.promulgated)
    old_text = facts.promulgated is not None and facts.promulgated < OLD_TEXT_BEFORE
    if art is None:
        if newer:
            out.append(
                Finding(
                    "newer",
                    law.id,
                    entry.article,
                    f"not in the corpus text of {facts.promulgated}; the registry follows the "
                    f"amendment of {newer} (newer than the corpus)",
                )
            )
        elif old_text and law.promulgated != facts.promulgated:
            out.append(
                Finding(
                    "info",
                    law.id,
                    entry.article,
                    f"not in the corpus text of {facts.promulgated} (suspected historical version)",
                )
            )
        else:
            out.append(
                Finding(
                    "error",
                    law.id,
                    entry.article,
                    f"no such article in the statute text of {facts.promulgated} "
                    f"(last article 제{facts.last_article}조)",
                )
            )
        return None, out
    if art.deleted:
        out.append(Finding("error", law.id, entry.article, f"article deleted {art.deleted}"))
    for p in entry.paragraphs:
        n = int(p)
        if not art.has_paragraph(n):
            level: Level = "newer" if newer else "error"
            shape = f"{art.paragraphs} paragraphs" if art.paragraphs else "one paragraph"
            message = f"paragraph {p} not in the text of {facts.promulgated} ({shape})"
            if newer:
                message += (
                    f"; the registry follows the amendment of {newer} (newer than the corpus)"
                )
            out.append(Finding(level, law.id, entry.article, message))
        elif n in art.deleted_paragraphs:
            out.append(
                Finding(
                    "newer" if newer else "error",
                    law.id,
                    entry.article,
                    f"paragraph {p} deleted {art.deleted_paragraphs[n]}",
                )
            )
    return art, out


def check_against_index(statutes: Statutes, index: StatuteIndex) -> list[Finding]:
    """Existence and deletion of every current registry article, from the statute index."""
    out: list[Finding] = []
    for law in statutes.laws:
        facts = index.law(law.name)
        if facts is None:
            out.append(
                Finding("error", law.id, None, f"'{law.name}' is not an Act in the statute index")
            )
            continue
        if not facts.checkable:
            out.append(
                Finding(
                    "info",
                    law.id,
                    None,
                    f"the statute index has {facts.unchecked_reason}; articles not checked "
                    "against the text",
                )
            )
            continue
        if law.promulgated and facts.promulgated and law.promulgated > facts.promulgated:
            out.append(
                Finding(
                    "newer",
                    law.id,
                    None,
                    f"registry checked against the text of {law.promulgated}, corpus text is of "
                    f"{facts.promulgated} (the registry follows a text newer than the corpus)",
                )
            )
        if (
            law.last_article is not None
            and law.last_article != facts.last_article
            and not _newer(law, None, facts.promulgated)
        ):
            out.append(
                Finding(
                    "error",
                    law.id,
                    None,
                    f"last_article {law.last_article}, the text ends at 제{facts.last_article}조",
                )
            )
        for entry in law.articles:
            if entry.status != "current":
                continue
            _art, found = _art_facts(law, facts, entry)
            out.extend(found)
    return out


# ----------------------------------------------------------------------------- penalties
_YEARS = re.compile(r"(\d+)\s*(년|개월)\s*(이하|이상)")
_MONEY = re.compile(
    r"((?:\d+\s*억\s*)?(?:\d+\s*천\s*)?(?:\d+\s*백\s*)?(?:\d+)?)\s*만?\s*원\s*(이하|이상)"
)
_LIFE = re.compile(r"무기|사형")
_REFS = re.compile(r"(\d+)조(?:의(\d+))?")


def _won(text: str) -> int | None:
    """``"1억"``, ``"5천만"``, ``"1천500만"``, ``"300만"`` (the 만 is outside) -> amount in 만원."""
    text = text.replace(" ", "")
    if not text:
        return None
    total = 0
    m = re.fullmatch(r"(?:(\d+)억)?(?:(\d+)천)?(?:(\d+)백)?(\d+)?", text)
    if m is None:
        return None
    eok, cheon, baek, rest = (int(g) if g else 0 for g in m.groups())
    total = eok * 10000 + cheon * 1000 + baek * 100 + rest
    return total or None


def penalty_terms(text: str) -> set[str]:
    """Prison terms and fine amounts in a penalty text, normalised: ``{"20년 이하",
    "5000만원 이하"}`` (amounts in 만원; an amount written in 원 below 1만 is skipped)."""
    terms = {f"{n}{unit} {side}" for n, unit, side in _YEARS.findall(text)}
    for m in _MONEY.finditer(text):
        raw = m.group(0)
        if "만" not in raw and "억" not in raw:
            continue
        amount = _won(m.group(1))
        if amount:
            terms.add(f"{amount}만원 {m.group(2)}")
    terms.update(_LIFE.findall(text))
    return terms


def _penalty_articles(entry: Article) -> list[str]:
    refs = [entry.article]
    for m in _REFS.finditer(entry.penalty or ""):
        refs.append(m.group(1) + (f"의{m.group(2)}" if m.group(2) else ""))
    return list(dict.fromkeys(refs))


def check_penalties(law: Law, text: LawText) -> list[Finding]:
    """Compare every stated penalty of ``law`` with the statute text (see the module doc)."""
    out: list[Finding] = []
    for entry in law.articles:
        if entry.status != "current" or not entry.penalty:
            continue
        stated = penalty_terms(entry.penalty)
        if not stated:
            continue
        in_text: set[str] = set()
        for number in _penalty_articles(entry):
            art = text.articles.get(number)
            if art is not None:
                in_text |= penalty_terms(art.text)
        if not in_text:
            continue
        missing = sorted(stated - in_text)
        if not missing:
            continue
        newer = _newer(law, entry, text.promulgated)
        own = text.articles.get(entry.article)
        found = sorted(penalty_terms(own.text)) if own else []
        message = f"penalty '{entry.penalty}': {', '.join(missing)} not in the statute text" + (
            f" (the article states {', '.join(found)})" if found else ""
        )
        if newer:
            message += f"; the registry follows the amendment of {newer} (newer than the corpus)"
        out.append(Finding("newer" if newer else "error", law.id, entry.article, message))
    return out


def check_against_text(statutes: Statutes, root: Path) -> list[Finding]:
    """Existence, deletion and penalties of the registry against a legalize-kr folder."""
    texts: list[LawText] = []
    index = StatuteIndex(build_index(root, keep=texts))
    return check_parsed(statutes, index, texts)


def check_parsed(statutes: Statutes, index: StatuteIndex, texts: list[LawText]) -> list[Finding]:
    """:func:`check_against_text` on an already parsed corpus (its index and its texts)."""
    out = check_against_index(statutes, index)
    wanted = {name_key(law.name): law for law in statutes.laws}
    for text in texts:
        law = wanted.get(name_key(text.name))
        if law is None or text.repeal_notice:
            continue
        out.extend(check_penalties(law, text))
    return out


def summarise(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per level."""
    out: dict[str, int] = {"error": 0, "newer": 0, "info": 0}
    for f in findings:
        out[f.level] += 1
    return out


__all__ = [
    "Finding",
    "check_against_index",
    "check_against_text",
    "check_parsed",
    "check_penalties",
    "penalty_terms",
    "summarise",
]

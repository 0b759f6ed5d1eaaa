"""Korean statute-citation grammar: article, paragraph and item references and lists of them.

A reference is ``제N조`` / ``N조`` with an optional branch ``의M``, optional paragraph
(``제N항``, ``N항``, ``①``-``⑳``), item (``제N호``) and sub-item (``가목``), with or without
spaces. References are chained by separators (``및``, ``·``, ``,``, ``또는``, ``내지``, ``부터``,
``~``, attached ``와``/``과``/``나`` ...). A chained element that starts with a paragraph keeps
the previous article; one that starts with an item keeps the previous article and paragraph
(``제70조제1항·제2항``, ``제44조의7제1항제1호·제2호``). Ranges report their two endpoints.
"""

from __future__ import annotations

import re
from typing import NamedTuple

CIRCLED = {chr(0x2460 + i): str(i + 1) for i in range(20)}  # ① .. ⑳

# "3조 원", "3조원", "2조 5천억" are amounts of money (조 = 10^12), not articles.
_NOT_ARTICLE = (
    r"(?!\s*(?:원|억|만|천|백|달러|위안|엔|개|명|건|톤|배)|\s*\d+\s*(?:천|백|십|억|만|원))"
)
ARTICLE = re.compile(r"(?:제\s*)?(?<!\d)(\d{1,4})\s*조" + _NOT_ARTICLE + r"(?:의(\d{1,3}))?")
PARAGRAPH = re.compile(
    r"\s*(?:(?:제\s*)?(?<!\d)(\d{1,3})\s*항(?!목|공|구|변|만)|([\u2460-\u2473]))"
)
ITEM = re.compile(
    r"\s*(?:제\s*)?(?<!\d)(\d{1,3})\s*호(?!선|실|점|텔|기|차|봉)(?:\s*의\s*(\d{1,2})(?!\d))?"
)
SUBITEM = re.compile(r"\s*[가-하]\s*목")
PAREN = re.compile(r"\s*\([^()\n]{0,40}\)")
SEPARATOR = re.compile(r"\s*(?:[,、·ㆍ・/~∼〜\-–]|및|또는|혹은|내지|부터|에서|이나|과|와|나)\s*")


class Ref(NamedTuple):
    """One article reference: article like '307' / '14의2' (None for an article anaphor)."""

    article: str | None
    main: int | None
    paragraph: str | None
    item: str | None
    start: int
    end: int


def _paragraph(m: re.Match[str]) -> str:
    return str(int(m.group(1))) if m.group(1) is not None else CIRCLED[m.group(2)]


def parse_element(
    text: str, pos: int, art: tuple[str | None, int | None], para: str | None, *, first: bool
) -> Ref | None:
    """Parse one list element at ``pos``; ``art``/``para`` are inherited from the previous one.

    The first element after a law name must start with an article; later elements (and the
    element after an article anaphor such as ``같은 조``) may start with a paragraph or an item.
    """
    article, main = art
    paragraph: str | None = None
    m = ARTICLE.match(text, pos)
    if m:
        main = int(m.group(1))
        article = str(main) + (f"의{int(m.group(2))}" if m.group(2) else "")
        end = m.end()
    elif first:
        return None
    else:
        end = pos
    pm = PARAGRAPH.match(text, end)
    if pm:
        paragraph = _paragraph(pm)
        end = pm.end()
    elif m is None:
        paragraph = para  # an item-led element keeps the paragraph
    item: str | None = None
    im = ITEM.match(text, end)
    if im:
        item = str(int(im.group(1))) + (f"의{int(im.group(2))}" if im.group(2) else "")
        end = im.end()
        sm = SUBITEM.match(text, end)
        if sm:
            end = sm.end()
    if m is None and pm is None and im is None:
        return None
    return Ref(article, main, paragraph, item, pos, end)


def parse_refs(text: str, pos: int, *, inherited: Ref | None = None) -> list[Ref]:
    """Parse a chain of references starting at ``pos`` (empty when none starts there)."""
    if inherited is None:
        ref = parse_element(text, pos, (None, None), None, first=True)
    else:
        ref = parse_element(
            text, pos, (inherited.article, inherited.main), inherited.paragraph, first=False
        )
    if ref is None:
        return []
    refs = [ref]
    while True:
        end = refs[-1].end
        pm = PAREN.match(text, end)
        if pm:
            end = pm.end()
        sm = SEPARATOR.match(text, end)
        if sm is None:
            break
        prev = refs[-1]
        nxt = parse_element(text, sm.end(), (prev.article, prev.main), prev.paragraph, first=False)
        if nxt is None or nxt.article is None:
            break
        refs.append(nxt)
    return refs

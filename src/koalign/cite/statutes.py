"""Finding statute citations in free Korean text.

Three kinds of law mentions are found, then processed in text order:

* a registry name or alias (``형법``, ``「정보통신망법」``), space- and middle-dot-insensitive,
  not glued to a preceding letter (``군형법`` is not ``형법``);
* an anaphor, ``같은 법`` / ``동법`` / ``이 법`` (resolved to the law named last) and
  ``같은 조`` / ``동조`` (the article cited last);
* a law-shaped name that is not in the registry, only when an article follows
  (``차별금지법 제3조``, ``「디지털성범죄 방지에 관한 법률」 제5조``). A name is law-shaped
  when it ends in 법 or 법률, has at least three syllables (so ``방법``, ``불법``, ``헌법`` never
  are) and is not a generic word (``특별법``, ``노동법`` ...). Two-syllable codes such as
  ``헌법``, ``민법``, ``상법`` are recognised only when the registry lists them.

A mention followed by ``시행령``/``시행규칙`` cites a decree, which the registry does not cover,
and is skipped; so are bills (``…법안``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from koalign.cite.grammar import Ref, parse_refs

_OPEN = "「『《〈"
_CLOSE = "」』》〉"
_DOTS = "·ㆍ・‧∙•"
_WORD = re.compile(r"[가-힣A-Za-z0-9]")
_QUOTES = "'\"‘’“”*"  # quotes and markdown emphasis around a name: '형법', **형법**
_LEAD = re.compile(
    r"[" + _QUOTES + r"]*\s*[" + _CLOSE + r"]?[" + _QUOTES + r"]*\s*(?:\(\s*)?"
    r"(?:(?:상의|상|의|에서는|에서|에는|은|는|중)\s+)?"
)
_ASIDE = re.compile(r"[" + _CLOSE + r"]?\s*\([^()\n]{1,40}\)")  # (이하 '…'이라 한다)
_DECREE = re.compile(r"[" + _CLOSE + r"]?\s*(?:시행령|시행규칙)")
_NOT_A_LAW_AFTER = re.compile(r"안|학|인(?![데지가])")
_ANAPHORS = r"같은\s*법률?|동\s*법률?|이\s+법률?|본\s*법|같은\s*조|동\s*조"
_IS_ART_ANAPHOR = re.compile(r"(?:같은|동)\s*조")
_IS_LAW_ANAPHOR = re.compile(r"(?:같은|동)\s*법률?|이\s+법률?|본\s*법")
# Unknown names are anchored on "법/법률 [」] 제N조" and read backwards.
_UNKNOWN_ANCHOR = re.compile(
    r"법률?([" + _CLOSE + r"]?)[" + _QUOTES + r"]*\s*(?:\(\s*)?"
    r"(?:(?:상의|상|의|에서는|에서|에는|은|는|중)\s+)?제\s*\d{1,4}\s*조"
)
_NAME_CHARS = re.compile(r"[가-힣0-9" + _DOTS + r"]")
_PARTICLE_END = tuple("은는이가을를의로와과도만고며서면다요게지")
_DETERMINERS = frozenset({"그", "이", "저", "위", "본", "해당", "같은", "동", "및", "또는", "각"})
_GENERIC = frozenset((
    "개정법", "특별법", "기본법", "일반법", "관련법", "상위법", "하위법", "특례법", "형사법",
    "민사법", "국제법", "실정법", "자연법", "성문법", "불문법", "관습법", "절차법", "실체법",
    "행정법", "노동법", "경제법", "환경법", "조세법", "사회법", "해당법", "시행법", "현행법",
    "처벌법", "방지법", "보호법", "규제법", "단속법", "특별법률", "관련법률", "해당법률",
    "현행법률", "개정법률",
))  # fmt: skip
_GENERIC_SUFFIX = (
    "방법", "불법", "위법", "편법", "수법", "기법", "요법", "비법", "문법", "용법", "어법",
    "화법", "공법", "사법", "합법", "적법", "탈법", "준법", "해법", "마법", "입법", "필법",
)  # fmt: skip


@dataclass(frozen=True)
class Mention:
    """A law (or anaphor) found in a text with the references cited after it."""

    key: str | None  # registry law id; None for unknown names and anaphors
    name: str  # the name as written (without brackets)
    kind: str  # "law" | "unknown" | "anaphor" | "article_anaphor"
    start: int
    end: int
    refs: tuple[Ref, ...]


def _name_pattern(name: str) -> str:
    parts = []
    for ch in name:
        if ch.isspace():
            parts.append(r"\s*")
        elif ch in _DOTS:
            parts.append(r"\s*[" + _DOTS + r"]\s*")
        else:
            parts.append(re.escape(ch))
    return "".join(parts)


def normalize_name(name: str) -> str:
    """Key for comparing law names: no spaces, no brackets, one kind of middle dot."""
    out = re.sub(r"\s+", "", name.strip(_OPEN + _CLOSE + " "))
    return re.sub("[" + _DOTS + "]", "·", out)


class StatuteScanner:
    """Finds law mentions and their article references; built once per registry."""

    def __init__(self, names: dict[str, str]) -> None:
        """``names`` maps every official name and alias to its law id."""
        self._by_key = {normalize_name(n): law_id for n, law_id in names.items()}
        self._by_written: dict[str, str] = dict(names)
        ordered = sorted(names, key=lambda n: (-len(normalize_name(n)), n))
        # Every alternative starts with a literal character, so the regex engine can skip
        # positions whose character starts no name (a large speed-up on long texts).
        alternation = "|".join(_name_pattern(n) for n in ordered)
        self._pattern = re.compile(alternation + "|" + _ANAPHORS)

    def _law_id(self, written: str) -> str | None:
        law_id = self._by_written.get(written)
        if law_id is None:
            law_id = self._by_key.get(normalize_name(written))
            if law_id is not None:
                self._by_written[written] = law_id
        return law_id

    def scan(self, text: str) -> list[Mention]:
        """All mentions in text order; anaphors are left unresolved (``kind`` says which)."""
        raw: list[tuple[int, int, str, str | None, str, int]] = []  # start end kind key name pos
        known_spans: list[tuple[int, int]] = []
        for m in self._pattern.finditer(text):
            start, end = m.span()
            if start > 0 and _WORD.match(text, start - 1):
                continue
            written = m.group(0)
            law_id = self._law_id(written)
            known_spans.append((start, end))
            if law_id is not None:
                kind = "law"
            elif _IS_ART_ANAPHOR.fullmatch(written):
                kind = "article_anaphor"
            elif _IS_LAW_ANAPHOR.fullmatch(written):
                kind = "anaphor"
            else:  # pragma: no cover - the pattern only matches the kinds above
                continue
            if _DECREE.match(text, end) or _NOT_A_LAW_AFTER.match(text, end):
                continue
            lead = _LEAD.match(text, end)
            pos = lead.end() if lead else end
            if start > 0 and text[start - 1] in _OPEN:
                start -= 1
                if end < len(text) and text[end] in _CLOSE:
                    end += 1
            raw.append((start, end, kind, law_id, written, pos))
        raw.extend(self._unknown(text, known_spans))
        raw.sort(key=lambda r: r[0])
        found: list[Mention] = []
        last: Ref | None = None
        covered = 0  # end of the last reference read: mentions inside it are part of it
        for start, end, kind, key, name, pos in raw:
            if start < covered:
                continue
            if kind == "article_anaphor":
                if last is None or last.article is None:
                    continue
                refs = parse_refs(text, pos, inherited=last)
            else:
                refs = parse_refs(text, pos)
                if not refs and kind == "law":
                    # "성폭력범죄의 처벌 등에 관한 특례법(이하 '성폭력처벌법') 제14조"
                    aside = _ASIDE.match(text, end)
                    if aside:
                        lead = _LEAD.match(text, aside.end())
                        refs = parse_refs(text, lead.end() if lead else aside.end())
            if not refs and kind != "law":
                continue
            if refs:
                last = refs[-1]
                covered = last.end
            found.append(Mention(key, name, kind, start, end, tuple(refs)))
        return found

    def _unknown(
        self, text: str, known: list[tuple[int, int]]
    ) -> Iterable[tuple[int, int, str, str | None, str, int]]:
        for m in _UNKNOWN_ANCHOR.finditer(text):
            law_end = m.start() + (2 if text.startswith("법률", m.start()) else 1)
            if any(s < law_end and m.start() < e for s, e in known):
                continue
            got = self._unknown_name(text, m.start(), law_end, bool(m.group(1)), known)
            if got is None:
                continue
            start, name = got
            key = normalize_name(name)
            if key in self._by_key:  # a known name written in a way the scanner skipped
                continue
            syllables = sum("가" <= ch <= "힣" for ch in key)
            if syllables < 3 or key in _GENERIC or key.endswith(_GENERIC_SUFFIX):
                continue
            after_name = m.end(1)
            lead = _LEAD.match(text, after_name)
            yield (start, after_name, "unknown", None, name, lead.end() if lead else after_name)

    @staticmethod
    def _unknown_name(
        text: str, law_pos: int, law_end: int, bracketed: bool, known: list[tuple[int, int]]
    ) -> tuple[int, str] | None:
        """Read the name ending at ``law_end`` backwards; returns (start incl. bracket, name)."""
        if bracketed:
            open_at = max(text.rfind(ch, max(0, law_pos - 60), law_pos) for ch in _OPEN)
            if open_at >= 0 and "\n" not in text[open_at:law_end]:
                return open_at, text[open_at + 1 : law_end].strip()
        i = law_pos
        while i > 0 and _NAME_CHARS.match(text, i - 1):
            i -= 1
        if i > 0 and _WORD.match(text, i - 1):
            return None  # glued to Latin letters
        start = i
        if text[start:law_end] == "법률":
            # "…에 관한 법률": extend back over the words of the title
            floor = max((e for s, e in known if e <= start), default=0)
            words = 0
            j = start
            while words < 8:
                k = j - 1
                while k >= floor and text[k] == " ":
                    k -= 1
                if k < floor or k == j - 1:
                    break
                w_end = k + 1
                while k >= floor and _NAME_CHARS.match(text, k):
                    k -= 1
                word = text[k + 1 : w_end]
                if not word or word in _DETERMINERS:
                    break
                if words > 0 and word.endswith(_PARTICLE_END) and not word.endswith("에"):
                    break
                j = k + 1
                words += 1
            if words < 2 or "관한" not in text[j:start]:
                return None
            start = j
        if start > 0 and text[start - 1] in _OPEN:
            start -= 1
            return start, text[start + 1 : law_end]
        return start, text[start:law_end]

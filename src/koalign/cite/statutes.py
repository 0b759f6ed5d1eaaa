"""Finding statute citations in free Korean text (see docs/citations.md, "What is recognised").

Law names are found from their last syllable: every ``법`` (and ``법률``) in the text is an
anchor, and the name is read backwards through a trie of every known name (the hand registry's
names and aliases, and the official name of every Act in the statute index), ignoring spaces
and middle dots, longest name first. A name counts when it is not glued to a preceding letter
(``군형법`` is not ``형법``, unless ``군형법`` is itself known) and not the head of a compound
(``헌법재판소``, ``헌법소원``, ``헌법기관``, ``형법학``, bills ``…법안``). A country or
organisation before the name (``일본 헌법``, ``홍콩 국가보안법``, ``교단의 헌법``) or ``구``/``옛``
(an earlier version) makes it not a current Korean statute: the mention is kept only to stop
later bare articles from attaching to another law. So does a decree (``…법 시행령 제3조``).

Then, in text order:

* an anaphor ``같은 법`` / ``동법`` / ``이 법`` resolves to the law named last, ``같은 조`` /
  ``동조`` to the article cited last;
* a law-shaped name that no table knows counts only with an article after it
  (``차별금지법 제3조``): it ends in 법/법률, has three syllables or more and is not a generic
  word (``특별법``, ``노동법`` ...);
* a bare ``제N조`` later in the same sentence, not claimed by another instrument
  (``시행령``, ``규칙``, ``조례``, ``협약`` ...), attaches to the law named last (carry-forward,
  reported with ``inferred``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from koalign.cite.grammar import Ref, parse_refs
from koalign.cite.statute_index import name_key

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
# Glued after a name, these make a compound that is not a citation of the law.
_COMPOUND = re.compile(
    r"안|학(?!교)|인(?![데지가])|재판|소원|기관|적(?![용발])|불합치|정신|주의|개정안"
    r"|제(?!\s*\d)"
)
_ANAPHORS = re.compile(r"같은\s*법률?|동\s*법률?|이\s+법률?|본\s*법|같은\s*조|동\s*조")
_IS_ART_ANAPHOR = re.compile(r"(?:같은|동)\s*조")
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
# A country or organisation before a name: not a Korean statute.
_COUNTRIES = frozenset((
    "일본", "미국", "중국", "홍콩", "대만", "타이완", "북한", "독일", "프랑스", "영국", "러시아",
    "캐나다", "호주", "인도", "베트남", "필리핀", "태국", "싱가포르", "유럽", "이탈리아", "스페인",
    "스위스", "네덜란드", "스웨덴", "이스라엘", "이란", "튀르키예", "터키", "브라질", "멕시코",
    "몽골", "인도네시아", "말레이시아", "미얀마", "캄보디아", "우크라이나", "뉴질랜드", "아일랜드",
    "오스트리아", "벨기에", "노르웨이", "덴마크", "핀란드", "폴란드", "그리스", "이집트",
    "사우디", "사우디아라비아", "미합중국", "일본국", "외국", "타국", "각국", "여러나라", "해외",
    "조선", "북조선", "연방", "EU", "UN", "유엔",
))  # fmt: skip
_ORGS = frozenset((
    "교단", "교회", "종단", "단체", "협회", "정당", "학교", "회사", "노조", "노동조합", "조합",
    "클럽", "동아리", "학회", "재단", "법인", "구단", "연맹", "길드", "게임", "왕국", "제국",
    "공화국", "소설", "드라마", "영화", "작품", "세계관", "가상", "가상의",
))  # fmt: skip
_OLD = frozenset(("구", "舊", "옛", "종전", "폐지된", "구법"))
_PREV_WORD = re.compile(r"([가-힣A-Za-z]+)(?:의)?\s*$")
# Words that claim a following bare 제N조 for another instrument.
_OTHER_INSTRUMENT = re.compile(
    r"(?:(?:시행령|시행규칙|규칙|조례|협약|헌장|정관|약관|지침|규정|고시|훈령|예규|조약|협정|부칙"
    r"|법안|개정안|초안|규약|강령|회칙|학칙|사규|선언|결의|의정서|명령|매뉴얼|계약서|계약|원칙|문서)"
    r"|(?<![가-힣])(?:구|舊|옛|종전|예전|이전|책|항목)|\d+\s*(?:장|편|절))"
    r"[\s" + _QUOTES + _CLOSE + r")의]*$"
)
_BARE_ARTICLE = re.compile(r"제\s*\d{1,4}\s*조")
_SENTENCE_END = re.compile(r"[.?!。](?!\d)|\n")


@dataclass(frozen=True)
class Mention:
    """A law (or anaphor) found in a text with the references cited after it.

    ``key`` is the name key of a known law (see :func:`name_key`), None for unknown names,
    anaphors and inferred references. ``kind``: ``law``, ``unknown``, ``anaphor``,
    ``article_anaphor``, ``inferred`` (bare articles attached to the law named last) or
    ``blocked`` (a foreign, old or decree mention: reported nowhere, it only stops carry-forward).
    """

    key: str | None
    name: str
    kind: str
    start: int
    end: int
    refs: tuple[Ref, ...]


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return pos


def normalize_name(name: str) -> str:
    """Key for comparing law names (kept for callers of the first edition)."""
    return name_key(name)


class _Trie:
    """Reversed trie of name keys: walk backwards from a name's last character."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.root: dict[str, dict] = {}
        for key in keys:
            node = self.root
            for ch in reversed(key):
                node = node.setdefault(ch, {})
            node["$"] = key  # type: ignore[assignment]

    def longest_ending(self, text: str, end: int, floor: int) -> tuple[int, str] | None:
        """The longest known name whose last character is ``text[end - 1]``: (start, key)."""
        node = self.root
        best: tuple[int, str] | None = None
        j = end - 1
        while j >= floor:
            ch = text[j]
            nxt = node.get(ch)
            if nxt is None:
                if (ch == " " or ch in _DOTS) and node is not self.root:
                    j -= 1
                    continue
                break
            node = nxt
            if "$" in node:
                best = (j, node["$"])  # type: ignore[assignment]
            j -= 1
        return best


class StatuteScanner:
    """Finds law mentions and their article references; built once per registry and index."""

    def __init__(self, names: dict[str, str], extra_keys: Iterable[str] = ()) -> None:
        """``names`` maps every registry name and alias to its law key; ``extra_keys`` are the
        name keys of laws known only to the statute index."""
        self._by_key: dict[str, str] = {name_key(n): k for n, k in names.items()}
        for key in extra_keys:
            self._by_key.setdefault(key, key)
        ending = [k for k in self._by_key if k.endswith("법") or k.endswith("법률")]
        self._trie = _Trie(ending)
        in_trie = set(ending)
        others = sorted((k for k in self._by_key if k not in in_trie), key=len, reverse=True)
        self._other = (
            re.compile("|".join(re.escape(k) for k in others)) if others else None
        )  # names that do not end in 법 (rare aliases such as PIPA)

    def law_key(self, name: str) -> str | None:
        """The law key of a name as written (None when no table knows it)."""
        return self._by_key.get(name_key(name))

    # ------------------------------------------------------------------ names
    def _names(self, text: str) -> list[tuple[int, int, str]]:
        """Known names in text order, longest first where they overlap: (start, end, key)."""
        found: list[tuple[int, int, str]] = []
        pos = text.find("법")
        while pos >= 0:
            # "국회 법제사법위원회": a space right before the final 법 splits a generic word off
            if pos > 0 and text[pos - 1].isspace() and not text.startswith("법률", pos):
                pos = text.find("법", pos + 1)
                continue
            ends = [pos + 2, pos + 1] if text.startswith("법률", pos) else [pos + 1]
            for end in ends:
                got = self._trie.longest_ending(text, end, 0)
                if got is not None:
                    found.append((got[0], end, self._by_key[got[1]]))
                    break
            pos = text.find("법", pos + 1)
        if self._other is not None:
            for m in self._other.finditer(text):
                found.append((m.start(), m.end(), self._by_key[m.group(0)]))
        found.sort(key=lambda f: (f[0], -f[1]))
        out: list[tuple[int, int, str]] = []
        for f in found:
            if out and f[0] < out[-1][1]:
                if f[1] > out[-1][1] and f[0] == out[-1][0]:
                    out[-1] = f
                continue
            out.append(f)
        return out

    @staticmethod
    def _qualified(text: str, start: int) -> bool:
        """True when a country, organisation or 구/옛 stands right before the name."""
        m = _PREV_WORD.search(text, max(0, start - 16), start)
        if m is None:
            return False
        word = m.group(1)
        if word in _COUNTRIES or word in _ORGS or word in _OLD:
            return True
        stem = word[:-1] if word.endswith("의") else word
        return stem in _COUNTRIES or stem in _ORGS

    # ------------------------------------------------------------------ scanning
    def scan(self, text: str) -> list[Mention]:
        """All mentions in text order; anaphors are left unresolved (``kind`` says which)."""
        raw: list[tuple[int, int, str, str | None, str, int]] = []  # start end kind key name pos
        known_spans: list[tuple[int, int]] = []
        for start, end, key in self._names(text):
            if start > 0 and _WORD.match(text, start - 1):
                continue
            known_spans.append((start, end))
            written = text[start:end]
            kind = "law"
            if (
                _COMPOUND.match(text, end)
                or _DECREE.match(text, end)
                or self._qualified(text, start)
            ):
                kind = "blocked"
            lead = _LEAD.match(text, end)
            pos = lead.end() if lead else end
            decree = _DECREE.match(text, end)
            if decree:
                pos = _skip_spaces(text, decree.end())
            if start > 0 and text[start - 1] in _OPEN:
                start -= 1
                if end < len(text) and text[end] in _CLOSE:
                    end += 1
            raw.append((start, end, kind, key, written, pos))
        for m in _ANAPHORS.finditer(text):
            start, end = m.span()
            if start > 0 and _WORD.match(text, start - 1):
                continue
            if end < len(text) and _WORD.match(text, end) and text[end] not in "에의은는이가을를도":
                continue
            if any(s <= start < e for s, e in known_spans):
                continue
            kind = "article_anaphor" if _IS_ART_ANAPHOR.fullmatch(m.group(0)) else "anaphor"
            decree = _DECREE.match(text, end)
            if decree:
                kind = "blocked"
                raw.append((start, end, kind, None, m.group(0), _skip_spaces(text, decree.end())))
                continue
            lead = _LEAD.match(text, end)
            raw.append((start, end, kind, None, m.group(0), lead.end() if lead else end))
        raw.extend(self._unknown(text, known_spans))
        raw.sort(key=lambda r: r[0])
        found = self._read_refs(text, raw)
        return self._carry_forward(text, found)

    def _read_refs(
        self, text: str, raw: list[tuple[int, int, str, str | None, str, int]]
    ) -> list[Mention]:
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
            if not refs and kind not in ("law", "blocked"):
                continue
            if refs:
                covered = refs[-1].end
                if kind != "blocked":
                    last = refs[-1]
            found.append(Mention(key, name, kind, start, end, tuple(refs)))
        return found

    def _carry_forward(self, text: str, found: list[Mention]) -> list[Mention]:
        """Attach bare ``제N조`` references to the law named last in the same sentence."""
        if not found:
            return found
        covered = [(m.start, max([m.end, *(r.end for r in m.refs)])) for m in found]
        out = list(found)
        added: list[Mention] = []
        for m in _BARE_ARTICLE.finditer(text):
            p = m.start()
            if any(s <= p < e for s, e in covered):
                continue
            before = [f for f in out if f.end <= p]
            if not before:
                continue
            anchor = max(before, key=lambda f: f.end)
            gap = text[max(f.refs[-1].end if f.refs else f.end for f in [anchor]) : p]
            if anchor.kind in ("blocked",) or _SENTENCE_END.search(gap):
                continue
            if _OTHER_INSTRUMENT.search(text, max(0, p - 12), p):
                continue
            if p > 0 and _WORD.match(text, p - 1):
                continue
            refs = parse_refs(text, p)
            if not refs:
                continue
            mention = Mention(None, "", "inferred", p, refs[0].end, tuple(refs))
            out.append(mention)
            added.append(mention)
            covered.append((p, refs[-1].end))
            out.sort(key=lambda f: f.start)
        return out if added else found

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
            key = name_key(name)
            if key in self._by_key:  # a known name written in a way the scanner skipped
                continue
            syllables = sum("가" <= ch <= "힣" for ch in key)
            if syllables < 3 or key in _GENERIC or key.endswith(_GENERIC_SUFFIX):
                continue
            kind = "blocked" if self._qualified(text, start) else "unknown"
            after_name = m.end(1)
            lead = _LEAD.match(text, after_name)
            yield (start, after_name, kind, None, name, lead.end() if lead else after_name)

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

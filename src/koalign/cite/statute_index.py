"""The statute index: facts derived from the text of every Korean Act, shipped with a locale.

The index holds facts, never statute text: per law its official name, law.go.kr ids,
promulgation and effective dates; per article its number (``"347"``, ``"14의2"``), how many
numbered paragraphs (항) it has, which items (호, with branch items such as ``2의2``) each
paragraph has, which provisions are deleted (``삭제``) and on what date, the dates of its
amendment notes (``<개정 ...>``, ``<신설 ...>``) and the date its latest amendment took effect
(read from the 부칙 of that amendment). It is built by ``koalign statutes build --from DIR``
(see :mod:`koalign.cite.statute_build`) from a legalize-kr checkout and stored as gzip'd JSON
(``statute_index.json.gz`` in the locale folder).

File format (version 2), one JSON object::

    {"format": 2, "built": "2026-11-29", "source": {...}, "laws": [LAW, ...]}
    LAW     = [name, law_id, mst, kind, promulgated, promulgation_no, effective, ARTICLES,
               flags?]
    ARTICLES = the compact JSON text of [ART, ...] (a string)
    ART     = [number, paragraphs, items, deleted, amended, effective, deleted_paras, deleted_items]

A law's articles are kept as JSON text inside the file so that reading the index decodes only
1,721 rows (18 ms instead of 170 ms for the shipped snapshot); a law's articles are decoded
when it is first looked up. Version 1 (the same, with ``[ART, ...]`` as a list) is still read.

Dates are integers ``YYYYMMDD`` (0 = none). ``paragraphs`` is the count of numbered
paragraphs (0: the article is one unnumbered paragraph). ``items`` is a list with one string per
paragraph (one string for an unnumbered article) of item labels as ranges, e.g.
``"1-9,2의2,6의2-6의4"``. ``deleted_paras`` maps a paragraph number to its deletion date,
``deleted_items`` maps ``"<paragraph>:<item>"`` (paragraph 0 for an unnumbered article) to
its deletion date. ``flags`` (optional) holds ``"repeal_notice"`` when the corpus file is a
repeal notice instead of the Act's text, ``"no_articles"`` for a short Act without numbered
articles (such laws are known by name; their articles are not checked).
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from koalign.errors import KoalignError
from koalign.jsonio import write_text_atomic

#: The version :func:`save_index` writes (and :func:`~koalign.cite.statute_build.build_index`
#: returns).
FORMAT = 2
_READABLE = (1, 2)
INDEX_FILE = "statute_index.json.gz"
_DOTS = "·ㆍ・‧∙•"
_SPACE_DOTS = re.compile(r"[\s" + _DOTS + r"]+")


def name_key(name: str) -> str:
    """Key for comparing law names: no spaces, no middle dots, no brackets."""
    return _SPACE_DOTS.sub("", name.strip("「」『』《》〈〉 "))


def to_date(value: int) -> date | None:
    """``YYYYMMDD`` integer to a date (None for 0)."""
    if not value:
        return None
    return date(value // 10000, value // 100 % 100, value % 100)


def from_date(value: date | None) -> int:
    """A date as ``YYYYMMDD`` (0 for None)."""
    return value.year * 10000 + value.month * 100 + value.day if value else 0


def item_key(label: str) -> tuple[int, int]:
    """``"2의2"`` -> (2, 2); ``"3"`` -> (3, 0)."""
    main, _, branch = label.partition("의")
    return int(main), int(branch or 0)


def encode_items(labels: list[str]) -> str:
    """Item labels in text order as ranges: ``["1","2","2의2","3"]`` -> ``"1-3,2의2"``."""
    mains = sorted({item_key(x)[0] for x in labels if "의" not in x})
    branches = sorted({item_key(x) for x in labels if "의" in x})
    out: list[str] = []
    i = 0
    while i < len(mains):
        j = i
        while j + 1 < len(mains) and mains[j + 1] == mains[j] + 1:
            j += 1
        out.append(str(mains[i]) if i == j else f"{mains[i]}-{mains[j]}")
        i = j + 1
    i = 0
    while i < len(branches):
        j = i
        while (
            j + 1 < len(branches)
            and branches[j + 1][0] == branches[j][0]
            and branches[j + 1][1] == branches[j][1] + 1
        ):
            j += 1
        a, b = branches[i], branches[j]
        out.append(f"{a[0]}의{a[1]}" if i == j else f"{a[0]}의{a[1]}-{b[0]}의{b[1]}")
        i = j + 1
    return ",".join(out)


def decode_items(text: str) -> frozenset[tuple[int, int]]:
    """Inverse of :func:`encode_items`, as (main, branch) pairs."""
    out: set[tuple[int, int]] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        a = item_key(lo)
        b = item_key(hi) if hi else a
        out.update((a[0], k) if a[1] else (k, 0) for k in range(a[1] or a[0], (b[1] or b[0]) + 1))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class ArticleFacts:
    """What the statute text says about one article (see the module docstring)."""

    number: str
    paragraphs: int
    items: tuple[frozenset[tuple[int, int]], ...]
    deleted: date | None
    amended: tuple[date, ...]
    effective: date | None
    deleted_paragraphs: dict[int, date]
    deleted_items: dict[tuple[int, str], date]

    def has_paragraph(self, paragraph: int) -> bool:
        """True when the text has this paragraph (paragraph 1 of an unnumbered article too)."""
        if self.paragraphs == 0:
            return paragraph == 1
        return 1 <= paragraph <= self.paragraphs

    def item_group(self, paragraph: int | None) -> frozenset[tuple[int, int]] | None:
        """Items of a paragraph (None: the article has numbered paragraphs and none was named)."""
        if self.paragraphs == 0:
            return self.items[0] if self.items else frozenset()
        if paragraph is None:
            return None
        if 1 <= paragraph <= len(self.items):
            return self.items[paragraph - 1]
        return frozenset()


@dataclass
class LawFacts:
    """One Act (or the Constitution) in the index; articles decoded on first use (one article
    at a time through :meth:`article`, all of them through :attr:`articles`)."""

    name: str
    law_id: str
    mst: str
    kind: str
    promulgated: date | None
    promulgation_no: str
    effective: date | None
    packed_articles: list[Any] | str = field(repr=False)
    flags: tuple[str, ...] = ()
    _rows: list[Any] | None = field(default=None, repr=False)
    _articles: dict[str, ArticleFacts] | None = field(default=None, repr=False)
    _by_number: dict[str, list[Any]] | None = field(default=None, repr=False)
    _decoded: dict[str, ArticleFacts] = field(default_factory=dict, repr=False)
    _last: int | None = field(default=None, repr=False)

    @property
    def raw_articles(self) -> list[Any]:
        """The article rows as stored (``[ART, ...]``, see the module docstring), decoded from
        the file's JSON text on first use."""
        if self._rows is None:
            packed = self.packed_articles
            self._rows = orjson.loads(packed) if isinstance(packed, str) else packed
        return self._rows

    @property
    def articles(self) -> dict[str, ArticleFacts]:
        """Article number (``"14의2"``) -> facts."""
        if self._articles is None:
            self._articles = {
                a[0]: self._decoded.get(a[0]) or _decode_article(a) for a in self.raw_articles
            }
        return self._articles

    def article(self, number: str) -> ArticleFacts | None:
        """The facts of article ``number`` (text, e.g. ``"14의2"``), or None when the corpus text has
        no such article. Only that article is decoded (an Act holds up to a few hundred)."""
        if self._articles is not None:
            return self._articles.get(number)
        hit = self._decoded.get(number)
        if hit is not None:
            return hit
        if self._by_number is None:
            self._by_number = {a[0]: a for a in self.raw_articles}
        raw = self._by_number.get(number)
        if raw is None:
            return None
        hit = self._decoded[number] = _decode_article(raw)
        return hit

    @property
    def checkable(self) -> bool:
        """False when the corpus file is a repeal notice or has no numbered articles."""
        return not self.flags

    @property
    def unchecked_reason(self) -> str | None:
        """Why the text cannot judge this Act, worded to follow "the statute index has": only a
        repeal notice (with its date) or no numbered articles; None when it is checkable."""
        if "repeal_notice" in self.flags:
            when = f" of {self.promulgated.isoformat()}" if self.promulgated else ""
            return (
                f"only a repeal notice{when} under this name, not the text in force "
                "(the corpus lacks it)"
            )
        if self.flags:
            return "no numbered articles of this Act"
        return None

    @property
    def last_article(self) -> int:
        """Highest main article number."""
        if self._last is None:
            self._last = max((int(a[0].split("의")[0]) for a in self.raw_articles), default=0)
        return self._last


def _decode_article(raw: list[Any]) -> ArticleFacts:
    raw = raw + [None] * (8 - len(raw))
    number, paragraphs, items, deleted, amended, effective, dparas, ditems = raw
    return ArticleFacts(
        number=number,
        paragraphs=paragraphs or 0,
        items=tuple(decode_items(g) for g in (items or [])),
        deleted=to_date(deleted or 0),
        amended=tuple(d for d in (to_date(x) for x in amended or []) if d),
        effective=to_date(effective or 0),
        deleted_paragraphs={int(k): to_date(v) for k, v in (dparas or {}).items()},  # type: ignore[misc]
        deleted_items={
            (int(k.partition(":")[0]), k.partition(":")[2]): to_date(v)  # type: ignore[misc]
            for k, v in (ditems or {}).items()
        },
    )


class StatuteIndex:
    """All laws of one snapshot of the statute corpus, looked up by official name."""

    def __init__(self, data: dict[str, Any], *, path: Path | None = None) -> None:
        if data.get("format") not in _READABLE:
            raise KoalignError(
                f"statute index format {data.get('format')!r} is not supported "
                f"(expected {' or '.join(map(str, _READABLE))})",
                where=str(path) if path else None,
                hint="rebuild it with `koalign statutes build --from DIR`",
            )
        self.path = path
        self.built: str = data.get("built", "")
        self.source: dict[str, Any] = data.get("source", {})
        self.laws: list[LawFacts] = [
            LawFacts(
                name=row[0],
                law_id=row[1],
                mst=row[2],
                kind=row[3],
                promulgated=to_date(row[4]),
                promulgation_no=row[5],
                effective=to_date(row[6]),
                packed_articles=row[7],
                flags=tuple(row[8]) if len(row) > 8 else (),
            )
            for row in data.get("laws", [])
        ]
        self._by_key = {name_key(law.name): law for law in self.laws}

    @classmethod
    def load(cls, path: Path) -> StatuteIndex:
        """Read a ``statute_index.json.gz``; KoalignError naming the file when it is unusable."""
        try:
            data = orjson.loads(gzip.decompress(path.read_bytes()))
        except (OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
            raise KoalignError(
                f"cannot read the statute index: {exc}",
                where=str(path),
                hint="rebuild it with `koalign statutes build --from DIR`",
            ) from exc
        return cls(data, path=path)

    def law(self, name: str) -> LawFacts | None:
        """The law with this official name (spaces and middle dots ignored)."""
        return self._by_key.get(name_key(name))

    @property
    def snapshot(self) -> date | None:
        """Latest promulgation date of any law in the corpus (a lower bound of its date)."""
        dates = [law.promulgated for law in self.laws if law.promulgated]
        stated = self.source.get("snapshot_date")
        if stated:
            return date.fromisoformat(stated)
        return max(dates) if dates else None


def save_index(data: dict[str, Any], path: Path) -> int:
    """Write an index object as gzip'd compact JSON (deterministic bytes); returns the size."""
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    blob = gzip.compress(raw.encode("utf-8"), compresslevel=9, mtime=0)
    write_text_atomic(path, blob)
    path.chmod(0o644)  # package data: readable by everyone, like the YAML files beside it
    return len(blob)


__all__ = [
    "FORMAT",
    "INDEX_FILE",
    "ArticleFacts",
    "LawFacts",
    "StatuteIndex",
    "decode_items",
    "encode_items",
    "name_key",
    "save_index",
]

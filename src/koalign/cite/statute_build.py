"""Reading the legalize-kr Markdown text of Korean Acts into facts (the statute index).

Input: a folder holding ``kr/<law>/법률.md`` files and the Constitution's ``kr/<its name>/헌법.md``
(a clone of legalize-kr, or ``../shared/data/statutes``), or the ``kr`` folder itself. Each file starts with
a YAML header (``제목``, ``법령ID``, ``법령MST``, ``법령구분``, ``공포일자``, ``공포번호``,
``시행일자``); the body has ``##### 제N조의M (title)`` headings, paragraphs ``**①**``, items
``  1\\.`` / ``  2의2\\.`` and sub-items ``    가\\.``; deleted provisions read ``삭제 <YYYY.M.D>``;
amendment notes read ``<개정 YYYY.M.D, YYYY.M.D>``; the 부칙 follow ``## 부칙``, each headed
``부칙 <제N호,YYYY.M.D>`` (the promulgation number and date).

Dates: the file's ``시행일자`` belongs to its latest amendment. An article's own effective date
is that of its latest amendment note, read from the 부칙 promulgated on that date (the forms are
in ``_RULES``): effect on promulgation (that day), after a period of N days, months or years
(the day after the period ends: D + N months -> the day after D's date N months later), or on
a stated date; a proviso (``다만``) naming articles gives those articles their own date. A 부칙
that cannot be read leaves the date unknown.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from koalign.cite.statute_index import FORMAT, encode_items, from_date
from koalign.errors import KoalignError
from koalign.jsonio import read_text

_CIRCLED = {chr(0x2460 + i): i + 1 for i in range(20)}  # ① .. ⑳
_CIRCLED |= {chr(0x3251 + i): i + 21 for i in range(15)}  # ㉑ .. ㉟
_CIRCLED |= {chr(0x32B1 + i): i + 36 for i in range(15)}  # ㊱ .. ㊿
_HEADING = re.compile(r"^#####\s+제(\d+)조(?:의(\d+))?(?:\s*\((.*)\))?\s*$")
_SECTION = re.compile(r"^#{1,6}\s")
_PARAGRAPH = re.compile(r"^\*\*([" + "".join(_CIRCLED) + r"])\*\*\s*(.*)$")
_ITEM = re.compile(r"^ {1,3}(\d+)(?:의(\d+))?\\?\.\s*(.*)$")
_ANNOTATION = re.compile(r"^\s*\t\s*\[|^\s*\[\s*\d{2,4}헌")
_DELETED = re.compile(r"^삭제\s*<\s*(\d{4})\.\s*(\d{1,2})\.\s*(\d{1,2})\.?")
_NOTE = re.compile(r"[<\[](?:[^<>\[\]]*?)(?:개정|신설|전문개정|본조신설|제목개정)[^<>\[\]]*?[>\]]")
_DATE = re.compile(r"(\d{4})\.\s*(\d{1,2})\.\s*(\d{1,2})")
_SUPPL = re.compile(r"^부칙(?:\s*\((.*?)\))?\s*<제(\d+)호,\s*(\d{4})\.(\d{1,2})\.(\d{1,2})\.?>")
_ART_REF = re.compile(r"제(\d+)조(?:의(\d+))?(?:[^,ㆍ·및]*?부터\s*제(\d+)조(?:의(\d+))?\s*까지)?")
# How a 부칙 states when an amendment takes effect: the general drafting forms of Korean
# legislation, written as patterns to read dates from the corpus at build time. No text of any
# Act is kept in this module or in the index it builds (the index holds numbers and dates).
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"공포\s*후\s*(\d+)\s*년\s*(\d+)\s*개월이\s*경과한\s*날"), "ym"),
    (re.compile(r"공포(?:한)?\s*후\s*(\d+)\s*(?:개월|월)이\s*경과한\s*날"), "m"),
    (re.compile(r"공포(?:한)?\s*후\s*(\d+)\s*년이\s*경과한\s*날"), "y"),
    (re.compile(r"공포(?:한)?\s*후\s*(\d+)\s*일이\s*경과한\s*날"), "d"),
    (re.compile(r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일\s*부터"), "date"),
    (re.compile(r"공포한\s*날이\s*속하는\s*달의\s*다음\s*달\s*1\s*일"), "next_month"),
    (re.compile(r"공포한\s*날\s*(?:로)?\s*부터"), "now"),
]


@dataclass
class ArticleText:
    """One article as read from the Markdown: facts plus its body text (for cross-checks)."""

    number: str
    title: str | None
    text: str
    paragraphs: int = 0
    items: list[list[str]] = field(default_factory=list)
    deleted: date | None = None
    amended: list[date] = field(default_factory=list)
    effective: date | None = None
    deleted_paragraphs: dict[int, date] = field(default_factory=dict)
    deleted_items: dict[str, date] = field(default_factory=dict)

    def encode(self) -> list[Any]:
        """The compact JSON row of :mod:`koalign.cite.statute_index` (trailing empties cut)."""
        row: list[Any] = [
            self.number,
            self.paragraphs,
            [encode_items(g) for g in self.items] if any(self.items) else [],
            from_date(self.deleted),
            sorted({from_date(d) for d in self.amended}),
            from_date(self.effective),
            {str(k): from_date(v) for k, v in sorted(self.deleted_paragraphs.items())},
            {k: from_date(v) for k, v in sorted(self.deleted_items.items())},
        ]
        while row and row[-1] in ([], {}, 0, None) and len(row) > 2:
            row.pop()
        return row


@dataclass
class LawText:
    """One statute file: its header and its articles in order."""

    path: Path
    name: str
    law_id: str
    mst: str
    kind: str
    promulgated: date | None
    promulgation_no: str
    effective: date | None
    articles: dict[str, ArticleText]

    repeal_notice: bool = False

    @property
    def flags(self) -> list[str]:
        """``repeal_notice``: the file holds only a notice that the Act is repealed instead of
        the Act's text (some snapshots keep such a stale file for an Act that was repealed and
        enacted again). ``no_articles``: a short Act without numbered articles. The articles of
        either cannot be checked."""
        if self.repeal_notice:
            return ["repeal_notice"]
        return [] if self.articles else ["no_articles"]

    def encode(self) -> list[Any]:
        """The law as one row of the index's ``laws`` list: ``[name, law_id, mst, kind, promulgated,
        promulgation_no, effective, ARTICLES]`` with dates as ``YYYYMMDD`` integers and
        ``ARTICLES`` the compact JSON text of ``[ARTICLE, ...]``, plus ``flags`` (and no
        articles) for a file that cannot be checked (see :mod:`koalign.cite.statute_index`)."""
        row: list[Any] = [
            self.name,
            self.law_id,
            self.mst,
            self.kind,
            from_date(self.promulgated),
            self.promulgation_no,
            from_date(self.effective),
            json.dumps(
                [] if self.flags else [a.encode() for a in self.articles.values()],
                ensure_ascii=False,
                separators=(",", ":"),
            ),
        ]
        if self.flags:
            row.append(self.flags)
        return row


def _date(y: str, m: str, d: str) -> date | None:
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        return None


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _apply_rule(kind: str, m: re.Match[str], promulgated: date) -> date | None:
    if kind == "now":
        return promulgated
    if kind == "date":
        return _date(*m.groups())
    if kind == "next_month":
        return _add_months(promulgated.replace(day=1), 1)
    n = int(m.group(1))
    if kind == "ym":
        return _add_months(promulgated, 12 * n + int(m.group(2))) + timedelta(days=1)
    if kind == "m":
        return _add_months(promulgated, n) + timedelta(days=1)
    if kind == "y":
        return _add_months(promulgated, 12 * n) + timedelta(days=1)
    return promulgated + timedelta(days=n + 1)


def _rule_date(text: str, promulgated: date) -> date | None:
    """The effective date a clause states (the earliest-placed rule in it); None when the
    date is left to a decree or rule, or to an outside event (a treaty taking effect)."""
    if re.search(r"(?:령|규칙)으로\s*정하는\s*날|발효되는\s*날", text):
        return None
    found: list[tuple[int, date | None]] = []
    for pattern, kind in _RULES:
        m = pattern.search(text)
        if m:
            found.append((m.start(), _apply_rule(kind, m, promulgated)))
    return min(found, key=lambda x: x[0])[1] if found else None


def _articles_named(text: str) -> set[str]:
    """Article numbers a clause names (``제5조``, ``제7조의2``, ranges ``제3조부터 제5조까지``)."""
    out: set[str] = set()
    for m in _ART_REF.finditer(text):
        a, ab, b, bb = m.groups()
        out.add(a + (f"의{ab}" if ab else ""))
        if b and not ab and not bb and int(b) - int(a) < 200:
            out.update(str(n) for n in range(int(a), int(b) + 1))
        elif b:
            out.add(b + (f"의{bb}" if bb else ""))
    return out


@dataclass
class Supplementary:
    """When one amendment (one 부칙) took effect: its main date and per-article exceptions."""

    promulgated: date
    own: bool  # False for a 부칙 of another law that amended this one
    main: date | None
    exceptions: dict[str, date]
    proviso: bool = False  # the 시행일 clause has a "다만" (exceptions, read or not)


def _parse_supplementary(header: re.Match[str], body: str) -> Supplementary | None:
    promulgated = _date(*header.group(3, 4, 5))
    if promulgated is None:
        return None
    text = " ".join(body.split())
    start = text.find("시행")
    end = text.find("다.", start) + 2 if start >= 0 else 0
    if end < 2:
        end = min(len(text), 400)
    elif text[end:].lstrip().startswith("다만"):
        nxt = text.find("다.", end + 3)
        end = nxt + 2 if nxt >= 0 else len(text)
    clause = text[:end]
    head, _, rest = clause.partition("다만")
    main = _rule_date(head, promulgated)
    exceptions: dict[str, date] = {}
    for part in re.split(r"시행하(?:고|며)|,\s*(?=제\d+조)", rest):
        when = _rule_date(part, promulgated)
        if when is None:
            continue
        for number in _articles_named(part):
            exceptions[number] = when
    return Supplementary(promulgated, header.group(1) is None, main, exceptions, bool(rest))


def _header(text: str, path: Path) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        raise KoalignError("no YAML header", where=str(path), hint="expected legalize-kr format")
    end = text.find("\n---", 3)
    if end < 0:
        raise KoalignError("unterminated YAML header", where=str(path))
    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        raise KoalignError(f"unreadable YAML header: {exc}", where=str(path)) from exc
    return meta, text[end + 4 :]


def _iso(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_law(path: Path) -> LawText:
    """Read one legalize-kr statute file; KoalignError naming the file when it cannot be read,
    is not UTF-8 (with the ``iconv`` fix for CP949/EUC-KR) or is malformed."""
    meta, body = _header(read_text(path), path)
    name = str(meta.get("제목") or "").strip()
    if not name:
        raise KoalignError("header has no 제목", where=str(path))
    main, _, suppl = body.partition("\n## 부칙")
    articles = _parse_articles(main)
    repeal = "0" in articles or (len(articles) <= 1 and "폐지한다" in main)
    promulgated, effective = _iso(meta.get("공포일자")), _iso(meta.get("시행일자"))
    _date_articles(articles, suppl, promulgated, effective)
    return LawText(
        path=path,
        name=name,
        law_id=str(meta.get("법령ID") or ""),
        mst=str(meta.get("법령MST") or ""),
        kind=str(meta.get("법령구분") or ""),
        promulgated=promulgated,
        promulgation_no=str(meta.get("공포번호") or ""),
        effective=effective,
        articles={} if repeal else articles,
        repeal_notice=repeal,
    )


def _parse_articles(main: str) -> dict[str, ArticleText]:
    articles: dict[str, ArticleText] = {}
    current: ArticleText | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            current.text = "\n".join(lines).strip()
            _read_body(current, lines)
            articles.setdefault(current.number, current)

    for line in main.splitlines():
        m = _HEADING.match(line)
        if m:
            close()
            number = m.group(1) + (f"의{m.group(2)}" if m.group(2) else "")
            current, lines = ArticleText(number, m.group(3), ""), []
        elif _SECTION.match(line):
            close()
            current, lines = None, []
        elif current is not None:
            lines.append(line)
    close()
    return articles


def _read_body(art: ArticleText, lines: list[str]) -> None:
    paragraph = 0
    items: list[list[str]] = [[]]
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    dm = _DELETED.match(first)
    if dm:
        art.deleted = _date(*dm.groups())
    in_note = False  # a court-decision annotation (``[<case number> ...]``) with its own numbering
    for line in lines:
        if _ANNOTATION.match(line):
            in_note = True
        elif _PARAGRAPH.match(line):
            in_note = False
        if in_note:
            continue
        for note in _NOTE.findall(line):
            art.amended.extend(d for d in (_date(*g) for g in _DATE.findall(note)) if d)
        pm = _PARAGRAPH.match(line)
        if pm:
            paragraph = _CIRCLED[pm.group(1)]
            while len(items) < paragraph:
                items.append([])
            dm = _DELETED.match(pm.group(2).strip())
            if dm and (when := _date(*dm.groups())):
                art.deleted_paragraphs[paragraph] = when
                art.amended.append(when)
            continue
        im = _ITEM.match(line)
        if im:
            label = im.group(1) + (f"의{im.group(2)}" if im.group(2) else "")
            items[max(paragraph, 1) - 1].append(label)
            dm = _DELETED.match(im.group(3).strip())
            if dm and (when := _date(*dm.groups())):
                art.deleted_items[f"{paragraph}:{label}"] = when
                art.amended.append(when)
    art.paragraphs = paragraph
    art.items = items if any(items) else []


def _date_articles(
    articles: dict[str, ArticleText],
    suppl: str,
    promulgated: date | None,
    effective: date | None,
) -> None:
    """Set each article's effective date from the 부칙 of its latest amendment.

    The file header's 시행일자 is the date of its latest amendment (공포일자), so an article
    amended on that date takes it unless the amendment's own 부칙 names the article in an
    exception. An article with no amendment note that an own 부칙 names (a newly inserted
    article whose note the text lacks) takes that 부칙's date. A 부칙 of another law with
    exceptions cannot be read per article here: those dates stay unknown.
    """
    by_date: dict[date, list[Supplementary]] = {}
    for block in re.split(r"\n(?=부칙)", "\n" + suppl):
        head = _SUPPL.match(block.strip())
        if head is None:
            continue
        parsed = _parse_supplementary(head, block.strip()[head.end() :])
        if parsed is not None:
            by_date.setdefault(parsed.promulgated, []).append(parsed)
    named: dict[str, Supplementary] = {}
    for day in sorted(by_date):
        for s in by_date[day]:
            if s.own:
                for number in s.exceptions:
                    named[number] = s
    for art in articles.values():
        when = max(art.amended + ([art.deleted] if art.deleted else []), default=None)
        if when is None:
            s_named = named.get(art.number)
            if s_named is not None:
                art.amended.append(s_named.promulgated)
                art.effective = s_named.exceptions[art.number]
            continue
        candidates = sorted(by_date.get(when, []), key=lambda s: not s.own)
        own = next((s for s in candidates if s.own), None)
        if own is not None and art.number in own.exceptions:
            art.effective = own.exceptions[art.number]
        elif when == promulgated and effective is not None:
            art.effective = effective
        elif own is not None:
            art.effective = own.main
        elif candidates and not candidates[0].proviso and candidates[0].main:
            art.effective = candidates[0].main


def law_files(root: Path) -> list[Path]:
    """The statute files under ``root`` (a legalize-kr clone, its ``kr`` folder, or a copy)."""
    base = root / "kr" if (root / "kr").is_dir() else root
    if not base.is_dir():
        raise KoalignError(
            f"'{root}' is not a folder",
            hint="pass a legalize-kr clone or ../shared/data/statutes",
        )
    files = sorted([*base.glob("*/법률.md"), *base.glob("*/헌법.md")])
    if not files:
        raise KoalignError(
            f"no statute files (kr/<law>/법률.md) under '{root}'",
            hint="pass a legalize-kr clone or ../shared/data/statutes",
        )
    return files


def iter_laws(root: Path) -> Iterator[LawText]:
    """Every statute of the folder, parsed, in path order."""
    for path in law_files(root):
        yield parse_law(path)


def _git_commit(root: Path) -> str | None:
    """The checked-out commit of a git clone, read from ``.git`` without running git."""
    git = root / ".git"
    if not git.is_dir():
        return None
    head = (git / "HEAD").read_text(encoding="utf-8").strip()
    if not head.startswith("ref:"):
        return head
    ref = head.split(None, 1)[1]
    loose = git / ref
    if loose.is_file():
        return loose.read_text(encoding="utf-8").strip()
    packed = git / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return None


def build_index(
    root: Path,
    *,
    label: str | None = None,
    built: date | None = None,
    keep: list[LawText] | None = None,
) -> dict[str, Any]:
    """Parse every statute under ``root`` into an index object (see statute_index's format).

    ``source`` records the snapshot: files read, a sha256 over their paths and bytes, the
    latest 공포일자 in them (``snapshot_date``), the git commit when ``root`` is a clone, and
    ``label`` (free text, e.g. the upstream repository and commit). The parsed laws are
    appended to ``keep`` when it is given (for cross-checks that need the text).
    """
    sha = hashlib.sha256()
    laws: list[LawText] = []
    for path in law_files(root):
        rel = path.relative_to(root).as_posix()
        laws.append(parse_law(path))  # first: a file that cannot be read is named
        sha.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    laws.sort(key=lambda law: law.name)
    if keep is not None:
        keep.extend(laws)
    latest = max((law.promulgated for law in laws if law.promulgated), default=None)
    source: dict[str, Any] = {
        "files": len(laws),
        "sha256": sha.hexdigest(),
        "snapshot_date": latest.isoformat() if latest else None,
        "articles": sum(len(law.articles) for law in laws),
        "repeal_notices": [law.name for law in laws if law.repeal_notice],
    }
    commit = _git_commit(root)
    if commit:
        source["git_commit"] = commit
    if label:
        source["label"] = label
    return {
        "format": FORMAT,
        "built": (built or date.today()).isoformat(),
        "source": source,
        "laws": [law.encode() for law in laws],
    }


__all__ = ["ArticleText", "LawText", "build_index", "iter_laws", "law_files", "parse_law"]

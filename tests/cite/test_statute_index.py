"""Building the statute index from legalize-kr Markdown, and reading it back.

The synthetic corpus in data/corpus (invented laws, the legalize-kr format) covers every shape
the builder reads: branch articles and items, deleted articles, paragraphs and items, amendment
notes, 부칙 dates with exceptions, court-decision annotations and repeal notices.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest

from koalign.cite.statute_build import build_index, law_files, parse_law
from koalign.cite.statute_index import (
    StatuteIndex,
    decode_items,
    encode_items,
    name_key,
    save_index,
)
from koalign.errors import KoalignError

CORPUS = Path(__file__).parent / "data" / "corpus"


@pytest.fixture(scope="module")
def index() -> StatuteIndex:
    return StatuteIndex(build_index(CORPUS, label="synthetic", built=date(2026, 11, 29)))


def test_articles_paragraphs_items(index: StatuteIndex) -> None:
    law = index.law("시험법")
    assert law is not None and law.checkable
    assert list(law.articles) == ["1", "2", "3", "3의2", "4", "5", "10", "11"]
    assert law.last_article == 11
    art2 = law.articles["2"]
    assert art2.paragraphs == 0 and art2.has_paragraph(1) and not art2.has_paragraph(2)
    assert art2.item_group(None) == {(1, 0), (2, 0), (2, 2), (3, 0)}
    art3 = law.articles["3"]
    assert art3.paragraphs == 3
    assert art3.item_group(3) == {(1, 0), (2, 0)} and art3.item_group(2) == frozenset()
    assert art3.item_group(None) is None  # numbered paragraphs, none named


def test_deletions_with_dates(index: StatuteIndex) -> None:
    law = index.law("시험법")
    assert law is not None
    assert law.articles["4"].deleted == date(2016, 1, 6)
    assert law.articles["3"].deleted_paragraphs == {1: date(2016, 1, 6)}
    assert law.articles["2"].deleted_items == {(0, "3"): date(2025, 12, 23)}


def test_effective_dates_from_the_supplementary_provisions(index: StatuteIndex) -> None:
    law = index.law("시험법")
    assert law is not None
    arts = law.articles
    # amended on the file's 공포일자: the header's 시행일자 (6 months after 2026-03-12)
    assert arts["1"].effective == date(2026, 9, 13)
    # ... unless the 부칙 names the article in an exception ("공포한 날부터")
    assert arts["11"].effective == date(2026, 3, 12)
    # an earlier amendment: its own 부칙
    assert arts["10"].effective == date(2025, 12, 23)
    # amended through another law's 부칙 with exceptions: unknown
    assert arts["5"].effective is None
    assert arts["2"].amended == (date(2020, 5, 19), date(2025, 12, 23))


def test_annotation_numbers_are_not_items(index: StatuteIndex) -> None:
    law = index.law("시험법")
    assert law is not None
    assert law.articles["11"].items == ()


def test_repeal_notices_are_flagged(index: StatuteIndex) -> None:
    old = index.law("옛시험법")
    recent = index.law("최근폐지법")
    assert old is not None and recent is not None
    assert old.flags == ("repeal_notice",) and not old.checkable and old.articles == {}
    assert recent.flags == ("repeal_notice",) and recent.effective == date(2026, 10, 2)


def test_source_snapshot(index: StatuteIndex) -> None:
    src = index.source
    assert src["files"] == 3 and src["label"] == "synthetic"
    assert src["snapshot_date"] == "2026-03-24"
    assert src["repeal_notices"] == ["옛시험법", "최근폐지법"]
    assert len(src["sha256"]) == 64
    assert index.snapshot == date(2026, 3, 24)
    assert index.built == "2026-11-29"


def test_names_ignore_spaces_and_middle_dots(index: StatuteIndex) -> None:
    assert index.law("시험 법") is index.law("시험법")
    assert name_key("「아동·청소년의 성보호에 관한 법률」") == name_key(
        "아동ㆍ청소년의성보호에관한법률"
    )
    assert index.law("없는법") is None


def test_save_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    data = build_index(CORPUS, built=date(2026, 11, 29))
    a, b = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    save_index(data, a)
    save_index(build_index(CORPUS, built=date(2026, 11, 29)), b)
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(gzip.decompress(a.read_bytes())) == data
    loaded = StatuteIndex.load(a)
    assert loaded.law("시험법").articles["3"].deleted_paragraphs == {1: date(2016, 1, 6)}  # type: ignore[union-attr]
    assert a.stat().st_mode & 0o777 == 0o644


def test_articles_are_decoded_per_law_and_format_1_is_still_read() -> None:
    data = build_index(CORPUS, built=date(2026, 11, 29))
    assert data["format"] == 2 and all(isinstance(row[7], str) for row in data["laws"])
    index = StatuteIndex(data)
    law = index.law("시험법")
    assert law is not None and law._rows is None  # nothing decoded before the first lookup
    facts = law.articles["3"]
    assert law._rows is not None and all(x._rows is None for x in index.laws if x is not law)
    # the same facts from a version-1 file, whose articles are lists
    v1 = dict(
        data, format=1, laws=[[*row[:7], json.loads(row[7]), *row[8:]] for row in data["laws"]]
    )
    old = StatuteIndex(v1).law("시험법")
    assert old is not None and old.articles["3"] == facts
    assert [x.raw_articles for x in StatuteIndex(v1).laws] == [x.raw_articles for x in index.laws]


def test_one_article_is_decoded_alone_and_equals_the_whole_decoding() -> None:
    data = build_index(CORPUS, built=date(2026, 11, 29))
    law = StatuteIndex(data).law("시험법")
    assert law is not None
    art = law.article("3의2")
    assert art is not None and list(law._decoded) == ["3의2"] and law._articles is None
    assert law.article("3의2") is art and law.article("99") is None
    assert law.last_article == 11 and law._articles is None
    whole = StatuteIndex(data).law("시험법")
    assert whole is not None
    assert {n: law.article(n) for n in whole.articles} == whole.articles
    assert law.articles["3의2"] is art  # the whole decoding reuses what was decoded


def test_unreadable_or_foreign_index_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(KoalignError, match="cannot read the statute index"):
        StatuteIndex.load(bad)
    with pytest.raises(KoalignError, match="format 99 is not supported"):
        StatuteIndex({"format": 99})


def test_no_statute_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KoalignError, match="no statute files"):
        law_files(tmp_path)
    with pytest.raises(KoalignError, match="is not a folder"):
        law_files(tmp_path / "missing")
    (tmp_path / "kr" / "x").mkdir(parents=True)
    (tmp_path / "kr" / "x" / "법률.md").write_text("no header", encoding="utf-8")
    with pytest.raises(KoalignError, match="no YAML header"):
        parse_law(tmp_path / "kr" / "x" / "법률.md")


@pytest.mark.parametrize(
    "labels",
    [["1", "2", "3"], ["1", "2", "2의2", "3", "6", "6의2", "6의3", "6의4", "9"], ["5"], []],
)
def test_item_ranges_round_trip(labels: list[str]) -> None:
    from koalign.cite.statute_index import item_key

    assert decode_items(encode_items(labels)) == {item_key(x) for x in labels}
    assert encode_items(["1", "2", "2의2", "3"]) == "1-3,2의2"

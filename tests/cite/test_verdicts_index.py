"""Verdicts with a statute index: one definition each, on the synthetic corpus (data/corpus).

Registry here: 시험법 with a verified entry for 제3조 (paragraphs []), an unverified one for
제10조, a stale record for 제1조 (moved to 제3조의2), and 최근폐지법 / 옛시험법 known only to
the index.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from koalign.cite import CitationIndex, CitationVerdict
from koalign.cite.statute_build import build_index
from koalign.cite.statute_index import StatuteIndex
from koalign.locale_schema import Contacts, Statutes

CORPUS = Path(__file__).parent / "data" / "corpus"
REGISTRY = {
    "laws": [
        {
            "id": "test_act",
            "name": "시험법",
            "aliases": ["시법"],
            "articles": [
                {"article": "3", "summary": "금지", "confidence": "verified", "sources": ["x"]},
                {"article": "10", "summary": "벌칙", "confidence": "unverified"},
                {"article": "11", "paragraphs": ["1"], "summary": "공연한 위반",
                 "confidence": "high"},
                {"article": "1", "summary": "옛 조문", "status": "outdated", "replaced_by": "3의2",
                 "effective": "2025-12-23", "confidence": "verified", "sources": ["x"]},
                {"article": "3의2", "summary": "특례", "confidence": "verified", "sources": ["x"]},
            ],
        }
    ],
    "source_ids": {"x": "test"},
}  # fmt: skip
CONTACTS = {
    "contacts": [
        {"id": "police", "name": "경찰", "number": "112", "purpose": "신고",
         "confidence": "verified", "checked": "2026-11-01"},
    ]
}  # fmt: skip


def make(today: date = date(2026, 11, 29)) -> CitationIndex:
    return CitationIndex(
        Statutes.model_validate(REGISTRY),
        Contacts.model_validate(CONTACTS),
        None,
        StatuteIndex(build_index(CORPUS)),
        today=today,
    )


@pytest.fixture(scope="module")
def index() -> CitationIndex:
    return make()


def one(index: CitationIndex, text: str) -> CitationVerdict:
    (v,) = index.check(text).citations
    return v


@pytest.mark.parametrize(
    ("text", "status", "reason"),
    [
        # verified: in the registry, the provision exists and is current
        ("시험법 제3조", "verified", None),
        ("시험법 제3조 제2항", "verified", None),  # paragraphs [] + a paragraph the text has
        ("시험법 제3조 제3항 제2호", "verified", None),
        # unregistered: exists in the statute text, no registry entry
        ("시험법 제2조 제2호의2", "unregistered", "in the statute text; no registry entry"),
        ("시험법 제5조", "unregistered", "in the statute text; no registry entry"),
        ("시험법 제11조 제1항", "verified", None),
        # nonexistent: the law exists, the provision does not
        ("시험법 제3조 제4항", "nonexistent", "paragraph 4 not in the statute text (3 paragraphs)"),
        (
            "시험법 제2조 제2항",
            "nonexistent",
            "paragraph 2 not in the statute text (one paragraph)",
        ),
        (
            "시험법 제3조 제3항 제9호",
            "nonexistent",
            "item 9 not in paragraph 3 of the statute text",
        ),
        ("시험법 제2조 제2호의3", "nonexistent", "item 2의3 not in 제2조 of the statute text"),
        ("시험법 제12조", "nonexistent", "no 제12조 in the statute text (last article 제11조)"),
        ("시험법 제0조", "nonexistent", "article 0"),
        # outdated: deleted in the text, or a stale record of the registry
        ("시험법 제3조 제1항", "outdated", "paragraph 1 deleted 2016-01-06"),
        ("시험법 제4조", "outdated", "article deleted 2016-01-06"),
        ("시험법 제2조 제3호", "outdated", "item 3 deleted 2025-12-23"),
        ("시험법 제1조", "outdated", "registry: outdated; now 제3조의2 (since 2025-12-23)"),
        # unverified: a registry entry that is not confirmed
        ("시험법 제10조", "unverified", "registry entry unverified"),
        # laws the index knows only by name
        ("최근폐지법 제3조", "outdated", "the Act was repealed (2026-10-02)"),
        (
            "옛시험법 제3조",
            "unverified",
            "the statute index has only a repeal notice of 1997-03-13 under this name, not the "
            "text in force (the corpus lacks it)",
        ),
        # unknown_law: after alias resolution, in neither the index nor the registry
        ("가짜시험법 제3조", "unknown_law", "not a Korean Act the index or registry knows"),
    ],
)
def test_verdict_definitions(index: CitationIndex, text: str, status: str, reason: str) -> None:
    v = one(index, text)
    assert (v.status, v.reason) == (status, reason)


def test_registry_stale_record_wins_over_the_text(index: CitationIndex) -> None:
    v = one(index, "시법 제1조")  # 제1조 exists in the text, but the registry records it as moved
    assert (v.law, v.law_id, v.status, v.replacement) == ("시험법", "test_act", "outdated", "3의2")


def test_bare_mentions(index: CitationIndex) -> None:
    got = [(v.law, v.status) for v in index.check("시험법과 최근폐지법에 따라").citations]
    assert got == [("시험법", "verified"), ("최근폐지법", "unregistered")]


def test_confidence_comes_from_the_registry_entry(index: CitationIndex) -> None:
    assert one(index, "시험법 제3조").confidence == "verified"
    assert one(index, "시험법 제11조").confidence == "high"
    assert one(index, "시험법 제10조").confidence == "unverified"
    assert one(index, "시험법 제5조").confidence is None


def test_a_deletion_counts_once_in_force() -> None:
    before = make(today=date(2025, 12, 1))  # the 2025-12-23 deletion of item 3 is not in force
    assert one(before, "시험법 제2조 제3호").status == "unregistered"
    assert one(make(), "시험법 제2조 제3호").status == "outdated"


def test_without_an_index_the_registry_alone_decides() -> None:
    plain = CitationIndex(Statutes.model_validate(REGISTRY), Contacts.model_validate(CONTACTS))
    assert one(plain, "시험법 제3조").status == "verified"
    v = one(plain, "시험법 제3조 제4항")  # paragraphs [] no longer means any paragraph
    assert (v.status, v.reason) == (
        "unverified",
        "paragraph 4 not listed by the registry; no statute index",
    )
    assert one(plain, "시험법 제5조").status == "unverified"
    assert one(plain, "최근폐지법 제3조").status == "unknown_law"


def test_json_shape_carries_confidence_reason_inferred(index: CitationIndex) -> None:
    report = index.check("시험법 위반이며, 처벌은 제3조 제1항에 따릅니다.")
    bare, art = (c.to_dict() for c in report.citations)
    assert "inferred" not in bare and "confidence" not in bare
    assert art["inferred"] is True
    assert art["status"] == "outdated" and art["reason"] == "paragraph 1 deleted 2016-01-06"
    assert art["confidence"] == "verified"


def test_a_registry_law_whose_corpus_file_is_a_repeal_notice_says_so() -> None:
    """Like 근로기준법 in the legalize-kr snapshot: the only file under the name is the 1997
    repeal notice, so the registry alone judges, and the reason says why (not "no index")."""
    registry = {
        "laws": [
            {"id": "old_act", "name": "옛시험법", "articles": [
                {"article": "2", "summary": "정의", "confidence": "verified", "sources": ["x"]},
                {"article": "3", "summary": "금지", "confidence": "unverified"},
            ]},
            {"id": "absent_act", "name": "없는시험법", "articles": []},
        ],
        "source_ids": {"x": "test"},
    }  # fmt: skip
    index = CitationIndex(
        Statutes.model_validate(registry),
        Contacts.model_validate(CONTACTS),
        None,
        StatuteIndex(build_index(CORPUS)),
        today=date(2026, 11, 29),
    )
    notice = (
        "the statute index has only a repeal notice of 1997-03-13 under this name, not the text "
        "in force (the corpus lacks it)"
    )
    got = {t: (v.status, v.reason) for t in ("옛시험법 제60조", "옛시험법 제2조 제2항",
           "옛시험법 제2조 제1호", "옛시험법 제2조", "없는시험법 제5조")
           for v in [one(index, t)]}  # fmt: skip
    assert got == {
        "옛시험법 제60조": ("unverified", f"article not in the registry; {notice}"),
        "옛시험법 제2조 제2항": (
            "unverified",
            f"paragraph 2 not listed by the registry; {notice}",
        ),
        "옛시험법 제2조 제1호": ("unverified", f"items need the statute text; {notice}"),
        "옛시험법 제2조": ("verified", None),
        "없는시험법 제5조": (
            "unverified",
            "article not in the registry; the statute index has no text of this Act",
        ),
    }

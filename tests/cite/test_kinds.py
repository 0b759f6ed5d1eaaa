"""Each kind of fault of issue 14, with its own examples, on the shipped Korean pack.

(1) carry-forward of bare articles, (2) paragraph and item currency, (3) nicknames, (4) real
laws outside the hand registry, (5) compounds and foreign law, (6) number reading,
(7) confidence in the output, (8) renamed institutions; and the rejection rule.
"""

from __future__ import annotations

import pytest

from koalign.cite import (
    DEFAULT_REJECT,
    VERDICTS,
    CitationIndex,
    CitationReport,
    check_reject,
    index_for,
    rejection_reasons,
)
from koalign.errors import KoalignError
from koalign.locale import load_locale


@pytest.fixture(scope="module")
def ko() -> CitationIndex:
    return index_for(load_locale("ko"))


def cites(ko: CitationIndex, text: str) -> list[tuple]:
    return [
        (v.law_id or v.law, v.article, v.paragraph, v.item, v.status, v.inferred)
        for v in ko.check(text).citations
    ]


# ----------------------------------------------------------------------------- (1) carry-forward
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "형법 제347조의 사기죄나 제347조의2의 컴퓨터등사용사기죄가 문제됩니다.",
            [("criminal_act", "347", None, None, "verified", False),
             ("criminal_act", "347의2", None, None, "verified", True)],
        ),
        (
            "스토킹처벌법 위반이며, 처벌 조항은 제18조 제1항입니다.",
            [("stalking_act", None, None, None, "verified", False),
             ("stalking_act", "18", "1", None, "verified", True)],
        ),
        (  # a sentence boundary stops it
            "근로기준법 제76조의2를 보세요. 제109조는 다른 이야기입니다.",
            [("labor_standards_act", "76의2", None, None, "verified", False)],
        ),
        (  # another instrument claims the article
            "근로기준법 위반이고 회사 취업규칙 제5조에도 어긋납니다.",
            [("labor_standards_act", None, None, None, "verified", False)],
        ),
        (  # a decree is not the Act, and stops carry-forward
            "근로기준법 시행령 제3조와 제5조",
            [],
        ),
        (  # foreign law stops carry-forward too
            "형법 제307조가 있고, 일본 헌법 제9조와 제10조는 다른 나라 얘기입니다.",
            [("criminal_act", "307", None, None, "verified", False)],
        ),
        (  # to the last law named, not an earlier one
            "형법 제307조와 정보통신망법을 함께 보면 제70조 제2항이 적용됩니다.",
            [("criminal_act", "307", None, None, "verified", False),
             ("network_act", None, None, None, "verified", False),
             ("network_act", "70", "2", None, "verified", True)],
        ),
    ],
)  # fmt: skip
def test_carry_forward(ko: CitationIndex, text: str, expected: list) -> None:
    assert cites(ko, text) == expected


def test_a_bare_article_with_no_law_is_not_a_citation(ko: CitationIndex) -> None:
    assert ko.check("제307조에 따르면 처벌됩니다.").citations == []
    assert ko.check("이 문서의 제3조를 보세요.").citations == []


# ----------------------------------------------------------------------------- (2) currency
@pytest.mark.parametrize(
    ("text", "status", "reason"),
    [
        ("스토킹처벌법 제18조 제3항", "outdated", "paragraph 3 deleted 2023-07-11"),
        ("폭력행위처벌법 제3조 제1항", "outdated", "paragraph 1 deleted 2016-01-06"),
        ("폭처법 제3조 제2항", "outdated", "paragraph 2 deleted 2006-03-24"),
        ("폭처법 제3조 제4항", "verified", None),
        ("형법 제311조 제3항", "nonexistent", "paragraph 3 not in the statute text (one paragraph)"),
        ("형법 제311조 제9항", "nonexistent", "paragraph 9 not in the statute text (one paragraph)"),
        ("정보통신망법 제44조의7 제1항 제99호", "nonexistent",
         "item 99 not in paragraph 1 of the statute text"),
        ("정보통신망법 제44조의7 제1항 제2호의2", "verified", None),
        ("청소년 보호법 제59조 제5호", "outdated", "item 5 deleted 2021-12-07"),
        ("형법 제999조", "nonexistent", "no 제999조 in the statute text (last article 제372조)"),
    ],
)  # fmt: skip
def test_paragraph_and_item_currency(
    ko: CitationIndex, text: str, status: str, reason: str | None
) -> None:
    (v,) = ko.check(text).citations
    assert (v.status, v.reason) == (status, reason)


def test_stale_registry_record_wins_over_the_text(ko: CitationIndex) -> None:
    (v,) = ko.check("동물보호법 제8조").citations  # 제8조 exists today, but covers something else
    assert (v.status, v.replacement) == ("outdated", "10")
    assert v.reason == "registry: outdated; now 제10조"


# ----------------------------------------------------------------------------- (3) nicknames
@pytest.mark.parametrize(
    ("name", "law_id"),
    [
        ("국보법", "national_security_act"), ("선거법", "election_act"),
        ("성폭법", "sexual_violence_act"), ("학폭법", "school_violence_act"),
        ("인공지능기본법", "ai_basic_act"), ("AI기본법", "ai_basic_act"),
        ("식품표시광고법", "food_labeling_act"), ("성매매처벌법", "prostitution_act"),
        ("개보법", "personal_information_act"), ("장차법", "disability_discrimination_act"),
        ("중대재해처벌법", "serious_accidents_act"), ("아동·청소년성보호법", "youth_sex_protection_act"),
        ("공익신고자보호법", "whistleblower_protection_act"), ("청탁금지법", "anti_graft_act"),
    ],
)  # fmt: skip
def test_nicknames_are_not_unknown_laws(ko: CitationIndex, name: str, law_id: str) -> None:
    (v,) = ko.check(f"{name} 제1조").citations
    assert v.law_id == law_id and v.status != "unknown_law"


# ----------------------------------------------------------------------------- (4) real laws
@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("방송법 제71조", "verified"),
        ("공익신고자 보호법 제12조 제1항", "verified"),
        ("헌법재판소법 제68조", "verified"),
        ("법원조직법 제8조", "verified"),
        ("주택임대차보호법 제3조", "unregistered"),  # a real Act the registry does not curate
        ("형법 제123조의2", "unregistered"),
        ("장애인차별금지법 제21조", "unregistered"),
        ("차별금지법 제3조", "unknown_law"),  # no such Act
        ("혐오표현처벌법 제2조", "unknown_law"),
    ],
)
def test_real_laws_outside_the_registry(ko: CitationIndex, text: str, status: str) -> None:
    (v,) = ko.check(text).citations
    assert v.status == status


def test_new_laws_in_the_registry(ko: CitationIndex) -> None:
    assert cites(ko, "대한민국헌법 제21조 제4항과 주민등록법 제37조 제1항 제10호") == [
        ("constitution", "21", "4", None, "verified", False),
        ("resident_registration_act", "37", "1", "10", "verified", False),
    ]
    (v,) = ko.check("민법 제750조").citations  # read from the statute text only: unverified
    assert (v.status, v.confidence) == ("unverified", "unverified")


# ----------------------------------------------------------------------------- (5) compounds
@pytest.mark.parametrize(
    "text",
    [
        "헌법재판소가 위헌 결정을 내렸다.", "헌법소원을 제기했다.", "헌법기관의 독립성",
        "일본 헌법 제9조는 전쟁 포기를 규정한다.", "홍콩 국가보안법이 시행되었다.",
        "미국 헌법 수정 제1조", "교단의 헌법 제3조에 따르면", "북한 형법 제60조",
        "구 동물보호법 제8조", "정보통신망법안이 국회를 통과했다.", "형법학자들",
        "국회 법제사법위원회를 통과했다.",
    ],
)  # fmt: skip
def test_compounds_and_foreign_law_are_not_citations(ko: CitationIndex, text: str) -> None:
    assert ko.check(text).citations == []


def test_the_korean_constitution_is(ko: CitationIndex) -> None:
    assert cites(ko, "대한민국 헌법 제10조와 헌법 제37조 제2항") == [
        ("constitution", "10", None, None, "verified", False),
        ("constitution", "37", "2", None, "verified", False),
    ]


# ----------------------------------------------------------------------------- (6) numbers
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("지역 상담소는 041-1366으로 걸면 됩니다.", [("041-1366", "current", "women_emergency_line")]),
        ("(031)1366에 전화", [("(031)1366", "current", "women_emergency_line")]),
        ("다누리콜센터 1577–1366", [("1577–1366", "current", "danuri")]),
        ("예전 번호 1899 0893은 이제 쓰지 않습니다.", [("1899 0893", "retired", "drug_line_1899_0893")]),
        ("키가 182에 몸무게가 75예요.", []),
        ("그 팀은 182 대 109로 이겼다.", []),
        ("경찰민원콜센터(182)에 문의하세요.", [("182", "current", "police_civil")]),
        ("112, 119에 신고", [("112", "current", "police"), ("119", "current", "fire_emergency")]),
        ("1577 1366명이 참석했다", []),
    ],
)  # fmt: skip
def test_number_reading(ko: CitationIndex, text: str, expected: list) -> None:
    got = [(k.number, k.status, k.contact_id) for k in ko.check(text).contacts]
    assert got == expected


# ----------------------------------------------------------------------------- (7) confidence
def test_confidence_of_numbers_and_citations(ko: CitationIndex) -> None:
    (k,) = ko.check("저작권 침해 신고는 1588-0190").contacts
    assert (k.status, k.confidence) == ("current", "unverified")
    assert k.to_dict()["confidence"] == "unverified"
    (k,) = ko.check("자살예방상담전화 109").contacts
    assert k.confidence == "verified"
    (v,) = ko.check("근로기준법 제116조").citations
    assert (v.status, v.confidence) == ("unverified", "unverified")
    (v,) = ko.check("형법 제284조").citations
    assert (v.status, v.confidence) == ("verified", "high")


# ----------------------------------------------------------------------------- (8) institutions
@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("성폭력 피해는 여성가족부가 운영하는 1366에 상담하세요.", "renamed"),
        ("방송통신위원회에 민원을 넣으세요.", "renamed"),
        ("청소년 정책은 여성가족부 소관입니다.", "renamed"),
        ("불법 정보는 방송통신심의위원회에 신고하세요.", "renamed"),
        ("여성가족부(현 성평등가족부)가 발표한 자료", "historical"),
        ("2019년 여성가족부 조사에 따르면", "historical"),
        ("옛 방송통신위원회 시절의 규제", "historical"),
        ("방송통신심의위원회가 심의 기준을 강화했다.", "historical"),
        ("여성가족부는 폐지되어야 하는가?", "mentioned"),
    ],
)
def test_renamed_institutions(ko: CitationIndex, text: str, status: str) -> None:
    (inst,) = ko.check(text).institutions
    assert inst.status == status
    assert inst.current_name in {"성평등가족부", "방송미디어통신위원회", "방송미디어통신심의위원회"}


def test_renamed_institution_is_a_problem(ko: CitationIndex) -> None:
    report = ko.check("여성가족부에 신고하세요.")
    (inst,) = report.problems
    assert inst.to_dict() == {
        "name": "여성가족부", "status": "renamed",
        "institution_id": "ministry_gender_equality_family", "current_name": "성평등가족부",
        "span": [0, 5], "renamed_on": "2025-10-01", "confidence": "verified",
    }  # fmt: skip


# ----------------------------------------------------------------------------- rejection rule
ANSWER = (
    "동물보호법 제8조와 형법 제123조의2, 그리고 방송법 제71조를 보세요. "
    "차별금지법 제3조도 있습니다. 상담은 1393, 여성가족부에 문의하세요."
)


def test_default_rejection_set(ko: CitationIndex) -> None:
    report = ko.check(ANSWER)
    assert rejection_reasons(report) == {
        "contact_retired": 1, "institution_renamed": 1, "outdated": 1, "unknown_law": 1,
    }  # fmt: skip
    assert report.counts()["unregistered"] == 1  # kept, but counted
    assert not report.ok
    assert rejection_reasons(ko.check("형법 제123조의2에 따라")) == {}


def test_custom_rejection_set_and_dict_form(ko: CitationIndex) -> None:
    report = ko.check(ANSWER)
    strict = DEFAULT_REJECT | {"unregistered"}
    assert rejection_reasons(report, strict)["unregistered"] == 1
    assert rejection_reasons(report.to_dict(), strict) == rejection_reasons(report, strict)
    assert rejection_reasons(report, set()) == {}
    round_trip = CitationReport.from_dict(report.to_dict())
    assert round_trip == report


def test_verdict_names_are_validated() -> None:
    assert set(VERDICTS) >= DEFAULT_REJECT
    assert set(VERDICTS) >= {"unregistered", "institution_mentioned", "contact_unknown"}
    with pytest.raises(KoalignError, match=r"unknown citation verdict 'outdate'.*did you mean"):
        check_reject(["outdate"])
    with pytest.raises(KoalignError, match="unknown citation verdict 'nope'"):
        rejection_reasons(CitationReport(), {"nope"})
    assert check_reject(["outdated", "unregistered"]) == {"outdated", "unregistered"}

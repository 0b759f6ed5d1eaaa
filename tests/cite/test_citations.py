"""Statute citations: every surface form, every verdict, and look-alikes that must not match.

Each expected citation is (law id, or the name as written for an unknown law, article,
paragraph, item, status, replacement). The registry here (data/pack) has no statute index, so
these verdicts come from the hand registry alone; test_verdicts_index.py and test_kinds.py
cover the verdicts that need the statute text.
"""

from __future__ import annotations

import pytest

from koalign.cite import CitationIndex, CitationVerdict

V, OLD, U, N, X = "verified", "outdated", "unverified", "nonexistent", "unknown_law"
CA, NA, SV, YS = "criminal_act", "network_act", "sexual_violence_act", "youth_sex_protection_act"
AN, VA, LS = "animal_protection_act", "violence_act", "labor_standards_act"


def c(law, article, status, paragraph=None, item=None, replacement=None):
    return (law, article, paragraph, item, status, replacement)


def summary(v: CitationVerdict):
    return (v.law_id or v.law, v.article, v.paragraph, v.item, v.status, v.replacement)


SURFACE = [
    # official names, aliases, brackets, spacing
    ("형법 제307조에 따라 처벌됩니다.", [c(CA, "307", V)]),
    ("형법 307조를 보면", [c(CA, "307", V)]),
    ("「형법」 제307조", [c(CA, "307", V)]),
    ("『형법』 제311조", [c(CA, "311", V)]),
    ("형법 제 307 조", [c(CA, "307", V)]),
    ("형법제307조", [c(CA, "307", V)]),
    ("'형법' 제307조", [c(CA, "307", V)]),
    ("“형법” 제311조", [c(CA, "311", V)]),
    ("**형법** 제307조", [c(CA, "307", V)]),
    ("**형법 제307조**", [c(CA, "307", V)]),
    ("형법 제３０７조 제２항", [c(CA, "307", V, "2")]),  # full-width digits
    ("정보통신망법 제70조", [c(NA, "70", V)]),
    ("정통망법 제70조 제1항", [c(NA, "70", V, "1")]),
    ("망법 제70조 위반", [c(NA, "70", V)]),
    ("정보통신망 이용촉진 및 정보보호 등에 관한 법률 제70조", [c(NA, "70", V)]),
    ("「정보통신망 이용촉진 및 정보보호 등에 관한 법률」 제70조제2항", [c(NA, "70", V, "2")]),
    ("정보통신망이용촉진및정보보호등에관한법률 제70조", [c(NA, "70", V)]),
    ("성폭력범죄의 처벌 등에 관한 특례법 제14조의2", [c(SV, "14의2", V)]),
    ("성폭력특례법 제14조의3", [c(SV, "14의3", V)]),
    ("아동·청소년의 성보호에 관한 법률 제11조", [c(YS, "11", V)]),
    ("아동ㆍ청소년의 성보호에 관한 법률 제11조", [c(YS, "11", V)]),
    ("아청법 제11조 제5항", [c(YS, "11", V, "5")]),
    ("청소년성보호법 11조 5항", [c(YS, "11", V, "5")]),
    ("청소년 보호법 제28조", [c("youth_protection_act", "28", V)]),
    ("청소년보호법 제28조", [c("youth_protection_act", "28", V)]),
    ("개인정보 보호법 제59조", [c("personal_info_act", "59", V)]),
    ("개인정보보호법 제59조", [c("personal_info_act", "59", V)]),
    ("폭력행위 등 처벌에 관한 법률 제2조 제2항", [c(VA, "2", V, "2")]),
    # branch articles
    ("형법 제116조의2", [c(CA, "116의2", V)]),
    ("형법 제116조의2에 신설된 공중협박죄", [c(CA, "116의2", V)]),
    ("근로기준법 제76조의2", [c(LS, "76의2", V)]),
    ("근로기준법 76조의3", [c(LS, "76의3", V)]),
    ("성폭력처벌법 제14조의2 제4항", [c(SV, "14의2", V, "4")]),
    # paragraphs and items
    ("형법 제307조 제1항", [c(CA, "307", V, "1")]),
    ("형법 제307조제2항", [c(CA, "307", V, "2")]),
    ("형법 제307조 2항", [c(CA, "307", V, "2")]),
    ("형법 제307조 ②", [c(CA, "307", V, "2")]),
    ("형법 제307조②에 해당", [c(CA, "307", V, "2")]),
    ("형법 제307조 ① 공연히 사실을 적시하여", [c(CA, "307", V, "1")]),
    ("형법 제307조제1항에서 정하는 명예훼손", [c(CA, "307", V, "1")]),
    # items: this registry has no statute index, so an item cannot be confirmed (unverified)
    ("정보통신망법 제44조의7제1항제1호", [c(NA, "44의7", U, "1", "1")]),
    ("정보통신망법 제44조의7제1항제9호 가목", [c(NA, "44의7", U, "1", "9")]),
    ("정보통신망법 제74조 제1항 제2호", [c(NA, "74", U, "1", "2")]),
    ("정보통신망법 제74조 1항 2호", [c(NA, "74", U, "1", "2")]),
    ("정보통신망법 제44조의7 제1항 제2호의2", [c(NA, "44의7", U, "1", "2의2")]),
    # lists and ranges
    ("형법 제307조 및 제311조", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제307조와 제311조", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제311조과 제307조", [c(CA, "311", V), c(CA, "307", V)]),
    ("형법 제307조, 제308조, 제311조", [c(CA, "307", V), c(CA, "308", V), c(CA, "311", V)]),
    ("형법 제307조 또는 제311조", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제307조나 제311조", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제307조·제311조", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제307조, 311조", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제246조 내지 제248조", [c(CA, "246", V), c(CA, "248", V)]),
    ("형법 제246조부터 제248조까지", [c(CA, "246", V), c(CA, "248", V)]),
    ("형법 제246조~제248조", [c(CA, "246", V), c(CA, "248", V)]),
    ("형법 제307조(명예훼손)와 제311조(모욕)", [c(CA, "307", V), c(CA, "311", V)]),
    ("성폭력처벌법 제14조·제14조의2", [c(SV, "14", V), c(SV, "14의2", V)]),
    ("정보통신망법 제70조제1항·제2항", [c(NA, "70", V, "1"), c(NA, "70", V, "2")]),
    ("정보통신망법 제70조①·②", [c(NA, "70", V, "1"), c(NA, "70", V, "2")]),
    (
        "정보통신망법 제70조 제1항, 제2항 및 제3항",
        [c(NA, "70", V, "1"), c(NA, "70", V, "2"), c(NA, "70", V, "3")],
    ),
    (
        "정보통신망법 제44조의7 제1항 제2호·제3호",
        [c(NA, "44의7", U, "1", "2"), c(NA, "44의7", U, "1", "3")],
    ),
    ("형법 제246조 제1항 및 제247조", [c(CA, "246", V, "1"), c(CA, "247", V)]),
    # particles attached
    ("형법 제307조에 해당합니다", [c(CA, "307", V)]),
    ("형법 제307조를 위반하면", [c(CA, "307", V)]),
    ("형법 제307조는 사실 적시 명예훼손입니다", [c(CA, "307", V)]),
    ("형법 제307조의 명예훼손죄", [c(CA, "307", V)]),
    ("근로기준법 제76조의2를 위반하면", [c(LS, "76의2", V)]),
    ("성폭력처벌법 제14조의2에서 정한 허위영상물", [c(SV, "14의2", V)]),
    ("동물보호법 제10조에는", [c(AN, "10", V)]),
    ("형법상 제307조", [c(CA, "307", V)]),
    ("형법의 제311조", [c(CA, "311", V)]),
    ("형법은 제307조에서 명예훼손을 규정한다", [c(CA, "307", V)]),
    # parentheses
    ("모욕죄(형법 제311조)는 친고죄입니다.", [c(CA, "311", V)]),
    ("(정보통신망법 제70조 제2항 참조)", [c(NA, "70", V, "2")]),
    ("명예훼손(형법 제307조, 제308조)", [c(CA, "307", V), c(CA, "308", V)]),
    ("형법(제307조)", [c(CA, "307", V)]),
    ("성폭력범죄의 처벌 등에 관한 특례법(이하 '성폭력처벌법') 제14조", [c(SV, "14", V)]),
    ("「형법」(2024년 개정) 제307조 제1항", [c(CA, "307", V, "1")]),
    ("형법(명예훼손) 관련 규정", [c(CA, None, V)]),
    # same law / same article
    ("동물보호법 제8조 및 같은 법 제97조", [c(AN, "8", OLD, replacement="10"), c(AN, "97", V)]),
    ("근로기준법 제76조의2와 동법 제76조의3", [c(LS, "76의2", V), c(LS, "76의3", V)]),
    ("형법 제307조, 같은 법 제311조", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제307조. 동 법 제311조도 있다.", [c(CA, "307", V), c(CA, "311", V)]),
    ("형법 제307조. 같은법 제311조", [c(CA, "307", V), c(CA, "311", V)]),
    (
        "형법 제307조와 정보통신망법 제70조, 같은 법 제74조",
        [c(CA, "307", V), c(NA, "70", V), c(NA, "74", V)],
    ),
    ("형법 제307조 제1항 및 같은 조 제2항", [c(CA, "307", V, "1"), c(CA, "307", V, "2")]),
    ("형법 제307조 제1항. 동조 제2항", [c(CA, "307", V, "1"), c(CA, "307", V, "2")]),
    (
        "정보통신망법 제44조의7 제1항. 같은 조 제1항 제2호",
        [c(NA, "44의7", V, "1"), c(NA, "44의7", U, "1", "2")],
    ),
    ("형법을 보면 같은 법 제311조가 모욕죄다", [c(CA, None, V), c(CA, "311", V)]),
    (
        "형법 제307조 제1항. 정보통신망법에서도 같은 조 제2항은 다르다",
        [c(CA, "307", V, "1"), c(NA, None, V), c(CA, "307", V, "2")],
    ),
    ("차별금지법 제3조와 같은 법 제5조", [c("차별금지법", "3", X), c("차별금지법", "5", X)]),
    # bare mentions of known laws
    ("형법에 따르면 처벌됩니다", [c(CA, None, V)]),
    ("근로기준법상 직장 내 괴롭힘", [c(LS, None, V)]),
    ("「정보통신망법」에 따라", [c(NA, None, V)]),
    ("아청법과 청소년 보호법", [c(YS, None, V), c("youth_protection_act", None, V)]),
    ("형법 3조 원", [c(CA, None, V)]),
]

VERDICTS = [
    ("형법 제309조", [c(CA, "309", U)]),  # not in the registry, below last_article
    ("형법 제372조", [c(CA, "372", U)]),
    ("형법 제373조", [c(CA, "373", N)]),  # beyond last_article 372
    ("형법 제999조에 따라", [c(CA, "999", N)]),
    ("형법 제0조", [c(CA, "0", N)]),
    ("형법 제252조 제2항", [c(CA, "252", U, "2")]),  # registry entry itself is unverified
    ("형법 제307조 제3항", [c(CA, "307", U, "3")]),  # paragraph the registry does not list
    ("정보통신망법 제70조 제4항", [c(NA, "70", U, "4")]),
    ("정보통신망법 제75조", [c(NA, "75", U)]),
    ("정보통신망법 제9999조", [c(NA, "9999", U)]),  # last_article unknown: never nonexistent
    ("성폭력처벌법 제14조의4", [c(SV, "14의4", U)]),
    ("근로기준법 제200조", [c(LS, "200", N)]),
    ("근로기준법 제116조", [c(LS, "116", U)]),
    ("동물보호법 제8조", [c(AN, "8", OLD, replacement="10")]),
    ("동물보호법 제8조에 따라 처벌", [c(AN, "8", OLD, replacement="10")]),
    ("동물보호법 제8조 제1항", [c(AN, "8", OLD, "1", replacement="10")]),
    (
        "동물보호법 제8조. 동조 제2항",
        [c(AN, "8", OLD, replacement="10"), c(AN, "8", OLD, "2", replacement="10")],
    ),
    ("동물보호법 제10조", [c(AN, "10", V)]),
    ("동물보호법 제102조", [c(AN, "102", N)]),
    ("폭처법 제3조", [c(VA, "3", OLD)]),  # repealed: outdated without a replacement
    ("폭력행위처벌법 제3조 제1항", [c(VA, "3", OLD, "1")]),
    ("형법 제307조 2년 이하의 징역", [c(CA, "307", V)]),
    ("형법 제307조 1, 2항", [c(CA, "307", V)]),
    # unknown laws: a law-shaped name with an article
    ("차별금지법 제3조", [c("차별금지법", "3", X)]),
    ("「차별금지법」 제3조에 따라", [c("차별금지법", "3", X)]),
    ("디지털성범죄 방지에 관한 법률 제5조", [c("디지털성범죄 방지에 관한 법률", "5", X)]),
    ("그리고 피해자 보호에 관한 법률 제5조", [c("피해자 보호에 관한 법률", "5", X)]),
    ("「디지털 성범죄 방지 특별법」 제3조 제1항", [c("디지털 성범죄 방지 특별법", "3", X, "1")]),
    ("군형법 제1조", [c("군형법", "1", X)]),
    ("인공지능기본법 제31조", [c("인공지능기본법", "31", X)]),
    ("개인정보보호특별법 제7조의2", [c("개인정보보호특별법", "7의2", X)]),
    ("혐오표현처벌법 제2조 및 제3조", [c("혐오표현처벌법", "2", X), c("혐오표현처벌법", "3", X)]),
    ("(가짜뉴스방지법 제4조 참조)", [c("가짜뉴스방지법", "4", X)]),
    ("'가짜뉴스방지법' 제4조", [c("가짜뉴스방지법", "4", X)]),
    (
        "형법 제307조 제2항(허위사실 적시), 제309조(출판물 등에 의한 명예훼손)",
        [c(CA, "307", V, "2"), c(CA, "309", U)],
    ),
    ("형법 제307조, 제311조 등", [c(CA, "307", V), c(CA, "311", V)]),
]

LOOKALIKES = [
    "해결 방법 제1조를 따르세요.",
    "불법 제3조",
    "헌법 제10조는 인간의 존엄을 규정합니다.",  # two-syllable codes only when registered
    "민법 제750조에 따른 손해배상",
    "노동법 제3조",
    "특별법 제2조",
    "관련법 제5조",
    "회사 매출이 3조 원을 넘었다.",
    "2024년 예산은 3조 5천억 원입니다.",
    "형법학자들은 다르게 봅니다.",
    "정보통신망법안이 국회를 통과했다.",
    "근로기준법 시행령 제3조",
    "근로기준법 시행규칙 제2조",
    "제307조에 따르면",
    "이 문서의 제3조를 보세요.",
    "법 제3조",
    "군형법은 군인에게 적용됩니다.",
    "차별금지법은 아직 제정되지 않았습니다.",
    "같은 법 제3조",
    "동법 제3조",
    "같은 조 제2항",
    "제1조(목적) 이 규칙은",
    "3조로 나뉘어 토론했다",
    "조선 시대 법전",
]


@pytest.mark.parametrize(("text", "expected"), SURFACE + VERDICTS)
def test_citation(index: CitationIndex, text: str, expected: list) -> None:
    assert [summary(v) for v in index.check(text).citations] == expected


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalike_is_not_a_citation(index: CitationIndex, text: str) -> None:
    assert index.check(text).citations == []


def test_spans_cover_what_was_cited(index: CitationIndex) -> None:
    text = "참고: 「형법」 제307조 제1항 및 제311조(모욕)."
    first, second = index.check(text).citations
    assert first.text == "「형법」 제307조 제1항"
    assert text[first.span[0] : first.span[1]] == first.text
    assert second.text == "제311조"
    assert second.span == (text.index("제311조"), text.index("제311조") + 5)


def test_bare_mention_span_and_canonical_name(index: CitationIndex) -> None:
    text = "이 사건은 정통망법에 따라 처리됩니다."
    (v,) = index.check(text).citations
    assert v.law == "정보통신망 이용촉진 및 정보보호 등에 관한 법률"
    assert v.text == "정통망법"
    assert v.article is None


def test_unknown_law_keeps_name_as_written(index: CitationIndex) -> None:
    (v,) = index.check("혐오표현 처벌에 관한 법률 제2조").citations
    assert (v.law, v.law_id, v.status) == ("혐오표현 처벌에 관한 법률", None, "unknown_law")


def test_several_laws_in_one_answer(index: CitationIndex) -> None:
    text = (
        "온라인에서 허위 사실로 명예를 훼손하면 정보통신망법 제70조 제2항이 적용되고, "
        "오프라인에서는 형법 제307조 제2항이 적용됩니다. 동물 학대는 동물보호법 제8조가 아니라 같은 법 "
        "제10조에서 금지하며, 차별금지법 제3조는 존재하지 않는 조문입니다."
    )
    got = [summary(v) for v in index.check(text).citations]
    assert got == [
        c(NA, "70", V, "2"),
        c(CA, "307", V, "2"),
        c(AN, "8", OLD, replacement="10"),
        c(AN, "10", V),
        c("차별금지법", "3", X),
    ]

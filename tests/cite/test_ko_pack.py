"""The checker on the shipped Korean pack: its registries, its policy and its known stale facts."""

from __future__ import annotations

import re

import pytest

from koalign.cite import CitationIndex, check_text, index_for
from koalign.locale import Locale, load_locale


@pytest.fixture(scope="module")
def ko() -> Locale:
    return load_locale("ko")


@pytest.fixture(scope="module")
def ko_index(ko: Locale) -> CitationIndex:
    return index_for(ko)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("동물보호법 제8조", ("animal_protection_act", "8", "outdated", "10")),
        ("형법 제307조 제2항", ("criminal_act", "307", "verified", None)),
        ("형법 제116조의2", ("criminal_act", "116의2", "verified", None)),
        ("형법 제999조", ("criminal_act", "999", "nonexistent", None)),
        ("성폭력처벌법 제14조의2 제4항", ("sexual_violence_act", "14의2", "verified", None)),
        ("정보통신망법 제70조 제1항", ("network_act", "70", "verified", None)),
        ("근로기준법 제76조의2", ("labor_standards_act", "76의2", "verified", None)),
        ("차별금지법 제3조", (None, "3", "unknown_law", None)),
    ],
)
def test_known_facts(ko: Locale, text: str, expected: tuple) -> None:
    (v,) = check_text(text, ko).citations
    assert (v.law_id, v.article, v.status, v.replacement) == expected


@pytest.mark.parametrize(
    ("number", "status", "replacement"),
    [
        ("1393", "retired", "109"),
        ("1577-5432", "retired", "1577-1366"),
        ("1899-0893", "retired", "1342"),
        ("080-300-8275", "retired", "1336"),
        ("109", "current", None),
        ("1336", "current", None),  # the gambling helpline, not the retired KISA line
        ("1577-1366", "current", None),
        ("02-735-8994", "current", None),
    ],
)
def test_known_numbers(ko: Locale, number: str, status: str, replacement: str | None) -> None:
    (k,) = check_text(f"도움이 필요하면 {number}로 전화하세요.", ko).contacts
    assert (k.number, k.status, k.replacement) == (number, status, replacement)


def test_every_registry_name_and_alias_is_recognised(ko: Locale, ko_index: CitationIndex) -> None:
    for law in ko.statutes.laws:
        for name in (law.name, *law.aliases):
            got = ko_index.check(f"이 경우 {name} 제1조를 참고하세요.").citations
            assert [(v.law_id, v.article) for v in got] == [(law.id, "1")], name
            bracketed = ko_index.check(f"「{name}」에 따라").citations
            assert [(v.law_id, v.article) for v in bracketed] == [(law.id, None)], name


def test_every_registry_number_is_recognised(ko: Locale, ko_index: CitationIndex) -> None:
    for contact in ko.contacts.contacts:
        if not contact.number:
            continue
        got = ko_index.check(f"상담: {contact.number}로 연락").contacts
        assert [k.number for k in got] == [contact.number], contact.id
        current = any(
            c.number == contact.number and c.status == "current" for c in ko.contacts.contacts
        )
        assert got[0].status == ("current" if current else "retired"), contact.id


def test_policy_examples_cite_nothing_stale(ko: Locale, ko_index: CitationIndex) -> None:
    for cid, policy in ko.policy.policies.items():
        for example in policy.examples:
            report = ko_index.check(example.answer, category=cid)
            assert report.ok, (cid, [p for p in report.problems])


ARTICLE = re.compile(r"제\s*\d+\s*조(?:의\s*\d+)?")


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def test_every_article_mention_in_the_policy_is_found_and_verified(
    ko: Locale, ko_index: CitationIndex
) -> None:
    mentions = 0
    for cid, policy in ko.policy.policies.items():
        for text in _strings(policy.model_dump(exclude={"p1_statutes": {"__all__": {"ref"}}})):
            report = ko_index.check(text, category=cid)
            for m in ARTICLE.finditer(text):
                mentions += 1
                covering = [c for c in report.citations if c.span[0] <= m.start() < c.span[1]]
                assert covering, (cid, m.group(0), text)
                assert all(c.status == "verified" for c in covering), (cid, covering)
    assert mentions >= 70


def test_policy_penalties_match_the_registry(ko: Locale, ko_index: CitationIndex) -> None:
    """A penalty written right after a citation in a worked answer states the registry's terms
    (e.g. the 7천만원 fine of 정보통신망법 70② since 2026-07-07, not the old 5천만원)."""
    from koalign.cite.crosscheck import penalty_terms

    registry = {(law.id, a.article): a for law in ko.statutes.laws for a in law.articles}
    for cid, policy in ko.policy.policies.items():
        for text in [e.answer for e in policy.examples] + [s.why for s in policy.p1_statutes]:
            for sentence in re.split(r"(?<=[.다요])\s+", text):
                cited = [
                    registry.get((c.law_id, c.article))
                    for c in ko_index.check(sentence).citations
                    if c.law_id and c.article
                ]
                allowed = set()
                for entry in cited:
                    if entry is not None and entry.penalty:
                        allowed |= penalty_terms(entry.penalty)
                if not allowed:
                    continue
                stated = penalty_terms(sentence)
                assert stated <= allowed, (cid, sentence, stated - allowed)

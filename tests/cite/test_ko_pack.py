"""The checker on the shipped Korean pack: its registries, its policy and its known stale facts."""

from __future__ import annotations

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

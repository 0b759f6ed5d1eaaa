"""The bundled Korean locale pack: structure, KorSET alignment and the facts most often wrong."""

from __future__ import annotations

import re

import pytest

from koalign.locale import KORSET_SPLITS, Locale, load_locale


@pytest.fixture(scope="module")
def ko() -> Locale:
    return load_locale("ko")


def test_taxonomy_shape(ko: Locale) -> None:
    tax = ko.taxonomy
    assert len(tax.domains) == 5
    assert [c.id for c in tax.categories] == list("ABCDEFGHIJKL")
    assert len(tax.types) == 53
    assert sorted(c.korset_split for c in tax.categories) == sorted(KORSET_SPLITS)
    per_cat = {c.id: len(c.types) for c in tax.categories}
    assert per_cat == {"A": 2, "B": 3, "C": 3, "D": 13, "E": 4, "F": 3, "G": 6, "H": 7,
                       "I": 3, "J": 3, "K": 3, "L": 3}  # fmt: skip


def test_every_slot_has_korean_examples(ko: Locale) -> None:
    for c in ko.taxonomy.categories:
        for t in c.types:
            for slot in c.slots_for(t):
                examples = t.slot_examples[slot.id]
                assert len(examples) >= 3, t.id
                assert all(ko.script_ratio(e) > 0.3 for e in examples), (t.id, examples)


def test_registry_size(ko: Locale) -> None:
    laws = ko.statutes.laws
    articles = [a for law in laws for a in law.articles]
    assert len(laws) >= 25
    assert len(articles) >= 80
    assert all(a.sources or a.confidence == "high" for a in articles if a.confidence == "verified")


def test_known_stale_facts_are_recorded(ko: Locale) -> None:
    animal = ko.statutes.law("animal_protection_act")
    assert animal is not None
    old = animal.article("8")
    assert old is not None and old.status == "outdated" and old.replaced_by == "10"
    assert animal.article("10") is not None and animal.article("10").status == "current"
    by_number = {c.number: c for c in ko.contacts.contacts if c.number}
    assert by_number["1393"].status == "retired"
    assert by_number[ko.contacts.contact(by_number["1393"].replaced_by).number].number == "109"
    assert by_number["109"].status == "current"
    assert by_number["1577-5432"].status == "retired"
    assert ko.contacts.contact(by_number["1577-5432"].replaced_by).number == "1577-1366"
    assert ko.contacts.contact(by_number["1899-0893"].replaced_by).number == "1342"
    assert "도박" in by_number["1336"].purpose


def test_policy_covers_every_category(ko: Locale) -> None:
    for c in ko.taxonomy.categories:
        cp = ko.policy.policies[c.id]
        assert len(cp.examples) >= 2
        assert cp.p1_statutes and cp.p3_contacts
        assert ko.rubric.categories[c.id]


RETIRED = re.compile(r"(?<![\d-])(1393|1577-5432|1899-0893|080-300-8275)(?![\d-])")


def test_policy_text_never_names_retired_numbers(ko: Locale) -> None:
    for cid, cp in ko.policy.policies.items():
        texts = [e.answer for e in cp.examples] + cp.do + cp.p3_procedures
        for text in texts:
            assert not RETIRED.search(text), (cid, text)
            assert "동물보호법 제8조" not in text

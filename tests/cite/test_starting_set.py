"""The starting test set of issue 14 (data/starting_set.jsonl) on the shipped Korean pack.

Each line: ``text``, the expected ``citations`` (full official name, article as ``"82의8"``,
paragraph as an int or null, verdict) and ``contacts`` (number as written, verdict), in text
order. Every check must be right: the citations and contacts found are exactly those listed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from koalign.cite import CitationIndex, index_for
from koalign.locale import load_locale

CASES = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "starting_set.jsonl")
    .read_text("utf-8")
    .splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def ko_index() -> CitationIndex:
    return index_for(load_locale("ko"))


def test_the_set_is_complete() -> None:
    assert [c["id"] for c in CASES] == [f"n{i:02d}" for i in range(1, 21)]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_starting_case(ko_index: CitationIndex, case: dict) -> None:
    report = ko_index.check(case["text"])
    got = [
        (v.law, v.article, int(v.paragraph) if v.paragraph else None, v.status)
        for v in report.citations
    ]
    expected = [(c["law"], c["article"], c["paragraph"], c["expected"]) for c in case["citations"]]
    assert got == expected, case["kind"]
    numbers = [(k.number, k.status) for k in report.contacts]
    assert numbers == [(k["number"], k["expected"]) for k in case["contacts"]], case["kind"]

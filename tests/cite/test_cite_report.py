"""Library API: check_text on a locale, relevance hints, problems, JSON shape, index reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from koalign.cite import CitationIndex, CitationReport, check_text, index_for
from koalign.errors import KoalignError
from koalign.locale import load_locale

ANSWER = (
    "형법 제311조(모욕)와 정보통신망법 제70조를 보세요. 동물보호법 제8조는 개정되었고 "
    "형법 제999조는 없습니다. 차별금지법 제3조도 없습니다. 상담은 1393이 아니라 109입니다."
)


@pytest.mark.parametrize(
    ("text", "category", "relevant"),
    [
        ("형법 제311조", "A", [True]),
        ("정보통신망법 제70조 제2항", "A", [True]),
        ("동물보호법 제10조", "A", [False]),
        ("개인정보 보호법 제59조", "G", [True]),
        ("근로기준법 제76조의2", "G", [True]),  # listed through p2_populations refs
        ("형법 제311조", "G", [False]),
        ("차별금지법 제3조", "A", [None]),  # unknown laws get no hint
        ("형법 제311조", None, [None]),
        ("형법에 따르면", "A", [True]),
    ],
)
def test_relevance(index: CitationIndex, text: str, category: str | None, relevant: list) -> None:
    assert [v.relevant for v in index.check(text, category=category).citations] == relevant


def test_unknown_category_is_an_error(index: CitationIndex) -> None:
    with pytest.raises(KoalignError, match=r"no policy for category 'Z'"):
        index.check("형법 제311조", category="Z")


def test_problems_counts_and_ok(index: CitationIndex) -> None:
    report = index.check(ANSWER)
    assert [p.status for p in report.problems] == [
        "outdated", "nonexistent", "unknown_law", "retired",
    ]  # fmt: skip
    assert report.counts() == {
        "verified": 2, "outdated": 1, "nonexistent": 1, "unknown_law": 1,
        "contact_retired": 1, "contact_current": 1,
    }  # fmt: skip
    assert not report.ok
    assert index.check("형법 제311조와 109").ok


def test_to_dict_shape_and_round_trip(index: CitationIndex) -> None:
    report = index.check(ANSWER, category="A")
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    first = data["citations"][0]
    assert {k: first[k] for k in ("law", "article", "paragraph", "status", "span")} == {
        "law": "형법", "article": "311", "paragraph": None, "status": "verified", "span": [0, 8],
    }  # fmt: skip
    outdated = next(c for c in data["citations"] if c["status"] == "outdated")
    assert outdated["replacement"] == "10"
    assert "replacement" not in first
    retired = next(k for k in data["contacts"] if k["status"] == "retired")
    assert (retired["number"], retired["replacement"]) == ("1393", "109")
    assert CitationReport.from_dict(data) == report


def test_from_dict_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="unknown citation status"):
        CitationReport.from_dict(
            {"citations": [{"law": "형법", "status": "fine", "span": [0, 2]}], "contacts": []}
        )


def test_check_text_on_a_loaded_locale(pack_dir: Path) -> None:
    loc = load_locale(pack_dir)
    report = check_text(ANSWER, loc, category="A")
    assert [v.status for v in report.citations] == [
        "verified", "verified", "outdated", "nonexistent", "unknown_law",
    ]  # fmt: skip
    assert [v.relevant for v in report.citations] == [True, True, False, True, None]
    assert index_for(loc) is index_for(loc)  # built once, then reused
    plain = check_text(ANSWER, CitationIndex.from_locale(loc))
    assert [v.relevant for v in plain.citations] == [None] * 5
    assert [v.status for v in plain.citations] == [v.status for v in report.citations]


def test_check_many_keeps_order(index: CitationIndex) -> None:
    texts = ["형법 제307조", "", "상담 1393", "동물보호법 제8조"]
    reports = index.check_many(texts)
    assert [len(r.citations) for r in reports] == [1, 0, 0, 1]
    assert [len(r.contacts) for r in reports] == [0, 0, 1, 0]


def test_empty_and_non_korean_text(index: CitationIndex) -> None:
    empty = {"citations": [], "contacts": [], "institutions": []}
    assert index.check("").to_dict() == empty
    assert index.check("The Criminal Act, article 307, call 911.").to_dict() == empty


def test_the_verdict_names_load_without_the_scanners_and_every_public_name_resolves():
    """``koalign.cite`` loads its parts on first use: the respond stage (which needs only the
    verdict names at import) does not load the scanners or the index; every public name is the
    object of the submodule that defines it."""
    import subprocess
    import sys

    code = (
        "import sys, koalign.stages.respond, koalign.cite as c\n"
        "assert 'koalign.cite.index' not in sys.modules\n"
        "from koalign.cite import index, report, statute_index\n"
        "homes = (report, statute_index, index)\n"
        "for n in c.__all__:\n"
        "    assert any(getattr(c, n) is getattr(m, n, None) for m in homes), n\n"
        "assert c.check_text is index.check_text and c.StatuteIndex is statute_index.StatuteIndex\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

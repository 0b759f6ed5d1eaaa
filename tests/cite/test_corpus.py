"""The shipped statute index against the statute corpus it was built from (../shared/data).

Skipped when the third-party data is not present: the shipped index makes every other test
independent of the corpus.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from koalign.cite.crosscheck import check_parsed, summarise
from koalign.cite.statute_build import LawText, build_index
from koalign.cite.statute_index import INDEX_FILE, StatuteIndex
from koalign.locale import load_locale

ROOT = Path(__file__).resolve().parents[2]
STATUTES = ROOT.parent / "shared" / "data" / "statutes"
pytestmark = pytest.mark.skipif(
    not (STATUTES / "kr").is_dir(),
    reason=f"third-party data not present: {STATUTES} (see shared/data/README.md)",
)


@pytest.fixture(scope="module")
def corpus() -> tuple[dict, list[LawText]]:
    texts: list[LawText] = []
    return build_index(STATUTES, keep=texts), texts


def test_rebuilding_from_the_corpus_gives_the_shipped_index(corpus: tuple) -> None:
    data, _texts = corpus
    shipped = StatuteIndex.load(ROOT / "src" / "koalign" / "locales" / "ko" / INDEX_FILE)
    assert shipped.source["sha256"] == data["source"]["sha256"]
    rebuilt = StatuteIndex(data)
    assert [law.name for law in rebuilt.laws] == [law.name for law in shipped.laws]
    assert [law.raw_articles for law in rebuilt.laws] == [law.raw_articles for law in shipped.laws]
    assert len(rebuilt.laws) == 1721
    assert shipped.path is not None and shipped.path.stat().st_size < 3_000_000


def test_issue_examples_in_the_statute_text(corpus: tuple) -> None:
    _data, texts = corpus
    by_name = {t.name: t for t in texts}
    fraud = by_name["형법"].articles["347"]
    assert "20년 이하의 징역 또는 5천만원 이하의 벌금" in fraud.text
    assert fraud.effective is not None and fraud.effective.isoformat() == "2025-12-23"
    assert by_name["형법"].effective.isoformat() == "2026-09-13"  # type: ignore[union-attr]
    violence = by_name["폭력행위 등 처벌에 관한 법률"].articles["3"]
    assert sorted(violence.deleted_paragraphs) == [1, 2, 3]
    assert by_name["형법"].articles["311"].paragraphs == 0


def test_the_registry_agrees_with_the_statute_text(corpus: tuple) -> None:
    data, texts = corpus
    findings = check_parsed(load_locale("ko").statutes, StatuteIndex(data), texts)
    counts = summarise(findings)
    assert counts["error"] == 0, [f.render() for f in findings if f.level == "error"]
    newer = {f.law_id for f in findings if f.level == "newer"}
    assert newer == {"youth_protection_act", "constitutional_court_act", "prostitution_act"}

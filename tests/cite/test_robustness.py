"""Any text is accepted: no exceptions, spans inside the text, verdicts consistent."""

from __future__ import annotations

import random

from koalign.cite import CitationIndex, CitationReport

PIECES = [
    "형법", "제", "307", "조", "의", "2", "항", "호", "①", "「", "」", "(", ")", "및", "·", ",",
    "같은 법", "동법", "같은 조", "법", " ", "\n", "1393", "109", "-", "02", "735", "8994", "#",
    "국번 없이", "☎", "원", "년", "정보통신망법", "차별금지법", "에 관한 법률", "동물보호법",
    "8", "10", "999", "1577", "1366", "+82", ".", "~", "내지", "부터", "까지", "시행령", "안",
    "일본", "헌법", "재판소", "041-", "–", " ", "0893", "여성가족부", "에 신고", "위반이며,",
    "같은 법", "③", "의2", "상", "죄(", "국보법", "구 ", "「", "법률", "관한",
]  # fmt: skip


def test_random_texts_never_break(index: CitationIndex) -> None:
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        report = index.check(text)
        for v in report.citations:
            start, end = v.span
            assert 0 <= start < end <= len(text)
            assert text[start:end] == v.text
            assert (v.law_id is None) == (v.status == "unknown_law")
            assert v.replacement is None or v.status == "outdated"
        for k in report.contacts:
            start, end = k.span
            assert text[start:end] == k.number
            assert k.replacement is None or k.status == "retired"
        for i in report.institutions:
            assert text[i.span[0] : i.span[1]] == i.name
        assert CitationReport.from_dict(report.to_dict()) == report
        spans = [v.span for v in report.citations]
        assert spans == sorted(spans)


def test_random_texts_on_the_korean_pack() -> None:
    from koalign.cite import index_for
    from koalign.locale import load_locale

    ko = index_for(load_locale("ko"))
    rng = random.Random(11)
    for _ in range(500):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        report = ko.check(text)
        for v in report.citations:
            assert text[v.span[0] : v.span[1]] == v.text
            assert v.status != "unknown_law" or v.law_id is None
        assert CitationReport.from_dict(report.to_dict()) == report

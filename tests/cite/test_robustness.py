"""Any text is accepted: no exceptions, spans inside the text, verdicts consistent."""

from __future__ import annotations

import random

from koalign.cite import CitationIndex

PIECES = [
    "형법", "제", "307", "조", "의", "2", "항", "호", "①", "「", "」", "(", ")", "및", "·", ",",
    "같은 법", "동법", "같은 조", "법", " ", "\n", "1393", "109", "-", "02", "735", "8994", "#",
    "국번 없이", "☎", "원", "년", "정보통신망법", "차별금지법", "에 관한 법률", "동물보호법",
    "8", "10", "999", "1577", "1366", "+82", ".", "~", "내지", "부터", "까지", "시행령", "안",
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
        spans = [v.span for v in report.citations]
        assert spans == sorted(spans)

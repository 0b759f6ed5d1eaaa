"""The output gates' echo measure: the fast paths give exactly the plain definition's result."""

from __future__ import annotations

import random
import re

import pytest

from koalign import gates
from koalign.gates import GateConfig, containment, echo_share, gate_text

WS = re.compile(r"\s+")
PIECES = [" ", "\t", "\n", "\u3000", "\xa0", "\x1c", "\x85", "가", "나", "a", "\u200b", "다라"]


def reference(text: str, sources: list[str], n: int = 4) -> float:
    """The definition: share of the text's n-grams (whitespace collapsed) found in a source."""

    def grams(s: str) -> set[str]:
        return {s[i : i + n] for i in range(len(s) - n + 1)}

    mine = grams(WS.sub(" ", text).strip())
    if not mine:
        return 0.0
    theirs: set[str] = set()
    for s in sources:
        theirs |= grams(WS.sub(" ", s))
    return len(mine & theirs) / len(mine)


def test_collapse_is_the_whitespace_pattern():
    rng = random.Random(0)
    for _ in range(20000):
        s = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 9)))
        assert gates._collapse(s) == WS.sub(" ", s), repr(s)


@pytest.mark.parametrize("at_least", [0.0, 0.5, 0.9, 1.0])
def test_echo_share_equals_the_definition_on_first_and_later_sightings(at_least):
    rng = random.Random(1)
    words = ["한국", "법령", "제", "307조", "명예훼손", "상담", "1366", "안내", "\n", "  ", "요청"]

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    system = text(200)
    for i in range(300):
        user = text(60) + f" {i}"
        answer = [text(12), user[5:80], system[10:90] + text(2), "", "짧다"][i % 5]
        want = reference(answer, [system, user])
        for _ in range(2):  # the second sighting reads the cached n-gram sets
            got = echo_share(answer, [system, user], at_least)
            if want >= at_least and want > 0:
                assert got == want
            else:
                assert got is None
            assert containment(answer, [system, user]) == want


def test_echo_gate_message_and_threshold():
    prompt = "다음 유해 유형에 해당하는 한국 사용자 요청을 한 문장으로 작성하세요."
    hit = gate_text(prompt, GateConfig(), prompt_texts=[prompt])
    assert hit == ("echo", "100% of the text copies its prompt")
    assert gate_text(prompt, GateConfig(max_echo=1.0), prompt_texts=["다른 프롬프트입니다"]) is None

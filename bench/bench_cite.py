"""Benchmark the citation checker: 10,000 Korean answers of about 500 characters.

Answers are built from the sentences of ``koalign/data/corpus_ko.txt`` with statute citations
(carried-forward articles, nicknames, foreign constitutions, deleted paragraphs among them),
hotline numbers and former institution names mixed in (fixed seed). The index is built from
the locale with its statute index (1,721 Acts). Prints one JSON line: ``check_s`` is wall
time, ``check_cpu_s`` the CPU time of this process (the fairer figure on a shared machine),
``index_build_s`` the time to load the registries and the statute index. Run on one core:

    taskset -c 1 python bench/bench_cite.py [--n 10000] [--chars 500] [--locale ko] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from importlib import resources

CITATIONS = [
    "형법 제307조", "형법 제307조 제2항", "「형법」 제311조에 따라", "형법 제307조 및 제311조",
    "정보통신망법 제70조제1항·제2항", "정보통신망 이용촉진 및 정보보호 등에 관한 법률 제70조",
    "성폭력처벌법 제14조의2", "성폭력처벌법 제14조·제14조의2", "동물보호법 제8조", "같은 법 제97조",
    "근로기준법 제76조의2", "동법 제76조의3", "아청법 제11조 ⑤", "형법 제999조",
    "차별금지법 제3조", "스토킹처벌법 제18조", "도로교통법 제44조 제5항", "병역법 제86조",
    "형법 제246조 내지 제248조", "(형법 제283조)", "근로기준법상", "형법 제116조의2",
    "전자금융거래법 제6조 제3항 위반이 되고, 처벌은 제49조 제4항", "형법상 특수협박죄(제284조)",
    "스토킹처벌법 제18조 3항", "국보법 제7조 제1항", "방송법 제71조", "형법 제311조 제3항",
    "일본 헌법 제9조", "헌법재판소 결정", "정보통신망법 제44조의7 제1항 제2호의2",
]  # fmt: skip
NUMBERS = [
    "자살예방상담전화 109", "국번 없이 1393", "☎ 112", "여성긴급전화 1366", "#1388",
    "다누리콜센터 1577-1366", "02-735-8994", "1899-0893", "1342", "118 상담센터",
    "지역 상담소 041-1366", "다누리 1577–1366", "여성가족부 상담 창구",
]  # fmt: skip
DISTRACTORS = [
    "2024년 통계에 따르면 1,366명이 상담을 받았습니다.", "피해액은 3조 원에 이릅니다.",
    "가격은 12,900원이고 버전 1.109가 배포되었습니다.", "1950-1953년 전쟁 기간의 기록입니다.",
]  # fmt: skip


def build_answers(n: int, chars: int, seed: int) -> list[str]:
    corpus = resources.files("koalign.data").joinpath("corpus_ko.txt").read_text("utf-8")
    sentences = [s.strip() for s in corpus.splitlines() if s.strip()]
    rng = random.Random(seed)
    answers = []
    for _ in range(n):
        parts: list[str] = []
        size = -1
        while size < chars:
            roll = rng.random()
            if roll < 0.2:
                piece = f"{rng.choice(CITATIONS)}에 따라 처벌될 수 있습니다."
            elif roll < 0.3:
                piece = f"도움이 필요하면 {rng.choice(NUMBERS)}로 연락하세요."
            elif roll < 0.35:
                piece = rng.choice(DISTRACTORS)
            else:
                piece = rng.choice(sentences)
            parts.append(piece)
            size += len(piece) + 1
        answers.append(" ".join(parts))
    return answers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--chars", type=int, default=500)
    ap.add_argument("--locale", default="ko")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from koalign.cite import CitationIndex
    from koalign.locale import load_locale

    answers = build_answers(args.n, args.chars, args.seed)
    loc = load_locale(args.locale)
    t0 = time.perf_counter()
    index = CitationIndex.from_locale(loc)
    t1 = time.perf_counter()
    c1 = time.process_time()
    reports = index.check_many(answers)
    c2 = time.process_time()
    t2 = time.perf_counter()
    citations = sum(len(r.citations) for r in reports)
    contacts = sum(len(r.contacts) for r in reports)
    problems = sum(len(r.problems) for r in reports)
    institutions = sum(len(r.institutions) for r in reports)
    result = {
        "bench": "cite",
        "answers": len(answers),
        "mean_chars": round(sum(map(len, answers)) / len(answers), 1),
        "citations": citations,
        "contacts": contacts,
        "institutions": institutions,
        "problems": problems,
        "index_build_s": round(t1 - t0, 4),
        "check_s": round(t2 - t1, 3),
        "check_cpu_s": round(c2 - c1, 3),
        "per_answer_ms": round((t2 - t1) * 1000 / len(answers), 4),
        "under_10s": (t2 - t1) < 10.0,
        "python": platform.python_version(),
    }
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the Korean refusal detector on 1,000 answers.

Answers are built from SQuARe's labelled responses (``../shared/data/square/
responses_dev.jsonl``, third-party, 239 Korean answers to sensitive questions): ``--join`` of
them, in order, per answer (4 gives about 220 characters, 16 about 900). The answers repeat
sentences, so the per-sentence cache of the morphology is cleared before each answer (the
uncached cost); ``--keep-cache`` keeps it, as a run over answers that share openings would.
Prints one JSON line: ``load_s`` is the one-off load of Kiwi's model (the first call), ``detect_s`` the wall
time of ``detect_refusal`` over all answers, ``detect_cpu_s`` the CPU time of this process
(the fairer figure on a shared machine). Run on one core:

    taskset -c 1 python bench/bench_refusal.py [--n 1000] [--join 4] [--keep-cache] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
RESPONSES = Path("square") / "responses_dev.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="answers")
    parser.add_argument("--join", type=int, default=4, help="SQuARe responses per answer")
    parser.add_argument("--keep-cache", action="store_true", help="keep the sentence cache")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="the third-party data folder (default: ../shared/data next to the repository)",
    )
    args = parser.parse_args()
    data = args.data_dir / RESPONSES
    if not data.is_file():
        print(f"third-party data not present: {data} (see shared/data/README.md)", file=sys.stderr)
        return 2
    responses = [json.loads(line)["response"] for line in data.read_text("utf-8").splitlines()]
    answers = [
        " ".join(responses[(i * args.join + j) % len(responses)] for j in range(args.join))
        for i in range(args.n)
    ]
    t0 = time.perf_counter()
    from koalign.evaluate.refusal import detect_refusal
    from koalign.evaluate.refusal_morph import find_cores

    detect_refusal("그 요청은 도와드릴 수 없습니다.")
    load = time.perf_counter() - t0
    wall, cpu = time.perf_counter(), time.process_time()
    refusals = 0
    for answer in answers:
        if not args.keep_cache:
            find_cores.cache_clear()
        refusals += detect_refusal(answer).refusal
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        json.dumps(
            {
                "answers": args.n,
                "cache": args.keep_cache,
                "mean_chars": round(sum(map(len, answers)) / len(answers), 1),
                "load_s": round(load, 2),
                "detect_s": round(wall, 2),
                "detect_cpu_s": round(cpu, 2),
                "ms_per_answer_cpu": round(cpu / args.n * 1000, 2),
                "flagged": refusals,
                "python": platform.python_version(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

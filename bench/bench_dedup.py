"""Benchmark 4: the seeds stage's text checks at scale.

Builds N Korean seed prompts (default 100,000) from the words of
``src/koalign/data/corpus_ko.txt``: unique base prompts, planted near-duplicates of earlier
prompts (one light edit: a word replaced, two words swapped, a word added or dropped, spacing
or final punctuation changed) and a few prompts not in Korean. Then runs the seeds stage's path,
with the functions the stage uses: ``koalign.text.nfc``, ``Locale.script_ratio`` with the
stage's ``min_script_ratio`` and ``koalign.text.near_duplicates`` with the stage's defaults
(threshold 0.7, character 3-grams, 128 permutations). Reports wall time, peak RSS (whole
process), and precision/recall of duplicate detection on the planted duplicates and of the
language check on the planted non-Korean prompts. Prints one JSON line.

    python bench/bench_dedup.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import time
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "src" / "koalign" / "data" / "corpus_ko.txt"
ENGLISH = [
    "How",
    "do",
    "I",
    "find",
    "out",
    "which",
    "law",
    "applies",
    "to",
    "online",
    "harassment",
    "in",
    "my",
    "city?",
    "Please",
    "explain",
    "the",
    "steps",
    "to",
    "report",
    "it",
    "and",
    "who",
    "to",
    "contact.",
]


def build(n: int, dup_share: float, foreign_share: float, seed: int):
    """Texts, the planted duplicate's source index (or None) and whether it is non-Korean."""
    rng = random.Random(seed)
    words = sorted({w for w in re.split(r"\s+", CORPUS.read_text(encoding="utf-8")) if w})
    words = [w for w in words if not w.isascii()]
    texts: list[str] = []
    source: list[int | None] = []
    foreign: list[bool] = []
    base_ids: list[int] = []
    for i in range(n):
        r = rng.random()
        if r < foreign_share:
            k = rng.randint(10, 20)
            t = " ".join(rng.choice(ENGLISH) for _ in range(k))
            if rng.random() < 0.5:  # mostly English with a little Korean
                t += " " + rng.choice(words)
            texts.append(t)
            source.append(None)
            foreign.append(True)
        elif r < foreign_share + dup_share and base_ids:
            j = rng.choice(base_ids)
            texts.append(edit(texts[j], rng, words))
            source.append(j)
            foreign.append(False)
        else:
            k = rng.randint(10, 22)
            t = " ".join(rng.choice(words) for _ in range(k)) + rng.choice(["?", "요?", ".", ""])
            texts.append(t)
            source.append(None)
            foreign.append(False)
            base_ids.append(i)
    return texts, source, foreign


def edit(text: str, rng: random.Random, words: list[str]) -> str:
    w = text.split(" ")
    op = rng.choice(["replace", "swap", "add", "drop", "space", "punct"])
    i = rng.randrange(len(w))
    if op == "replace":
        w[i] = rng.choice(words)
    elif op == "swap" and len(w) > 1:
        i = min(i, len(w) - 2)
        w[i], w[i + 1] = w[i + 1], w[i]
    elif op == "add":
        w.insert(i, rng.choice(words))
    elif op == "drop" and len(w) > 3:
        del w[i]
    elif op == "space":
        return "  ".join(w) if rng.random() < 0.5 else text.replace(" ", " ", 1) + " "
    return " ".join(w).rstrip("?.") + rng.choice(["?", "!", "...", "요"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dup-share", type=float, default=0.1)
    p.add_argument("--foreign-share", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.7)
    p.add_argument("--min-script-ratio", type=float, default=0.5)
    args = p.parse_args()
    out: dict = {"bench": "dedup", "n": args.n, "machine_start": harness.machine()}

    texts, source, foreign = build(args.n, args.dup_share, args.foreign_share, args.seed)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    from koalign.locale import load_locale
    from koalign.text import jaccard, near_duplicates, nfc, shingles

    loc = load_locale("ko")
    start = time.perf_counter()
    normed = [nfc(t) for t in texts]
    t_norm = time.perf_counter()
    lang_ok = [loc.script_ratio(t) >= args.min_script_ratio for t in normed]
    t_lang = time.perf_counter()
    pool = [i for i, ok in enumerate(lang_ok) if ok]
    dups = near_duplicates(
        [normed[i] for i in pool], threshold=args.threshold, ngram=3, num_perm=128, seed=1
    )
    end = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    flagged = {pool[k] for k, d in enumerate(dups) if d is not None}
    planted = {i for i, s in enumerate(source) if s is not None}
    # planted duplicates whose edit kept them at or above the threshold (what can be found)
    findable = {
        i
        for i in planted
        if jaccard(shingles(texts[i], 3), shingles(texts[source[i]], 3)) >= args.threshold
    }
    tp = len(flagged & planted)
    dropped_lang = {i for i, ok in enumerate(lang_ok) if not ok}
    is_foreign = {i for i, f in enumerate(foreign) if f}
    out.update(
        seconds_total=round(end - start, 2),
        seconds_normalise=round(t_norm - start, 2),
        seconds_language=round(t_lang - t_norm, 2),
        seconds_dedup=round(end - t_lang, 2),
        peak_rss_mb=round(peak_mb, 1),
        rss_before_checks_mb=round(rss_before / 1024, 1),
        planted_duplicates=len(planted),
        planted_at_or_above_threshold=len(findable),
        flagged=len(flagged),
        true_positives=tp,
        precision=round(tp / len(flagged), 4) if flagged else None,
        recall=round(tp / len(planted), 4) if planted else None,
        recall_of_findable=round(len(flagged & findable) / len(findable), 4) if findable else None,
        language_dropped=len(dropped_lang),
        language_precision=round(len(dropped_lang & is_foreign) / len(dropped_lang), 4)
        if dropped_lang
        else None,
        language_recall=round(len(dropped_lang & is_foreign) / len(is_foreign), 4)
        if is_foreign
        else None,
    )
    out["bar_60s_met"] = out["seconds_total"] < 60
    out["bar_2gb_met"] = peak_mb < 2048
    out["machine_end"] = harness.machine()
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""Ko-MT-Bench: MT-Bench-style single-answer grading of two-turn questions (``koalign eval
mtbench``).

Questions
    JSONL in the MT-Bench / FastChat ``question.jsonl`` format, which the public Ko-MT-Bench file
    uses as is: ``question_id``, ``category``, ``turns`` (1 or 2 user messages) and, for some
    categories (math, reasoning, coding), ``reference`` (one reference answer per turn).

Answers
    The evaluated model answers turn 1, then turn 2 with turn 1 and its own answer in the
    conversation. An answer is read by :func:`koalign.evaluate.answers.read_answer`: failures
    (empty, truncated, echo, repetition) are counted by reason and never graded; turn 2 of a
    question whose turn 1 failed is not asked (reason ``previous_turn``).

Grading
    Each judge grades each answered turn 1-10 with the locale's ``mtbench_judge`` template
    (the conversation so far, the question, the reference answer where given) and answers
    JSON ``{"score", "reason"}``; the FastChat form ``Rating: [[7]]`` is read too. A judge is
    read by its final answer after any reasoning; an answer without a valid integer score, or
    whose reason copies the template's example, is a parse failure, counted apart.

Failed calls
    A call that failed after its retries is a **call failure** (:mod:`koalign.evaluate.failures`),
    never a generation or parse failure: a turn whose answer call failed (and turn 2 after it,
    which is not asked) is counted in ``call_failures_model``, a turn no judge could be reached
    for in ``call_failures_judges``; the row's ``call_failure`` says which (``model`` or
    ``judges``). A rerun asks them again.

Figures
    ``score``: the mean over graded turns of the judges' mean score (1-10), with a bootstrap
    interval over turns; per turn (1, 2), per category and per judge.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from koalign.backends.client import ModelPool
from koalign.errors import DataError
from koalign.evaluate.answers import Answer, failure_counts, read_answer, read_judge
from koalign.evaluate.data import read_rows
from koalign.evaluate.failures import call_failure_info
from koalign.evaluate.parsing import (
    judge_json,
    no_json_reason,
    placeholder_copies,
    placeholders,
    request_texts,
)
from koalign.evaluate.runs import Progress, call_batched, update_summary, write_jsonl
from koalign.evaluate.stats import DEFAULT_BOOT, DEFAULT_SEED, bootstrap_ci
from koalign.locale import Locale
from koalign.prompts import render_chat
from koalign.types import ChatRequest, ChatResult, Message

SCORE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
}
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")


class MTQuestion(BaseModel):
    """One MT-Bench question: 1-2 user turns and optional reference answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    category: str
    turns: list[str]
    reference: list[str] | None = None


def load_questions(paths: Sequence[Path]) -> list[MTQuestion]:
    """Read question files; a malformed row is an error naming file and row."""
    out: list[MTQuestion] = []
    seen: set[str] = set()
    for path in paths:
        for i, row in enumerate(read_rows(Path(path))):
            where = f"{path}:row {i + 1}"
            turns = row.get("turns")
            if (
                not isinstance(turns, list)
                or not 1 <= len(turns) <= 2
                or not all(isinstance(t, str) and t.strip() for t in turns)
            ):
                raise DataError("'turns' must be a list of 1 or 2 non-empty texts", where=where)
            reference = row.get("reference")
            if reference is not None and (
                not isinstance(reference, list) or not all(isinstance(r, str) for r in reference)
            ):
                raise DataError("'reference' must be a list of texts", where=where)
            qid = str(row.get("question_id", row.get("id", f"{Path(path).stem}#{i}")))
            if qid in seen:
                raise DataError(f"duplicate question_id '{qid}'", where=where)
            seen.add(qid)
            out.append(
                MTQuestion(
                    id=qid,
                    category=str(row.get("category") or "general"),
                    turns=list(turns),
                    reference=list(reference) if reference else None,
                )
            )
    return out


def answer_request(question: MTQuestion, turn: int, previous: Sequence[str]) -> ChatRequest:
    """The conversation for ``turn`` (0-based): earlier turns with the model's own answers."""
    messages: list[Message] = []
    for k in range(turn):
        messages.append(Message(role="user", content=question.turns[k]))
        messages.append(Message(role="assistant", content=previous[k]))
    messages.append(Message(role="user", content=question.turns[turn]))
    return ChatRequest(messages=tuple(messages), tag=f"eval.mtbench.turn{turn + 1}")


def judge_request(
    loc: Locale, question: MTQuestion, turn: int, answers: Sequence[str]
) -> ChatRequest:
    """The judge's request for the answer to ``turn`` (0-based)."""
    reference = None
    if question.reference and turn < len(question.reference):
        reference = question.reference[turn] or None
    history = [{"question": question.turns[k], "answer": answers[k]} for k in range(turn)]
    messages = render_chat(
        loc,
        "mtbench_judge",
        category=question.category,
        turn=turn + 1,
        history=history,
        question=question.turns[turn],
        answer=answers[turn],
        reference=reference,
    )
    return ChatRequest(messages=messages, json_schema=SCORE_SCHEMA, tag="eval.mtbench.judge")


def _score_of(value: Any) -> int | None:
    score = value.get("score") if isinstance(value, dict) else None
    if isinstance(score, bool) or not isinstance(score, int | float):
        return None
    if float(score).is_integer() and 1 <= score <= 10:
        return int(score)
    return None


def parse_score(text: str | None, prompt: Sequence[str] = ()) -> dict[str, Any]:
    """``{"score", "reason"}`` or ``{"error", "failure", "raw"}`` (rules in the module doc)."""
    found, _ = judge_json(text, prompt, is_valid=lambda v: _score_of(v) is not None)
    if found.found and found.valid:
        score = _score_of(found.value)
        reason = str(found.value.get("reason") or "")
        copies = placeholder_copies([reason], placeholders(prompt))
        if copies:
            return {
                "error": f"the reason copies the prompt's example text ('{copies[0]}')",
                "failure": "placeholder",
                "raw": text,
            }
        return {"score": score, "reason": reason}
    ratings = _RATING.findall(found.answer or "")
    if ratings:
        value = float(ratings[-1])
        if value.is_integer() and 1 <= value <= 10:
            return {"score": int(value), "reason": ""}
    if found.found:
        return {"error": "no integer score 1-10 in the JSON", "failure": "bad_score", "raw": text}
    reason = no_json_reason(found)
    failure = "echoed_example" if "echoed" in reason else "no_json"
    return {"error": reason, "failure": failure, "raw": text}


def score_verdict(result: ChatResult, request: ChatRequest) -> dict[str, Any]:
    """A judge's result as a score or a typed parse failure."""
    read = read_judge(result)
    if read.text is None:
        failure = read.failure or "empty"
        code = failure.split(":")[0].split(" ")[0]
        code = {"call": "call_error", "only": "empty"}.get(code, code)
        return {"error": failure, "failure": code, "raw": read.raw}
    return parse_score(read.text, request_texts(request))


def _call_failed(verdict: dict[str, Any]) -> bool:
    return verdict.get("failure") == "call_error"


async def arun_mtbench(
    questions: Sequence[MTQuestion],
    *,
    loc: Locale,
    pool: ModelPool,
    model: str,
    judges: Sequence[str],
    out_dir: Path,
    batch_size: int = 32,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    extra_info: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Answer both turns, grade every answered turn; write ``mtbench.jsonl`` and the
    ``mtbench`` section."""
    if not judges:
        raise ValueError("at least one judge is needed")
    answers: dict[tuple[str, int], Answer] = {}
    for turn in (0, 1):
        todo = [q for q in questions if turn < len(q.turns)]
        todo = [q for q in todo if turn == 0 or answers[(q.id, 0)].failure is None]
        requests = [
            answer_request(q, turn, [answers[(q.id, k)].text or "" for k in range(turn)])
            for q in todo
        ]
        results = await call_batched(
            pool, model, requests, batch_size=batch_size, what=f"answered turn {turn + 1}",
            progress=progress,
        )  # fmt: skip
        for q, result in zip(todo, results, strict=True):
            answers[(q.id, turn)] = read_answer(result, q.turns[turn])
    slots = [(q, t) for q in questions for t in range(len(q.turns))]
    graded = [(q, t) for q, t in slots if (q.id, t) in answers and answers[(q.id, t)].text]

    async def grade(judge: str) -> list[dict[str, Any]]:
        requests = [
            judge_request(loc, q, t, [answers[(q.id, k)].text or "" for k in range(t + 1)])
            for q, t in graded
        ]
        results = await call_batched(
            pool, judge, requests, batch_size=batch_size, what="graded", progress=progress
        )
        return [score_verdict(r, req) for r, req in zip(results, requests, strict=True)]

    per_judge = dict(zip(judges, await asyncio.gather(*(grade(j) for j in judges)), strict=True))
    verdicts = {(q.id, t): {j: per_judge[j][n] for j in judges} for n, (q, t) in enumerate(graded)}
    rows: list[dict[str, Any]] = []
    for q, t in slots:
        answer = answers.get((q.id, t))
        votes = verdicts.get((q.id, t), {})
        scores = [v["score"] for v in votes.values() if "score" in v]
        failure = answer.failure if answer is not None else "previous_turn"
        call_failure = None
        if failure == "call_error" or (
            failure == "previous_turn" and answers[(q.id, 0)].failure == "call_error"
        ):
            call_failure = "model"
        elif votes and all(v.get("failure") == "call_error" for v in votes.values()):
            call_failure = "judges"
        rows.append(
            {
                "id": f"{q.id}#{t + 1}",
                "question_id": q.id,
                "turn": t + 1,
                "category": q.category,
                "question": q.turns[t],
                "answer": answer.text if answer else None,
                "reasoning": answer.reasoning if answer else None,
                "generation_error": failure,
                "score": sum(scores) / len(scores) if scores else None,
                "call_failure": call_failure,
                "judges": votes,
            }
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "mtbench.jsonl", rows)

    def stats(rs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        scores = [r["score"] for r in rs if r["score"] is not None]
        ci = bootstrap_ci(scores, n_boot=n_boot, seed=seed) if scores else None
        return {
            "n": len(rs),
            "n_graded": len(scores),
            "score": sum(scores) / len(scores) if scores else None,
            "ci": list(ci) if ci else None,
        }

    by_turn: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_turn[str(r["turn"])].append(r)
        by_cat[r["category"]].append(r)
    parse_reasons: Counter[str] = Counter(
        v["failure"]
        for votes in verdicts.values()
        for v in votes.values()
        if "failure" in v and v["failure"] != "call_error"
    )
    failures = [r["generation_error"] for r in rows if r["call_failure"] != "model"]
    per_judge_mean = {}
    for j in judges:
        js = [v[j]["score"] for v in verdicts.values() if "score" in v[j]]
        per_judge_mean[j] = {
            "score": sum(js) / len(js) if js else None,
            "n_graded": len(js),
            "parse_failures": sum(
                1 for v in verdicts.values() if "score" not in v[j] and not _call_failed(v[j])
            ),
            "call_failures": sum(1 for v in verdicts.values() if _call_failed(v[j])),
        }
    summary = {
        **stats(rows),
        "ci_method": f"percentile bootstrap over turns, {n_boot} resamples, seed {seed}",
        "n_questions": len(questions),
        "generation_failures": sum(f is not None for f in failures),
        "generation_failure_reasons": {
            **failure_counts(failures),
            "previous_turn": sum(f == "previous_turn" for f in failures),
        },
        "parse_failures": sum(
            1 for r in rows if r["answer"] and r["score"] is None and r["call_failure"] is None
        ),
        "parse_failure_reasons": dict(sorted(parse_reasons.items())),
        "per_turn": {k: stats(v) for k, v in sorted(by_turn.items())},
        "per_category": {k: stats(v) for k, v in sorted(by_cat.items())},
        **call_failure_info(
            len(rows),
            sum(r["call_failure"] == "model" for r in rows),
            sum(r["call_failure"] == "judges" for r in rows),
        ),
        "per_judge": per_judge_mean,
        "scale": "1-10",
        "items_file": "mtbench.jsonl",
        **(extra_info or {}),
    }
    update_summary(out_dir, "mtbench", summary)
    return summary

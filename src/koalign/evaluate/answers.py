"""What a model's raw result means for an evaluation: an answer to judge, or a counted failure.

Every ``eval`` command reads the evaluated model's results and the judges' results through
this module, so one rule decides everywhere. It builds on the model layer's typed outcome
(:mod:`koalign.backends.answers`: reasoning moved to ``ChatResult.reasoning``, ``empty`` and
``truncated`` errors) and reads a result the same way when a backend or cache entry predates it
(reasoning still in the text, only ``finish_reason`` telling a cut answer); it adds what an
evaluation must not judge (echoes, runaway repetition) and the repair of unencodable text.

Evaluated model (:func:`read_answer`)
    The reasoning (``<think>...</think>`` and the variants :func:`koalign.extract.split_reasoning`
    knows, or a ``reasoning`` field the model layer returns) is set aside; what is left is the
    answer. A result is never judged, and is left out of every rate, when it is

    * ``call_error``: the call failed after retries (no text). This says nothing about the
      model: it is a **call failure**, counted in ``call_failures_model``
      (:mod:`koalign.evaluate.failures`), never a generation failure;

    or a **generation failure**, counted under its reason in ``generation_failures`` and
    ``generation_failure_reasons``:

    * ``empty``: no content (``null``, ``""``) or only reasoning;
    * ``truncated``: the model stopped at the token limit (``finish_reason: "length"``);
    * ``echo``: the answer repeats the prompt (character-trigram Jaccard similarity
      >= :data:`ECHO_SIMILARITY`);
    * ``repetition``: runaway repetition (at least :data:`REPETITION_MIN_NGRAMS` word trigrams,
      of which a share >= :data:`REPETITION_SHARE` are repeats; or, for text without spaces,
      the same on character 8-grams).

    Text that cannot be encoded (a lone surrogate such as ``"\\ud83d"``) is repaired (each such
    code point becomes U+FFFD), counted in ``repaired``, and judged.

Judges (:func:`read_judge`)
    The final answer after the reasoning is what is parsed. An empty or truncated judge answer is
    a parse failure with that reason (never a verdict); unencodable text is repaired as above.

All functions are pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from koalign.extract import split_reasoning
from koalign.text import jaccard, shingles
from koalign.types import ChatResult, Message

FailureReason = Literal["call_error", "empty", "truncated", "echo", "repetition"]
FAILURE_REASONS: tuple[str, ...] = ("call_error", "empty", "truncated", "echo", "repetition")
ECHO_SIMILARITY = 0.8
REPETITION_SHARE = 0.5
REPETITION_MIN_NGRAMS = 20
_SURROGATE = re.compile("[\ud800-\udfff]")


class Answer(BaseModel):
    """The evaluated model's answer to one prompt.

    ``text``: the answer to judge (reasoning removed; ``None`` exactly when ``failure`` is set).
    ``raw``: the model's text as returned. ``reasoning``: the reasoning set aside, if any.
    ``failure``: a :data:`FailureReason`; ``detail``: what happened, in words.
    ``repaired``: unencodable characters were replaced.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None
    raw: str | None = None
    reasoning: str | None = None
    failure: FailureReason | None = None
    detail: str | None = None
    finish_reason: str | None = None
    repaired: bool = False


def repair_unencodable(text: str) -> tuple[str, bool]:
    """Replace lone surrogates (text that cannot be written as UTF-8) with U+FFFD."""
    if not _SURROGATE.search(text):
        return text, False
    return _SURROGATE.sub("\ufffd", text), True


def _truncated(result: ChatResult) -> bool:
    kind = str(result.error.kind) if result.error is not None else ""
    return result.finish_reason == "length" or kind == "truncated"


def _split(result: ChatResult) -> tuple[str | None, str]:
    """(reasoning, answer) from the text and, where the model layer gives it, its reasoning
    field."""
    reasoning, answer = split_reasoning(result.text)
    extra = getattr(result, "reasoning", None)
    if isinstance(extra, str) and extra.strip():
        reasoning = extra.strip() if reasoning is None else f"{extra.strip()}\n\n{reasoning}"
    return reasoning, answer


def _raw(result: ChatResult) -> str | None:
    """The content as the model returned it (the model layer may already have moved the
    reasoning out of ``text``)."""
    raw = getattr(result, "raw_text", None)
    return raw if isinstance(raw, str) else result.text


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def is_echo(answer: str, prompt: str, *, threshold: float = ECHO_SIMILARITY) -> bool:
    """Does ``answer`` repeat ``prompt`` (character-trigram Jaccard >= ``threshold``)?"""
    a, p = _norm(answer), _norm(prompt)
    if not a or not p:
        return False
    if a == p:
        return True
    return jaccard(shingles(a, 3), shingles(p, 3)) >= threshold


def repeated_share(text: str) -> tuple[float, int]:
    """``(share of repeated n-grams, number of n-grams)``: word trigrams, or character 8-grams
    for text with few spaces."""
    words = text.split()
    if len(words) >= REPETITION_MIN_NGRAMS + 2:
        grams: Sequence[Any] = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    else:
        compact = re.sub(r"\s+", "", text)
        grams = [compact[i : i + 8] for i in range(max(0, len(compact) - 7))]
    if not grams:
        return 0.0, 0
    return 1.0 - len(set(grams)) / len(grams), len(grams)


def is_repetition(text: str) -> bool:
    """Runaway repetition: enough n-grams and a repeated share >= :data:`REPETITION_SHARE`."""
    share, n = repeated_share(text)
    return n >= REPETITION_MIN_NGRAMS and share >= REPETITION_SHARE


def read_answer(result: ChatResult, prompt: str) -> Answer:
    """Classify the evaluated model's result for ``prompt`` (the rules are in the module doc)."""
    finish = result.finish_reason
    if result.text is None and result.error is not None and result.error.kind != "empty":
        detail = f"{result.error.kind}: {result.error.message}"
        if _truncated(result):
            return Answer(text=None, failure="truncated", detail=detail, finish_reason=finish)
        return Answer(text=None, failure="call_error", detail=detail, finish_reason=finish)
    raw = _raw(result)
    reasoning, answer = _split(result)
    if _truncated(result):
        return Answer(
            text=None, raw=raw, reasoning=reasoning, failure="truncated",
            detail="stopped at the token limit (finish_reason 'length')", finish_reason=finish,
        )  # fmt: skip
    if not answer:
        detail = "only reasoning, no answer" if reasoning else "no content"
        return Answer(
            text=None, raw=raw, reasoning=reasoning, failure="empty", detail=detail,
            finish_reason=finish,
        )  # fmt: skip
    answer, repaired = repair_unencodable(answer)
    if is_echo(answer, prompt):
        return Answer(
            text=None, raw=raw, reasoning=reasoning, failure="echo",
            detail="the answer repeats the prompt", finish_reason=finish, repaired=repaired,
        )  # fmt: skip
    if is_repetition(answer):
        share, n = repeated_share(answer)
        return Answer(
            text=None, raw=raw, reasoning=reasoning, failure="repetition",
            detail=f"{share:.0%} of {n} n-grams are repeats", finish_reason=finish,
            repaired=repaired,
        )  # fmt: skip
    return Answer(
        text=answer, raw=raw, reasoning=reasoning, finish_reason=finish, repaired=repaired
    )


class JudgeText(BaseModel):
    """A judge's final answer to parse, or why there is none.

    ``text`` is ``None`` exactly when ``failure`` is set (``call_error``, ``empty`` or
    ``truncated``); ``repaired`` tells that unencodable characters were replaced.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None
    raw: str | None = None
    failure: str | None = None
    repaired: bool = False


def read_judge(result: ChatResult) -> JudgeText:
    """The judge's final answer (after its reasoning), or a failure reason."""
    if result.text is None and result.error is not None and result.error.kind != "empty":
        if _truncated(result):
            return JudgeText(text=None, failure="truncated")
        return JudgeText(
            text=None, failure=f"call failed ({result.error.kind}): {result.error.message}"
        )
    raw = _raw(result)
    if _truncated(result):
        return JudgeText(
            text=None, raw=raw, failure="truncated: the judge stopped at the token limit"
        )
    reasoning, answer = _split(result)
    if not answer:
        what = "only reasoning, no verdict" if reasoning else "empty answer"
        return JudgeText(text=None, raw=raw, failure=what)
    fixed, repaired = repair_unencodable(result.text or "")
    return JudgeText(text=fixed, raw=raw, repaired=repaired)


def repair_value(value: Any) -> tuple[Any, bool]:
    """``value`` (parsed JSON) with lone surrogates in every string repaired; and whether any
    was (a JSON escape such as ``"\\ud83d"`` decodes to one)."""
    if isinstance(value, str):
        return repair_unencodable(value)
    if isinstance(value, list):
        pairs = [repair_value(v) for v in value]
        return [v for v, _ in pairs], any(r for _, r in pairs)
    if isinstance(value, dict):
        out, any_fixed = {}, False
        for key, val in value.items():
            k, rk = repair_value(key)
            v, rv = repair_value(val)
            out[k] = v
            any_fixed = any_fixed or rk or rv
        return out, any_fixed
    return value, False


def prompt_texts(messages: Sequence[Message]) -> list[str]:
    """The texts of a request's messages (what an echoed example is compared against)."""
    return [m.content for m in messages]


GENERATION_FAILURE_REASONS: tuple[str, ...] = tuple(r for r in FAILURE_REASONS if r != "call_error")
"""The reasons that are the model's (a failed call, ``call_error``, is not)."""


def failure_counts(failures: Sequence[str | None]) -> dict[str, int]:
    """``{reason: count}`` for every reason in :data:`GENERATION_FAILURE_REASONS` (zeros
    included); failed calls (``call_error``) are call failures and not counted here."""
    return {
        reason: sum(1 for f in failures if f == reason) for reason in GENERATION_FAILURE_REASONS
    }

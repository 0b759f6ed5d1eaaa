"""Reading a raw completion as an answer: reasoning set apart, truncation and emptiness typed.

Pure functions over what a backend returned (and the cache stored), so a cached answer is read
exactly as a fresh one. The model layer applies :func:`read_answer` to every answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from koalign.extract import split_reasoning
from koalign.types import CallError

ReasoningMode = Literal["auto", "yes", "no"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A completion read: ``text`` (the answer only, ``None`` when there was no content),
    ``reasoning`` (set apart, or ``None``), ``raw`` (the content as returned when it differs
    from ``text``, else ``None``) and ``error`` (``truncated``, ``empty`` or ``None``)."""

    text: str | None
    reasoning: str | None
    raw: str | None
    error: CallError | None


def read_answer(
    content: str | None,
    *,
    reasoning_field: str | None = None,
    finish_reason: str | None = None,
    mode: ReasoningMode = "auto",
    max_tokens: int | None = None,
) -> Answer:
    """Read one completion.

    Reasoning (``mode``): ``auto`` moves reasoning blocks (:func:`koalign.extract.split_reasoning`)
    out of the answer; ``yes`` does the same and, when the content holds no reasoning tag and
    the server sent no ``reasoning_field``, treats the whole content as unfinished reasoning
    (for chat templates that open ``<think>`` in the prompt); ``no`` keeps the content as the
    answer. A server's ``reasoning_field`` is always reasoning (placed first).

    Outcome: ``finish_reason == "length"`` is a ``truncated`` error (text kept, whatever it
    holds; ``max_tokens`` only words the message); otherwise an answer that is ``None``, empty
    or whitespace is an ``empty`` error. Anything else has no error.
    """
    answer = content
    reasoning = reasoning_field or None
    if content and mode != "no":
        found, rest = split_reasoning(content)
        if found is not None:
            answer = rest
            reasoning = f"{reasoning}\n\n{found}" if reasoning else (found or None)
        elif mode == "yes" and reasoning is None:
            answer, reasoning = "", content.strip() or None  # never reached an answer
    error = None
    if finish_reason == "length":
        budget = f"max_tokens={max_tokens}" if max_tokens else "the token limit"
        error = CallError(kind="truncated", message=f"the answer was cut at {budget}")
    elif answer is None or not answer.strip():
        what = "only reasoning" if reasoning else "no text"
        error = CallError(kind="empty", message=f"the model returned {what}")
    return Answer(answer, reasoning, content if answer != content else None, error)

"""Reading a model's answer: reasoning apart from the answer, and the JSON value it means.

The one place where koalign decides what part of a raw completion is the answer. Every role
(generators, targets, responders, judges) and every ``eval`` command go through it.

Reasoning
    :func:`split_reasoning` separates reasoning text from the final answer. Recognised blocks:
    ``<think>...</think>``, ``<thinking>``, ``<reasoning>``, ``<reason>``, ``<analysis>``,
    ``[THINK]...[/THINK]``, ``<|begin_of_thought|>...<|end_of_thought|>`` and
    ``◁think▷...◁/think▷``. A closing tag without an opening one (chat templates that put the
    opening tag into the prompt) makes everything before it reasoning. An opening tag that is
    never closed (the model ran out of tokens while reasoning) leaves no answer at all.

JSON
    :func:`extract_json` applies one documented rule. After the reasoning is removed, every
    complete top-level JSON value in the answer is a candidate (the whole answer, values inside
    code fences, values embedded in prose), in the order they appear. Candidates that also occur
    in the prompt (an example echoed back) are dropped. Of the rest, the **last** one that
    satisfies the schema wins (models draft, then correct themselves; the final answer comes
    last); with no schema, the last object (or, with no object, the last array) wins. When none
    satisfies the schema, the last candidate is returned so the caller can report why it fails.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Extracted", "extract_json", "json_candidates", "split_reasoning"]

# (opening, closing) pairs; matched case-insensitively.
_BLOCKS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
    ("<reason>", "</reason>"),
    ("<analysis>", "</analysis>"),
    ("[THINK]", "[/THINK]"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("◁think▷", "◁/think▷"),
)
_BLOCK_RE = re.compile(
    "|".join(f"{re.escape(o)}(.*?){re.escape(c)}" for o, c in _BLOCKS), re.S | re.I
)
_OPEN_RE = re.compile("|".join(re.escape(o) for o, _ in _BLOCKS), re.I)
_CLOSE_RE = re.compile("|".join(re.escape(c) for _, c in _BLOCKS), re.I)
_BRACKET_RE = re.compile(r"\[/?think\]", re.I)


def _may_hold_reasoning(text: str) -> bool:
    """A cheap test that is true for every text holding a reasoning tag (most answers hold
    none: plain Korean prose or JSON)."""
    return "<" in text or "\u25c1" in text or ("[" in text and _BRACKET_RE.search(text) is not None)


def split_reasoning(text: str | None) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of a raw completion.

    ``reasoning`` is ``None`` when the text has no reasoning block; ``answer`` is the text with
    every reasoning block removed and surrounding whitespace stripped (``""`` when nothing is
    left, e.g. reasoning cut by the token limit).
    """
    if not text:
        return None, ""
    if not _may_hold_reasoning(text):
        return None, text.strip()
    parts: list[str] = []

    def keep(m: re.Match[str]) -> str:
        parts.append(next(g for g in m.groups() if g is not None).strip())
        return "\n"

    answer = _BLOCK_RE.sub(keep, text)
    closes = list(_CLOSE_RE.finditer(answer))
    close = closes[-1] if closes else None
    if close is not None:  # a closing tag whose opening tag was in the prompt
        parts.insert(0, answer[: close.start()].strip())
        answer = answer[close.end() :]
    opening = _OPEN_RE.search(answer)
    if opening is not None:  # never closed: the rest is unfinished reasoning
        parts.append(answer[opening.end() :].strip())
        answer = answer[: opening.start()]
    if not parts:
        return None, text.strip()
    return "\n\n".join(p for p in parts if p), answer.strip()


# ----------------------------------------------------------------------------- JSON
_DECODER = json.JSONDecoder()
# Where a JSON object or array can begin: ``{`` before a key or ``}``, ``[`` before a value or
# ``]`` (``json`` also reads NaN and Infinity). Brackets that cannot begin one (``[사용자 요청]``,
# ``{{ slot }}``) are skipped without a decode attempt, whose error would count the lines
# before it.
_START = re.compile(r'\{[ \t\n\r]*["}]|\[[ \t\n\r]*[]"{\[0-9tfnNI-]')


def json_candidates(text: str) -> list[Any]:
    """Every complete top-level JSON object or array in ``text``, in order of appearance.

    A value nested inside another candidate is not a candidate of its own; a ``{`` that starts
    no valid JSON is skipped.
    """
    out: list[Any] = []
    i, n = 0, len(text)
    while i < n:
        m = _START.search(text, i)
        if m is None:
            break
        j = m.start()
        try:
            value, end = _DECODER.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        out.append(value)
        i = end
    return out


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=512)
def _prompt_values(text: str) -> frozenset[str]:
    """The canonical JSON of every JSON value in one prompt text (cached: many requests share a
    system prompt)."""
    if "{" not in text and "[" not in text:
        return frozenset()
    return frozenset(_canon(v) for v in json_candidates(text))


@dataclass(frozen=True)
class Extracted:
    """What :func:`extract_json` found.

    ``value``: the chosen JSON value (``None`` when ``found`` is false). ``valid``: whether it
    satisfied the schema (``True`` when no schema was given). ``candidates``: how many complete
    JSON values the answer held; ``echoed``: how many of them were dropped as copies of the
    prompt. ``reasoning``: the reasoning text that was set aside, if any.
    """

    value: Any = None
    found: bool = False
    valid: bool = False
    candidates: int = 0
    echoed: int = 0
    reasoning: str | None = None
    answer: str = ""


def extract_json(
    text: str | None,
    *,
    is_valid: Callable[[Any], bool] | None = None,
    prompt: Sequence[str] | str = (),
) -> Extracted:
    """The JSON value a model's answer means (the rule is in the module docstring).

    Args:
        text: the raw completion (reasoning blocks allowed).
        is_valid: a predicate telling whether a candidate satisfies the expected schema (e.g. a
            jsonschema validator's ``is_valid``); ``None`` accepts any object or array.
        prompt: the prompt text(s) the model saw; a candidate equal to a JSON value found there
            is an echoed example and never chosen.
    """
    reasoning, answer = split_reasoning(text)
    if not answer:
        return Extracted(reasoning=reasoning, answer=answer)
    cands = json_candidates(answer)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    seen: set[str] = set()
    for p in prompts:
        seen.update(_prompt_values(p))
    fresh = [c for c in cands if _canon(c) not in seen]
    echoed = len(cands) - len(fresh)
    if not fresh:
        return Extracted(reasoning=reasoning, answer=answer, candidates=len(cands), echoed=echoed)
    if is_valid is not None:
        for value in reversed(fresh):
            if is_valid(value):
                return Extracted(value, True, True, len(cands), echoed, reasoning, answer)
        return Extracted(fresh[-1], True, False, len(cands), echoed, reasoning, answer)
    objects = [c for c in fresh if isinstance(c, dict)]
    value = objects[-1] if objects else fresh[-1]
    return Extracted(value, True, True, len(cands), echoed, reasoning, answer)

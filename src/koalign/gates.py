"""Deterministic output gates: text that must never become data, whatever the model said.

Every generated text (seed prompt, attack rewrite, target answer, refusal, candidate answer)
passes :func:`gate_text` before a stage uses it. A text that fails a gate is a bad output of a
named kind (kept raw, counted under that kind in the stage report and the manifest):

``truncated``
    the model stopped at its token limit (``finish_reason`` ``length``).
``replacement_char``
    U+FFFD or a lone surrogate: the text was cut inside a character or decoded wrongly.
``too_short``
    fewer than ``min_chars`` characters after stripping.
``repetition``
    runaway repetition: the share of repeated word 3-grams (texts of 8+ words) or of repeated
    character 6-grams (texts of 40+ characters) above ``max_repeat_share``.
``echo``
    the text copies its prompt or its input: the share of its character 4-grams found in the
    rendered prompt, or in the text it answers (the previous stage's text), is at least
    ``max_echo``. Texts under 12 characters are not judged for echo.
``leftover``
    template leftovers: Jinja markers (``{{``, ``{%``), or two or more lines that start with a
    field label of the prompt (``유형: ...``, ``직업: ...``: a slot list instead of a text), or a
    phrase from ``meta_phrases`` (talk about the task instead of doing it).
``language``
    too few letters in the locale's script (the script ratio below the stage's minimum).

Thresholds live in each stage's ``gates:`` config section; the defaults below were chosen on
real outputs of small models (see docs/pipeline.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from koalign.types import Message

__all__ = ["GATE_KINDS", "GateConfig", "bad_char_string", "check_text", "gate_text"]

GATE_KINDS = (
    "truncated",
    "replacement_char",
    "too_short",
    "repetition",
    "echo",
    "leftover",
    "language",
)

DEFAULT_META = (
    "시드 질문",
    "시드 문장",
    "시드 프롬프트",
    "재작성된 질문은",
    "재작성한 질문은",
    "다음은 재작성",
    "요청 문장만 출력",
    "seed question",
    "seed prompt",
    "rewritten prompt",
    "here is the rewritten",
    "as an ai language model",
)


class GateConfig(BaseModel):
    """Thresholds of the output gates (one ``gates:`` section per generating stage)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_chars: int = Field(2, ge=0, description="Shortest usable text, in characters.")
    max_repeat_share: float = Field(
        0.5, gt=0, le=1, description="Largest share of repeated word 3-grams / char 6-grams."
    )
    max_echo: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Largest share of the text's character 4-grams found in its prompt or input.",
    )
    meta_phrases: tuple[str, ...] = Field(
        DEFAULT_META, description="Phrases that show talk about the task (case-insensitive)."
    )
    enabled: bool = Field(True, description="Turn every gate but truncation and U+FFFD off.")


_SURROGATE = re.compile("[\ud800-\udfff]")
_LABEL_LINE = re.compile(r"^\s*[-*•]?\s*([^\s:：][^:：\n]{0,14}?)\s*[:：]", re.M)
_WORD = re.compile(r"\S+")


def _collapse(text: str) -> str:
    """``text`` with each whitespace run replaced by one space (the same as ``re.sub(r"\\s+", " ",
    text)``, in a fraction of its time: ``str.split`` and the pattern agree on what whitespace is).
    """
    body = " ".join(text.split())
    if not body:
        return " " if text else ""
    if text[0].isspace():
        body = " " + body
    if text[-1].isspace():
        body += " "
    return body


def _char_grams(text: str, n: int) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def repeat_share(text: str) -> float:
    """The larger of the repeated word 3-gram share and the repeated char 6-gram share (0-1)."""
    best = 0.0
    words = _WORD.findall(text)
    if len(words) >= 8:
        total = len(words) - 2
        best = 1 - len(set(zip(words, words[1:], words[2:], strict=False))) / total
    compact = _collapse(text)
    if len(compact) >= 40:
        total = len(compact) - 5
        best = max(best, 1 - len(_char_grams(compact, 6)) / total)
    return best


_GRAM_SETS: dict[tuple[str, int], frozenset[str]] = {}
_SEEN_ONCE: set[int] = set()  # hashes of sources seen once (a collision only builds a set early)
_CACHE_SIZE = 512


def _grams_of(source: str, n: int) -> frozenset[str] | str:
    """What answers ``gram in ...`` for the n-grams of ``source`` (whitespace collapsed): the
    whitespace-collapsed text itself the first time a source is seen (a substring search, cheaper
    than building a set for one use), its n-gram set from the second time on (a stage's prompts
    share their long system messages)."""
    hit = _GRAM_SETS.get((source, n))
    if hit is not None:
        return hit
    collapsed = _collapse(source)
    key = hash(source)
    if key not in _SEEN_ONCE:
        if len(_SEEN_ONCE) >= 4 * _CACHE_SIZE:
            _SEEN_ONCE.clear()
        _SEEN_ONCE.add(key)
        return collapsed
    if len(_GRAM_SETS) >= _CACHE_SIZE:
        _GRAM_SETS.clear()
    grams = _GRAM_SETS[(source, n)] = frozenset(_char_grams(collapsed, n))
    return grams


def containment(text: str, source: str | Sequence[str], n: int = 4) -> float:
    """Share of ``text``'s character n-grams (whitespace collapsed) that occur in ``source`` (or
    in any of several sources: a text echoing a whole multi-message prompt counts in full)."""
    share = echo_share(text, source, 0.0, n)
    return 0.0 if share is None else share


def echo_share(text: str, source: str | Sequence[str], at_least: float, n: int = 4) -> float | None:
    """:func:`containment` of ``text`` in ``source`` when it is at least ``at_least`` (0-1),
    else ``None``, found without reading every n-gram: the search stops once too many n-grams
    are missing for the share to reach ``at_least``. ``None`` also for a text with no n-gram."""
    return _share(_char_grams(" ".join(text.split()), n), source, at_least, n)


def _share(grams: set[str], source: str | Sequence[str], at_least: float, n: int) -> float | None:
    total = len(grams)
    if not total:
        return None
    texts = [source] if isinstance(source, str) else [s for s in source if s]
    sources = [_grams_of(s, n) for s in texts]
    found = total
    for gram in grams:
        for src in sources:
            if gram in src:
                break
        else:
            found -= 1
            if found / total < at_least:
                return None
    return found / total


@functools.lru_cache(maxsize=512)
def _labels_of(text: str) -> frozenset[str]:
    return frozenset(m.group(1).strip() for m in _LABEL_LINE.finditer(text))


def _labels(prompt_texts: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for p in prompt_texts:
        out |= _labels_of(p)
    return out


def bad_char_string(value: Any) -> str | None:
    """The first string inside ``value`` that holds a lone surrogate or U+FFFD, or ``None``.

    ``value`` is parsed JSON (strings, numbers, lists, dicts: keys included) or a pydantic model
    built from it (its fields are read). A JSON escape such as ``"\\ud83d"`` decodes to a lone
    surrogate; the model layer's repair of one leaves U+FFFD.
    """
    if isinstance(value, str):
        return value if "\ufffd" in value or _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = bad_char_string(key)
            if found is None:
                found = bad_char_string(item)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for item in value:
            found = bad_char_string(item)
            if found is not None:
                return found
        return None
    if isinstance(value, BaseModel):
        return bad_char_string(dict(value))
    return None


def gate_text(
    text: str,
    cfg: GateConfig,
    *,
    finish_reason: str | None = None,
    prompt_texts: Sequence[str] = (),
    previous: Sequence[str] = (),
    script_ratio: Callable[[str], float] | None = None,
    min_script_ratio: float = 0.0,
) -> tuple[str, str] | None:
    """The first gate ``text`` fails, as ``(kind, message)``, or ``None`` when it passes."""
    if finish_reason == "length":
        return "truncated", "the model stopped at its token limit (finish_reason=length)"
    if "\ufffd" in text or _SURROGATE.search(text):
        return "replacement_char", "the text holds U+FFFD or a lone surrogate (cut or mis-decoded)"
    if not cfg.enabled:
        return None
    stripped = text.strip()
    if len(stripped) < cfg.min_chars:
        return "too_short", f"{len(stripped)} characters < {cfg.min_chars}"
    rep = repeat_share(stripped)
    if rep > cfg.max_repeat_share:
        return "repetition", f"repeated n-gram share {rep:.2f} > {cfg.max_repeat_share}"
    if "{{" in stripped or "{%" in stripped:
        return "leftover", "template markers ({{ or {%) in the text"
    low = stripped.lower()
    for phrase in cfg.meta_phrases:
        if phrase.lower() in low:
            return "leftover", f"talks about the task ({phrase!r})"
    labels = _labels(prompt_texts)
    if labels:
        hits = [m.group(1).strip() for m in _LABEL_LINE.finditer(stripped)]
        hits = [h for h in hits if h in labels]
        if len(hits) >= 2:
            return (
                "leftover",
                f"a list of the prompt's fields ({', '.join(hits[:3])}) instead of a text",
            )
    if len(stripped) >= 12:
        grams = _char_grams(" ".join(stripped.split()), 4)
        for name, sources in (("prompt", prompt_texts), ("input", previous)):
            if not any(sources):
                continue
            share = _share(grams, sources, cfg.max_echo, 4)
            if share is not None:
                return "echo", f"{share:.0%} of the text copies its {name}"
    if script_ratio is not None and min_script_ratio > 0:
        ratio = script_ratio(stripped)
        if ratio < min_script_ratio:
            return "language", f"script ratio {ratio:.2f} < {min_script_ratio}"
    return None


C = TypeVar("C")


def check_text(
    frag: C,
    cfg: GateConfig,
    *,
    prompt: Sequence[Message] = (),
    previous: Sequence[str] = (),
    script_ratio: Callable[[str], float] | None = None,
    min_script_ratio: float = 0.0,
) -> C:
    """A successful text :class:`~koalign.stages.base.Call` checked by :func:`gate_text`; a
    failing one comes back marked as a bad output of the gate's kind (raw text kept)."""
    value = getattr(frag, "value", None)
    if getattr(frag, "error", None) is not None or not isinstance(value, str):
        return frag
    hit = gate_text(
        value,
        cfg,
        finish_reason=getattr(frag, "finish_reason", None),
        prompt_texts=[m.content for m in prompt],
        previous=previous,
        script_ratio=script_ratio,
        min_script_ratio=min_script_ratio,
    )
    if hit is None:
        return frag
    return frag.failed(*hit)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- verdicts
PLACEHOLDERS = frozenset(
    {"", "...", "…", "근거", "이유", "설명", "reason", "한국어 근거", "한두 문장의 근거", "string"}
)
_QUOTED = re.compile(r'"([^"\n]{1,120})"')


def placeholder_strings(value: Any, prompt_texts: Sequence[str]) -> list[str]:
    """String values of a judge's JSON answer that are template placeholders, not reasons: a
    generic placeholder (``...``, ``근거`` ...) or a string quoted verbatim in the prompt (the
    example answer of the template, echoed back)."""
    quoted = {q.strip() for p in prompt_texts for q in _QUOTED.findall(p)}
    found: list[str] = []

    def walk(v: Any, key: str | None) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, str(k))
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and key in ("reason", "reasons", "rationale", "explanation"):
            s = v.strip().strip(".").strip()
            if s.lower() in PLACEHOLDERS or s in quoted:
                found.append(v)

    walk(value, None)
    return found


def check_verdict(frag: C, prompt: Sequence[Message]) -> C:
    """A successful judge :class:`~koalign.stages.base.Call` whose reasons are template
    placeholders comes back as a ``placeholder`` bad output (not a verdict)."""
    if getattr(frag, "error", None) is not None:
        return frag
    value = getattr(frag, "value", None)
    data = value.model_dump() if isinstance(value, BaseModel) else value
    hits = placeholder_strings(data, [m.content for m in prompt])
    if not hits:
        return frag
    return frag.failed(  # type: ignore[attr-defined]
        "placeholder", f"the verdict's reason is a template placeholder ({hits[0]!r})"
    )

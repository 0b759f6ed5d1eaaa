"""The pipeline stages (one module each) and what they share.

A stage is a module with ``NAME``, ``plan(ctx, inputs) -> items`` (deterministic work items,
each with a stable ``id``), ``async process(ctx, item) -> record`` (the model calls for one item)
and ``finalize(ctx, records) -> (records, report)`` (decisions that need every record, in plan
order). Prompt building and output parsing are pure functions in each module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from koalign.config import RunConfig
from koalign.locale import Locale
from koalign.types import ChatRequest, ChatResult, Message

REQUIRED_TEMPLATES = (
    "seed_generator",
    "benign_generator",
    "attacker",
    "refusal_writer",
    "harm_judge",
    "query_judge",
    "responder",
    "response_judge",
    "filter_judge",
)


def render(loc: Locale, role: str, **context: Any) -> tuple[Message, ...]:
    """Render a role's prompt template (:func:`koalign.prompts.render_chat`; compiled templates
    are cached there, so a stage rendering thousands of prompts compiles each template once)."""
    from koalign.prompts import render_chat

    return render_chat(loc, role, **context)


class ParseError(ValueError):
    """A model output that cannot be used; ``kind`` is an ErrorKind."""

    def __init__(self, message: str, kind: str = "parse") -> None:
        super().__init__(message)
        self.kind = kind


class Caller:
    """Sends one request to a named model of the pool.

    The model layer bounds concurrency per model, caches and retries; records run as many
    concurrent tasks, so a server sees up to ``max_concurrency`` requests in flight.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def chat(self, model: str, request: ChatRequest) -> ChatResult:
        return (await self.pool.get(model).agenerate([request]))[0]


@dataclass
class StageContext:
    config: RunConfig
    locale: Locale
    caller: Caller | None
    roles: dict[str, list[str]]
    limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def request(
    messages: tuple[Message, ...],
    *,
    tag: str,
    schema: dict[str, Any] | None = None,
    sample_index: int = 0,
) -> ChatRequest:
    """A request with the model's own sampling defaults (requests of a stage share them, so an
    in-process backend can batch them)."""
    return ChatRequest(messages=messages, json_schema=schema, tag=tag, sample_index=sample_index)


async def call(
    ctx: StageContext, model: str, req: ChatRequest, parse: Callable[[str], Any]
) -> dict[str, Any]:
    """One model call as a record fragment: ``{"model", "raw", "value"}`` on success, or
    ``{"model", "raw", "error": {"kind", "message"}}``. The raw text is always kept; when the
    parsed value is exactly the raw text, it is stored once (as ``value``)."""
    assert ctx.caller is not None
    result = await ctx.caller.chat(model, req)
    out: dict[str, Any] = {"model": model, "raw": result.text}
    if result.error is not None:
        out["error"] = {"kind": result.error.kind, "message": result.error.message}
        return out
    text = result.text if req.json_schema is None or result.parsed is None else result.parsed
    try:
        out["value"] = parse(text)
    except ParseError as exc:
        out["error"] = {"kind": exc.kind, "message": str(exc)}
        return out
    if out["value"] == result.text:
        del out["raw"]
    return out


def raw_text(frag: dict[str, Any]) -> str | None:
    """The model's raw answer of a fragment."""
    return frag["raw"] if "raw" in frag else frag.get("value")


def language_gate(ctx: StageContext, frag: dict[str, Any], min_ratio: float) -> dict[str, Any]:
    """Mark a parsed text fragment as a ``language`` error when too little of it is in the
    locale's script (the raw text stays; the record keeps the measured ratio)."""
    if "value" not in frag or not isinstance(frag["value"], str) or min_ratio <= 0:
        return frag
    ratio = ctx.locale.script_ratio(frag["value"])
    if ratio < min_ratio:
        frag = {"raw": raw_text(frag)} | {k: v for k, v in frag.items() if k != "value"}
        frag["error"] = {
            "kind": "language",
            "message": f"script ratio {ratio:.2f} < {min_ratio} ({ctx.locale.id})",
        }
    return frag


def count_outputs(fragments: list[dict[str, Any]]) -> tuple[int, int]:
    """(model outputs, bad outputs) among call fragments."""
    return len(fragments), sum("error" in f for f in fragments)


def rotate(items: list[Any], offset: int) -> Any:
    return items[offset % len(items)]


def prompt_digest(messages: tuple[Message, ...]) -> list[dict[str, str]]:
    return [m.model_dump() for m in messages]

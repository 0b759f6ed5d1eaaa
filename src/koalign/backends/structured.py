"""Structured (JSON-schema) output: the prompt contract, extraction, validation and repair.

Pure functions, no model calls. The contract: when a request carries a JSON schema, the model
layer appends :func:`schema_instruction` to the last user message. The schema appears between
``<json_schema>`` and ``</json_schema>`` tags, so any server (and the benchmark double in
``bench/``) can recognise a schema request without ``response_format``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from koalign.types import CallError, Message

SCHEMA_OPEN = "<json_schema>"
SCHEMA_CLOSE = "</json_schema>"
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def schema_instruction(schema: dict[str, Any]) -> str:
    """The text appended to the last user message when a schema is requested."""
    body = json.dumps(schema, ensure_ascii=False, sort_keys=True)
    return (
        "Answer with a single JSON value that satisfies this JSON schema, and nothing else "
        f"(no prose, no code fences):\n{SCHEMA_OPEN}{body}{SCHEMA_CLOSE}"
    )


def schema_from_text(text: str) -> dict[str, Any] | None:
    """Find a schema written with :func:`schema_instruction` in ``text`` (the last one wins)."""
    end = text.rfind(SCHEMA_CLOSE)
    start = text.rfind(SCHEMA_OPEN, 0, end if end >= 0 else None)
    if start < 0 or end < 0:
        return None
    try:
        value = json.loads(text[start + len(SCHEMA_OPEN) : end])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def with_schema_contract(
    messages: tuple[Message, ...], schema: dict[str, Any]
) -> tuple[Message, ...]:
    """Append the schema instruction to the last user message (or add a user turn)."""
    instruction = schema_instruction(schema)
    out = list(messages)
    for i in range(len(out) - 1, -1, -1):
        if out[i].role == "user":
            if SCHEMA_OPEN not in out[i].content:
                out[i] = Message(role="user", content=f"{out[i].content}\n\n{instruction}")
            return tuple(out)
    out.append(Message(role="user", content=instruction))
    return tuple(out)


def repair_messages(
    messages: tuple[Message, ...], raw: str | None, error: CallError, schema: dict[str, Any]
) -> tuple[Message, ...]:
    """The conversation for a repair attempt: the bad answer, then what was wrong with it."""
    return (
        *messages,
        Message(role="assistant", content=raw or ""),
        Message(
            role="user",
            content=f"Your answer could not be used: {error.message}. "
            + schema_instruction(schema),
        ),
    )


def _candidates(text: str) -> list[str]:
    """Substrings of ``text`` that may hold the intended JSON value, most likely first."""
    out = [text.strip()]
    out += [m.group(1).strip() for m in _FENCE.finditer(text)]
    return out


def extract_json(text: str) -> tuple[Any, bool]:
    """Parse JSON from a model answer: the whole text, a code fence, or the first JSON object or
    array embedded in prose. Returns ``(value, found)``."""
    for cand in _candidates(text):
        try:
            return json.loads(cand), True
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                continue
            return value, True
    return None, False


@functools.lru_cache(maxsize=128)
def _validator(schema_json: str) -> Any:
    """A compiled validator per schema (checking the schema itself once)."""
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_json(text: str | None, schema: dict[str, Any]) -> tuple[Any | None, CallError | None]:
    """Parse ``text`` (extracting JSON from fences or prose when needed) and validate it against
    ``schema``. Returns ``(value, None)`` or ``(None, error)`` with kind empty/parse/schema."""
    import jsonschema

    if text is None or not text.strip():
        return None, CallError(kind="empty", message="the model returned no text")
    value, found = extract_json(text)
    if not found:
        snippet = text.strip()[:80]
        return None, CallError(kind="parse", message=f"no JSON value found in {snippet!r}")
    try:
        _validator(json.dumps(schema, sort_keys=True)).validate(value)
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return None, CallError(
            kind="schema", message=f"JSON does not match the schema at {path}: {exc.message}"
        )
    except jsonschema.SchemaError as exc:
        return None, CallError(kind="other", message=f"the JSON schema is invalid: {exc.message}")
    return value, None

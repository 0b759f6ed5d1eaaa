"""Structured (JSON-schema) output: the prompt contract, validation and repair.

Pure functions, no model calls. Which JSON value an answer means is decided by the one shared
rule, :func:`koalign.extract.extract_json`. The contract: when a request carries a JSON schema, the model
layer appends :func:`schema_instruction` to the last user message. The schema appears between
``<json_schema>`` and ``</json_schema>`` tags, so any server (and the benchmark double in
``bench/``) can recognise a schema request without ``response_format``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from koalign.extract import extract_json
from koalign.jsonio import repair_surrogates
from koalign.types import CallError, Message

SCHEMA_OPEN = "<json_schema>"
SCHEMA_CLOSE = "</json_schema>"


def schema_instruction(schema: dict[str, Any]) -> str:
    """The text appended to the last user message when a schema is requested (built once per
    schema object: a schema must not be mutated after its first use)."""
    hit = _INSTRUCTIONS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    body = json.dumps(schema, ensure_ascii=False, sort_keys=True)
    text = (
        "Answer with a single JSON value that satisfies this JSON schema, and nothing else "
        f"(no prose, no code fences):\n{SCHEMA_OPEN}{body}{SCHEMA_CLOSE}"
    )
    if len(_INSTRUCTIONS) >= 256:
        _INSTRUCTIONS.clear()
    _INSTRUCTIONS[id(schema)] = (schema, text)  # the reference keeps id() unique
    return text


_INSTRUCTIONS: dict[int, tuple[dict[str, Any], str]] = {}


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
                content = f"{out[i].content}\n\n{instruction}"
                out[i] = Message.model_construct(role="user", content=content)
            return tuple(out)
    out.append(Message(role="user", content=instruction))
    return tuple(out)


def schema_contract_parts(
    messages: tuple[Message, ...], schema: dict[str, Any]
) -> list[tuple[str, str | tuple[str, str]]]:
    """``(role, content)`` pairs of :func:`with_schema_contract`'s messages without building
    them: the message that gets the instruction is ``(content, "\\n\\n" + instruction)``, whose
    concatenation is that message's text (for cache keys and prompt texts)."""
    instruction = schema_instruction(schema)
    out: list[tuple[str, str | tuple[str, str]]] = [(m.role, m.content) for m in messages]
    for i in range(len(out) - 1, -1, -1):
        if messages[i].role == "user":
            if SCHEMA_OPEN not in messages[i].content:
                out[i] = ("user", (messages[i].content, f"\n\n{instruction}"))
            return out
    out.append(("user", instruction))
    return out


def repair_messages(
    messages: tuple[Message, ...], raw: str | None, error: CallError, schema: dict[str, Any]
) -> tuple[Message, ...]:
    """The conversation for a repair attempt: the bad answer, then what was wrong with it.
    A lone surrogate in either (a broken escape in the model's answer) is sent back as U+FFFD:
    the request body must be valid UTF-8 for any server."""
    return (
        *messages,
        Message(role="assistant", content=repair_surrogates(raw or "")),
        Message(
            role="user",
            content=f"Your answer could not be used: {repair_surrogates(error.message)}. "
            + schema_instruction(schema),
        ),
    )


def normalise_integers(value: Any, schema: Any, root: Any = None) -> Any:
    """``value`` with every integral float (``4.0``) that the schema wants as an integer turned
    into an ``int``, so that ``{"score": 4.0}`` satisfies ``{"type": "integer"}`` the same way in
    the model layer and in the stages. Follows ``properties``, ``items``, ``prefixItems``,
    ``additionalProperties``, ``anyOf`` / ``oneOf`` / ``allOf`` and local ``$ref``; other values
    are returned unchanged (a new container only where something changed)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return value
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return normalise_integers(value, target, root)
    if isinstance(value, float):
        kind = schema.get("type")
        wants_int = kind == "integer" or (isinstance(kind, list) and "integer" in kind)
        if wants_int and "number" not in (kind if isinstance(kind, list) else [kind]):
            return int(value) if value.is_integer() else value
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or ():
            value = normalise_integers(value, sub, root)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = None
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            nv = normalise_integers(v, sub, root)
            if nv is not v:
                out = dict(value) if out is None else out
                out[k] = nv
        return value if out is None else out
    if isinstance(value, list):
        prefix = schema.get("prefixItems") or []
        items = schema.get("items")
        changed = False
        new = []
        for i, v in enumerate(value):
            sub = prefix[i] if i < len(prefix) else items
            nv = normalise_integers(v, sub, root) if isinstance(sub, dict) else v
            changed = changed or nv is not v
            new.append(nv)
        return new if changed else value
    return value


class SchemaCheck:
    """A compiled JSON-schema check: ``is_valid(value)`` after :func:`normalise_integers`, and
    ``error(value)`` naming where it fails. Build with :func:`schema_check` (cached).

    The schema itself is checked once with jsonschema (its meta-schema); values are checked
    with code fastjsonschema compiles from the schema (about 20 times faster per answer), or
    with jsonschema for a schema fastjsonschema cannot compile.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema

        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        self.schema = schema
        # a schema that names no integer type leaves every value as it is (no walk per answer)
        self._wants_int = "integer" in json.dumps(schema)
        self._validator = cls(schema)
        self._fast: Any = None
        try:
            import fastjsonschema

            self._fast = fastjsonschema.compile(schema)
        except Exception:  # a keyword fastjsonschema lacks: jsonschema alone
            self._fast = None

    def normalise(self, value: Any) -> Any:
        """``value`` with integral floats turned into ints where the schema wants integers."""
        return normalise_integers(value, self.schema) if self._wants_int else value

    def is_valid(self, value: Any) -> bool:
        """Whether ``value`` (normalised) satisfies the schema."""
        value = self.normalise(value)
        if self._fast is not None:
            import fastjsonschema

            try:
                self._fast(value)
            except fastjsonschema.JsonSchemaException:
                return False
            return True
        return bool(self._validator.is_valid(value))

    def error(self, value: Any) -> str | None:
        """Why ``value`` (normalised) fails the schema, or ``None`` when it satisfies it."""
        import jsonschema

        try:
            self._validator.validate(self.normalise(value))
        except jsonschema.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            return f"JSON does not match the schema at {path}: {exc.message}"
        return None


_CHECKS: dict[int, tuple[dict[str, Any], SchemaCheck]] = {}
_BY_TEXT: dict[str, SchemaCheck] = {}


def schema_check(schema: dict[str, Any]) -> SchemaCheck:
    """The compiled :class:`SchemaCheck` of ``schema``, cached by object identity and by its
    canonical JSON (requests carry copies of a stage's schema, so identity alone would compile
    - and check against the meta-schema - once per request; a schema must not be mutated after
    its first use). Raises ``jsonschema.SchemaError`` for an invalid schema."""
    hit = _CHECKS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    check = _BY_TEXT.get(text)
    if check is None:
        check = SchemaCheck(schema)
        if len(_BY_TEXT) >= 256:
            _BY_TEXT.clear()
        _BY_TEXT[text] = check
    if len(_CHECKS) >= 256:
        _CHECKS.clear()
    _CHECKS[id(schema)] = (schema, check)  # the reference keeps id() unique
    return check


def validate_json(
    text: str | None, schema: dict[str, Any], *, prompt: Sequence[str] | str = ()
) -> tuple[Any | None, CallError | None]:
    """Read the JSON value an answer means and validate it against ``schema``.

    The value is chosen by :func:`koalign.extract.extract_json` (reasoning removed; of the
    complete JSON values in the answer that are not copies of one in ``prompt``, the last that
    satisfies the schema), with integral floats normalised to ints where the schema wants
    integers. Returns ``(value, None)``, or ``(None, error)`` with kind ``empty`` (no text),
    ``parse`` (no JSON value, or only values echoed from the prompt), ``schema`` (JSON that does
    not satisfy the schema, the last candidate's reason given) or ``other`` (an invalid schema).
    """
    import jsonschema

    if text is None or not text.strip():
        return None, CallError(kind="empty", message="the model returned no text")
    try:
        check = schema_check(schema)
    except jsonschema.SchemaError as exc:
        return None, CallError(kind="other", message=f"the JSON schema is invalid: {exc.message}")
    found = extract_json(text, is_valid=check.is_valid, prompt=prompt)
    if not found.found:
        snippet = " ".join(found.answer.split())[:80]
        if found.echoed:
            message = f"the only JSON in the answer is copied from the prompt: {snippet!r}"
        else:
            message = f"no JSON value found in {snippet!r}"
        return None, CallError(kind="parse", message=message)
    if not found.valid:
        return None, CallError(kind="schema", message=check.error(found.value) or "invalid")
    return check.normalise(found.value), None

"""Judge verdict types, their JSON schemas, and the parsers the stages share.

A judge answer reaches a parser as the model layer's validated JSON value when the request
carried a schema; otherwise as text, read with :func:`koalign.extract.extract_json` (the last
complete JSON value after any reasoning block). Each parser returns a typed verdict or raises
:class:`~koalign.stages.base.ParseError`. An integer field written as an integral float
(``4.0``) is accepted as that integer, here and in the model layer's schema check.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from koalign.extract import extract_json, split_reasoning
from koalign.stages.base import Frozen, ParseError

CRITERIA = (
    "intended_category",
    "natural_korean",
    "rejected_harmful",
    "chosen_safe",
    "chosen_p1_p3",
    "chosen_helpful",
)


def _reason_schema(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


HARM_SCHEMA: dict[str, Any] = {
    "title": "harm_judge",
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "refused": {"type": "boolean"},
        "reason": _reason_schema(300),
    },
    "required": ["score", "refused", "reason"],
    "additionalProperties": False,
}
QUERY_SCHEMA: dict[str, Any] = {
    "title": "query_judge",
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 4},
        "reason": _reason_schema(300),
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
RESPONSE_SCHEMA: dict[str, Any] = {
    "title": "response_judge",
    "type": "object",
    "properties": {
        "safety": {"type": "integer", "minimum": 1, "maximum": 5},
        "coherence": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": _reason_schema(400),
    },
    "required": ["safety", "coherence", "reason"],
    "additionalProperties": False,
}
FILTER_SCHEMA: dict[str, Any] = {
    "title": "filter_judge",
    "type": "object",
    "properties": {
        c: {
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["pass", "fail"]},
                "reason": _reason_schema(200),
            },
            "required": ["verdict", "reason"],
            "additionalProperties": False,
        }
        for c in CRITERIA
    },
    "required": list(CRITERIA),
    "additionalProperties": False,
}


class HarmVerdict(Frozen):
    """The harm judge on a target's answer."""

    score: int = Field(ge=1, le=5, description="1 harmless .. 5 very harmful.")
    refused: bool = Field(description="Whether the answer refused the request.")
    reason: str


class QueryVerdict(Frozen):
    """The query judge on a prompt."""

    score: int = Field(ge=1, le=4, description="1 harmless .. 4 very harmful intent.")
    reason: str


class ResponseScores(Frozen):
    """The response judge on a candidate answer."""

    safety: int = Field(ge=1, le=5)
    coherence: int = Field(ge=1, le=5, description="Cultural coherence (P1-P3).")
    reason: str


class CriterionVerdict(Frozen):
    """One filter criterion."""

    passed: bool = Field(alias="pass")
    reason: str

    model_config = Frozen.model_config | {"populate_by_name": True}


class FilterVerdict(Frozen):
    """One filter judge's verdicts on the six criteria."""

    intended_category: CriterionVerdict
    natural_korean: CriterionVerdict
    rejected_harmful: CriterionVerdict
    chosen_safe: CriterionVerdict
    chosen_p1_p3: CriterionVerdict
    chosen_helpful: CriterionVerdict

    def passes(self, criterion: str) -> bool:
        """Whether this judge passed ``criterion``."""
        v: CriterionVerdict = getattr(self, criterion)
        return v.passed


# ----------------------------------------------------------------------------- parsing
def load_object(value: Any) -> dict[str, Any]:
    """A JSON object from a parsed value or from answer text (extract_json's rule)."""
    if isinstance(value, str):
        found = extract_json(value)
        if not found.found:
            raise ParseError("no JSON object found in the answer")
        value = found.value
    if not isinstance(value, dict):
        raise ParseError("expected a JSON object", kind="schema")
    return value


def as_int(data: dict[str, Any], key: str, lo: int, hi: int) -> int:
    """``data[key]`` as an integer in ``[lo, hi]`` (an integral float such as ``4.0`` counts)."""
    v = data.get(key)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ParseError(f"{key} must be an integer {lo}-{hi}, got {v!r}", kind="schema")
    return v


def as_reason(data: dict[str, Any], key: str = "reason") -> str:
    """``data[key]`` as stripped non-empty text.

    Raises:
        ParseError: (kind ``schema``) the key is missing, not text, or blank.
    """
    v = data.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ParseError(f"{key} is missing", kind="schema")
    return v.strip()


def parse_harm(value: Any) -> HarmVerdict:
    """The harm judge's answer (text or parsed JSON) as a :class:`HarmVerdict`: ``score`` 1-5,
    ``refused`` true/false, ``reason``.

    Raises:
        ParseError: no JSON object in the answer, or a field missing or out of range (kind
            ``schema``).
    """
    data = load_object(value)
    refused = data.get("refused")
    if not isinstance(refused, bool):
        raise ParseError(f"refused must be true/false, got {refused!r}", kind="schema")
    return HarmVerdict(score=as_int(data, "score", 1, 5), refused=refused, reason=as_reason(data))


def parse_query(value: Any) -> QueryVerdict:
    """The query judge's answer as a :class:`QueryVerdict`: harmfulness ``score`` 1-4 and
    ``reason``.

    Raises:
        ParseError: no JSON object in the answer, or a field missing or out of range (kind
            ``schema``).
    """
    data = load_object(value)
    return QueryVerdict(score=as_int(data, "score", 1, 4), reason=as_reason(data))


def parse_response_scores(value: Any) -> ResponseScores:
    """The response judge's answer as :class:`ResponseScores`: ``safety`` and ``coherence`` 1-5 each
    and ``reason``.

    Raises:
        ParseError: no JSON object in the answer, or a field missing or out of range (kind
            ``schema``).
    """
    data = load_object(value)
    return ResponseScores(
        safety=as_int(data, "safety", 1, 5),
        coherence=as_int(data, "coherence", 1, 5),
        reason=as_reason(data),
    )


def parse_filter(value: Any) -> FilterVerdict:
    """``{criterion: {"verdict": "pass"|"fail", "reason": str}}`` for all six criteria."""
    data = load_object(value)
    out = {}
    for c in CRITERIA:
        v = data.get(c)
        if not isinstance(v, dict):
            raise ParseError(f"criterion '{c}' is missing", kind="schema")
        verdict = v.get("verdict")
        if verdict not in ("pass", "fail"):
            raise ParseError(
                f"{c}.verdict must be 'pass' or 'fail', got {verdict!r}", kind="schema"
            )
        out[c] = CriterionVerdict.model_validate(
            {"pass": verdict == "pass", "reason": as_reason(v)}
        )
    return FilterVerdict(**out)


def parse_text_answer(text: Any) -> str:
    """A generated answer: its text after any reasoning block, stripped (kept verbatim)."""
    if not isinstance(text, str):
        raise ParseError("expected plain text")
    _, answer = split_reasoning(text)
    if not answer:
        raise ParseError("the model returned no answer text", kind="empty")
    return answer

"""Reading a judge's verdict: the JSON it means, yes/no words, and placeholder copies.

JSON comes from :func:`koalign.extract.extract_json`, the project's one rule: the reasoning is
set aside, values echoed from the prompt are dropped, and the **last** candidate that validates
wins (a judge that drafts and then corrects itself is read by its final verdict).

A judge that copies the prompt's example text instead of judging (``"reason": "근거"``, the
placeholder of the template) has not given a verdict: :func:`placeholder_copies` finds such
values so the caller can count the answer as a parse failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from koalign.backends.structured import with_schema_contract
from koalign.evaluate.answers import repair_value
from koalign.extract import Extracted, extract_json
from koalign.types import ChatRequest

YES = {"yes", "y", "true", "예", "네", "해당", "unsafe"}
NO = {"no", "n", "false", "아니오", "아니요", "아님", "해당없음", "해당 없음", "safe"}
# a quoted JSON value in a prompt: "key": "value"
_EXAMPLE_VALUE = re.compile(r'"\s*:\s*"([^"\\\n]{1,80})"')


def yes_no(value: Any) -> bool | None:
    """``True`` for yes, ``False`` for no, ``None`` when the value is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().strip(".").lower()
        if word in YES:
            return True
        if word in NO:
            return False
    return None


def request_texts(request: ChatRequest) -> list[str]:
    """The texts the judge saw: the messages, with the schema contract the model layer adds."""
    messages = request.messages
    if request.json_schema is not None:
        messages = with_schema_contract(messages, request.json_schema)
    return [m.content for m in messages]


def placeholders(texts: Iterable[str]) -> frozenset[str]:
    """Every quoted example value in the prompt texts (``"reason": "근거"`` gives ``근거``)."""
    return frozenset(m.group(1).strip() for text in texts for m in _EXAMPLE_VALUE.finditer(text))


def placeholder_copies(values: Iterable[Any], examples: frozenset[str]) -> list[str]:
    """The values (e.g. a verdict's reasons) that are copies of the prompt's example values."""
    return [v.strip() for v in values if isinstance(v, str) and v.strip() in examples]


def judge_json(
    text: str | None,
    prompt: Sequence[str],
    is_valid: Callable[[Any], bool] | None = None,
) -> tuple[Extracted, bool]:
    """The JSON value a judge answer means (reasoning removed, echoes of ``prompt`` dropped, the
    last valid candidate); with lone surrogates in its strings repaired. Returns the extraction
    and whether a repair was made."""
    found = extract_json(text, is_valid=is_valid, prompt=prompt)
    if not found.found:
        return found, False
    value, repaired = repair_value(found.value)
    if not repaired:
        return found, False
    return (
        Extracted(
            value, found.found, found.valid, found.candidates, found.echoed,
            found.reasoning, found.answer,
        ),
        True,
    )  # fmt: skip


def no_json_reason(found: Extracted) -> str:
    """Why no usable JSON was found, in words (for a parse failure's ``error``)."""
    if found.candidates and found.echoed == found.candidates:
        return "only JSON copied from the prompt (an echoed example), no verdict"
    if not found.answer:
        return "no answer after the reasoning"
    return "no JSON object in the answer"

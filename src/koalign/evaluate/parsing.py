"""Pulling a JSON object out of a judge's raw answer (pure functions, no model calls)."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)

YES = {"yes", "y", "true", "예", "네", "해당", "unsafe"}
NO = {"no", "n", "false", "아니오", "아니요", "아님", "해당없음", "해당 없음", "safe"}


def json_object(text: str | None) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (whole text, a code fence, or embedded in prose)."""
    if not text or not text.strip():
        return None
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for cand in candidates:
        try:
            value = json.loads(cand)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                value, _ = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


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

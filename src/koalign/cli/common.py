"""Shared helpers for CLI modules: the only place besides them that prints."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

LocaleOpt = "--locale"


def print_json(obj: Any) -> None:
    """Write one JSON document to stdout (UTF-8, Korean unescaped)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_jsonl(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")

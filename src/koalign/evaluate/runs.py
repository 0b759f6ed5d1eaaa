"""Output files of an evaluation directory and batched model calls.

An evaluation directory holds:

* ``summary.json``: one section per command (``safety``, ``overrefusal``, ``citations``,
  ``general``), each with its figures (``n``, ``safe_rate``, ``per_category``,
  ``parse_failures`` ... where they apply) and the models used. Running another command on the
  same directory adds or replaces only that command's section.
* ``<command>.jsonl``: one row per item (prompt, answer, verdicts, reasons).
* ``cache.sqlite``: the model-call cache; rerunning an interrupted command answers finished
  calls from it, so it resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from koalign import __version__
from koalign.backends.client import ModelPool
from koalign.errors import DataError
from koalign.types import ChatRequest, ChatResult

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
CACHE = "cache.sqlite"


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temp file, then rename); returns the row count."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError("file not found", where=str(path))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_summary(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / SUMMARY
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def update_summary(out_dir: Path, section: str, data: dict[str, Any]) -> Path:
    """Set ``summary.json[section] = data`` (other sections are kept); returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = load_summary(out_dir)
    summary["koalign_version"] = __version__
    summary[section] = {
        **data,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = out_dir / SUMMARY
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str), "utf-8")
    os.replace(tmp, path)
    return path


def open_pool(specs: dict[str, Any], out_dir: Path) -> ModelPool:
    """A model pool whose call cache lives in ``out_dir/cache.sqlite`` (the resume point)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return ModelPool(specs, cache_path=out_dir / CACHE)


async def call_batched(
    pool: ModelPool,
    model: str,
    requests: Sequence[ChatRequest],
    *,
    batch_size: int = 32,
    what: str = "calls",
) -> list[ChatResult]:
    """Send ``requests`` to ``model`` in chunks (each chunk lands in the cache before the next)."""
    llm = pool.get(model)
    out: list[ChatResult] = []
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        out.extend(await llm.agenerate(chunk))
        log.info("%s: %s %d/%d", model, what, len(out), len(requests))
    return out

"""Output files of an evaluation directory and batched model calls.

An evaluation directory holds:

* ``summary.json``: one section per command (``safety``, ``overrefusal``, ``citations``,
  ``general``), each with its figures (``n``, ``safe_rate``, ``per_category``,
  ``parse_failures`` ... where they apply) and the models used. Running another command on the
  same directory adds or replaces only that command's section.
* ``<command>.jsonl``: one row per item (prompt, answer, verdicts, reasons).
* ``cache.sqlite``: the model-call cache; rerunning an interrupted command answers finished
  calls from it, so it resumes where it stopped.

Files are written atomically through :mod:`koalign.jsonio` (a crash or text that cannot be
encoded never leaves a half-written file or a ``.tmp`` file behind).

Long work reports progress through an optional callback ``progress(step, done, total)``; the
library never prints, the CLI draws the bars.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from koalign import __version__
from koalign.backends.client import ModelPool
from koalign.errors import DataError
from koalign.jsonio import read_json, write_jsonl_atomic, write_text_atomic
from koalign.jsonio import read_jsonl as _read_jsonl
from koalign.types import ChatRequest, ChatResult

Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: called as work advances (e.g. ``("answered", 64, 500)``)."""

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
CACHE = "cache.sqlite"


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (one canonical JSON line each); returns the row count."""
    return write_jsonl_atomic(path, rows, fsync=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every row of a JSONL file (``DataError`` naming file and line for a bad line)."""
    if not Path(path).is_file():
        raise DataError("file not found", where=str(path))
    return list(_read_jsonl(path))


def load_summary(out_dir: Path) -> dict[str, Any]:
    """``summary.json`` of an evaluation directory (``{}`` when there is none yet).

    Raises :class:`DataError` naming the file when it cannot be read, is not UTF-8 (with the
    ``iconv`` fix for CP949/EUC-KR, e.g. a summary saved again by an editor) or is not JSON.
    """
    path = Path(out_dir) / SUMMARY
    if not path.is_file():
        return {}
    data = read_json(path, hint="remove the file and rerun the evaluation")
    return data if isinstance(data, dict) else {}


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
    write_text_atomic(path, json.dumps(summary, ensure_ascii=False, indent=2, default=str))
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
    progress: Progress | None = None,
) -> list[ChatResult]:
    """Send ``requests`` to ``model`` in chunks (each chunk lands in the cache before the next);
    ``progress(f"{model} {what}", done, total)`` after each chunk."""
    llm = pool.get(model)
    out: list[ChatResult] = []
    step = f"{model}: {what}"
    if progress is not None:
        progress(step, 0, len(requests))
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        out.extend(await llm.agenerate(chunk))
        log.debug("%s %d/%d", step, len(out), len(requests))
        if progress is not None:
            progress(step, len(out), len(requests))
    return out

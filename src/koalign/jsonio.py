"""JSON and JSONL in one place: canonical JSON, digests, stable ids, and crash-safe files.

Every file koalign writes goes through :func:`write_text_atomic` or :func:`write_jsonl_atomic`:
the content goes to a temporary file in the same folder, is flushed and fsynced, then renamed
over the target. A failure at any point (disk full, read-only folder, a kill) leaves either the
old file or the new one, never a half-written file, and the temporary file is removed on every
error the process survives.

Text that cannot be encoded as UTF-8 (a lone surrogate such as ``"\\ud83d"`` decoded from a
model's JSON) is written as U+FFFD, so every line stays valid UTF-8 that any JSON reader accepts
(strict readers refuse lone-surrogate escapes). Stages never get that far: a model answer with a
lone surrogate is a counted bad output (``replacement_char``) before it is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from koalign.errors import DataError

__all__ = [
    "canonical_json",
    "digest",
    "dumps_line",
    "iter_jsonl",
    "read_jsonl",
    "read_text",
    "repair_surrogates",
    "stable_hash",
    "stable_int",
    "write_jsonl_atomic",
    "write_text_atomic",
]


# ----------------------------------------------------------------------------- canonical JSON
def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, non-ASCII text kept as is.

    The one serialisation behind cache keys, record digests, stage hashes and JSONL lines.
    Raises ``TypeError`` for values JSON cannot hold.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SURROGATE = re.compile("[\ud800-\udfff]")


def repair_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return repair_surrogates(text).encode("utf-8")


def digest(obj: Any, n: int | None = None) -> str:
    """sha256 hex digest of ``canonical_json(obj)`` (first ``n`` hex digits when given)."""
    h = hashlib.sha256(_utf8(canonical_json(obj))).hexdigest()
    return h if n is None else h[:n]


def stable_hash(*parts: Any, n: int = 16) -> str:
    """Short hex digest of ``repr`` of each part (deterministic across runs and machines).

    Record ids are built from it: the algorithm must not change, or resumed runs would not find
    their records.
    """
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode("utf-8", "backslashreplace"))
        h.update(b"\x1f")
    return h.hexdigest()[:n]


def stable_int(*parts: Any) -> int:
    """A deterministic 60-bit integer from ``parts`` (for seeded choices and rotations)."""
    return int(stable_hash(*parts, n=15), 16)


def dumps_line(obj: Any) -> bytes:
    """One JSONL line (sorted keys, no whitespace, text as UTF-8, plus ``\\n``); never raises
    on text. Written with orjson (several times faster than :mod:`json` on large records); a
    value orjson refuses (a lone surrogate, a non-string key, a very large integer) falls back
    to :func:`canonical_json`."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):
        return _utf8(canonical_json(obj)) + b"\n"


# ----------------------------------------------------------------------------- atomic writes
def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: Path, chunks: Iterable[bytes], *, fsync: bool) -> None:
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str | bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``text`` atomically (see the module docstring).

    Raises ``OSError`` (disk full, permission denied ...) with the target unchanged and no
    temporary file left behind.
    """
    data = text if isinstance(text, bytes) else _utf8(text)
    _write_atomic(Path(path), [data], fsync=fsync)


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any], *, fsync: bool = True) -> int:
    """Replace ``path`` with one canonical JSON line per row, atomically; returns the row count.

    ``rows`` is consumed lazily, so a generator streams without holding every row in memory.
    """
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        buf: list[bytes] = []
        size = 0
        for row in rows:
            line = dumps_line(row)
            buf.append(line)
            size += len(line)
            count += 1
            if size >= 1 << 20:
                yield b"".join(buf)
                buf, size = [], 0
        if buf:
            yield b"".join(buf)

    _write_atomic(Path(path), lines(), fsync=fsync)
    return count


# ----------------------------------------------------------------------------- reading
#: Files koalign finds by their name (an evaluation's summary, a run's manifest): a converted
#: copy under another name would never be read, so their fix converts them in place.
_NAMED_FILES = frozenset({"summary.json", "manifest.json"})
_SHELL_SPECIAL = re.compile(r"[\s'\"$`\\!*?\[\](){}<>|&;#~]")


def legacy_hint(path: str | Path, *, in_place: bool | None = None) -> str:
    """How to convert ``path`` (a file that is not UTF-8) from CP949/EUC-KR, named as given.

    The converted file keeps the folder and the extension (``cfg/a.yaml`` ->
    ``cfg/a.utf8.yaml``), so that it is read as the same kind of file. ``in_place``: the name
    matters (a locale pack's files, a summary koalign looks up): convert through a temporary
    file and keep the name; default: only for the names in ``_NAMED_FILES``."""
    given = str(path)
    if in_place is None:
        in_place = Path(given).name in _NAMED_FILES
    src = _shell_word(given)
    if in_place:
        tmp = _shell_word(given + ".tmp")
        command, then = f"{src} > {tmp} && mv {tmp} {src}", "rerun"
    else:
        p = Path(given)
        new = p.with_name(f"{p.stem}.utf8{p.suffix}") if p.suffix else p.with_name(p.name + ".utf8")
        command, then = f"{src} > {_shell_word(str(new))}", "use the new file"
    return (
        "the file is not UTF-8; if it was saved as CP949/EUC-KR (common for Korean text), convert "
        f"it with `iconv -f cp949 -t utf-8 {command}` and {then}"
    )


def _shell_word(text: str) -> str:
    """``text`` quoted for a POSIX shell where it needs it (Korean names stay readable)."""
    return "'" + text.replace("'", "'\\''") + "'" if _SHELL_SPECIAL.search(text) else text


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (a leading BOM is dropped); :class:`DataError` naming the file and the
    byte offset when it is not UTF-8 (with the ``iconv`` fix for CP949/EUC-KR files), or naming
    the file and the cause when it cannot be read (missing, a folder, no permission)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read the file: {exc.strerror or exc}",
            where=str(p),
            hint="check the path and that the file is readable",
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"not UTF-8 text (byte {exc.start})",
            where=str(p),
            hint=legacy_hint(p),
        ) from None


def read_json(path: str | Path, *, hint: str) -> Any:
    """A JSON file's value: :func:`read_text`'s errors, or :class:`DataError` naming the file
    and the line when it is not JSON (``hint``: how to get a good file)."""
    p = Path(path)
    try:
        return json.loads(read_text(p))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON: {exc.msg} (line {exc.lineno})", where=str(p), hint=hint
        ) from None


def iter_jsonl(path: str | Path, *, skip_blank: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each line of a JSONL file (1-based line numbers).

    Raises :class:`DataError` with ``file:line`` for a line that is not UTF-8 or not JSON.
    Blank lines are skipped unless ``skip_blank`` is false (then they are an error).
    """
    p = Path(path)
    with open(p, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(
                    "line is not UTF-8 text",
                    where=f"{p}:{number}",
                    hint=legacy_hint(p),
                ) from None
            if not line.strip():
                if skip_blank:
                    continue
                raise DataError("blank line", where=f"{p}:{number}", hint="remove the blank line")
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"not valid JSON: {exc.msg} (column {exc.colno})",
                    where=f"{p}:{number}",
                    hint="each line must hold one JSON value",
                ) from None


def read_jsonl(path: str | Path) -> list[Any]:
    """Every value of a JSONL file, in order (errors as in :func:`iter_jsonl`)."""
    return [value for _, value in iter_jsonl(path)]

"""Load DPO preference rows from koalign exports, JSONL or parquet files, and check their shape.

Accepted rows (TRL's two preference formats; any other key is metadata and is dropped):

* conversational: ``prompt`` a list of messages (optional system turn, then user/assistant turns
  ending on a user turn), ``chosen`` and ``rejected`` lists of one assistant message;
* standard: ``prompt``, ``chosen`` and ``rejected`` non-empty strings.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from koalign.errors import DataError
from koalign.jsonio import legacy_hint

ROW_KEYS = ("prompt", "chosen", "rejected")
ROLES = ("system", "user", "assistant")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


class DataFile(BaseModel):
    """One file that feeds training or evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    split: Literal["train", "eval"]
    sha256: str
    rows: int = 0


class DataSources(BaseModel):
    """Where the rows come from: the files and, for an export directory, its dataset card."""

    model_config = ConfigDict(extra="forbid")

    files: list[DataFile] = Field(default_factory=list)
    cards: dict[str, str] = Field(
        default_factory=dict, description="Dataset card path -> sha256 of the card."
    )


class Row(BaseModel):
    """One loaded row: where it came from and its raw value (metadata already dropped)."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "eval"]
    location: str
    id: str | None = None
    data: dict[str, Any]


class RowProblem(BaseModel):
    """Why one row cannot be trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    location: str = Field(description="file:line (or file:row N for parquet).")
    id: str | None = Field(None, description="The row's id, when it has one.")
    split: Literal["train", "eval"] | None = Field(
        None, description="The split the row belongs to (None when it could not be read)."
    )
    kind: str = Field(description="Short machine-readable reason, e.g. identical_pair.")
    message: str = Field(description="What is wrong and how to fix it.")

    def render(self) -> str:
        """``location [id]: kind: message``."""
        ident = f" [{self.id}]" if self.id else ""
        return f"{self.location}{ident}: {self.kind}: {self.message}"


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_sources(data: list[str], eval_data: list[str] | None = None) -> DataSources:
    """Expand export directories and files into a list of data files with their hashes."""
    sources = DataSources()
    pairs: list[tuple[str, Literal["train", "eval"]]] = [(p, "train") for p in data]
    pairs += [(p, "eval") for p in eval_data or []]
    for spec, split in pairs:
        path = Path(spec)
        if path.is_dir():
            train = _first_existing(path, ("train.jsonl", "train.parquet"))
            if train is None:
                raise DataError(
                    "no train.jsonl or train.parquet in this directory",
                    where=str(path),
                    hint="pass a koalign export directory or the data files themselves",
                )
            sources.files.append(_data_file(train, split))
            val = _first_existing(path, ("validation.jsonl", "validation.parquet"))
            if val is not None:
                sources.files.append(_data_file(val, "eval"))
            card = path / "README.md"
            if card.is_file():
                sources.cards[str(card)] = sha256_file(card)
        elif path.is_file():
            if path.suffix not in DATA_SUFFIXES:
                raise DataError(
                    f"unsupported file type {path.suffix!r}",
                    where=str(path),
                    hint="use .jsonl, .json (one object per line) or .parquet",
                )
            sources.files.append(_data_file(path, split))
        else:
            raise DataError("no such file or directory", where=str(path), hint="check --data")
    return sources


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _data_file(path: Path, split: Literal["train", "eval"]) -> DataFile:
    return DataFile(path=str(path), split=split, sha256=sha256_file(path))


def load_rows(sources: DataSources) -> tuple[list[Row], list[RowProblem]]:
    """Read every file. Unreadable lines become problems, not exceptions."""
    rows: list[Row] = []
    problems: list[RowProblem] = []
    for i, f in enumerate(sources.files):
        path = Path(f.path)
        count = 0
        for location, raw in _read_file(path, problems):
            count += 1
            if not isinstance(raw, dict):
                problems.append(
                    RowProblem(
                        location=location, kind="not_object", message="row is not a JSON object"
                    )
                )
                continue
            ident = raw.get("id")
            data = {k: raw[k] for k in ROW_KEYS if k in raw}
            rows.append(
                Row(
                    split=f.split,
                    location=location,
                    id=None if ident is None else str(ident),
                    data=data,
                )
            )
        sources.files[i] = f.model_copy(update={"rows": count})
    return rows, problems


def _read_file(path: Path, problems: list[RowProblem]):
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            from koalign.errors import MissingExtraError

            raise MissingExtraError("pyarrow", "train", feature="reading parquet data") from exc
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise DataError(f"cannot read parquet: {exc}", where=str(path)) from exc
        for n, raw in enumerate(table.to_pylist(), start=1):
            yield f"{path}:row {n}", raw
        return
    offset = 0  # bytes before the line, for the message of a line that is not UTF-8
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            start, offset = offset, offset + len(raw)
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM
                raw, start = raw[3:], 3
            location = f"{path}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:  # the whole file is in another encoding
                raise DataError(
                    f"not UTF-8 text (byte {start + exc.start} of the file)",
                    where=location,
                    hint=legacy_hint(path),
                ) from None
            if not line.strip():
                continue
            try:
                yield location, json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(RowProblem(location=location, kind="bad_json", message=str(exc)))


def row_format(data: dict[str, Any]) -> Literal["conversational", "standard", "unknown"]:
    """``conversational`` when ``prompt`` is a list of messages, ``standard`` when it is a string,
    else ``unknown``."""
    prompt = data.get("prompt")
    if isinstance(prompt, list):
        return "conversational"
    if isinstance(prompt, str):
        return "standard"
    return "unknown"


def check_row(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Shape checks of one row: ``[(kind, message), ...]``, empty when the row is fine."""
    missing = [k for k in ROW_KEYS if k not in data or data[k] is None]
    if missing:
        return [("missing_field", f"missing {', '.join(missing)}")]
    fmt = row_format(data)
    if fmt == "standard":
        out = []
        for key in ROW_KEYS:
            value = data[key]
            if not isinstance(value, str):
                out.append(
                    ("bad_type", f"{key} must be a string like prompt, got {type(value).__name__}")
                )
            elif not value.strip():
                out.append(("empty_turn", f"{key} is empty"))
        if not out and same_text(data["chosen"], data["rejected"]):
            out.append(("identical_pair", _IDENTICAL))
        return out
    if fmt == "unknown":
        return [
            (
                "bad_type",
                f"prompt must be a list of messages or a string, got {type(data['prompt']).__name__}",
            )
        ]
    out = []
    for key in ROW_KEYS:
        out += _check_messages(key, data[key])
    if out:
        return out
    prompt = data["prompt"]
    roles = [m["role"] for m in prompt]
    if "system" in roles[1:]:
        out.append(("role_order", "a system turn may only come first in prompt"))
    if roles[-1] != "user":
        out.append(("role_order", f"prompt must end with a user turn, ends with {roles[-1]!r}"))
    convo = [r for r in roles if r != "system"]
    if any(a == b for a, b in itertools.pairwise(convo)):
        out.append(("role_order", "prompt turns must alternate user/assistant"))
    for key in ("chosen", "rejected"):
        msgs = data[key]
        if len(msgs) != 1 or msgs[0]["role"] != "assistant":
            got = [m["role"] for m in msgs]
            out.append(
                ("role_order", f"{key} must be exactly one assistant message, got roles {got}")
            )
    if not out and same_text(data["chosen"][0]["content"], data["rejected"][0]["content"]):
        out.append(("identical_pair", _IDENTICAL))
    return out


_IDENTICAL = (
    "chosen and rejected are the same text after Unicode normalisation (NFKC) and whitespace "
    "folding; the pair teaches nothing"
)


def normalized_text(text: str) -> str:
    """``text`` as the pair check compares it: Unicode NFKC (so NFC and NFD Hangul, full-width
    and half-width forms are one text), whitespace runs folded to one space, ends stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def same_text(a: str, b: str) -> bool:
    """Whether two answers are the same text once normalised (:func:`normalized_text`)."""
    return normalized_text(a) == normalized_text(b)


def _check_messages(key: str, value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        return [
            (
                "bad_type",
                f"{key} must be a list of messages (like prompt), got {type(value).__name__}",
            )
        ]
    if not value:
        return [("empty_turn", f"{key} has no messages")]
    out = []
    for i, m in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            out.append(("bad_type", f"{where} must be an object with role and content"))
            continue
        if m["role"] not in ROLES:
            out.append(
                (
                    "bad_role",
                    f"{where} has unknown role {m['role']!r} (use system, user or assistant)",
                )
            )
        if not isinstance(m["content"], str):
            out.append(("bad_type", f"{where}.content must be a string"))
        elif not m["content"].strip():
            out.append(("empty_turn", f"{where} ({m['role']}) is empty"))
    return out


def clean_row(data: dict[str, Any], *, merge_system: bool = False) -> dict[str, Any]:
    """The row as TRL gets it: only prompt/chosen/rejected, messages reduced to role/content."""
    if row_format(data) == "standard":
        return {k: data[k] for k in ROW_KEYS}
    out = {k: [{"role": m["role"], "content": m["content"]} for m in data[k]] for k in ROW_KEYS}
    if merge_system:
        out["prompt"] = merge_system_turn(out["prompt"])
    return out


def merge_system_turn(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fold a leading system turn into the first user turn (for templates without a system role)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            break
    return rest

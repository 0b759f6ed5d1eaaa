"""Evaluation inputs: safety prompts (KorSET splits or plain JSONL) and multiple-choice questions.

Safety prompts
    * KorSET format (parquet or JSONL) with ``category_index, lv1_name, lv2_name, lv3_name,
      prompt``. The category (A-L) comes from, in order: a ``category`` field holding a category
      id; a KorSET split name in a ``split`` field or in the file name (``1_A_Toxic_Language``,
      ``5_L_Security_Threats-00000-of-00001.parquet``); a category id inside ``category_index``
      (``"A"``, ``"1_A"``, ``"1-A-3"``); ``lv2_name`` matched against the taxonomy's category
      names or split names. ``lv3_name`` is kept as the harm type.
    * Any JSONL with ``prompt`` and an optional ``category`` (A-L) and ``id``.

Items get stable ids (``<file stem>#<row>`` unless the row has an ``id``), so two evaluations of
the same files can be compared item by item.

Multiple-choice questions: JSONL rows ``{"question", "choices": [...], "answer_index"}`` with
optional ``id``, ``source`` and ``category``.
"""

from __future__ import annotations

import difflib
import json
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from koalign.errors import DataError, require
from koalign.locale_schema import Taxonomy


class EvalItem(BaseModel):
    """One prompt to evaluate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    prompt: str
    category: str | None = None
    domain: str | None = None
    type: str | None = Field(None, description="Harm type (KorSET lv3_name) when known.")
    source: str = Field(description="File stem the item came from.")
    meta: dict[str, Any] = Field(default_factory=dict)


class MCItem(BaseModel):
    """One multiple-choice question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str
    choices: list[str] = Field(min_length=2)
    answer_index: int = Field(ge=0)
    source: str
    category: str | None = None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl``/``.json`` or ``.parquet`` file as dicts."""
    if not path.is_file():
        raise DataError("file not found", where=str(path), hint="check the --data path")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        pq = require("pyarrow.parquet", "eval", feature="reading parquet files")
        return list(pq.read_table(path).to_pylist())
    if suffix in {".jsonl", ".json"}:
        text = path.read_text(encoding="utf-8")
        if suffix == ".json" and text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = []
            for lineno, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"line {lineno} is not valid JSON: {exc.msg}", where=str(path)
                    ) from exc
        if not all(isinstance(r, dict) for r in rows):
            raise DataError("every row must be a JSON object", where=str(path))
        return rows
    raise DataError(
        f"unsupported file type '{suffix}'",
        where=str(path),
        hint="use .jsonl, .json or .parquet",
    )


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z가-힣]", "", text.lower().replace("&", "and"))


class CategoryResolver:
    """Maps a KorSET or plain row to a taxonomy category id."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.ids = {c.id for c in taxonomy.categories}
        self.splits = {c.korset_split: c.id for c in taxonomy.categories if c.korset_split}
        self.names: dict[str, str] = {}
        for c in taxonomy.categories:
            for name in (c.name_en, c.name_ko, c.korset_split):
                if name:
                    self.names[_norm(name)] = c.id
            if c.korset_split:  # "1_A_Toxic_Language" -> "toxiclanguage"
                self.names[_norm(c.korset_split.split("_", 2)[-1])] = c.id

    def _from_split(self, text: str) -> str | None:
        for split, cid in self.splits.items():
            if split.lower() in text.lower():
                return cid
        return None

    def resolve(self, row: dict[str, Any], file_stem: str) -> str | None:
        cat = row.get("category")
        if isinstance(cat, str) and cat.strip() in self.ids:
            return cat.strip()
        for text in (row.get("split"), file_stem):
            if isinstance(text, str) and (cid := self._from_split(text)):
                return cid
        index = row.get("category_index")
        if isinstance(index, str):
            if cid := self._from_split(index):
                return cid
            tokens = [t for t in re.split(r"[^0-9A-Za-z]+", index) if t]
            hits = {t for t in tokens if t in self.ids}
            if len(hits) == 1:
                return hits.pop()
        for key in ("lv2_name", "category"):
            name = row.get(key)
            if isinstance(name, str) and (cid := self._by_name(name)):
                return cid
        return None

    def _by_name(self, name: str) -> str | None:
        """Exact normalised name, else the single close match (e.g. "Sensitive Information of
        Organization" for H, "False Misinformation" for E)."""
        key = _norm(name)
        if not key:
            return None
        if key in self.names:
            return self.names[key]
        close = difflib.get_close_matches(key, list(self.names), n=3, cutoff=0.75)
        ids = {self.names[c] for c in close}
        return ids.pop() if len(ids) == 1 else None


def load_prompts(paths: Sequence[Path], taxonomy: Taxonomy) -> list[EvalItem]:
    """Read safety prompts from KorSET-format or plain files; every row needs a ``prompt``.

    Rows whose category cannot be resolved are kept with ``category=None`` unless the file is in
    KorSET format (has ``lv2_name``), where an unknown category is an error naming the row.
    """
    resolver = CategoryResolver(taxonomy)
    items: list[EvalItem] = []
    seen: set[str] = set()
    for path in paths:
        path = Path(path)
        stem = path.name.split(".")[0]
        for i, row in enumerate(read_rows(path)):
            where = f"{path}:row {i + 1}"
            prompt = row.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise DataError("row has no non-empty 'prompt'", where=where)
            cid = resolver.resolve(row, stem)
            raw_cat = row.get("category")
            if cid is None and (
                "lv2_name" in row or (isinstance(raw_cat, str) and raw_cat.strip())
            ):
                shown = row.get("lv2_name") or raw_cat
                raise DataError(
                    f"cannot map category '{shown}' to the taxonomy",
                    where=where,
                    hint=f"use a category id ({', '.join(sorted(resolver.ids))}) or a KorSET split name",
                )
            item_id = str(row.get("id") or f"{stem}#{i}")
            if item_id in seen:
                raise DataError(f"duplicate item id '{item_id}'", where=where)
            seen.add(item_id)
            meta = {
                k: row[k]
                for k in ("category_index", "lv1_name", "lv2_name", "lv3_name")
                if k in row
            }
            items.append(
                EvalItem(
                    id=item_id,
                    prompt=prompt,
                    category=cid,
                    domain=taxonomy.domain_of(cid).id if cid else None,
                    type=row.get("lv3_name") or row.get("type"),
                    source=stem,
                    meta=meta,
                )
            )
    return items


def load_mc(paths: Sequence[Path]) -> list[MCItem]:
    """Read multiple-choice JSONL files; a malformed row is an error naming file and row."""
    items: list[MCItem] = []
    for path in paths:
        path = Path(path)
        stem = path.name.split(".")[0]
        for i, row in enumerate(read_rows(path)):
            where = f"{path}:row {i + 1}"
            choices = row.get("choices")
            answer = row.get("answer_index")
            if not isinstance(row.get("question"), str) or not isinstance(choices, list):
                raise DataError("row needs 'question' (text) and 'choices' (list)", where=where)
            if not isinstance(answer, int) or not 0 <= answer < len(choices):
                raise DataError(
                    f"'answer_index' must be an integer in 0..{len(choices) - 1}", where=where
                )
            items.append(
                MCItem(
                    id=str(row.get("id") or f"{stem}#{i}"),
                    question=row["question"],
                    choices=[str(c) for c in choices],
                    answer_index=answer,
                    source=str(row.get("source") or stem),
                    category=row.get("category"),
                )
            )
    return items


def limit_per_group(items: Iterable[Any], limit: int | None, *, key: str, seed: int = 0) -> list:
    """Keep at most ``limit`` items per ``key`` value, sampled with a fixed seed, in input order."""
    items = list(items)
    if not limit:
        return items
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[getattr(item, key)].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for idx in groups.values():
        keep.update(idx if len(idx) <= limit else rng.sample(idx, limit))
    return [item for i, item in enumerate(items) if i in keep]

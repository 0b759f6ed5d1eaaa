"""Evaluation inputs: safety and benign prompts, and multiple-choice questions.

Files
    ``.jsonl`` (one JSON object a line), ``.json`` (an array of objects, or JSONL) or
    ``.parquet``. :func:`expand_paths` turns ``--data`` values into files: several paths,
    shell globs left unexpanded (``'korset/*.parquet'``) and folders (their data files). A glob
    or folder that matches nothing, and a file without rows, is an error.

Prompts (:func:`load_prompts`)
    * KorSET format with ``category_index, lv1_name, lv2_name, lv3_name, prompt``;
    * any JSONL with the prompt in ``prompt`` (or the field named by ``prompt_field``, e.g.
      ``question`` for SQuARe) and optional ``id``, ``category`` (an id or any label),
      ``tags``, ``domain``.

    The category comes from :class:`~koalign.evaluate.categories.CategoryResolver`. A label
    that is not a category is kept as ``source_category``; such rows are evaluated
    uncategorised, and :class:`Loaded` reports them with counts (one warning per load). Items
    get stable ids (``<file stem>#<row>`` unless the row has an ``id``).

Multiple choice (:func:`load_mc`)
    JSONL rows ``{"question", "choices": [...], "answer_index"}`` (0-based integer) with
    optional ``id``, ``source`` and ``category``. At least two choices, an integer (not a
    boolean) answer index in range, and unique ids; a bad row is an error naming file and row.
"""

from __future__ import annotations

import glob
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from koalign.errors import DataError, require
from koalign.evaluate.categories import CategoryResolver
from koalign.jsonio import iter_jsonl, read_text
from koalign.locale_schema import Taxonomy

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


class EvalItem(BaseModel):
    """One prompt to evaluate.

    ``category``: a taxonomy category id or ``None`` (judged against every category);
    ``source_category``: the row's own label, kept whatever it is; ``source``: the file stem.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    prompt: str
    category: str | None = None
    domain: str | None = None
    type: str | None = Field(None, description="Harm type (KorSET lv3_name) when known.")
    source: str = Field(description="File stem the item came from.")
    source_category: str | None = Field(None, description="The row's own category label.")
    meta: dict[str, Any] = Field(default_factory=dict)


class MCItem(BaseModel):
    """One multiple-choice question (``answer_index`` is 0-based)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str
    choices: list[str] = Field(min_length=2)
    answer_index: int = Field(ge=0)
    source: str
    category: str | None = None


class Loaded(BaseModel):
    """Prompts read from files, with what the caller should tell the user.

    ``warnings``: one line per problem that did not stop the load (labels kept as source
    categories, KorSET rows whose numeric ``category_index`` says nothing); ``uncategorised``:
    ``{source label: rows}`` of rows evaluated without a category.
    """

    model_config = ConfigDict(extra="forbid")

    items: list[EvalItem]
    warnings: list[str] = []
    uncategorised: dict[str, int] = {}


def expand_paths(values: Iterable[str | Path]) -> list[Path]:
    """Files for ``--data`` values: paths, globs (``*``, ``?``, ``[``) and folders, in order,
    each once. Raises :class:`DataError` for a value that matches no file."""
    out: list[Path] = []
    for value in values:
        text = str(value)
        if any(ch in text for ch in "*?[") and not Path(text).exists():
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise DataError(
                    "the pattern matches no file", where=text, hint="check the --data pattern"
                )
        elif Path(text).is_dir():
            files = sorted(p for p in Path(text).iterdir() if p.suffix.lower() in DATA_SUFFIXES)
            if not files:
                raise DataError(
                    f"the folder holds no data file ({', '.join(DATA_SUFFIXES)})", where=text
                )
        else:
            files = [Path(text)]
        for path in files:
            if path not in out:
                out.append(path)
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl``/``.json`` or ``.parquet`` file as dicts.

    Raises :class:`DataError` (file and line) for a missing file, a bad line, a row that is not
    an object, or a file without rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", where=str(path), hint="check the --data path")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        pq = require("pyarrow.parquet", "eval", feature="reading parquet files")
        try:
            rows = list(pq.read_table(path).to_pylist())
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(
                f"not a readable Parquet file: {exc}",
                where=str(path),
                hint="check that the file was copied whole; the data may also be given as .jsonl",
            ) from None
    elif suffix in {".jsonl", ".json"}:
        text = read_text(path) if suffix == ".json" else ""
        if suffix == ".json" and text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"not valid JSON: {exc.msg}", where=f"{path}:{exc.lineno}"
                ) from None
        else:
            rows = []
            for line, value in iter_jsonl(path):
                if not isinstance(value, dict):
                    raise DataError("every line must be a JSON object", where=f"{path}:{line}")
                rows.append(value)
    else:
        raise DataError(
            f"unsupported file type '{suffix}'",
            where=str(path),
            hint="use .jsonl, .json or .parquet",
        )
    if not all(isinstance(r, dict) for r in rows):
        raise DataError("every row must be a JSON object", where=str(path))
    if not rows:
        raise DataError("the file has no rows", where=str(path), hint="give a file with data")
    return rows


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


KORSET_COLUMNS = frozenset({"category_index", "lv1_name", "lv2_name", "lv3_name"})


def data_info(paths: Sequence[Path], items: Sequence[EvalItem]) -> dict[str, Any]:
    """What a summary records about its prompts: ``files`` (as given), ``sources`` (prompts
    evaluated per file stem) and ``korset`` (every prompt is a KorSET-format row)."""
    return {
        "files": [str(p) for p in paths],
        "sources": dict(sorted(Counter(it.source for it in items).items())),
        "korset": bool(items) and all(set(it.meta) >= KORSET_COLUMNS for it in items),
    }


def load_prompts(
    paths: Sequence[Path],
    taxonomy: Taxonomy,
    *,
    prompt_field: str = "prompt",
    category_field: str | None = None,
    category_map: Mapping[str, str] | None = None,
) -> Loaded:
    """Read prompts from files (see the module docstring).

    Args:
        paths: data files (see :func:`expand_paths`).
        taxonomy: the locale's taxonomy (category ids and names).
        prompt_field: the field holding the prompt text.
        category_field: the field holding the row's own label (default: ``category``,
            ``lv2_name``, ``tags``, ``domain``, the first present).
        category_map: ``{normalised label: category id}`` from ``--category-map``.
    Raises:
        DataError: a row without a non-empty prompt, a duplicate id, a file without rows.
    """
    resolver = CategoryResolver(taxonomy, category_map, category_field)
    items: list[EvalItem] = []
    seen: set[str] = set()
    unmapped: Counter[str] = Counter()
    unmapped_files: Counter[str] = Counter()
    numeric_index: Counter[str] = Counter()
    for path in paths:
        path = Path(path)
        stem = _stem(path)
        for i, row in enumerate(read_rows(path)):
            where = f"{path}:row {i + 1}"
            prompt = row.get(prompt_field)
            if not isinstance(prompt, str) or not prompt.strip():
                fields = ", ".join(sorted(row)[:8])
                raise DataError(
                    f"row has no non-empty '{prompt_field}' (fields: {fields})",
                    where=where,
                    hint="name the prompt field with --prompt-field",
                )
            cid = resolver.resolve(row, stem)
            label = resolver.source_label(row)
            if cid is None:
                index = row.get("category_index")
                if (
                    isinstance(index, int | float)
                    and not isinstance(index, bool)
                    and not row.get("lv2_name")
                ):
                    numeric_index[str(path)] += 1
                unmapped[label or "(none)"] += 1
                if label:
                    unmapped_files[str(path)] += 1
            item_id = str(row.get("id") or f"{stem}#{i}")
            if item_id in seen:
                raise DataError(
                    f"duplicate item id '{item_id}'", where=where, hint="ids must be unique"
                )
            seen.add(item_id)
            meta: dict[str, Any] = {
                k: row[k]
                for k in ("category_index", "lv1_name", "lv2_name", "lv3_name", "expected")
                if k in row
            }
            items.append(
                EvalItem(
                    id=item_id,
                    prompt=prompt,
                    category=cid,
                    domain=taxonomy.domain_of(cid).id if cid else None,
                    type=row.get("lv3_name")
                    or (row.get("type") if isinstance(row.get("type"), str) else None),
                    source=stem,
                    source_category=label,
                    meta=meta,
                )
            )
    warnings = []
    labelled = {k: v for k, v in unmapped.items() if k != "(none)"}
    if labelled:
        top = ", ".join(f"'{k}' x{v}" for k, v in Counter(labelled).most_common(5))
        more = f" and {len(labelled) - 5} more" if len(labelled) > 5 else ""
        warnings.append(
            f"{sum(labelled.values())} rows in {len(unmapped_files)} file(s) have labels that are "
            f"not taxonomy categories ({top}{more}): kept as source categories and judged "
            "against every category; give --category-map FILE (label: category id; a label "
            "that joins several tags can be mapped tag by tag) for per-category figures"
        )
    for file, n in numeric_index.items():
        warnings.append(
            f"{file}: {n} rows have a numeric category_index and no lv2_name, so their category "
            "is unknown and they are judged against every category; keep the KorSET split name "
            "in the file name, add lv2_name, or map the numbers with --category-map"
        )
    return Loaded(items=items, warnings=warnings, uncategorised=dict(sorted(unmapped.items())))


def load_mc(paths: Sequence[Path]) -> list[MCItem]:
    """Read multiple-choice files; a malformed row is an error naming file and row."""
    items: list[MCItem] = []
    seen: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        stem = _stem(path)
        for i, row in enumerate(read_rows(path)):
            where = f"{path}:row {i + 1}"
            choices = row.get("choices")
            answer = row.get("answer_index")
            if not isinstance(row.get("question"), str) or not isinstance(choices, list):
                raise DataError("row needs 'question' (text) and 'choices' (list)", where=where)
            if len(choices) < 2:
                raise DataError(
                    f"a question needs at least 2 choices, this one has {len(choices)}",
                    where=where,
                )
            if isinstance(answer, bool) or not isinstance(answer, int):
                raise DataError(
                    f"'answer_index' must be an integer (0-based), got {answer!r}", where=where
                )
            if not 0 <= answer < len(choices):
                raise DataError(
                    f"'answer_index' must be in 0..{len(choices) - 1}, got {answer}", where=where
                )
            item_id = str(row.get("id") or f"{stem}#{i}")
            if item_id in seen:
                raise DataError(
                    f"duplicate question id '{item_id}' (first at {seen[item_id]})",
                    where=where,
                    hint="ids must be unique across the --data files",
                )
            seen[item_id] = where
            category = row.get("category")
            items.append(
                MCItem(
                    id=item_id,
                    question=row["question"],
                    choices=[str(c) for c in choices],
                    answer_index=answer,
                    source=str(row.get("source") or stem),
                    category=None if category is None else str(category),
                )
            )
    return items


def group_key(item: EvalItem) -> str:
    """The group ``--limit`` samples within: the category, else the source label."""
    return item.category or f"source:{item.source_category or item.source}"


def limit_per_group(
    items: Iterable[Any], limit: int | None, *, key: str | Callable[[Any], Any], seed: int = 0
) -> list:
    """Keep at most ``limit`` items per group (``key``: an attribute name or a function),
    sampled with a fixed seed, in input order."""
    items = list(items)
    if not limit:
        return items
    keyfn = key if callable(key) else (lambda item: getattr(item, key))
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[keyfn(item)].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for idx in groups.values():
        keep.update(idx if len(idx) <= limit else rng.sample(idx, limit))
    return [item for i, item in enumerate(items) if i in keep]

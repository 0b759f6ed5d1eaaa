"""Measuring the refusal detector on labelled sentences (``koalign eval refusal-detector``).

Labelled data: JSONL rows with a text and a boolean label (by default ``text`` and
``is_refusal``, the fields of the ko-redteam refusal fixtures in
``../shared/data/refusal/refusal_train.jsonl``).

The fixed holdout
    Before the detector was tuned, 30% of that file was set aside **by id**, and the detector
    was never tuned on those rows. The rule, fixed once and for all::

        holdout(id)  <=>  int(sha256("koalign-refusal-holdout-v1:" + id), 16) % 100 < 30

    It depends on the id alone, so a row keeps its side when rows are added or reordered.
    ``--split tune`` selects the other 70%. The figures in docs/evaluation.md come from
    ``--split holdout``.

Figures: precision, recall and F1 of the detector's ``refusal`` decision against the label,
with Wilson 95% intervals for precision and recall, and the confusion counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from koalign.errors import DataError
from koalign.evaluate.refusal import detect_refusal
from koalign.evaluate.stats import wilson_ci
from koalign.jsonio import iter_jsonl

Split = Literal["holdout", "tune", "all"]
HOLDOUT_SALT = "koalign-refusal-holdout-v1:"
HOLDOUT_PERCENT = 30


#: Id prefix of the ko-redteam refusal fixtures, whose tune part the detector was written from.
TUNED_ON_PREFIX = "ko-redteam-refusal_trainset-"


def in_sample(row_ids: Iterable[str]) -> int:
    """How many of ``row_ids`` the detector was tuned on: the tune part of the ko-redteam
    refusal fixtures (ids starting with :data:`TUNED_ON_PREFIX`). Figures on such rows are
    in-sample."""
    return sum(1 for r in row_ids if r.startswith(TUNED_ON_PREFIX) and split_of(r) == "tune")


def split_of(row_id: str) -> Literal["holdout", "tune"]:
    """The fixed side of a row: ``holdout`` (about 30% of ids) or ``tune`` (see module doc)."""
    h = int(hashlib.sha256((HOLDOUT_SALT + row_id).encode("utf-8")).hexdigest(), 16)
    return "holdout" if h % 100 < HOLDOUT_PERCENT else "tune"


def load_labelled(
    path: Path,
    *,
    split: Split = "all",
    text_field: str = "text",
    label_field: str = "is_refusal",
    id_field: str = "id",
) -> list[dict[str, Any]]:
    """Rows ``{"id", "text", "label"}`` of ``split``; an error names the file and line.

    The label must be a boolean (or 0/1); every row needs a string id, unique in the file, since
    the split and the error listing are by id.

    Raises:
        DataError: a missing file, an empty file, a row without a string id or text, a missing
            or non-boolean label, a repeated id, or no row in ``split``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", where=str(path), hint="check the --data path")
    rows = []
    seen: dict[str, int] = {}
    read = 0
    for line, row in iter_jsonl(path):
        read += 1
        where = f"{path}:{line}"
        if not isinstance(row, dict):
            raise DataError("every line must be a JSON object", where=where)
        rid, text, label = row.get(id_field), row.get(text_field), row.get(label_field)
        if not isinstance(rid, str) or not rid:
            raise DataError(f"no string '{id_field}'", where=where, hint="the split is by id")
        if not isinstance(text, str):
            raise DataError(f"no string '{text_field}'", where=where, hint="set --text-field")
        if label_field not in row:
            raise DataError(
                f"no '{label_field}' field (the label: true for a refusal)",
                where=where,
                hint="name the label's field with --label-field",
            )
        if label not in (True, False, 0, 1):
            raise DataError(
                f"'{label_field}' must be true/false (or 1/0), got {label!r}",
                where=where,
                hint="write the label as true for a refusal and false otherwise (a text label "
                "such as 'refusal' must be mapped first), or point --label-field at a boolean field",
            )
        if rid in seen:
            raise DataError(
                f"id '{rid}' is also on line {seen[rid]}",
                where=where,
                hint="ids must be unique: the split and the error listing are by id",
            )
        seen[rid] = line
        if split == "all" or split_of(rid) == split:
            rows.append({"id": rid, "text": text, "label": bool(label)})
    if not read:
        raise DataError("the file has no rows", where=str(path))
    if not rows:
        raise DataError(f"no rows in split '{split}'", where=str(path))
    return rows


def measure(
    rows: Sequence[dict[str, Any]],
    detector: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Precision, recall, F1 and the confusion counts of ``detector`` over labelled rows.

    ``detector`` maps a text to True (refusal); the default is :func:`detect_refusal`.
    Returns the figures plus ``errors``: the ids of false positives and false negatives.
    """
    decide = detector or (lambda text: detect_refusal(text).refusal)
    tp = fp = fn = tn = 0
    false_pos: list[str] = []
    false_neg: list[str] = []
    for row in rows:
        got = decide(row["text"])
        if got and row["label"]:
            tp += 1
        elif got:
            fp += 1
            false_pos.append(row["id"])
        elif row["label"]:
            fn += 1
            false_neg.append(row["id"])
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else None
    )
    p_ci, r_ci = wilson_ci(tp, tp + fp), wilson_ci(tp, tp + fn)
    return {
        "n": len(rows),
        "positives": tp + fn,
        "negatives": fp + tn,
        "precision": precision,
        "precision_ci": list(p_ci) if p_ci else None,
        "recall": recall,
        "recall_ci": list(r_ci) if r_ci else None,
        "f1": f1,
        "accuracy": (tp + tn) / len(rows) if rows else None,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "ci_method": "Wilson score, 95%",
        "errors": {"false_positive": false_pos, "false_negative": false_neg},
    }


def ids_of(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The ids of ``rows`` in order (for reports)."""
    return [r["id"] for r in rows]

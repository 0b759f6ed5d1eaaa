"""Citation validity of answers: statute citations and hotline numbers checked against the
locale's registry by :func:`koalign.cite.check_text`.

Figures: the share of answers that cite at least one statute (and at least one verified
citation), the count and share of citations per status (every status ``koalign cite check``
gives, :data:`koalign.cite.CITATION_STATUSES`: verified, unregistered, nonexistent, outdated,
unknown_law, unverified; they add up to ``citations``), the share relevant to the category's policy, contacts per status and the answers
naming a retired number. Answers come from an evaluation directory's ``safety.jsonl`` /
``overrefusal.jsonl`` or are generated here (``koalign eval citations --model ... --data ...``).

Only answers are checked. A prompt whose answer was a generation failure (empty, truncated, an
echo of the prompt, runaway repetition: :func:`koalign.evaluate.answers.read_answer`) is not in
``n`` or any share; it is counted in ``generation_failures`` and by reason in
``generation_failure_reasons`` (read from the rows' ``generation_error`` when the answers come
from a directory). A failed call is a call failure, never a generation failure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from koalign.errors import DataError
from koalign.evaluate.answers import GENERATION_FAILURE_REASONS, failure_counts
from koalign.evaluate.categories import UNCATEGORISED
from koalign.evaluate.failures import call_failure_info
from koalign.evaluate.runs import read_jsonl, update_summary, write_jsonl
from koalign.locale import Locale

ANSWER_FILES = ("safety.jsonl", "overrefusal.jsonl")


def answers_from_dir(answers_dir: Path, files: Iterable[str] = ANSWER_FILES) -> list[dict]:
    """Rows with an answer from the item files present in ``answers_dir``."""
    return load_answers(answers_dir, files)[0]


def load_answers(
    answers_dir: Path, files: Iterable[str] = ANSWER_FILES
) -> tuple[list[dict], dict[str, Any]]:
    """Rows with an answer from the item files present in ``answers_dir``, and the summary
    fields of the rows without one: ``n_prompts`` (every row), the generation failures
    (``generation_failures``, ``generation_failure_reasons``) and the model's failed calls
    (``generation_error: call_error``, counted apart as ``call_failures_model``, see
    :func:`koalign.evaluate.failures.call_failure_info`).

    Raises:
        DataError: none of ``files`` is in ``answers_dir``.
    """
    rows = []
    failures: list[str | None] = []
    found = False
    for name in files:
        path = Path(answers_dir) / name
        if not path.is_file():
            continue
        found = True
        for row in read_jsonl(path):
            if row.get("answer") is not None:
                rows.append({**row, "from": name})
            else:
                failures.append(row.get("generation_error"))
    if not found:
        raise DataError(
            f"no answer files ({', '.join(files)}) in this directory",
            where=str(answers_dir),
            hint="run `koalign eval safety` there first, or pass --model and --data",
        )
    failed_calls = sum(f == "call_error" for f in failures)
    return rows, {
        "n_prompts": len(rows) + len(failures),
        "generation_failures": sum(f in GENERATION_FAILURE_REASONS for f in failures),
        "generation_failure_reasons": failure_counts(failures),
        **call_failure_info(len(rows) + len(failures), failed_calls, 0),
    }


def check_answers(rows: Iterable[dict[str, Any]], loc: Locale) -> list[dict[str, Any]]:
    """Add the checker's findings to each row (``citations``, ``contacts``, ``counts``)."""
    from koalign.cite import check_text

    out = []
    for row in rows:
        report = check_text(row["answer"] or "", loc, category=row.get("category"))
        out.append(
            {
                "id": row["id"],
                "from": row.get("from"),
                "category": row.get("category"),
                "prompt": row.get("prompt"),
                "answer": row["answer"],
                **report.to_dict(),
                "counts": report.counts(),
                "ok": report.ok,
            }
        )
    return out


def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The citation figures over checked rows (see the module docstring)."""
    from koalign.cite import CITATION_STATUSES, CONTACT_STATUSES, PROBLEM_CITATIONS

    cites = [c for r in rows for c in r["citations"]]
    contacts = [c for r in rows for c in r["contacts"]]
    status = Counter(c["status"] for c in cites)
    contact_status = Counter(c["status"] for c in contacts)
    relevant = [c["relevant"] for c in cites if c.get("relevant") is not None]
    n = len(rows)
    with_cite = sum(bool(r["citations"]) for r in rows)
    with_verified = sum(any(c["status"] == "verified" for c in r["citations"]) for r in rows)
    return {
        "n": n,
        "answers_with_citation": with_cite,
        "citation_share": _share(with_cite, n),
        "answers_with_verified_citation": with_verified,
        "verified_citation_share": _share(with_verified, n),
        "citations": len(cites),
        "citation_status": {s: status.get(s, 0) for s in CITATION_STATUSES},
        "citation_status_share": {
            s: _share(status.get(s, 0), len(cites)) for s in CITATION_STATUSES
        },
        "valid_share": _share(status.get("verified", 0), len(cites)),
        "problem_share": _share(sum(status.get(s, 0) for s in PROBLEM_CITATIONS), len(cites)),
        "relevant_share": _share(sum(relevant), len(relevant)),
        "contacts": len(contacts),
        "contact_status": {s: contact_status.get(s, 0) for s in CONTACT_STATUSES},
        "answers_with_retired_contact": sum(
            any(c["status"] == "retired" for c in r["contacts"]) for r in rows
        ),
        "answers_with_problem": sum(not r["ok"] for r in rows),
    }


def run_citations(
    rows: list[dict[str, Any]],
    *,
    loc: Locale,
    out_dir: Path,
    extra_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check every answer; write ``citations.jsonl`` and the ``citations`` summary section."""
    checked = check_answers(rows, loc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "citations.jsonl", checked)
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in checked:
        by_cat[r["category"] or UNCATEGORISED].append(r)
        by_file[r["from"] or "unknown"].append(r)
    summary = {
        **summarise(checked),
        "per_category": {k: summarise(v) for k, v in sorted(by_cat.items())},
        "per_file": {k: summarise(v) for k, v in sorted(by_file.items())},
        "problems": [
            {
                "id": r["id"],
                "citations": [c for c in r["citations"] if c["status"] != "verified"],
                "contacts": [c for c in r["contacts"] if c["status"] == "retired"],
            }
            for r in checked
            if not r["ok"]
        ][:50],
        "locale": {"id": loc.id, "digest": loc.digest},
        "items_file": "citations.jsonl",
        **(extra_info or {}),
    }
    update_summary(out_dir, "citations", summary)
    return summary

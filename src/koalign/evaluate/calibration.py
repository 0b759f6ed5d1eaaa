"""Judge calibration against human labels (``koalign eval judge``).

A judge is worth only as much as its agreement with people. This module asks one or more
judges to label rows that people have already labelled, and reports, per judge: accuracy
(Wilson interval), Cohen's kappa with the humans (bootstrap interval), the confusion table,
precision and recall of the flagged class, the same per category, and parse failures apart
(an answer without a verdict is never counted as agreeing or disagreeing). A judge call that
failed after its retries is a call failure (:mod:`koalign.evaluate.failures`), counted per judge
in ``call_failures`` and never as a parse failure; the entry's ``call_failures`` counts the
rows some judge has no label for because its call failed, and ``n_judged`` is the fewest rows
a judge's figures cover. Several judges are compared side by side, with their agreement with
each other.

Tasks (``--task``); each names what its label means and has its own judge prompt:

``acceptability``
    SQuARe-style: a response to a sensitive question (contentious, ethical, predictive) is
    *acceptable* (inclusive, ethically aware, non-predictive, objective, indirect) or not
    (one-sided, unethical, a confident prediction). Default fields: ``question``,
    ``response``, label ``acceptable`` (1/0), category ``question_category``. Template
    ``acceptability_judge``. The flagged class is *not acceptable*.
``bias``
    KoSBi-style: a sentence following a context about a social group is socially biased
    (stereotype, prejudice, discrimination: label ``unsafe``) or not (``safe``). Default fields:
    ``context``, ``sentence``, label ``sentence_label``, category ``demographic_category``,
    group ``demographic_group``. Template ``bias_judge``. The flagged class is *biased*.
``safety``
    koalign's own safety judge (the ``safety_judge`` rubric of ``koalign eval safety``) on a
    model answer: label ``safe``/``unsafe`` (or a boolean, true = unsafe). Default fields:
    ``prompt``, ``response``, label ``label``, category ``category`` (A-L, or any label; rows
    without a taxonomy category are judged against every category). This is how a user checks
    the safety judge on their own labelled answers. The flagged class is *unsafe*.

Any field can be renamed (``--prompt-field``, ``--response-field``, ``--label-field``,
``--category-field``).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from koalign.agreement import cohen_kappa
from koalign.backends.client import ModelPool
from koalign.errors import ConfigError, DataError
from koalign.evaluate.answers import read_judge
from koalign.evaluate.categories import UNCATEGORISED, CategoryResolver
from koalign.evaluate.data import EvalItem, read_rows
from koalign.evaluate.failures import call_failure_info
from koalign.evaluate.judging import agreement
from koalign.evaluate.parsing import (
    judge_json,
    no_json_reason,
    placeholder_copies,
    placeholders,
    request_texts,
    yes_no,
)
from koalign.evaluate.runs import Progress, call_batched, load_summary, update_summary, write_jsonl
from koalign.evaluate.safety import judge_request as safety_request
from koalign.evaluate.safety import rubric_items, verdict_of
from koalign.evaluate.stats import DEFAULT_SEED, kappa_ci, wilson_ci
from koalign.locale import Locale
from koalign.prompts import render_chat
from koalign.types import ChatRequest, ChatResult


@dataclass(frozen=True)
class Task:
    """A calibration task: default fields, the judge's answer key and class names."""

    name: str
    prompt_field: str | None
    response_field: str
    label_field: str
    category_field: str | None
    context_field: str | None
    group_field: str | None
    template: str | None
    answer_key: str | None
    answer_yes_flags: bool  # does the judge's "yes" mean the flagged class?
    flagged: str
    not_flagged: str
    meaning: str


TASKS: dict[str, Task] = {
    "acceptability": Task(
        "acceptability", "question", "response", "acceptable", "question_category", None, None,
        "acceptability_judge", "acceptable", False, "not_acceptable", "acceptable",
        "a response to a sensitive question is acceptable (1) or not (0), as SQuARe labels it",
    ),
    "bias": Task(
        "bias", None, "sentence", "sentence_label", "demographic_category", "context",
        "demographic_group", "bias_judge", "biased", True, "biased", "not_biased",
        "a sentence after a context about a social group is socially biased ('unsafe') or not "
        "('safe'), as KoSBi labels it",
    ),
    "safety": Task(
        "safety", "prompt", "response", "label", "category", None, None, None, None, True,
        "unsafe", "safe",
        "a model answer is unsafe or safe under koalign's safety rubric (the eval safety judge)",
    ),
}  # fmt: skip
_FLAG_WORDS = {
    True: {"unsafe", "biased", "yes", "true", "1", "not_acceptable", "unacceptable", "harmful"},
    False: {"safe", "not_biased", "unbiased", "no", "false", "0", "acceptable", "harmless"},
}


class CalItem(BaseModel):
    """One human-labelled row. ``human``: the human put it in the flagged class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    prompt: str | None
    context: str | None
    response: str
    group: str | None
    category: str | None
    human: bool


def _human_flag(value: Any, task: Task, where: str) -> bool:
    if task.name == "acceptability" and (isinstance(value, bool) or value in (0, 1)):
        return not bool(value)  # acceptable 1 -> not flagged
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if task.name == "acceptability":
        if text in {"1", "yes", "true", "acceptable"}:
            return False
        if text in {"0", "no", "false", "not_acceptable", "unacceptable"}:
            return True
    for flag, words in _FLAG_WORDS.items():
        if text in words:
            return flag
    raise DataError(
        f"label {value!r} is not one of {task.flagged}/{task.not_flagged}",
        where=where,
        hint="use safe/unsafe, acceptable 1/0, or true/false; set --label-field",
    )


def load_labelled(
    paths: Sequence[Path],
    task: Task,
    *,
    prompt_field: str | None = None,
    response_field: str | None = None,
    label_field: str | None = None,
    category_field: str | None = None,
) -> list[CalItem]:
    """Rows with a response and a human label; errors name file and row."""
    pf = prompt_field or task.prompt_field
    rf = response_field or task.response_field
    lf = label_field or task.label_field
    cf = category_field or task.category_field
    items: list[CalItem] = []
    seen: set[str] = set()
    for path in paths:
        stem = Path(path).name.split(".")[0]
        for i, row in enumerate(read_rows(Path(path))):
            where = f"{path}:row {i + 1}"
            response = row.get(rf)
            if response is None and rf == "response":
                response = row.get("answer")
            if not isinstance(response, str) or not response.strip():
                raise DataError(
                    f"row has no text in '{rf}'", where=where, hint="set --response-field"
                )
            prompt = row.get(pf) if pf else None
            if pf and not isinstance(prompt, str):
                raise DataError(
                    f"row has no text in '{pf}'", where=where, hint="set --prompt-field"
                )
            if lf not in row:
                raise DataError(f"row has no label '{lf}'", where=where, hint="set --label-field")
            category = row.get(cf) if cf else None
            if isinstance(category, list):
                category = "; ".join(str(c) for c in category)
            item_id = str(row.get("id") or f"{stem}#{i}")
            if item_id in seen:
                raise DataError(f"duplicate id '{item_id}'", where=where)
            seen.add(item_id)
            items.append(
                CalItem(
                    id=item_id,
                    prompt=prompt,
                    context=str(row.get(task.context_field)) if task.context_field else None,
                    response=response,
                    group=str(row.get(task.group_field))
                    if task.group_field and row.get(task.group_field)
                    else None,
                    category=None if category is None else str(category),
                    human=_human_flag(row[lf], task, where),
                )
            )
    return items


def judge_request(
    loc: Locale, task: Task, item: CalItem, resolver: CategoryResolver
) -> ChatRequest:
    """The judge request for one calibration row of ``task``: the safety judge's, the
    acceptability judge's or the bias judge's template, as the evaluation renders it; raises what
    the template renderer raises."""
    if task.name == "safety":
        cid = resolver.resolve({"category": item.category}, "") if item.category else None
        eval_item = EvalItem(
            id=item.id, prompt=item.prompt or "", category=cid,
            domain=loc.taxonomy.domain_of(cid).id if cid else None, source="calibration",
        )  # fmt: skip
        return safety_request(loc, eval_item, item.response)
    assert task.template and task.answer_key
    if task.name == "acceptability":
        messages = render_chat(
            loc, task.template, question=item.prompt or "", response=item.response
        )
    else:
        messages = render_chat(
            loc, task.template, context=item.context or "", sentence=item.response,
            group=item.group,
        )  # fmt: skip
    schema = {
        "type": "object",
        "properties": {task.answer_key: {"enum": ["yes", "no"]}, "reason": {"type": "string"}},
        "required": [task.answer_key, "reason"],
    }
    return ChatRequest(messages=messages, json_schema=schema, tag=f"eval.judge.{task.name}")


def parse_yes_no_verdict(
    text: str | None, task: Task, prompt: Sequence[str] = ()
) -> dict[str, Any]:
    """``{"flagged", "reason"}`` or ``{"error", "failure", "raw"}`` for a yes/no task."""
    key = task.answer_key or ""

    def answer_of(value: Any) -> bool | None:
        return yes_no(value.get(key)) if isinstance(value, dict) else None

    found, _ = judge_json(text, prompt, is_valid=lambda v: answer_of(v) is not None)
    if not found.found:
        reason = no_json_reason(found)
        return {
            "error": reason, "failure": "echoed_example" if "echoed" in reason else "no_json",
            "raw": text,
        }  # fmt: skip
    answer = answer_of(found.value)
    if answer is None:
        return {"error": f"'{key}' is not yes/no", "failure": "not_yes_no", "raw": text}
    reason = str(found.value.get("reason") or "")
    copies = placeholder_copies([reason], placeholders(prompt))
    if copies:
        return {
            "error": f"the reason copies the prompt's example text ('{copies[0]}')",
            "failure": "placeholder",
            "raw": text,
        }
    return {"flagged": answer if task.answer_yes_flags else not answer, "reason": reason}


def read_verdict(
    result: ChatResult, request: ChatRequest, task: Task, loc: Locale, item_ids: Sequence[str]
) -> dict[str, Any]:
    """A judge's result as ``{"flagged", ...}`` or a typed parse failure."""
    if task.name == "safety":
        verdict = verdict_of(result, request, item_ids)
        if verdict.unsafe is None:
            return {"error": verdict.error, "failure": verdict.failure, "raw": verdict.raw}
        return {"flagged": verdict.unsafe, "reason": verdict.reason or ""}
    read = read_judge(result)
    if read.text is None:
        failure = read.failure or "empty"
        code = failure.split(":")[0].split(" ")[0]
        code = {"call": "call_error", "only": "empty"}.get(code, code)
        return {"error": failure, "failure": code, "raw": read.raw}
    return parse_yes_no_verdict(read.text, task, request_texts(request))


def scores(
    human: Sequence[bool], judge: Sequence[bool | None], *, n_boot: int, seed: int
) -> dict[str, Any]:
    """Agreement of one judge with the humans over the items it parsed."""
    pairs = [(h, j) for h, j in zip(human, judge, strict=True) if j is not None]
    hs = [h for h, _ in pairs]
    js = [bool(j) for _, j in pairs]
    n = len(pairs)
    correct = sum(h == j for h, j in pairs)
    tp = sum(h and j for h, j in pairs)
    fp = sum((not h) and j for h, j in pairs)
    fn = sum(h and (not j) for h, j in pairs)
    tn = n - tp - fp - fn
    acc_ci = wilson_ci(correct, n)
    k_ci = kappa_ci(hs, js, n_boot=n_boot, seed=seed) if n else None
    return {
        "n": len(human),
        "n_parsed": n,
        "parse_failures": len(human) - n,
        "accuracy": correct / n if n else None,
        "accuracy_ci": list(acc_ci) if acc_ci else None,
        "cohen_kappa": cohen_kappa(hs, js) if n else None,
        "kappa_ci": list(k_ci) if k_ci else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "human_flagged_share": sum(hs) / n if n else None,
        "judge_flagged_share": sum(js) / n if n else None,
    }


def _scores(
    human: Sequence[bool],
    judge: Sequence[bool | None],
    call_failed: Sequence[bool],
    *,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """:func:`scores`, with the rows whose call failed counted as ``call_failures``, not as
    parse failures."""
    out = scores(human, judge, n_boot=n_boot, seed=seed)
    failed = sum(call_failed)
    out["parse_failures"] -= failed
    out["call_failures"] = failed
    return out


async def arun_calibration(
    items: Sequence[CalItem],
    task: Task,
    *,
    loc: Locale,
    pool: ModelPool,
    judges: Sequence[str],
    out_dir: Path,
    batch_size: int = 32,
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
    extra_info: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every judge labels every item; write ``judge_<task>.jsonl`` and the task's entry in the
    ``judge_calibration`` section. Returns that entry."""
    if not judges:
        raise ConfigError("at least one --judge is needed", where="--judge")
    resolver = CategoryResolver(loc.taxonomy)
    requests = [judge_request(loc, task, it, resolver) for it in items]
    ids_of = []
    for it in items:
        cid = (
            resolver.resolve({"category": it.category}, "")
            if task.name == "safety" and it.category
            else None
        )
        ids_of.append([r.id for r in rubric_items(loc, cid)] if task.name == "safety" else [])

    async def one(judge: str) -> list[dict[str, Any]]:
        results = await call_batched(
            pool, judge, requests, batch_size=batch_size, what="labelled", progress=progress
        )
        return [
            read_verdict(r, req, task, loc, ids)
            for r, req, ids in zip(results, requests, ids_of, strict=True)
        ]

    verdicts = dict(zip(judges, await asyncio.gather(*(one(j) for j in judges)), strict=True))
    failed = {j: [v.get("failure") == "call_error" for v in verdicts[j]] for j in judges}
    rows = [
        {
            "id": it.id,
            "category": it.category,
            "human": task.flagged if it.human else task.not_flagged,
            "judges": {
                j: (
                    {**v, "label": task.flagged if v["flagged"] else task.not_flagged}
                    if "flagged" in v
                    else v
                )
                for j, v in ((j, verdicts[j][n]) for j in judges)
            },
        }
        for n, it in enumerate(items)
    ]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items_file = f"judge_{task.name}.jsonl"
    write_jsonl(out_dir / items_file, rows)
    human = [it.human for it in items]
    per_judge: dict[str, Any] = {}
    for j in judges:
        flags = [v.get("flagged") for v in verdicts[j]]
        by_cat: dict[str, list[int]] = defaultdict(list)
        for n, it in enumerate(items):
            by_cat[it.category or UNCATEGORISED].append(n)
        per_judge[j] = {
            **_scores(human, flags, failed[j], n_boot=n_boot, seed=seed),
            "parse_failure_reasons": dict(
                sorted(
                    Counter(
                        v["failure"]
                        for v in verdicts[j]
                        if "failure" in v and v["failure"] != "call_error"
                    ).items()
                )
            ),
            "per_category": {
                cat: _scores(
                    [human[n] for n in idx],
                    [flags[n] for n in idx],
                    [failed[j][n] for n in idx],
                    n_boot=n_boot,
                    seed=seed,
                )
                for cat, idx in sorted(by_cat.items())
            },
        }
    entry = {
        "task": task.name,
        "label_meaning": task.meaning,
        "flagged_class": task.flagged,
        "n": len(items),
        "human_flagged": sum(human),
        "n_judged": min((s["n_parsed"] for s in per_judge.values()), default=0),
        **call_failure_info(
            len(items), 0, sum(any(failed[j][n] for j in judges) for n in range(len(items)))
        ),
        "judges": per_judge,
        "judge_agreement": agreement({j: [v.get("flagged") for v in verdicts[j]] for j in judges}),
        "ci_method": (
            f"accuracy: Wilson 95%; kappa: percentile bootstrap over items, {n_boot} "
            f"resamples, seed {seed}"
        ),
        "items_file": items_file,
        **(extra_info or {}),
    }
    section = dict(load_summary(out_dir).get("judge_calibration", {}))
    section.pop("created", None)
    section[task.name] = entry
    update_summary(out_dir, "judge_calibration", section)
    return entry


def markdown_table(entry: dict[str, Any]) -> str:
    """The judges side by side (Markdown), with the confusion table per judge."""

    def fmt(x: Any, ci: Any = None) -> str:
        if x is None:
            return "–"
        text = f"{x:.3f}"
        return f"{text} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else text

    lines = [
        f"Task `{entry['task']}`: {entry['label_meaning']}. n = {entry['n']}, "
        f"human-flagged ({entry['flagged_class']}) = {entry['human_flagged']}.",
        "",
        "| judge | parsed | failed calls | parse failures | accuracy [95% CI] | "
        "Cohen's kappa [95% CI] | precision | recall | tp | fp | fn | tn |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j, s in entry["judges"].items():
        c = s["confusion"]
        lines.append(
            f"| {j} | {s['n_parsed']} | {s.get('call_failures', 0)} | {s['parse_failures']} | "
            f"{fmt(s['accuracy'], s['accuracy_ci'])} | {fmt(s['cohen_kappa'], s['kappa_ci'])} | "
            f"{fmt(s['precision'])} | {fmt(s['recall'])} | {c['tp']} | {c['fp']} | {c['fn']} | "
            f"{c['tn']} |"
        )
    lines.append("")
    lines.append("Per category (accuracy / kappa, parsed items):")
    lines.append("")
    judges = list(entry["judges"])
    lines.append("| category | n | " + " | ".join(judges) + " |")
    lines.append("|---|---|" + "---|" * len(judges))
    cats = sorted({c for s in entry["judges"].values() for c in s["per_category"]})
    for cat in cats:
        cells = []
        n = 0
        for j in judges:
            s = entry["judges"][j]["per_category"].get(cat)
            n = max(n, s["n"]) if s else n
            cells.append(f"{fmt(s['accuracy'])} / {fmt(s['cohen_kappa'])}" if s else "–")
        lines.append(f"| {cat} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

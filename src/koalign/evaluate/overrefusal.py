"""Over-refusal: does the model refuse benign but sensitive Korean questions?

Prompts come from files, from the policy's ``benign_prompts`` and, optionally, from a generator
model asked for new questions in the policy's ``does_not_apply`` cases (``benign_generator``
template). Each answer is classified twice: by LLM judges (``refusal_judge``: full_refusal,
partial_refusal or compliance) and by the deterministic detector of
:mod:`koalign.evaluate.refusal`. Both refusal rates are reported with their agreement
(Cohen's kappa, percent agreement and the confusion table). A judge answer that cannot be parsed
is a parse failure, counted apart.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koalign.agreement import cohen_kappa, percent_agreement
from koalign.backends.client import ModelPool
from koalign.evaluate.data import EvalItem
from koalign.evaluate.judging import agreement, majority
from koalign.evaluate.parsing import json_object
from koalign.evaluate.refusal import detect_refusal
from koalign.evaluate.runs import call_batched, update_summary, write_jsonl
from koalign.evaluate.safety import answer_request, answer_text
from koalign.evaluate.stats import DEFAULT_BOOT, DEFAULT_SEED, rate
from koalign.locale import Locale
from koalign.prompts import render_chat
from koalign.text import clean_generation
from koalign.types import ChatRequest

LABELS = ("full_refusal", "partial_refusal", "compliance")
_LABEL_ALIASES = {"전체 거절": "full_refusal", "부분 거절": "partial_refusal", "응답": "compliance"}
REFUSAL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": list(LABELS)}, "reason": {"type": "string"}},
    "required": ["label", "reason"],
}
_VARIATION = {"age_group": None, "occupation": None, "register": None, "length": None}


def policy_items(loc: Locale) -> list[EvalItem]:
    """The policy's ``benign_prompts`` of every category, as items (source ``policy``)."""
    items = []
    for cid, cp in sorted(loc.policy.policies.items()):
        for k, prompt in enumerate(cp.benign_prompts):
            items.append(
                EvalItem(
                    id=f"policy:{cid}#{k}",
                    prompt=prompt,
                    category=cid,
                    domain=loc.taxonomy.domain_of(cid).id,
                    source="policy",
                )
            )
    return items


def generator_request(loc: Locale, category: str, k: int) -> ChatRequest:
    """Request ``k`` for a category: one new question for its ``k``-th "does not apply" case
    (cycling), written by the shared ``benign_generator`` template (plain-text answer)."""
    cp = loc.policy.policies[category]
    messages = render_chat(
        loc,
        "benign_generator",
        category=loc.taxonomy.category(category),
        neighbour=cp.does_not_apply[k % len(cp.does_not_apply)],
        examples=cp.benign_prompts,
        variation=_VARIATION,
    )
    return ChatRequest(messages=messages, sample_index=k, tag="eval.overrefusal.generate")


def parse_generated(text: str | None) -> str | None:
    """The generated question, or ``None`` when the answer is unusable."""
    if not text:
        return None
    prompt = clean_generation(text, labels=("질문",))
    return prompt if prompt and _usable(prompt) else None


def _usable(prompt: str) -> bool:
    """A usable question has some Hangul and is not a whole essay."""
    return any("가" <= ch <= "힣" for ch in prompt) and len(prompt) <= 1000


async def generate_benign(
    pool: ModelPool, generator: str, loc: Locale, *, per_category: int
) -> tuple[list[EvalItem], dict[str, int]]:
    """``per_category`` new benign prompts per category; returns the items and the number of
    unusable answers per category."""
    keys = [(c, k) for c in sorted(loc.policy.policies) for k in range(per_category)]
    results = await pool.get(generator).agenerate([generator_request(loc, c, k) for c, k in keys])
    items: list[EvalItem] = []
    failures: dict[str, int] = {}
    seen: set[str] = set()
    for (cid, k), result in zip(keys, results, strict=True):
        prompt = parse_generated(result.text)
        if prompt is None or prompt in seen:
            failures[cid] = failures.get(cid, 0) + 1
            continue
        seen.add(prompt)
        items.append(
            EvalItem(
                id=f"generated:{cid}#{k}",
                prompt=prompt,
                category=cid,
                domain=loc.taxonomy.domain_of(cid).id,
                source="generated",
            )
        )
    return items, failures


def judge_request(loc: Locale, item: EvalItem, answer: str) -> ChatRequest:
    category = loc.taxonomy.category(item.category) if item.category else None
    messages = render_chat(
        loc, "refusal_judge", category=category, prompt=item.prompt, answer=answer
    )
    return ChatRequest(messages=messages, json_schema=REFUSAL_SCHEMA, tag="eval.overrefusal.judge")


def parse_refusal_judge(text: str | None) -> dict[str, Any]:
    """``{"label", "refused", "reason"}`` or ``{"error", "raw"}``."""
    data = json_object(text)
    if data is None:
        return {"error": "no JSON object in the answer", "raw": text}
    label = data.get("label")
    label = _LABEL_ALIASES.get(label, label) if isinstance(label, str) else label
    if label not in LABELS:
        return {"error": f"label {label!r} is not one of {', '.join(LABELS)}", "raw": text}
    return {
        "label": label,
        "refused": label != "compliance",
        "reason": str(data.get("reason") or ""),
    }


async def _judge(pool, judge, loc, items, answers, batch_size) -> list[dict[str, Any] | None]:
    todo = [i for i, a in enumerate(answers) if a is not None]
    requests = [judge_request(loc, items[i], answers[i] or "") for i in todo]
    results = await call_batched(pool, judge, requests, batch_size=batch_size, what="judged")
    out: list[dict[str, Any] | None] = [None] * len(items)
    for i, result in zip(todo, results, strict=True):
        if result.text is None and result.error is not None:
            out[i] = {"error": f"call failed ({result.error.kind}): {result.error.message}"}
        else:
            out[i] = parse_refusal_judge(result.text)
    return out


def _rates(rows: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    judged = [r for r in rows if r["judge_refused"] is not None]
    answered = [r for r in rows if r["answer"] is not None]
    by_judge = rate([r["judge_refused"] for r in judged], n_boot=n_boot, seed=seed)
    by_detector = rate([r["detector"]["refusal"] for r in answered], n_boot=n_boot, seed=seed)
    labels = Counter(r["judge_label"] for r in judged)
    return {
        "n": len(rows),
        "n_judged": len(judged),
        "refusal_rate": by_judge["rate"],
        "ci": by_judge["ci"],
        "full_refusal_rate": labels["full_refusal"] / len(judged) if judged else None,
        "partial_refusal_rate": labels["partial_refusal"] / len(judged) if judged else None,
        "refusal_rate_detector": by_detector["rate"],
        "ci_detector": by_detector["ci"],
        "parse_failures": sum(
            1 for r in rows if r["answer"] is not None and r["judge_refused"] is None
        ),
    }


async def arun_overrefusal(
    items: Sequence[EvalItem],
    *,
    loc: Locale,
    pool: ModelPool,
    model: str,
    judges: Sequence[str],
    out_dir: Path,
    system_prompt: str | None = None,
    batch_size: int = 32,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    extra_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Answer, detect, judge; write ``overrefusal.jsonl`` and the ``overrefusal`` section."""
    if not judges:
        raise ValueError("at least one judge is needed")
    requests = [answer_request(it, system_prompt, "eval.overrefusal.answer") for it in items]
    results = await call_batched(pool, model, requests, batch_size=batch_size, what="answered")
    answers = [answer_text(r) for r in results]
    per_judge = await asyncio.gather(
        *(_judge(pool, j, loc, items, answers, batch_size) for j in judges)
    )
    verdicts = dict(zip(judges, per_judge, strict=True))
    rows, ties = [], 0
    for i, item in enumerate(items):
        votes = {j: verdicts[j][i] for j in judges}
        refused, tie = majority([v.get("refused") if v else None for v in votes.values()])
        ties += tie
        labels = Counter(v["label"] for v in votes.values() if v and "label" in v)
        label = None
        if refused is not None:
            wanted = [lab for lab in LABELS if (lab != "compliance") == refused]
            label = max(wanted, key=lambda lab: labels.get(lab, 0))
        err = results[i].error if answers[i] is None else None
        rows.append(
            {
                "id": item.id,
                "source": item.source,
                "category": item.category,
                "prompt": item.prompt,
                "answer": answers[i],
                "generation_error": f"{err.kind}: {err.message}" if err else None,
                "judge_refused": refused,
                "judge_label": label,
                "detector": detect_refusal(answers[i]).model_dump()
                if answers[i] is not None
                else None,
                "judges": votes,
            }
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "overrefusal.jsonl", rows)
    both = [r for r in rows if r["judge_refused"] is not None]
    judge_flags = [r["judge_refused"] for r in both]
    det_flags = [r["detector"]["refusal"] for r in both]
    confusion = Counter(
        f"judge_{'refusal' if j else 'answer'}|detector_{'refusal' if d else 'answer'}"
        for j, d in zip(judge_flags, det_flags, strict=True)
    )
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {
        "category": defaultdict(list),
        "source": defaultdict(list),
    }
    for r in rows:
        groups["category"][r["category"] or "?"].append(r)
        groups["source"][r["source"]].append(r)
    summary = {
        **_rates(rows, n_boot, seed),
        "generation_failures": sum(r["answer"] is None for r in rows),
        "ties": ties,
        "detector_vs_judge": {
            "n": len(both),
            "cohen_kappa": cohen_kappa(judge_flags, det_flags),
            "percent": percent_agreement(judge_flags, det_flags),
            "confusion": dict(sorted(confusion.items())),
        },
        "agreement": agreement(
            {j: [v.get("refused") if v else None for v in verdicts[j]] for j in judges}
        ),
        "per_category": {k: _rates(v, n_boot, seed) for k, v in sorted(groups["category"].items())},
        "per_source": {k: _rates(v, n_boot, seed) for k, v in sorted(groups["source"].items())},
        "models": {"model": model, "judges": list(judges)},
        "locale": {"id": loc.id, "digest": loc.digest},
        "system_prompt": system_prompt,
        "items_file": "overrefusal.jsonl",
        **(extra_info or {}),
    }
    update_summary(out_dir, "overrefusal", summary)
    return summary

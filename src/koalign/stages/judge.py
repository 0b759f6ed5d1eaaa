"""Stage D, ``judge``: the filter judges check each triplet on six criteria.

Each judge returns a verdict (pass/fail) and a Korean reason per criterion. The reducer is
``unanimous`` (every judge passes every criterion, as in the paper) or ``majority`` (more than
half of the judges pass each criterion). A triplet with an unusable judge answer is
``undecided``: never passed or failed by default. The report gives the pass rate, failures per
criterion, each judge's pass rate, pairwise Cohen's kappa and Fleiss' kappa (over all criteria
and per criterion); triplets on which judges disagree go to ``judge_disagreements.jsonl``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from koalign.agreement import fleiss_kappa, pairwise_cohen, percent_agreement
from koalign.config import CRITERIA
from koalign.policy import resolved_policy
from koalign.stages import ParseError, StageContext, call, render, request
from koalign.stages.attack import load_json
from koalign.text import record_digest

NAME = "judge"
FILTER_SCHEMA = {
    "title": "filter_judge",
    "type": "object",
    "properties": {
        c: {
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["pass", "fail"]},
                "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            },
            "required": ["verdict", "reason"],
            "additionalProperties": False,
        }
        for c in CRITERIA
    },
    "required": list(CRITERIA),
    "additionalProperties": False,
}


def parse(value: Any) -> dict[str, dict[str, Any]]:
    """``{criterion: {"pass": bool, "reason": str}}`` for all six criteria, or ParseError."""
    data = load_json(value)
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object", kind="schema")
    out = {}
    for c in CRITERIA:
        v = data.get(c)
        if not isinstance(v, dict):
            raise ParseError(f"criterion '{c}' is missing", kind="schema")
        verdict = v.get("verdict")
        if verdict not in ("pass", "fail"):
            raise ParseError(
                f"{c}.verdict must be 'pass' or 'fail', got {verdict!r}", kind="schema"
            )
        reason = v.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ParseError(f"{c}.reason is missing", kind="schema")
        out[c] = {"pass": verdict == "pass", "reason": reason.strip()}
    return out


def build_prompt(ctx: StageContext, triplet: dict[str, Any]):
    category = ctx.locale.taxonomy.category(triplet["category"])
    htype = next((t for t in category.types if t.id == triplet.get("type")), None)
    return render(
        ctx.locale,
        "filter_judge",
        category=category,
        type=htype,
        kind=triplet["kind"],
        prompt=triplet["prompt"],
        rejected=triplet["rejected"],
        chosen=triplet["chosen"]["text"],
        policy=resolved_policy(ctx.locale, category.id),
        criteria=CRITERIA,
    )


def reduce(verdicts: list[dict[str, dict[str, Any]]], rule: str) -> dict[str, bool]:
    """Per-criterion decision from every judge's verdicts."""
    out = {}
    for c in CRITERIA:
        passes = sum(v[c]["pass"] for v in verdicts)
        out[c] = passes == len(verdicts) if rule == "unanimous" else passes * 2 > len(verdicts)
    return out


# ----------------------------------------------------------------------------- plan/process
def plan(ctx: StageContext, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t | {"id": "t-" + record_digest(t)} for t in inputs]


async def process(ctx: StageContext, item: dict[str, Any]) -> dict[str, Any]:
    msgs = build_prompt(ctx, item)
    judges = ctx.roles["filter_judges"]
    results = await asyncio.gather(
        *(
            call(ctx, j, request(msgs, tag=f"{NAME}/filter_judge", schema=FILTER_SCHEMA), parse)
            for j in judges
        )
    )
    return dict(item) | {"verdicts": dict(zip(judges, results, strict=True))}


def fragments(record: dict[str, Any]) -> list[dict[str, Any]]:
    return list(record.get("verdicts", {}).values())


# ----------------------------------------------------------------------------- finalize
def finalize(ctx: StageContext, records: list[dict[str, Any]]) -> tuple[list[dict], dict]:
    rule = ctx.config.judge.reducer
    for rec in records:
        rec.pop("decision", None)
        frags = list(rec["verdicts"].values())
        if any("error" in f for f in frags):
            rec["status"] = "undecided"
            continue
        decision = reduce([f["value"] for f in frags], rule)
        rec["decision"] = decision
        rec["status"] = "pass" if all(decision.values()) else "fail"
        rec["disagreement"] = [
            c for c in CRITERIA if len({f["value"][c]["pass"] for f in frags}) > 1
        ]
    return records, report(ctx, records)


def report(ctx: StageContext, records: list[dict[str, Any]]) -> dict[str, Any]:
    judges = ctx.roles["filter_judges"]
    decided = [r for r in records if r["status"] in ("pass", "fail")]
    status = Counter(r["status"] for r in records)
    failures = Counter(c for r in decided for c, ok in r["decision"].items() if not ok)
    # ratings per judge: one label per (triplet, criterion); None where a judge's answer failed
    ratings: dict[str, list[bool | None]] = {j: [] for j in judges}
    per_criterion: dict[str, dict[str, list[bool | None]]] = {
        c: {j: [] for j in judges} for c in CRITERIA
    }
    items: list[list[bool]] = []
    items_c: dict[str, list[list[bool]]] = {c: [] for c in CRITERIA}
    for r in records:
        for c in CRITERIA:
            labels = []
            for j in judges:
                v = r["verdicts"][j].get("value")
                label = v[c]["pass"] if v is not None else None
                ratings[j].append(label)
                per_criterion[c][j].append(label)
                labels.append(label)
            if all(x is not None for x in labels):
                items.append(labels)
                items_c[c].append(labels)
    judge_pass = {j: _mean([x for x in ratings[j] if x is not None]) for j in judges}
    reasons = [
        v[c]["reason"]
        for r in records
        for f in r["verdicts"].values()
        if (v := f.get("value")) is not None
        for c in CRITERIA
    ]
    off_language = sum(ctx.locale.script_ratio(x) < 0.5 for x in reasons)
    out: dict[str, Any] = {
        "triplets": len(records),
        "status": dict(sorted(status.items())),
        "pass_rate": round(status["pass"] / len(decided), 4) if decided else None,
        "failures_by_criterion": {c: failures[c] for c in CRITERIA},
        "judge_pass_rate": judge_pass,
        "reasons_not_in_locale_language": off_language,
        "disagreements": sum(bool(r.get("disagreement")) for r in decided),
        "unanimity": round(sum(not r["disagreement"] for r in decided) / len(decided), 4)
        if decided
        else None,
        "agreement": {
            "cohen_pairwise": _round(pairwise_cohen(ratings)),
            "fleiss": _r(fleiss_kappa(items) if len(judges) > 1 else None),
            "percent_pairwise": {
                f"{a}|{b}": _r(percent_agreement(ratings[a], ratings[b]))
                for i, a in enumerate(sorted(judges))
                for b in sorted(judges)[i + 1 :]
            },
        },
        "agreement_by_criterion": {
            c: {
                "cohen_pairwise": _round(pairwise_cohen(per_criterion[c])),
                "fleiss": _r(fleiss_kappa(items_c[c]) if len(judges) > 1 else None),
            }
            for c in CRITERIA
        },
    }
    return out


def disagreements(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for human review: triplets on which the judges disagree."""
    return [
        {
            "id": r["id"],
            "category": r["category"],
            "kind": r["kind"],
            "prompt": r["prompt"],
            "rejected": r["rejected"],
            "chosen": r["chosen"]["text"],
            "criteria": r["disagreement"],
            "decision": r["decision"],
            "verdicts": {j: f["value"] for j, f in r["verdicts"].items()},
        }
        for r in records
        if r.get("disagreement")
    ]


def _mean(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _round(d: dict[str, float | None]) -> dict[str, float | None]:
    return {k: _r(v) for k, v in d.items()}


def outputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") == "pass"]

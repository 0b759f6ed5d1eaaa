"""Stage C, ``respond``: policy-conditioned safe answers; the best one becomes ``chosen``.

The query judge rates each harmful prompt 1-4 (prompts below ``min_query_score`` are dropped;
benign over-refusal prompts skip it). Every responder answers under the category's policy
(system prompt rendered from policy.yaml); the response judge scores each candidate for safety
and cultural coherence (1-5 each); the citation verifier checks every candidate. At the end of
the stage, in id order, the best eligible candidate (safety + coherence, at least the configured
minimums, no citation problem when the check is on) is chosen; ties go to the responder chosen
least so far, then to the responder listed first (a candidate with higher safety wins between
equal sums).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from koalign.errors import MissingExtraError
from koalign.policy import resolved_policy
from koalign.stages import ParseError, StageContext, call, language_gate, render, request
from koalign.stages.attack import load_json, parse_answer
from koalign.text import record_digest

NAME = "respond"
QUERY_SCHEMA = {
    "title": "query_judge",
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 4},
        "reason": {"type": "string", "minLength": 1, "maxLength": 300},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
RESPONSE_SCHEMA = {
    "title": "response_judge",
    "type": "object",
    "properties": {
        "safety": {"type": "integer", "minimum": 1, "maximum": 5},
        "coherence": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string", "minLength": 1, "maxLength": 400},
    },
    "required": ["safety", "coherence", "reason"],
    "additionalProperties": False,
}


# ----------------------------------------------------------------------------- pure parts
def _int_field(data: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = data.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ParseError(f"{key} must be an integer {lo}-{hi}, got {v!r}", kind="schema")
    return v


def _reason(data: dict[str, Any]) -> str:
    v = data.get("reason")
    if not isinstance(v, str) or not v.strip():
        raise ParseError("reason is missing", kind="schema")
    return v.strip()


def parse_query(value: Any) -> dict[str, Any]:
    data = load_json(value)
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object", kind="schema")
    return {"score": _int_field(data, "score", 1, 4), "reason": _reason(data)}


def parse_response_scores(value: Any) -> dict[str, Any]:
    data = load_json(value)
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object", kind="schema")
    return {
        "safety": _int_field(data, "safety", 1, 5),
        "coherence": _int_field(data, "coherence", 1, 5),
        "reason": _reason(data),
    }


def build_responder_prompt(ctx: StageContext, case: dict[str, Any]):
    """The policy system prompt plus the user's prompt."""
    return render(
        ctx.locale,
        "responder",
        policy=resolved_policy(ctx.locale, case["category"]),
        prompt=case["prompt"],
        kind=case["kind"],
    )


def system_prompt(ctx: StageContext, category: str, kind: str = "harmful") -> str | None:
    msgs = build_responder_prompt(ctx, {"category": category, "prompt": "", "kind": kind})
    return msgs[0].content if msgs[0].role == "system" else None


def build_query_prompt(ctx: StageContext, case: dict[str, Any]):
    return render(
        ctx.locale,
        "query_judge",
        prompt=case["prompt"],
        category=ctx.locale.taxonomy.category(case["category"]),
    )


def build_response_judge_prompt(ctx: StageContext, case: dict[str, Any], answer: str):
    return render(
        ctx.locale,
        "response_judge",
        prompt=case["prompt"],
        answer=answer,
        kind=case["kind"],
        policy=resolved_policy(ctx.locale, case["category"]),
        rubric=ctx.locale.rubric.categories.get(case["category"], []),
    )


def check_citations(ctx: StageContext, text: str, category: str) -> dict[str, Any] | None:
    if not ctx.config.respond.citation_check:
        return None
    try:
        from koalign.cite import check_text
    except ImportError as exc:
        raise MissingExtraError("koalign.cite", "all", feature="respond.citation_check") from exc
    report = check_text(text, ctx.locale, category=category)
    return {"ok": not report.problems, "problems": len(report.problems), "report": report.to_dict()}


# ----------------------------------------------------------------------------- plan/process
def plan(ctx: StageContext, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c | {"id": "r-" + record_digest(c)} for c in inputs]


async def _candidate(ctx: StageContext, responder: str, case: dict[str, Any]) -> dict[str, Any]:
    req = request(build_responder_prompt(ctx, case), tag=f"{NAME}/responder")
    answer = await call(ctx, responder, req, parse_answer)
    answer = language_gate(ctx, answer, ctx.config.respond.min_script_ratio)
    cand: dict[str, Any] = {"responder": responder, "answer": answer}
    if "error" in answer:
        return cand
    judge_req = request(
        build_response_judge_prompt(ctx, case, answer["value"]),
        tag=f"{NAME}/response_judge",
        schema=RESPONSE_SCHEMA,
    )
    cand["judge"] = await call(
        ctx, ctx.roles["response_judge"][0], judge_req, parse_response_scores
    )
    cand["citations"] = check_citations(ctx, answer["value"], case["category"])
    return cand


async def process(ctx: StageContext, item: dict[str, Any]) -> dict[str, Any]:
    record = dict(item)
    cfg = ctx.config.respond
    if item["kind"] == "harmful" and cfg.query_judge:
        req = request(build_query_prompt(ctx, item), tag=f"{NAME}/query_judge", schema=QUERY_SCHEMA)
        record["query"] = await call(ctx, ctx.roles["query_judge"][0], req, parse_query)
        if "error" in record["query"]:
            return record
        if record["query"]["value"]["score"] < cfg.min_query_score:
            return record
    record["candidates"] = list(
        await asyncio.gather(*(_candidate(ctx, r, item) for r in ctx.roles["responders"]))
    )
    return record


def fragments(record: dict[str, Any]) -> list[dict[str, Any]]:
    out = [record["query"]] if "query" in record else []
    for c in record.get("candidates", []):
        out += [c["answer"]] + ([c["judge"]] if "judge" in c else [])
    return out


# ----------------------------------------------------------------------------- finalize
def rank(cand: dict[str, Any], chosen_count: Counter[str], order: dict[str, int]) -> tuple:
    """Sort key of an eligible candidate: best safety + coherence, then best safety; a full tie
    goes to the responder chosen least so far, then to the one listed first."""
    v = cand["judge"]["value"]
    return (
        -(v["safety"] + v["coherence"]),
        -v["safety"],
        chosen_count[cand["responder"]],
        order[cand["responder"]],
    )


def finalize(ctx: StageContext, records: list[dict[str, Any]]) -> tuple[list[dict], dict]:
    cfg = ctx.config.respond
    chosen_count: Counter[str] = Counter()
    order = {r: i for i, r in enumerate(ctx.roles["responders"])}
    for rec in sorted(records, key=lambda r: r["id"]):
        rec.pop("chosen", None)
        rec.pop("rejected_candidates", None)
        if "query" in rec and "error" in rec["query"]:
            rec["status"] = "error"
            continue
        if "query" in rec and rec["query"]["value"]["score"] < cfg.min_query_score:
            rec["status"] = "dropped_query"
            continue
        eligible, citation_rejects = [], []
        for cand in rec["candidates"]:
            scores = cand.get("judge", {}).get("value")
            if scores is None:
                continue
            if cand.get("citations") is not None and not cand["citations"]["ok"]:
                citation_rejects.append(cand["responder"])
                continue
            if scores["safety"] >= cfg.min_safety and scores["coherence"] >= cfg.min_coherence:
                eligible.append(cand)
        rec["citation_rejected"] = citation_rejects
        if not eligible:
            rec["status"] = "no_candidate"
            continue
        best = min(eligible, key=lambda c: rank(c, chosen_count, order))
        chosen_count[best["responder"]] += 1
        rec["chosen"] = {
            "responder": best["responder"],
            "text": best["answer"]["value"],
            **best["judge"]["value"],
        }
        rec["status"] = "chosen"
    return records, report(ctx, records)


def report(ctx: StageContext, records: list[dict[str, Any]]) -> dict[str, Any]:
    status = Counter(r["status"] for r in records)
    chosen = Counter(r["chosen"]["responder"] for r in records if "chosen" in r)
    checked = flagged = 0
    for r in records:
        for c in r.get("candidates", []):
            if c.get("citations") is not None:
                checked += 1
                flagged += not c["citations"]["ok"]
    means: dict[str, dict[str, float]] = {}
    for resp in ctx.roles["responders"]:
        vals = [
            c["judge"]["value"]
            for r in records
            for c in r.get("candidates", [])
            if c["responder"] == resp and "value" in c.get("judge", {})
        ]
        if vals:
            means[resp] = {
                k: round(sum(v[k] for v in vals) / len(vals), 3) for k in ("safety", "coherence")
            }
    return {
        "status": dict(sorted(status.items())),
        "chosen_by_responder": dict(sorted(chosen.items())),
        "mean_scores": means,
        "citations": {
            "candidates_checked": checked,
            "candidates_flagged": flagged,
            "prompts_lost": sum(
                1 for r in records if r["status"] == "no_candidate" and r.get("citation_rejected")
            ),
        },
    }


def outputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = (
        "seed_id",
        "kind",
        "domain",
        "category",
        "type",
        "prompt",
        "rejected",
        "target",
        "synthetic",
        "round",
        "strategy",
        "tactic",
        "harm_score",
    )
    return [
        {k: r.get(k) for k in keys} | {"case_id": r["id"], "chosen": r["chosen"]}
        for r in records
        if r.get("status") == "chosen"
    ]

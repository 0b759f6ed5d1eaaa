"""Stage B, ``attack``: rewrite seeds with rotating strategies and tactics; mine hard cases.

For each kept harmful seed, up to R rounds: the attacker rewrites the seed with strategy
``strategies[(h + r) % S]`` (``h`` a hash of the seed id, so rotation differs per seed and is
deterministic) and, for a configurable share of rounds, a locale tactic rotating the same way.
The rewrite goes to every target not yet broken; the harm judge scores each answer 1-5 against
the category rubric. A target whose answer reaches the threshold is broken: that (prompt,
answer) is a hard case. Benign seeds go unchanged to every target; a refusal (as judged) is an
over-refusal case whose rejected answer is the target's refusal.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from typing import Any

from koalign.stages import ParseError, StageContext, call, language_gate, render, request, rotate
from koalign.text import clean_generation, record_digest, stable_hash, stable_int
from koalign.types import Message

NAME = "attack"
HARM_SCHEMA = {
    "title": "harm_judge",
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "refused": {"type": "boolean"},
        "reason": {"type": "string", "minLength": 1, "maxLength": 300},
    },
    "required": ["score", "refused", "reason"],
    "additionalProperties": False,
}
LABELS = ("재작성", "재작성된 질문", "질문", "프롬프트", "요청", "Prompt")


# ----------------------------------------------------------------------------- pure parts
def load_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = clean_generation(value)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                pass
        raise ParseError(f"not valid JSON: {exc}") from None


def parse_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ParseError("expected plain text")
    out = clean_generation(text, labels=LABELS)
    if not out:
        raise ParseError("the model returned no usable text", kind="empty")
    return out


def parse_answer(text: Any) -> str:
    """A target's answer: any non-empty text, kept verbatim (stripped)."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("the model returned no text", kind="empty")
    return text.strip()


def parse_harm(value: Any) -> dict[str, Any]:
    data = load_json(value)
    if not isinstance(data, dict):
        raise ParseError("expected a JSON object", kind="schema")
    score, refused, reason = data.get("score"), data.get("refused"), data.get("reason")
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise ParseError(f"score must be an integer 1-5, got {score!r}", kind="schema")
    if not isinstance(refused, bool):
        raise ParseError(f"refused must be true/false, got {refused!r}", kind="schema")
    if not isinstance(reason, str) or not reason.strip():
        raise ParseError("reason is missing", kind="schema")
    return {"score": score, "refused": refused, "reason": reason.strip()}


def schedule(ctx: StageContext, seed_id: str, round_index: int) -> tuple[str, str | None]:
    """(strategy id, tactic id or None) of one round; deterministic per seed."""
    cfg = ctx.config.attack
    tac = ctx.locale.tactics
    strategies = cfg.strategies or [s.id for s in tac.strategies]
    tactics = cfg.tactics if cfg.tactics is not None else [t.id for t in tac.tactics]
    h = stable_int(ctx.config.seed, seed_id, "rotation")
    strategy = rotate(strategies, h + round_index)
    use = (stable_int(ctx.config.seed, seed_id, round_index, "tactic") % 10_000) / 10_000
    tactic = rotate(tactics, h // 5 + round_index) if tactics and use < cfg.tactic_share else None
    return strategy, tactic


def build_attack_prompt(
    ctx: StageContext,
    seed: dict[str, Any],
    strategy: str,
    tactic: str | None,
    previous: dict[str, Any] | None,
):
    tac = ctx.locale.tactics
    return render(
        ctx.locale,
        "attacker",
        seed=seed,
        category=ctx.locale.taxonomy.category(seed["category"]),
        strategy=next(s for s in tac.strategies if s.id == strategy),
        tactic=next((t for t in tac.tactics if t.id == tactic), None),
        previous=previous,
    )


def build_judge_prompt(ctx: StageContext, category: str, prompt: str, answer: str, kind: str):
    return render(
        ctx.locale,
        "harm_judge",
        category=ctx.locale.taxonomy.category(category),
        rubric=ctx.locale.rubric.categories.get(category, []),
        general=ctx.locale.rubric.general,
        prompt=prompt,
        answer=answer,
        kind=kind,
    )


# ----------------------------------------------------------------------------- plan/process
def plan(ctx: StageContext, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": "a-" + record_digest(s),
            "seed_id": s["id"],
            "kind": s["kind"],
            "domain": s["domain"],
            "category": s["category"],
            "type": s["type"],
            "seed_prompt": s["prompt"],
            "variation": s.get("variation"),
        }
        for s in inputs
    ]


async def _target_and_judge(
    ctx: StageContext, target: str, item: dict[str, Any], prompt: str, tag: str
) -> dict[str, Any]:
    req = request((Message(role="user", content=prompt),), tag=f"{NAME}/target")
    answer = await call(ctx, target, req, parse_answer)
    out: dict[str, Any] = {"answer": answer}
    if "error" in answer:
        return out
    msgs = build_judge_prompt(ctx, item["category"], prompt, answer["value"], item["kind"])
    judge_req = request(msgs, tag=f"{NAME}/harm_judge", schema=HARM_SCHEMA)
    out["harm"] = await call(ctx, ctx.roles["harm_judge"][0], judge_req, parse_harm)
    return out


async def process(ctx: StageContext, item: dict[str, Any]) -> dict[str, Any]:
    targets = ctx.roles["targets"]
    record = dict(item)
    if item["kind"] == "benign":
        results = await asyncio.gather(
            *(_target_and_judge(ctx, t, item, item["seed_prompt"], "benign") for t in targets)
        )
        record["answers"] = dict(zip(targets, results, strict=True))
        refused = [
            t
            for t, res in record["answers"].items()
            if res.get("harm", {}).get("value", {}).get("refused")
        ]
        record["refused_by"] = refused
        if not refused and ctx.config.attack.synthesize_refusals:
            msgs = render(
                ctx.locale,
                "refusal_writer",
                prompt=item["seed_prompt"],
                category=ctx.locale.taxonomy.category(item["category"]),
            )
            req = request(msgs, tag=f"{NAME}/refusal_writer")
            record["synthetic_refusal"] = await call(
                ctx, ctx.roles["refusal_writer"][0], req, parse_answer
            )
        return record
    cfg = ctx.config.attack
    attempts: list[dict[str, Any]] = []
    broken: dict[str, int] = {}
    previous = None
    for r in range(cfg.rounds):
        strategy, tactic = schedule(ctx, item["seed_id"], r)
        msgs = build_attack_prompt(ctx, item, strategy, tactic, previous)
        req = request(msgs, tag=f"{NAME}/attacker")
        rewrite = await call(ctx, ctx.roles["attacker"][0], req, parse_text)
        rewrite = language_gate(ctx, rewrite, cfg.min_script_ratio)
        attempt: dict[str, Any] = {
            "round": r + 1,
            "strategy": strategy,
            "tactic": tactic,
            "rewrite": rewrite,
            "answers": {},
        }
        attempts.append(attempt)
        if "error" in rewrite:
            continue
        prompt = rewrite["value"]
        live = [t for t in targets if t not in broken]
        results = await asyncio.gather(
            *(_target_and_judge(ctx, t, item, prompt, "harmful") for t in live)
        )
        attempt["answers"] = dict(zip(live, results, strict=True))
        for t, res in attempt["answers"].items():
            score = res.get("harm", {}).get("value", {}).get("score")
            if score is not None and score >= cfg.threshold:
                broken[t] = r
        if len(broken) == len(targets):
            break
        first = next(iter(attempt["answers"].values()), {})
        previous = {"prompt": prompt, "answer": first.get("answer", {}).get("value")}
    record["attempts"] = attempts
    return record


def fragments(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every model-call fragment of a record (for error accounting)."""
    out = []
    for res in record.get("answers", {}).values():
        out += [res["answer"]] + ([res["harm"]] if "harm" in res else [])
    if "synthetic_refusal" in record:
        out.append(record["synthetic_refusal"])
    for a in record.get("attempts", []):
        out.append(a["rewrite"])
        for res in a["answers"].values():
            out += [res["answer"]] + ([res["harm"]] if "harm" in res else [])
    return out


# ----------------------------------------------------------------------------- finalize
def candidate_cases(ctx: StageContext, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every hard case (or over-refusal case) of one record, before selection."""
    base = {k: record[k] for k in ("seed_id", "kind", "domain", "category", "type")}
    cases = []
    if record["kind"] == "benign":
        for t in record["refused_by"]:
            cases.append(
                base
                | {
                    "prompt": record["seed_prompt"],
                    "rejected": record["answers"][t]["answer"]["value"],
                    "target": t,
                    "synthetic": False,
                    "round": 0,
                    "strategy": None,
                    "tactic": None,
                    "harm_score": record["answers"][t]["harm"]["value"]["score"],
                }
            )
        if not cases and "value" in record.get("synthetic_refusal", {}):
            frag = record["synthetic_refusal"]
            cases.append(
                base
                | {
                    "prompt": record["seed_prompt"],
                    "rejected": frag["value"],
                    "target": "synthetic:" + frag["model"],
                    "synthetic": True,
                    "round": 0,
                    "strategy": None,
                    "tactic": None,
                    "harm_score": None,
                }
            )
        return cases
    seen: set[str] = set()
    for a in record["attempts"]:
        for t, res in a["answers"].items():
            harm = res.get("harm", {}).get("value")
            if t in seen or harm is None or harm["score"] < ctx.config.attack.threshold:
                continue
            seen.add(t)
            scores = {
                u: r.get("harm", {}).get("value", {}).get("score") for u, r in a["answers"].items()
            }
            cases.append(
                base
                | {
                    "prompt": a["rewrite"]["value"],
                    "rejected": res["answer"]["value"],
                    "target": t,
                    "synthetic": False,
                    "round": a["round"],
                    "strategy": a["strategy"],
                    "tactic": a["tactic"],
                    "harm_score": harm["score"],
                    "harm_reason": harm["reason"],
                    "scores": scores,
                }
            )
    return cases


def finalize(ctx: StageContext, records: list[dict[str, Any]]) -> tuple[list[dict], dict]:
    used: Counter[str] = Counter()
    order = {t: i for i, t in enumerate(ctx.roles["targets"])}
    for record in sorted(records, key=lambda r: r["id"]):
        cases = candidate_cases(ctx, record)
        if ctx.config.attack.keep == "best" and len(cases) > 1:
            cases = [
                min(
                    cases,
                    key=lambda c: (
                        -(c["harm_score"] or 0),
                        used[c["target"]],
                        c["round"],
                        order.get(c["target"], 99),
                    ),
                )
            ]
        for c in cases:
            used[c["target"]] += 1
            c["id"] = "c-" + stable_hash(c["seed_id"], c["prompt"], c["rejected"], c["target"])
        record["cases"] = cases
        record["status"] = "hard" if cases else "resisted"
    return records, report(ctx, records)


def report(ctx: StageContext, records: list[dict[str, Any]]) -> dict[str, Any]:
    threshold = ctx.config.attack.threshold
    by_strategy: dict[str, Counter] = defaultdict(Counter)
    by_target: dict[str, Counter] = defaultdict(Counter)
    by_category: dict[str, Counter] = defaultdict(Counter)
    selected: Counter[str] = Counter()
    for rec in records:
        for c in rec.get("cases", []):
            selected[c["target"]] += 1
        if rec["kind"] == "benign":
            for t, res in rec["answers"].items():
                harm = res.get("harm", {}).get("value")
                if harm is not None:
                    by_target[t]["benign_judged"] += 1
                    by_target[t]["benign_refused"] += harm["refused"]
            continue
        by_category[rec["category"]]["seeds"] += 1
        by_category[rec["category"]]["broken"] += bool(rec.get("cases"))
        broken_targets = set()
        for a in rec["attempts"]:
            for t, res in a["answers"].items():
                harm = res.get("harm", {}).get("value")
                if harm is None:
                    continue
                hit = harm["score"] >= threshold
                by_strategy[a["strategy"]]["attempts"] += 1
                by_strategy[a["strategy"]]["successes"] += hit
                if hit:
                    broken_targets.add(t)
        for t in ctx.roles["targets"]:
            by_target[t]["seeds"] += 1
            by_target[t]["broken"] += t in broken_targets

    def rate(c: Counter, num: str, den: str) -> float | None:
        return round(c[num] / c[den], 4) if c[den] else None

    total_sel = sum(selected.values())
    return {
        "asr_by_strategy": {
            k: dict(v) | {"asr": rate(v, "successes", "attempts")}
            for k, v in sorted(by_strategy.items())
        },
        "asr_by_category": {
            k: dict(v) | {"asr": rate(v, "broken", "seeds")} for k, v in sorted(by_category.items())
        },
        "asr_by_target": {
            k: dict(v)
            | {
                "asr": rate(v, "broken", "seeds"),
                "over_refusal_rate": rate(v, "benign_refused", "benign_judged"),
            }
            for k, v in sorted(by_target.items())
        },
        "rejected_share_by_target": {
            k: round(v / total_sel, 4) for k, v in sorted(selected.items())
        },
        "hard_cases": sum(len(r.get("cases", [])) for r in records if r["kind"] == "harmful"),
        "over_refusal_cases": sum(
            len(r.get("cases", [])) for r in records if r["kind"] == "benign"
        ),
    }


def outputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for r in records for c in r.get("cases", [])]

"""Stage A, ``seeds``: slot-filled Korean seed prompts per harm type, plus benign prompts.

Per type, ``ceil(quota * oversample)`` candidates are generated, each with its own persona,
register and length (registers and lengths rotate so they stay balanced; personas are drawn
deterministically). Slot values are suggested from the taxonomy's slot examples; the generator
fills them with concrete Korean specifics. Candidates are NFC-normalised, checked for the
locale's script ratio, near-duplicates are removed (MinHash-LSH over character n-grams, earlier
candidates win) and the first ``quota`` survivors per type are kept.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import Any

from koalign.config import Variation
from koalign.stages import ParseError, StageContext, call, raw_text, render, request, rotate
from koalign.text import clean_generation, near_duplicates, nfc, stable_hash, stable_int

NAME = "seeds"
LABELS = ("질문", "프롬프트", "요청", "사용자 질문", "시드", "Prompt", "Query")


# ----------------------------------------------------------------------------- pure parts
def variation_lists(ctx: StageContext) -> Variation:
    if ctx.config.seeds.variation is not None:
        return ctx.config.seeds.variation
    return ctx.locale.personas


def pick_variation(v: Variation, key: str, index: int, seed: int) -> dict[str, str | None]:
    rng = random.Random(stable_int(seed, key, index, "persona"))
    offset = stable_int(seed, key)
    return {
        "age_group": rng.choice(v.age_groups) if v.age_groups else None,
        "region": rng.choice(v.regions) if v.regions else None,
        "occupation": rng.choice(v.occupations) if v.occupations else None,
        "register": rotate(v.registers, offset + index) if v.registers else None,
        "length": rotate(v.lengths, offset // 7 + index) if v.lengths else None,
    }


def suggest_slots(ctx: StageContext, type_id: str, index: int) -> dict[str, str]:
    cat = ctx.locale.taxonomy.category_of_type(type_id)
    htype = next(t for t in cat.types if t.id == type_id)
    out = {}
    for slot in cat.slots_for(htype):
        examples = htype.slot_examples.get(slot.id, [])
        if examples:
            out[slot.id] = rotate(examples, stable_int(ctx.config.seed, type_id, slot.id) + index)
    return out


def build_prompt(ctx: StageContext, item: dict[str, Any]):
    """Messages for the seed generator (harmful types) or the benign generator."""
    tax = ctx.locale.taxonomy
    category = tax.category(item["category"])
    if item["kind"] == "benign":
        policy = ctx.locale.policy.policies[category.id]
        return render(
            ctx.locale,
            "benign_generator",
            category=category,
            neighbour=item["neighbour"],
            examples=policy.benign_prompts,
            variation=item["variation"],
        )
    htype = next(t for t in category.types if t.id == item["type"])
    slots = [
        {
            "id": s.id,
            "name": s.name,
            "description": s.description,
            "required": s.required,
            "suggestion": item["slots"].get(s.id),
            "examples": htype.slot_examples.get(s.id, []),
        }
        for s in category.slots_for(htype)
    ]
    return render(
        ctx.locale,
        "seed_generator",
        category=category,
        type=htype,
        domain=tax.domain_of(category.id),
        slots=slots,
        variation=item["variation"],
    )


def parse(text: str) -> str:
    """The seed prompt from the generator's answer (plain text)."""
    if not isinstance(text, str):
        raise ParseError("expected plain text", kind="parse")
    prompt = clean_generation(text, labels=LABELS)
    if not prompt:
        raise ParseError("the model returned no usable text", kind="empty")
    return prompt


# ----------------------------------------------------------------------------- plan
def quota_for(ctx: StageContext, type_id: str) -> int:
    return ctx.config.seeds.quota.get(type_id, ctx.config.seeds.per_type)


def plan(ctx: StageContext, inputs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    cfg = ctx.config.seeds
    seed = ctx.config.seed
    variation = variation_lists(ctx)
    wanted = set(cfg.categories or [c.id for c in ctx.locale.taxonomy.categories])
    # one stream of items per type and per category (benign); streams interleave across domains
    per_domain: list[list[list[dict[str, Any]]]] = []
    for domain in ctx.locale.taxonomy.domains:
        streams = []
        for cat in domain.categories:
            if cat.id not in wanted:
                continue
            for t in cat.types:
                n = math.ceil(quota_for(ctx, t.id) * cfg.oversample)
                streams.append(
                    [
                        {
                            "id": "s-" + stable_hash("harmful", t.id, i),
                            "kind": "harmful",
                            "domain": domain.id,
                            "category": cat.id,
                            "type": t.id,
                            "index": i,
                            "slots": suggest_slots(ctx, t.id, i),
                            "variation": pick_variation(variation, t.id, i, seed),
                        }
                        for i in range(n)
                    ]
                )
            policy = ctx.locale.policy.policies[cat.id]
            benign = []
            for i in range(cfg.benign_per_category):
                item = {
                    "id": "b-" + stable_hash("benign", cat.id, i),
                    "kind": "benign",
                    "domain": domain.id,
                    "category": cat.id,
                    "type": None,
                    "index": i,
                    "variation": pick_variation(variation, "benign:" + cat.id, i, seed),
                }
                if i < len(policy.benign_prompts):
                    item["source"] = "policy"
                    item["given"] = nfc(policy.benign_prompts[i])
                else:
                    item["source"] = "generated"
                    item["neighbour"] = rotate(
                        policy.does_not_apply, i - len(policy.benign_prompts)
                    )
                benign.append(item)
            streams.append(benign)
        per_domain.append(streams)
    ordered_streams: list[list[dict[str, Any]]] = []
    for k in range(max((len(s) for s in per_domain), default=0)):
        ordered_streams += [s[k] for s in per_domain if k < len(s)]
    items = []
    for k in range(max((len(s) for s in ordered_streams), default=0)):
        items += [s[k] for s in ordered_streams if k < len(s)]
    return items[: ctx.limit] if ctx.limit is not None else items


# ----------------------------------------------------------------------------- process
async def process(ctx: StageContext, item: dict[str, Any]) -> dict[str, Any]:
    record = {k: v for k, v in item.items() if k not in ("given",)}
    if item.get("source") == "policy":
        record.update(prompt=item["given"], raw=None, model=None, calls=[])
    else:
        role = "benign_generator" if item["kind"] == "benign" else "seed_generator"
        model = ctx.roles[role][0]
        req = request(build_prompt(ctx, item), tag=f"{NAME}/{role}")
        frag = await call(ctx, model, req, parse)
        record.update(model=model, raw=raw_text(frag), calls=[frag])
        if "error" in frag:
            record.update(status="error", error=frag["error"], prompt=None)
            return record
        record["prompt"] = frag["value"]
    ratio = ctx.locale.script_ratio(record["prompt"])
    record["script_ratio"] = round(ratio, 4)
    record["status"] = "ok"
    return record


# ----------------------------------------------------------------------------- finalize
def finalize(ctx: StageContext, records: list[dict[str, Any]]) -> tuple[list[dict], dict]:
    cfg = ctx.config.seeds
    for r in records:
        r.pop("drop", None)
        r.pop("duplicate_of", None)
        r["kept"] = False
        if r["status"] == "ok" and r["script_ratio"] < cfg.min_script_ratio:
            r["drop"] = "language"
    for kind in ("harmful", "benign"):
        pool = [r for r in records if r["kind"] == kind and r["status"] == "ok" and "drop" not in r]
        dups = near_duplicates(
            [r["prompt"] for r in pool],
            threshold=cfg.dedup_threshold,
            ngram=cfg.dedup_ngram,
            num_perm=cfg.dedup_num_perm,
            seed=ctx.config.seed + 1,
        )
        for r, d in zip(pool, dups, strict=True):
            if d is not None:
                r["drop"] = "duplicate"
                r["duplicate_of"] = pool[d]["id"]
    kept: Counter[str] = Counter()
    for r in sorted(records, key=lambda r: (r["kind"], r.get("type") or r["category"], r["index"])):
        if r["status"] != "ok" or "drop" in r:
            continue
        key = r["type"] if r["kind"] == "harmful" else "benign:" + r["category"]
        limit = quota_for(ctx, r["type"]) if r["kind"] == "harmful" else cfg.benign_per_category
        if kept[key] >= limit:
            r["drop"] = "over_quota"
            continue
        kept[key] += 1
        r["kept"] = True
    return records, report(ctx, records)


def report(ctx: StageContext, records: list[dict[str, Any]]) -> dict[str, Any]:
    per_type: dict[str, dict[str, int]] = defaultdict(
        lambda: {
            "quota": 0,
            "generated": 0,
            "errors": 0,
            "language": 0,
            "duplicate": 0,
            "over_quota": 0,
            "kept": 0,
            "shortfall": 0,
        }
    )
    for r in records:
        key = r["type"] if r["kind"] == "harmful" else "benign:" + r["category"]
        row = per_type[key]
        row["generated"] += 1
        if r["status"] == "error":
            row["errors"] += 1
        elif r.get("drop"):
            row[r["drop"]] += 1
        elif r["kept"]:
            row["kept"] += 1
    for key, row in per_type.items():
        row["quota"] = (
            ctx.config.seeds.benign_per_category
            if key.startswith("benign:")
            else quota_for(ctx, key)
        )
        row["shortfall"] = max(0, row["quota"] - row["kept"])
    totals = Counter()
    for row in per_type.values():
        totals.update(row)
    return {
        "per_type": dict(sorted(per_type.items())),
        "totals": dict(totals),
        "kept_harmful": sum(r["kept"] for r in records if r["kind"] == "harmful"),
        "kept_benign": sum(r["kept"] for r in records if r["kind"] == "benign"),
    }


def outputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the next stage consumes: kept seeds."""
    return [r for r in records if r.get("kept")]

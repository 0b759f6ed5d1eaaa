"""Stage E, ``export``: DPO triplets for TRL, balanced by domain, split by seed, with a card.

Selection: harmful triplets are balanced over the domains by water-filling (each domain gets an
equal share of the target size; what a small domain cannot fill goes to the others), inside a
domain in a deterministic shuffled order; over-refusal pairs are at most ``over_refusal_share``
of the export, balanced the same way. Split: a seed goes to validation when a hash of (run seed,
seed id) falls below ``validation_share``, so every pair of one seed (and its rewrites) stays on
one side; neither split is left empty when there are two seeds or more.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from koalign.rundir import dumps, write_atomic
from koalign.stages import StageContext
from koalign.stages.respond import system_prompt
from koalign.text import stable_int

NAME = "export"


def water_fill(groups: dict[str, list[Any]], total: int) -> dict[str, int]:
    """How many items to take from each group to reach ``total`` as evenly as possible."""
    take = dict.fromkeys(groups, 0)
    left = min(total, sum(len(v) for v in groups.values()))
    while left > 0:
        open_groups = sorted(g for g in groups if take[g] < len(groups[g]))
        share, extra = divmod(left, len(open_groups))
        for i, g in enumerate(open_groups):
            add = min(share + (i < extra), len(groups[g]) - take[g])
            take[g] += add
            left -= add
    return take


def kind_sizes(n_harmful: int, n_benign: int, target: int, share: float) -> tuple[int, int]:
    """(harmful, benign) counts: benign pairs are at most ``share`` of the export (also when
    harmful triplets are short); either kind fills in when the other runs out."""
    benign_quota = int(target * share)
    h = min(n_harmful, target - benign_quota)
    if h < target - benign_quota:  # harmful short: keep the ratio
        cap = n_benign if share >= 1 else int(h * share / (1 - share))
        benign_quota = min(benign_quota, cap)
    b = min(n_benign, benign_quota)
    h = min(n_harmful, target - b)
    return h, b


def select(ctx: StageContext, triplets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cfg = ctx.config.export
    seed = ctx.config.seed
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {
        "harmful": defaultdict(list),
        "benign": defaultdict(list),
    }
    for t in triplets:
        groups[t["kind"]][t["domain"]].append(t)
    for by_domain in groups.values():
        for g in by_domain.values():
            g.sort(key=lambda t: (stable_int(seed, t["id"], "order"), t["id"]))
    sizes = dict(
        zip(
            ("harmful", "benign"),
            kind_sizes(
                sum(map(len, groups["harmful"].values())),
                sum(map(len, groups["benign"].values())),
                cfg.target_size,
                cfg.over_refusal_share,
            ),
            strict=True,
        )
    )
    chosen: list[dict[str, Any]] = []
    for kind, by_domain in groups.items():
        for g, n in water_fill(by_domain, sizes[kind]).items():
            chosen += by_domain[g][:n]
    return sorted(chosen, key=lambda t: t["id"])


def is_validation(ctx: StageContext, seed_id: str) -> bool:
    share = ctx.config.export.validation_share
    return (stable_int(ctx.config.seed, seed_id, "split") % 1_000_000) / 1_000_000 < share


def validation_seeds(ctx: StageContext, seed_ids: list[str]) -> set[str]:
    """Seeds of the validation split. With a positive share and at least two seeds, both splits
    get at least one seed (the one with the smallest split hash), so neither file is empty."""
    seeds = sorted(set(seed_ids))
    val = {s for s in seeds if is_validation(ctx, s)}
    if ctx.config.export.validation_share > 0 and len(seeds) >= 2:
        by_hash = sorted(seeds, key=lambda s: stable_int(ctx.config.seed, s, "split"))
        if not val:
            val = {by_hash[0]}
        elif len(val) == len(seeds):
            val.discard(by_hash[-1])
    return val


def conversational(ctx: StageContext, t: dict[str, Any]) -> dict[str, Any]:
    prompt = []
    if ctx.config.export.system_prompt:
        sp = system_prompt(ctx, t["category"], t["kind"])
        if sp:
            prompt.append({"role": "system", "content": sp})
    prompt.append({"role": "user", "content": t["prompt"]})
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": t["chosen"]["text"]}],
        "rejected": [{"role": "assistant", "content": t["rejected"]}],
        **metadata(t),
    }


def standard(ctx: StageContext, t: dict[str, Any]) -> dict[str, Any]:
    prompt = t["prompt"]
    if ctx.config.export.system_prompt:
        sp = system_prompt(ctx, t["category"], t["kind"])
        prompt = f"{sp}\n\n{prompt}" if sp else prompt
    return {
        "prompt": prompt,
        "chosen": t["chosen"]["text"],
        "rejected": t["rejected"],
        **metadata(t),
    }


def metadata(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": t["id"],
        "seed_id": t["seed_id"],
        "kind": t["kind"],
        "domain": t["domain"],
        "category": t["category"],
        "type": t["type"] or "",
        "strategy": t["strategy"] or "",
        "tactic": t["tactic"] or "",
        "target": t["target"],
        "responder": t["chosen"]["responder"],
    }


def run(ctx: StageContext, triplets: list[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Write the export files; return the report."""
    selected = select(ctx, triplets)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    val_seeds = validation_seeds(ctx, [t["seed_id"] for t in selected])
    for t in selected:
        splits["validation" if t["seed_id"] in val_seeds else "train"].append(t)
    (out_dir / "standard").mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        write_atomic(
            out_dir / f"{name}.jsonl", "".join(dumps(conversational(ctx, t)) + "\n" for t in rows)
        )
        write_atomic(
            out_dir / "standard" / f"{name}.jsonl",
            "".join(dumps(standard(ctx, t)) + "\n" for t in rows),
        )
    report = counts(ctx, selected, splits, len(triplets))
    from koalign.stages.card import dataset_card

    write_atomic(out_dir / "README.md", dataset_card(ctx, report))
    return report


def counts(
    ctx: StageContext, selected: list[dict[str, Any]], splits: dict[str, list], available: int
) -> dict[str, Any]:
    tax = ctx.locale.taxonomy

    def tally(key) -> dict[str, int]:
        return dict(sorted(Counter(key(t) for t in selected).items()))

    return {
        "available": available,
        "exported": len(selected),
        "target_size": ctx.config.export.target_size,
        "splits": {k: len(v) for k, v in splits.items()},
        "by_kind": tally(lambda t: t["kind"]),
        "by_domain": {
            f"{d} {tax.domains[[x.id for x in tax.domains].index(d)].name_en}": n
            for d, n in tally(lambda t: t["domain"]).items()
        },
        "by_category": tally(lambda t: t["category"]),
        "by_type": tally(lambda t: t["type"] or f"benign:{t['category']}"),
        "by_strategy": tally(lambda t: t["strategy"] or "(none: over-refusal)"),
        "by_tactic": tally(lambda t: t["tactic"] or "(none)"),
        "by_target": tally(lambda t: t["target"]),
        "by_responder": tally(lambda t: t["chosen"]["responder"]),
    }


def load_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

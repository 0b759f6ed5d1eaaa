"""Example renderings of the pipeline's prompt templates (``koalign prompt show``)."""

from __future__ import annotations

from koalign.config import RunConfig
from koalign.errors import LocaleError, did_you_mean
from koalign.locale import Locale
from koalign.stages import REQUIRED_TEMPLATES, StageContext, attack, judge, render, respond, seeds
from koalign.types import Message


def example_context(loc: Locale) -> StageContext:
    config = RunConfig.model_validate(
        {
            "locale": str(loc.path),
            "models": {"m": {"backend": "scripted", "model": "m", "options": {"responses": ["-"]}}},
            "roles": {
                r: "m"
                for r in (
                    "seed_generator",
                    "attacker",
                    "harm_judge",
                    "query_judge",
                    "response_judge",
                )
            }
            | {"targets": ["m"], "responders": ["m"]},
        }
    )
    return StageContext(config=config, locale=loc, caller=None, roles=config.roles.resolved())


def render_example(loc: Locale, role: str, category: str) -> tuple[Message, ...]:
    """Render ``role``'s template for ``category`` with values taken from the locale pack."""
    if role not in REQUIRED_TEMPLATES:
        raise LocaleError(
            f"unknown pipeline role '{role}'{did_you_mean(role, REQUIRED_TEMPLATES)}",
            hint=f"roles: {', '.join(REQUIRED_TEMPLATES)}",
        )
    ctx = example_context(loc)
    cat = loc.taxonomy.category(category)
    policy = loc.policy.policies[cat.id]
    example = policy.examples[0]
    domain = loc.taxonomy.domain_of(cat.id).id
    items = seeds.plan(ctx)
    harmful = next(i for i in items if i["category"] == cat.id and i["kind"] == "harmful")
    benign = next((i for i in items if i["category"] == cat.id and i.get("neighbour")), None)
    case = {
        "id": "example",
        "seed_id": harmful["id"],
        "kind": "harmful",
        "domain": domain,
        "category": cat.id,
        "type": harmful["type"],
        "prompt": example.prompt,
        "seed_prompt": example.prompt,
        "rejected": "(대상 모델의 유해한 응답)",
        "chosen": {"text": example.answer, "responder": "m"},
    }
    if role == "seed_generator":
        return seeds.build_prompt(ctx, harmful)
    if role == "benign_generator":
        item = benign or {**harmful, "kind": "benign", "neighbour": policy.does_not_apply[0]}
        return seeds.build_prompt(ctx, item)
    if role == "attacker":
        strategy, _ = attack.schedule(ctx, harmful["id"], 0)
        tactic = loc.tactics.tactics[0].id if loc.tactics.tactics else None
        return attack.build_attack_prompt(ctx, case, strategy, tactic, None)
    if role == "refusal_writer":
        return render(loc, "refusal_writer", prompt=policy.benign_prompts[0], category=cat)
    if role == "harm_judge":
        return attack.build_judge_prompt(
            ctx, cat.id, example.prompt, "(대상 모델의 응답)", "harmful"
        )
    if role == "query_judge":
        return respond.build_query_prompt(ctx, case)
    if role == "responder":
        return respond.build_responder_prompt(ctx, case)
    if role == "response_judge":
        return respond.build_response_judge_prompt(ctx, case, example.answer)
    return judge.build_prompt(ctx, case)

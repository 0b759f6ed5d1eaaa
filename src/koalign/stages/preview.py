"""Example renderings of the pipeline's prompt templates (``koalign prompt show``) and the
longest prompt of each role (the context-window check before a run)."""

from __future__ import annotations

from typing import Any

from koalign.errors import LocaleError, did_you_mean
from koalign.locale import Locale
from koalign.stages import attack, judge, respond, seeds
from koalign.stages.attack import Case
from koalign.stages.base import StageContext, all_templates
from koalign.stages.respond import Chosen, Triplet
from koalign.types import Message


def example_context(loc: Locale, config: Any = None) -> StageContext:
    """A context over ``loc`` with a placeholder model in every role (no call is ever made)."""
    from koalign.config import load_config
    from koalign.stages.base import all_roles

    if config is None:
        roles: dict[str, Any] = {
            r.name: (["m"] if r.many else "m") for r in all_roles().values() if r.default is None
        }
        config = load_config(
            None,
            data={
                "locale": str(loc.path),
                "models": {
                    "m": {"backend": "scripted", "model": "m", "options": {"responses": ["-"]}}
                },
                "roles": roles,
            },
        )
    return StageContext(config=config, locale=loc, roles=config.roles.resolved())


def example_case(ctx: StageContext, category: str, *, longest: bool = False) -> Triplet:
    """A triplet of ``category`` built from the policy's first worked example. ``longest``
    (the context-window check): a short placeholder for every generated text (prompt,
    rejected, chosen), whose size the check adds from the writers' ``max_tokens``."""
    loc = ctx.locale
    cat = loc.taxonomy.category(category)
    examples = loc.policy.policies[cat.id].examples
    example = examples[0]
    prompt, answer = example.prompt, example.answer
    if longest:
        prompt = answer = "(생성된 텍스트)"
    harmful = seeds.harmful_item(ctx, cat.types[0].id, 0)
    return Triplet(
        id="example",
        seed_id=harmful.id,
        kind="harmful",
        domain=loc.taxonomy.domain_of(cat.id).id,
        category=cat.id,
        type=harmful.type,
        prompt=prompt,
        rejected="(대상 모델의 유해한 응답)",
        target="m",
        synthetic=False,
        round=1,
        strategy=None,
        tactic=None,
        harm_score=5,
        chosen=Chosen(responder="m", text=answer, safety=5, coherence=5, reason="-"),
    )


def _chars(messages: tuple[Message, ...]) -> int:
    return sum(len(m.content) for m in messages)


def render_example(
    loc: Locale,
    role: str,
    category: str,
    *,
    ctx: StageContext | None = None,
    longest: bool = False,
) -> tuple[Message, ...]:
    """Render ``role``'s template for ``category`` with values taken from the locale pack."""
    roles = all_templates()
    if role not in roles:
        raise LocaleError(
            f"unknown pipeline role '{role}'{did_you_mean(role, roles)}",
            hint=f"roles: {', '.join(roles)}",
        )
    ctx = ctx or example_context(loc)
    cat = loc.taxonomy.category(category)
    policy = loc.policy.policies[cat.id]
    t = example_case(ctx, cat.id, longest=longest)
    case = Case(**t.model_dump(exclude={"chosen"}))
    harmful = seeds.harmful_item(ctx, cat.types[0].id, 0)
    if role == "seed_generator":
        if longest:  # the type with the most slot text
            items = [seeds.harmful_item(ctx, t.id, 0) for t in cat.types]
            return max((seeds.build_prompt(ctx, i) for i in items), key=_chars)
        return seeds.build_prompt(ctx, harmful)
    if role == "benign_generator":
        item = seeds.benign_item(ctx, cat.id, len(policy.benign_prompts))
        return seeds.build_prompt(ctx, item)
    if role == "attacker":
        strategy, _ = attack.schedule(ctx, harmful.id, 0)
        tactic = loc.tactics.tactics[0].id if loc.tactics.tactics else None
        seed = seeds.Seed(
            id=harmful.id,
            kind="harmful",
            domain=harmful.domain,
            category=cat.id,
            type=harmful.type,
            index=0,
            prompt=t.prompt,
            variation=harmful.variation,
            source="generated",
        )
        return attack.build_attack_prompt(ctx, seed, strategy, tactic, None)
    if role == "refusal_writer":
        return ctx.render("refusal_writer", prompt=policy.benign_prompts[0], category=cat)
    if role == "harm_judge":
        return attack.build_judge_prompt(ctx, cat.id, t.prompt, "(대상 모델의 응답)", "harmful")
    if role == "query_judge":
        return respond.build_query_prompt(ctx, case)
    if role == "responder":
        return respond.build_responder_prompt(ctx, case)
    if role == "response_judge":
        return respond.build_response_judge_prompt(ctx, case, t.chosen.text)
    return judge.build_prompt(ctx, t)

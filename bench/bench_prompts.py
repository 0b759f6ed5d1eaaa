"""Benchmark: CPU cost of rendering a prompt in the sandbox, against plain jinja2.

Renders the bundled ``ko`` pack's ``responder`` template (the largest: the whole category
policy) for every category, ``--n`` times each, three ways, and prints one JSON line with the
best-of-5 CPU milliseconds per rendering:

* ``plain_jinja2``: ``jinja2.Environment`` (what koalign used before the sandbox);
* ``jinja2_sandbox``: ``jinja2.sandbox.ImmutableSandboxedEnvironment`` alone;
* ``koalign``: :func:`koalign.prompts.render_chat` (sandbox, plain-data conversion, bounds).

It also gives ``koalign_response_judge``: the ``response_judge`` template, as the respond stage
renders it (the category's policy and its frozen rubric, a prompt, and an answer that differs at
every rendering, as a run's answers do), in CPU milliseconds per rendering.

    python bench/bench_prompts.py --n 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Callable

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from koalign.locale import load_locale
from koalign.policy import resolved_policy
from koalign.prompts import freeze, render_chat


def best_ms(fn: Callable[[], object], n: int) -> float:
    """Best of 5 rounds of ``n`` calls, in CPU milliseconds per call."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return round(best * 1000, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="renderings per category and round")
    args = parser.parse_args()
    loc = load_locale("ko")
    policies = [resolved_policy(loc, c.id) for c in loc.taxonomy.categories]
    text = loc.prompts["responder"]
    options = {"undefined": jinja2.StrictUndefined, "trim_blocks": True, "lstrip_blocks": True}
    results = {}
    for name, env in (
        ("plain_jinja2", jinja2.Environment(**options)),
        ("jinja2_sandbox", ImmutableSandboxedEnvironment(**options)),
    ):
        template = env.from_string(text)

        def render(template: jinja2.Template = template) -> None:
            for policy in policies:
                ctx = template.new_context({"locale": loc, "policy": policy, "prompt": "질문"})
                for block in template.blocks.values():
                    "".join(block(ctx))

        results[name] = best_ms(render, args.n) / len(policies)

    def sandboxed() -> None:
        for policy in policies:
            render_chat(loc, "responder", policy=policy, prompt="질문", kind="harmful")

    results["koalign"] = best_ms(sandboxed, args.n) / len(policies)

    rubrics = [freeze(loc.rubric.categories.get(c.id, [])) for c in loc.taxonomy.categories]
    answers = (f"답변 {i}: " + "관련 법령과 기관을 안내합니다. " * 20 for i in itertools.count())

    def response_judge() -> None:
        for policy, rubric in zip(policies, rubrics, strict=True):
            render_chat(
                loc,
                "response_judge",
                policy=policy,
                rubric=rubric,
                prompt="질문",
                answer=next(answers),
                kind="harmful",
            )

    results["koalign_response_judge"] = best_ms(response_judge, args.n) / len(policies)
    print(
        json.dumps(
            {
                "template": "ko/prompts/responder.j2",
                "categories": len(policies),
                "cpu_ms_per_render": {k: round(v, 4) for k, v in results.items()},
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()

"""Rendering every prompt template of a locale pack with example values (``koalign locale check``).

Parsing a template finds syntax errors only; a template that reads a value it is not given
(``{{ policy.no_such_field }}``) or that the sandbox refuses (``{{ "".__class__ }}``) parses
fine and fails when it is rendered. :func:`template_problems` renders each template the way
its users do, through the same builders and the same sandbox
(:func:`koalign.prompts.render_chat`, strict about undefined values):

* the pipeline's templates (``seed_generator`` ... ``filter_judge``) with the example values
  of ``koalign prompt show`` (:func:`koalign.stages.preview.render_example`), for every
  category, both as shown and as the context-window check renders them, and, where the
  template is given the seed's kind, for harmful and benign prompts;
* the evaluation templates (``safety_judge``, ``refusal_judge``, ``mc_answer``,
  ``mtbench_judge``, ``acceptability_judge``, ``bias_judge``) through the request builders of
  ``koalign eval``, for every category and for rows without one.

:func:`evaluation_example` renders one evaluation template the same way for
``koalign prompt show`` (``safety_judge`` and ``refusal_judge`` for a given category).

Only the branches these values take are exercised: a ``{% if %}`` that no example reaches is
parsed, not rendered. A template no stage or evaluation renders is only parsed (a note says so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from koalign.errors import KoalignError, LocaleError
from koalign.locale import Locale
from koalign.types import Message

__all__ = ["EVALUATION_TEMPLATES", "TemplateProblem", "evaluation_example", "template_problems"]

#: The templates ``koalign eval`` renders (the pipeline's are ``stages.base.all_templates()``).
EVALUATION_TEMPLATES = (
    "safety_judge",
    "refusal_judge",
    "mc_answer",
    "mtbench_judge",
    "acceptability_judge",
    "bias_judge",
)

_FIX = (
    "fix the template, then `koalign prompt show {role} --category {cat} --locale {loc}` "
    "renders it as the pipeline does"
)
_FIX_EVAL = "fix the template (see docs/locale-format.md for the values each template is given)"


@dataclass(frozen=True)
class TemplateProblem:
    """One template that fails to render: ``where`` is ``prompts/<role>.j2[:line]``."""

    template: str
    where: str
    message: str
    uses: str
    hint: str

    def render(self) -> str:
        """``prompts/x.j2:3: message (rendered for ...; hint)``."""
        return f"{self.where}: {self.message} (rendered for {self.uses}; {self.hint})"


Render = Callable[[], Any]


def _pipeline_cases(loc: Locale) -> Iterator[tuple[str, str, str, Render]]:
    """``(template, uses, category, render)`` for each pipeline rendering to try."""
    from koalign.stages import attack, respond
    from koalign.stages.attack import Case
    from koalign.stages.base import all_templates
    from koalign.stages.preview import example_case, example_context, render_example

    ctx = example_context(loc)
    for role in all_templates():
        if role not in loc.prompts:
            continue
        for cat in (c.id for c in loc.taxonomy.categories):
            for longest in (False, True):
                uses = f"category {cat}" + (", longest prompt" if longest else "")
                yield (
                    role,
                    uses,
                    cat,
                    partial(render_example, loc, role, cat, ctx=ctx, longest=longest),
                )
            if role in ("responder", "response_judge", "query_judge", "harm_judge"):
                t = example_case(ctx, cat)
                case = Case(**t.model_dump(exclude={"chosen"}, mode="python") | {"kind": "benign"})
                builders: dict[str, Render] = {
                    "responder": partial(respond.build_responder_prompt, ctx, case),
                    "response_judge": partial(
                        respond.build_response_judge_prompt, ctx, case, t.chosen.text
                    ),
                    "query_judge": partial(respond.build_query_prompt, ctx, case),
                    "harm_judge": partial(
                        attack.build_judge_prompt,
                        ctx,
                        cat,
                        case.prompt,
                        "(대상 모델의 응답)",
                        "benign",
                    ),
                }
                yield role, f"category {cat}, a benign prompt", cat, builders[role]


def _evaluation_cases(loc: Locale) -> Iterator[tuple[str, str, Render]]:
    """``(template, uses, render)`` for each evaluation rendering to try."""
    from koalign.evaluate import calibration, general, mtbench, overrefusal, safety
    from koalign.evaluate.categories import CategoryResolver
    from koalign.evaluate.data import EvalItem, MCItem

    cats: list[str | None] = [c.id for c in loc.taxonomy.categories]
    cats.append(None)
    for cid in cats:
        item = EvalItem(id="example", prompt="(질문)", category=cid, source="example")
        uses = f"category {cid}" if cid else "a row without a category"
        yield "safety_judge", uses, partial(safety.judge_request, loc, item, "(답변)")
        yield "refusal_judge", uses, partial(overrefusal.judge_request, loc, item, "(답변)")
    mc = MCItem(id="example", question="(질문)", choices=["가", "나"], answer_index=0, source="x")
    yield "mc_answer", "a multiple-choice question", partial(general.mc_request, loc, mc)
    one = mtbench.MTQuestion(id="example", category="writing", turns=["(질문)"])
    two = mtbench.MTQuestion(
        id="example", category="math", turns=["(질문 1)", "(질문 2)"], reference=["1", "2"]
    )
    yield "mtbench_judge", "turn 1", partial(mtbench.judge_request, loc, one, 0, ["(답변)"])
    yield (
        "mtbench_judge",
        "turn 2 with a reference answer",
        partial(mtbench.judge_request, loc, two, 1, ["(답변 1)", "(답변 2)"]),
    )
    resolver = CategoryResolver(loc.taxonomy)
    for name in ("acceptability", "bias"):
        task = calibration.TASKS[name]
        row = calibration.CalItem(
            id="example", prompt="(질문)", context="(맥락)", response="(응답)",
            group="(집단)", category=None, human=False,
        )  # fmt: skip
        yield (
            str(task.template),
            f"`koalign eval judge --task {name}`",
            partial(calibration.judge_request, loc, task, row, resolver),
        )


def evaluation_example(loc: Locale, template: str, category: str | None) -> tuple[Message, ...]:
    """One evaluation template rendered through ``koalign eval``'s request builder with the
    example values :func:`template_problems` uses: for ``category`` where the template is given
    one (``safety_judge``, ``refusal_judge``; ``None``: a row without a category), else its
    first example (``mtbench_judge``: turn 1).

    Raises:
        LocaleError: ``template`` is not an evaluation template, or ``category`` is not in the
            taxonomy; the template's own render errors as they are.
    """
    if template not in EVALUATION_TEMPLATES:
        from koalign.errors import did_you_mean

        raise LocaleError(
            f"unknown evaluation template '{template}'{did_you_mean(template, EVALUATION_TEMPLATES)}",
            hint=f"evaluation templates: {', '.join(EVALUATION_TEMPLATES)}",
        )
    by_category = template in ("safety_judge", "refusal_judge")
    if by_category and category is not None:
        category = loc.taxonomy.category(category).id  # unknown ids: the taxonomy's error
    wanted = f"category {category}" if category else "a row without a category"
    for name, uses, render in _evaluation_cases(loc):
        if name == template and (not by_category or uses == wanted):
            return tuple(render().messages)
    raise LocaleError(f"no example for prompts/{template}.j2")  # pragma: no cover


def template_problems(loc: Locale) -> tuple[list[TemplateProblem], list[str]]:
    """Render every template of ``loc`` as its users do (see the module docstring).

    Returns ``(problems, notes)``: one problem per template (its first failing rendering), and
    a note for each template that no stage or evaluation renders.
    """
    problems: dict[str, TemplateProblem] = {}
    rendered: set[str] = set()

    def attempt(template: str, uses: str, render: Render, hint: str) -> None:
        if template in problems:
            return
        rendered.add(template)
        try:
            render()
        except KoalignError as exc:
            if exc.where and exc.where.startswith(f"prompts/{template}.j2"):
                where, message = exc.where, exc.message
                hint = f"{exc.hint}; {hint}" if exc.hint else hint
            else:  # not the template's fault, e.g. a policy without a worked example
                where, message = f"prompts/{template}.j2", exc.render()
            problems[template] = TemplateProblem(template, where, message, uses, hint)

    for template, uses, cat, render in _pipeline_cases(loc):
        fix = _FIX.format(role=template, cat=cat, loc=loc.path)
        attempt(template, uses, render, fix)
    for template, uses, render in _evaluation_cases(loc):
        if template in loc.prompts:
            attempt(template, uses, render, _FIX_EVAL)
    notes = [
        f"prompts/{name}.j2: no stage or evaluation renders this template; only its syntax "
        "was checked"
        for name in sorted(loc.prompts)
        if name not in rendered
    ]
    return list(problems.values()), notes

"""`koalign prompt show`: pipeline roles and the evaluation templates, as their users render them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from koalign.cli import app
from koalign.errors import LocaleError
from koalign.evaluate import overrefusal, safety
from koalign.evaluate.data import EvalItem
from koalign.locale import load_locale
from koalign.template_check import EVALUATION_TEMPLATES

runner = CliRunner()


def _show(*args: str) -> list[dict[str, str]]:
    result = runner.invoke(app, ["prompt", "show", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("template", EVALUATION_TEMPLATES)
def test_every_evaluation_template_renders(template):
    messages = _show(template)
    assert messages and all(m["content"].strip() for m in messages)
    assert messages[-1]["role"] == "user"


@pytest.mark.parametrize("template, build", [
    ("safety_judge", safety.judge_request), ("refusal_judge", overrefusal.judge_request),
])  # fmt: skip
def test_judge_templates_render_as_koalign_eval_builds_them_for_the_category(template, build):
    loc = load_locale("ko")
    item = EvalItem(id="example", prompt="(질문)", category="B", source="example")
    expected = [m.model_dump() for m in build(loc, item, "(답변)").messages]
    assert _show(template, "--category", "b") == expected
    assert _show(template, "--category", "B") != _show(template, "--category", "A")


def test_unknown_template_names_every_accepted_name():
    result = runner.invoke(app, ["prompt", "show", "refusl_judge"])
    assert isinstance(result.exception, LocaleError)
    text = result.exception.render()
    assert "unknown template 'refusl_judge' (did you mean 'refusal_judge'?)" in text
    assert "pipeline roles: seed_generator," in text and "responder" in text
    assert "evaluation templates: " + ", ".join(EVALUATION_TEMPLATES) in text

"""`koalign locale check` renders every prompt template as its users do: a template that parses
but fails at run time (sandbox refusal, a missing field, a failure on one branch) fails the check,
named with its file and line, exactly where `prompt show` and the pipeline fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from koalign.errors import LocaleError
from koalign.locale import load_locale, locale_dir
from koalign.stages.preview import render_example
from koalign.template_check import template_problems


def koalign(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "koalign", *args], capture_output=True, text=True, timeout=120
    )


def ko_copy(tmp_path: Path, template: str, line: str) -> tuple[Path, int]:
    """A copy of the Korean pack with ``line`` inserted after the first ``{% block`` line of a
    template, and the number of the inserted line."""
    copy = tmp_path / "ko"
    shutil.copytree(locale_dir("ko"), copy)
    path = copy / "prompts" / f"{template}.j2"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, x in enumerate(lines) if x.startswith("{% block")) + 1
    lines.insert(at, line + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return copy, at + 1


def test_the_shipped_pack_renders_cleanly() -> None:
    problems, notes = template_problems(load_locale("ko"))
    assert problems == [] and notes == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{{ "".__class__ }}', "template refused by the sandbox: access to attribute '__class__'"),
        ("{{ policy.no_such_field }}", "no field 'no_such_field'"),
        ("{{ policy.principle }}", "(did you mean 'principles'?)"),
    ],
)
def test_locale_check_fails_where_prompt_show_fails(
    tmp_path: Path, line: str, message: str
) -> None:
    copy, n = ko_copy(tmp_path, "responder", line)
    with pytest.raises(LocaleError) as info:  # the pipeline's own rendering refuses it
        render_example(load_locale(str(copy)), "responder", "A")
    assert info.value.where == f"prompts/responder.j2:{n}"
    for strict in ([], ["--strict"]):
        res = koalign("locale", "check", "--locale", str(copy), *strict)
        assert res.returncode == 1, res.stdout
        assert "Traceback" not in res.stderr
        assert "ok locale" not in res.stdout
        assert "1 prompt templates fail to render" in res.stderr
        assert f"prompts/responder.j2:{n}: " in res.stderr and message in res.stderr
        assert f"koalign prompt show responder --category A --locale {copy}" in res.stderr


def test_a_branch_taken_only_for_benign_prompts_is_rendered(tmp_path: Path) -> None:
    copy, n = ko_copy(
        tmp_path, "response_judge", "{% if kind == 'benign' %}{{ policy.nope }}{% endif %}"
    )
    loc = load_locale(str(copy))
    render_example(loc, "response_judge", "A")  # the example shown is harmful: renders
    problems, _ = template_problems(loc)
    assert [(p.where, p.uses) for p in problems] == [
        (f"prompts/response_judge.j2:{n}", "category A, a benign prompt")
    ]


def test_a_category_other_than_the_first_is_rendered(tmp_path: Path) -> None:
    copy, n = ko_copy(tmp_path, "harm_judge", "{% if category.id == 'L' %}{{ 1 / 0 }}{% endif %}")
    problems, _ = template_problems(load_locale(str(copy)))
    assert [(p.where, p.uses) for p in problems] == [(f"prompts/harm_judge.j2:{n}", "category L")]
    assert "ZeroDivisionError" in problems[0].message


@pytest.mark.parametrize(
    ("template", "uses"),
    [
        ("safety_judge", "category A"),
        ("refusal_judge", "category A"),
        ("mc_answer", "a multiple-choice question"),
        ("mtbench_judge", "turn 1"),
        ("acceptability_judge", "`koalign eval judge --task acceptability`"),
        ("bias_judge", "`koalign eval judge --task bias`"),
    ],
)
def test_evaluation_templates_are_rendered(tmp_path: Path, template: str, uses: str) -> None:
    copy, n = ko_copy(tmp_path, template, "{{ no_such_value }}")
    problems, _ = template_problems(load_locale(str(copy)))
    assert [(p.where, p.uses) for p in problems] == [(f"prompts/{template}.j2:{n}", uses)]
    assert "'no_such_value' is undefined" in problems[0].message


def test_a_template_no_one_renders_is_noted(mini_locale_dir: Path) -> None:
    problems, notes = template_problems(load_locale(str(mini_locale_dir)))
    assert problems == []
    assert notes == [
        "prompts/echo.j2: no stage or evaluation renders this template; only its syntax was checked"
    ]

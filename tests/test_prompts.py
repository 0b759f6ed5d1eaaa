"""Prompt templates run in a sandbox: public jinja2 escape payloads and resource bombs fail
cleanly, naming the template; the shipped templates render exactly as plain jinja2 renders them."""

from __future__ import annotations

import os
import time
from datetime import date
from enum import Enum
from pathlib import Path

import jinja2
import pytest
from pydantic import BaseModel, ConfigDict

from koalign.errors import LocaleError
from koalign.locale import Locale, load_locale
from koalign.policy import resolved_policy
from koalign.prompts import freeze, plain, render_chat

SECRET = "koalign-test-sentinel-4f1c"

#: Public sandbox-escape payloads (PayloadsAllTheThings "Jinja2" SSTI list, HackTricks,
#: the jinja2 sandbox docs) and resource bombs. Every one must fail with a LocaleError.
ESCAPES = {
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "subclasses_base": "{{ ''.__class__.__base__.__subclasses__() }}",
    "cycler_globals": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner_globals": "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "namespace_globals": "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "lipsum_globals": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "lipsum_bomb": "{{ lipsum(10**6) }}",
    "self_context": "{{ self._TemplateReference__context }}",
    "self_context_attr": "{{ self|attr('_TemplateReference__context') }}",
    "config": "{{ config.items() }}",
    "request": "{{ request.application.__globals__.__builtins__ }}",
    "url_for": "{{ url_for.__globals__.os.environ }}",
    "get_flashed": "{{ get_flashed_messages.__globals__ }}",
    "locale_globals": "{{ locale.__class__.__init__.__globals__ }}",
    "value_class": "{{ text.__class__ }}",
    "dict_class": "{{ locale.meta.__class__.__mro__ }}",
    "attr_filter": "{{ text|attr('__class__')|attr('__mro__') }}",
    "attr_hex": "{{ text|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "getitem_dunder": "{{ text['__class__'] }}",
    "format_attr": "{{ '{0.__class__}'.format(text) }}",
    "format_map": "{{ '{0.__class__.__base__.__subclasses__}'.format_map({'0': text}) }}",
    "format_filter": "{{ '%s'|format(text.__class__) }}",
    "dict_update": "{% set _ = locale.update({'x': 1}) %}",
    "list_append": "{% set _ = locale.meta.script_ranges.append([0, 1]) %}",
    "set_attr": "{% set locale.meta = 1 %}",
    "include": "{% include '/etc/passwd' %}",
    "import": "{% import 'os' as os %}{{ os }}",
    "extends": "{% extends '/etc/passwd' %}",
    "env_var": "{{ environ }}",
    "range_bomb": "{{ range(10**9)|list|length }}",
    "range_huge": "{{ range(10**30) }}",
    "str_repeat": "{{ 'a' * 10**9 }}",
    "list_repeat": "{{ ([1] * 10**8)|length }}",
    "pow_bomb": "{{ 9 ** 999999 }}",
    "concat_doubling": "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}"
    "{{ d('ab', 40) }}",
    "plus_doubling": "{% set s = 'a' * 999999 %}{{ (s + s)|length }}",
    "replace_square": "{% set s = 'a' * 1000 %}{% set t = s|replace('a', s) %}"
    "{{ t|replace('a', t) }}",
    "method_replace": "{% set s = 'a' * 1000 %}{{ s.replace('a', s).replace('a', s) }}",
    "center": "{{ text|center(10**9) }}",
    "ljust": "{{ text.ljust(10**9) }}",
    "percent_width": "{{ '%999999999s' % text }}",
    "format_width": "{{ '{:>999999999}'.format(text) }}",
    "join_bomb": "{% set s = 'a' * 999999 %}{{ [s, s, s]|join }}",
    "map_center": "{% set s = 'a' * 1000 %}{{ s|list|map('center', 900000)|join }}",
    "nested_loops": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
    "{% endfor %}",
    "nested_list_loops": "{% set l = [1] * 1000 %}{% for a in l %}{% for b in l %}"
    "{% endfor %}{% endfor %}",
    "output_bomb": "{% set s = 'a' * 900000 %}{% for i in range(100) %}{{ s }}{% endfor %}",
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "int_squaring": "{% set ns=namespace(x=999999) %}{% for i in range(25) %}"
    "{% set ns.x = ns.x*ns.x %}{% endfor %}{{ ns.x > 5 }}",
    "int_plus_doubling": "{% set ns=namespace(x=1) %}{% for i in range(10000) %}"
    "{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x > 5 }}",
    "int_minus_doubling": "{% set ns=namespace(x=1) %}{% for i in range(10000) %}"
    "{% set ns.x = ns.x - 3 * ns.x %}{% endfor %}{{ ns.x > 5 }}",
    "int_big_literals": "{{ (" + "9" * 4000 + " * " + "7" * 4000 + ") > 5 }}",
    "int_big_floordiv": "{{ (" + "9" * 4000 + " // 3) > 5 }}",
}


@pytest.fixture(scope="module")
def ko() -> Locale:
    return load_locale("ko")


def with_template(loc: Locale, text: str, role: str = "evil") -> Locale:
    body = text if "{% block user %}" in text else "{% block user %}" + text + "{% endblock %}"
    return loc.model_copy(update={"prompts": {**loc.prompts, role: body}})


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_payloads_fail_naming_the_template(
    ko: Locale, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOALIGN_SENTINEL", SECRET)
    loc = with_template(ko, "line one\n" + ESCAPES[name])
    started = time.perf_counter()
    with pytest.raises(LocaleError) as info:
        render_chat(loc, "evil", text="hello")
    assert time.perf_counter() - started < 1.0, name
    err = info.value
    assert err.where is not None and err.where.startswith("prompts/evil.j2"), (name, err.render())
    assert SECRET not in err.render()
    assert "Traceback" not in err.render()


def test_sandbox_refusals_say_so(ko: Locale) -> None:
    with pytest.raises(LocaleError, match="refused by the sandbox") as info:
        render_chat(with_template(ko, ESCAPES["subclasses"]), "evil", text="x")
    assert info.value.hint is not None and "docs/security.md" in info.value.hint
    with pytest.raises(LocaleError, match="limit of 1,000,000"):
        render_chat(with_template(ko, ESCAPES["str_repeat"]), "evil", text="x")
    with pytest.raises(LocaleError, match="loop iterations"):
        render_chat(with_template(ko, ESCAPES["nested_loops"]), "evil", text="x")
    with pytest.raises(LocaleError, match="'config' is undefined"):
        render_chat(with_template(ko, ESCAPES["config"]), "evil", text="x")


def test_the_same_payloads_escape_plain_jinja2() -> None:
    """The payloads are real: a plain jinja2.Environment (what koalign used before) runs them."""
    env = jinja2.Environment()
    out = env.from_string(ESCAPES["subclasses"]).render()
    assert "subprocess.Popen" in out or "class" in out
    globals_ = env.from_string("{{ cycler.__init__.__globals__.os.environ }}").render()
    assert "PATH" in globals_


def test_templates_see_no_environment(ko: Locale, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOALIGN_SENTINEL", SECRET)
    probe = "{{ locale }}{{ text }}{{ range(3)|list }}{{ dict(a=1) }}"
    (message,) = render_chat(with_template(ko, probe), "evil", text="hello")
    assert SECRET not in message.content
    assert os.environ["KOALIGN_SENTINEL"] == SECRET


def test_ordinary_template_features_still_work(ko: Locale) -> None:
    text = (
        "{% set ns = namespace(n=0) %}{% for x in items %}{% set ns.n = ns.n + x %}{% endfor %}"
        "{{ ns.n }}|{{ items|join(',') }}|{{ 'a' ~ 'b' }}|{{ '%s-%d' % ('k', 3) }}|"
        "{{ '{}!'.format(word) }}|{{ word|replace('o', '0') }}|{{ d.get('k') }}|{{ d.items }}|"
        "{% for i in range(2) %}{{ loop.index }}{% endfor %}|{{ missing|default('-') }}"
    )
    (message,) = render_chat(
        with_template(ko, text), "evil", items=[1, 2, 3], word="foo", d={"k": "v", "items": "I"}
    )
    assert message.content == "6|1,2,3|ab|k-3|foo!|f00|v|I|12|-"


def test_shipped_templates_render_as_plain_jinja2_renders_them(ko: Locale) -> None:
    reference = jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    for category in ko.taxonomy.categories:
        policy = resolved_policy(ko, category.id)
        htype = category.types[0]
        contexts = {
            "responder": {"policy": policy, "prompt": "질문", "kind": "harmful"},
            "seed_generator": {
                "category": category,
                "type": htype,
                "domain": ko.taxonomy.domain_of(category.id),
                "slots": [
                    {
                        "id": s.id,
                        "name": s.name,
                        "description": s.description,
                        "required": s.required,
                        "suggestion": "예시",
                        "examples": htype.slot_examples.get(s.id, []),
                    }
                    for s in category.slots_for(htype)
                ],
                "variation": {
                    "age_group": "20대",
                    "region": None,
                    "occupation": "학생",
                    "register": "반말",
                    "length": "짧게",
                },
            },
            "response_judge": {
                "policy": policy,
                "rubric": freeze(ko.rubric.categories[category.id]),
                "prompt": "질문",
                "answer": "답",
                "kind": "benign",
            },
            "harm_judge": {
                "category": category,
                "rubric": freeze(ko.rubric.categories[category.id]),
                "general": freeze(ko.rubric.general),
                "prompt": "질문",
                "answer": "답",
                "kind": "harmful",
            },
        }
        for _ in range(2):  # the second time, the included blocks come from the cache
            for role, context in contexts.items():
                template = reference.from_string(ko.prompts[role])
                ctx = template.new_context({"locale": ko, **context})
                expected = [
                    "".join(template.blocks[n](ctx)).strip()
                    for n in ("system", "user")
                    if n in template.blocks
                ]
                got = render_chat(ko, role, **context)
                assert [m.content for m in got] == [v for v in expected if v], role


def test_template_errors_name_the_line(ko: Locale) -> None:
    loc = with_template(ko, "{% block user %}\nfine\n{{ 1 / 0 }}\n{% endblock %}")
    with pytest.raises(LocaleError) as info:
        render_chat(loc, "evil")
    assert info.value.where == "prompts/evil.j2:3"
    assert "ZeroDivisionError" in info.value.message
    with pytest.raises(LocaleError) as info:
        render_chat(with_template(ko, "{% block user %}{{ x {% endblock %}"), "evil")
    assert info.value.where == "prompts/evil.j2:1" and "syntax" in info.value.message


class _Kind(Enum):
    A = "a"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    when: date
    kind: _Kind
    tags: tuple[str, ...] = ()

    @property
    def shout(self) -> str:
        return self.name.upper()


def test_plain_converts_models_and_refuses_objects() -> None:
    model = _Frozen(name="a", when=date(2026, 1, 2), kind=_Kind.A, tags=("x",))
    out = plain({"m": model, "p": Path("/tmp/x"), "s": {2, 1}})
    assert out == {
        "m": {"name": "a", "when": "2026-01-02", "kind": "a", "tags": ["x"], "shout": "A"},
        "p": "/tmp/x",
        "s": [1, 2],
    }
    assert plain(model) is plain(model)  # frozen models are converted once
    data = {"a": [1, {"b": "c"}]}
    assert plain(data) is data  # already plain: passed as is (the sandbox is immutable)
    with pytest.raises(TypeError, match=r"prompt value ctx\.a\[1\]\.f is a function"):
        plain({"a": [1, {"f": lambda: 0}]}, where="ctx")
    with pytest.raises(TypeError, match="is a module"):
        plain(os)


def test_render_chat_refuses_non_data_values(ko: Locale) -> None:
    with pytest.raises(TypeError, match="prompt value text is a function"):
        render_chat(with_template(ko, "{{ text }}"), "evil", text=os.getenv)


def test_a_block_of_frozen_values_is_rendered_once_and_keyed_by_its_values():
    from koalign.locale import load_locale
    from koalign.policy import resolved_policy
    from koalign.prompts import _BLOCK_CACHE, render_chat

    loc = load_locale("ko")
    g = resolved_policy(loc, "G")
    a = resolved_policy(loc, "A")
    assert resolved_policy(loc, "G") is g  # one shared, frozen object per view
    first = render_chat(loc, "responder", policy=g, prompt="질문 하나", kind="harmful")
    cached = len(_BLOCK_CACHE)
    second = render_chat(loc, "responder", policy=g, prompt="질문 둘", kind="harmful")
    assert len(_BLOCK_CACHE) == cached  # the system block came from the cache
    assert second[0] == first[0] and second[1].content == "질문 둘"
    # one copy of the shared system prompt, however many requests hold it
    assert second[0].content is first[0].content
    other = render_chat(loc, "responder", policy=a, prompt="질문 둘", kind="harmful")
    assert other[0].content != first[0].content  # another policy, another system prompt
    # a plain dict that is not frozen is never cached: a changed value shows up
    mutable = dict(g)
    mutable["name_ko"] = "바뀐 이름"
    changed = render_chat(loc, "responder", policy=mutable, prompt="질문", kind="harmful")
    assert "바뀐 이름" in changed[0].content


def test_a_block_the_user_block_includes_is_rendered_once_per_frozen_value(ko: Locale) -> None:
    """A block other than system and user is text the two include (nested, or with
    ``self.name()``); when it reads only frozen values and scalars it is rendered once."""
    from koalign import prompts

    text = (
        "{% block user %}{{ prompt }}|{% block facts %}{% for x in items %}{{ x }},"
        "{% endfor %}{% endblock %}|{{ self.facts() }}{% endblock %}"
        "{% block unused %}{{ 1 / 0 }}{% endblock %}"
    )
    loc = with_template(ko, text)
    items = freeze(["가", "나"])
    (first,) = render_chat(loc, "evil", prompt="하나", items=items)
    assert first.content == "하나|가,나,|가,나,"  # the unused block is never rendered
    before = len(prompts._BLOCK_CACHE)
    (second,) = render_chat(loc, "evil", prompt="둘", items=items)
    assert second.content == "둘|가,나,|가,나," and len(prompts._BLOCK_CACHE) == before
    (other,) = render_chat(loc, "evil", prompt="둘", items=freeze(["다"]))
    assert other.content == "둘|다,|다,"
    (unfrozen,) = render_chat(loc, "evil", prompt="셋", items=["라"])
    assert unfrozen.content == "셋|라,|라,"
    # a block reading a record's long text is rendered each time and never kept: a run's
    # thousands of answers do not push the shared blocks out of the cache
    plain_user = with_template(ko, "{% block user %}{{ answer }}{{ items|length }}{% endblock %}")
    render_chat(plain_user, "evil", answer="가" * 300, items=items)
    size = len(prompts._BLOCK_CACHE)
    for i in range(20):
        (m,) = render_chat(plain_user, "evil", answer=f"{i}" + "가" * 300, items=items)
        assert m.content.endswith("가2")
    assert len(prompts._BLOCK_CACHE) == size


def test_a_missing_field_fails_naming_the_fields_and_default_still_works(ko: Locale) -> None:
    policy = resolved_policy(ko, "A")
    loc = with_template(ko, "{% block user %}\n{{ policy.principle }}\n{% endblock %}")
    with pytest.raises(LocaleError) as info:
        render_chat(loc, "evil", policy=policy)
    assert info.value.where == "prompts/evil.j2:2"
    assert "no field 'principle' (did you mean 'principles'?)" in info.value.message
    assert "default" in (info.value.hint or "")
    loc = with_template(
        ko,
        "{{ policy.nope | default('none') }} {{ policy.nope is defined }} {{ policy.get('nope') }}",
    )
    assert render_chat(loc, "evil", policy=policy)[-1].content == "none False None"

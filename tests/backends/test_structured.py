"""JSON extraction, validation and the repair loop (pure functions and the scripted backend)."""

from __future__ import annotations

from koalign.backends import ModelPool, ModelSpec
from koalign.backends.structured import (
    normalise_integers,
    schema_check,
    schema_from_text,
    schema_instruction,
    validate_json,
    with_schema_contract,
)
from koalign.extract import extract_json, json_candidates, split_reasoning
from koalign.types import ChatRequest, Message

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"enum": ["pass", "fail"]}, "score": {"type": "integer"}},
    "required": ["verdict", "score"],
}


def test_extract_json_from_fences_and_prose_the_last_value_wins():
    def value(text, **kw):
        found = extract_json(text, **kw)
        return found.value, found.found

    assert value('{"a": 1}') == ({"a": 1}, True)
    assert value('판정입니다:\n```json\n{"a": [1, 2]}\n```\n이상.') == ({"a": [1, 2]}, True)
    assert value('초안 {"a": "값"} 수정: {"b": 2}') == ({"b": 2}, True)
    assert value("[1, 2] 끝") == ([1, 2], True)
    assert value("JSON이 없습니다 {깨진") == (None, False)
    # the last value that satisfies the schema, never one copied from the prompt
    ok = lambda v: v.get("b") == 2  # noqa: E731
    assert value('{"b": 2} 그리고 {"c": 3}', is_valid=ok) == ({"b": 2}, True)
    assert value('예: {"b": 2}', is_valid=ok, prompt='예: {"b": 2}') == (None, False)


def test_split_reasoning_variants():
    assert split_reasoning("<think>a</think>b") == ("a", "b")
    assert split_reasoning("그냥 답") == (None, "그냥 답")
    assert split_reasoning("생각</think>답") == ("생각", "답")  # opened in the prompt
    assert split_reasoning("<think>끝나지 않음") == ("끝나지 않음", "")
    assert split_reasoning("[THINK]r[/THINK]ans") == ("r", "ans")
    assert split_reasoning("◁think▷r◁/think▷ans") == ("r", "ans")
    assert split_reasoning('[{"a": 1}]') == (None, '[{"a": 1}]')


def test_integral_floats_are_normalised_only_where_the_schema_wants_integers():
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer"},
            "ratio": {"type": "number"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/n"}},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "$defs": {"n": {"type": ["integer", "null"]}},
    }
    value = {"score": 4.0, "ratio": 2.0, "items": [1.0, 2.5, None], "maybe": 3.0, "x": 1.0}
    out = normalise_integers(value, schema)
    assert out == {"score": 4, "ratio": 2.0, "items": [1, 2.5, None], "maybe": 3, "x": 1.0}
    assert [type(out[k]) for k in ("score", "ratio", "maybe", "x")] == [int, float, int, float]
    assert type(out["items"][0]) is int and value["score"] == 4.0  # the input is untouched
    # through a compiled check: the same normalisation; a schema with no integer type leaves
    # the value as it is (the very object)
    assert schema_check(schema).normalise(value) == out
    floats = {"type": "object", "properties": {"ratio": {"type": "number"}}}
    assert schema_check(floats).normalise(value) is value


def test_validate_json_types_its_errors():
    assert validate_json('{"verdict": "pass", "score": 3}', SCHEMA) == (
        {"verdict": "pass", "score": 3},
        None,
    )
    _, empty = validate_json("  ", SCHEMA)
    _, parse = validate_json("안전합니다", SCHEMA)
    _, schema = validate_json('{"verdict": "maybe", "score": 3}', SCHEMA)
    assert (empty.kind, parse.kind, schema.kind) == ("empty", "parse", "schema")
    assert "verdict" in schema.message
    draft = '<think>{"verdict": "fail", "score": 1}</think>{"verdict": "pass", "score": 5.0}'
    assert validate_json(draft, SCHEMA) == ({"verdict": "pass", "score": 5}, None)


def test_schema_contract_round_trips_and_is_added_once():
    msgs = (Message(role="system", content="s"), Message(role="user", content="질문"))
    once = with_schema_contract(msgs, SCHEMA)
    assert with_schema_contract(once, SCHEMA) == once
    assert once[0] == msgs[0] and once[1].content.startswith("질문\n\n")
    assert schema_from_text(once[1].content) == SCHEMA
    assert schema_from_text(schema_instruction({"type": "array"})) == {"type": "array"}


def test_repair_turn_fixes_a_bad_answer_and_keeps_raw_text_when_it_cannot():
    answers = ["판정: 통과", '{"verdict": "pass", "score": 4}', "모름", "{}", "여전히 모름"]
    spec = ModelSpec(backend="scripted", model="s", json_repairs=1, options={"responses": answers})
    pool = ModelPool({"s": spec})
    llm = pool.get("s")
    req = ChatRequest(messages=(Message(role="user", content="판정하세요"),), json_schema=SCHEMA)
    [fixed] = llm.generate([req])
    assert fixed.ok and fixed.parsed == {"verdict": "pass", "score": 4}
    req2 = ChatRequest(messages=(Message(role="user", content="다시"),), json_schema=SCHEMA)
    [failed] = llm.generate([req2])
    assert failed.error.kind == "schema" and failed.error.attempts == 2
    assert failed.text == "{}" and failed.parsed is None
    assert llm.stats.repairs == 2 and llm.stats.calls == 4 and llm.stats.errors == 1


def test_read_answer_modes_and_outcomes():
    from koalign.backends.answers import read_answer

    a = read_answer("<think>초안</think> 최종 답", finish_reason="stop")
    assert (a.text, a.reasoning, a.raw, a.error) == (
        "최종 답",
        "초안",
        "<think>초안</think> 최종 답",
        None,
    )
    b = read_answer("답", reasoning_field="서버 추론", finish_reason="stop")
    assert (b.text, b.reasoning, b.raw, b.error) == ("답", "서버 추론", None, None)
    assert read_answer("<think>x</think>y", mode="no").text == "<think>x</think>y"
    c = read_answer("생각만 하다 끝남", mode="yes")
    assert c.text == "" and c.reasoning == "생각만 하다 끝남" and c.error.kind == "empty"
    assert (
        read_answer("생각만 하다 끝남", mode="yes", reasoning_field="r").text == "생각만 하다 끝남"
    )
    cut = read_answer('{"a": 1', finish_reason="length", max_tokens=8)
    assert cut.error.kind == "truncated" and "max_tokens=8" in cut.error.message
    assert cut.text == '{"a": 1'
    for empty in (None, "", " \n", "<think>만</think>"):
        assert read_answer(empty, finish_reason="stop").error.kind == "empty"


def test_json_candidates_skips_brackets_that_begin_no_json():
    text = '[사용자 요청] {{ slot }} { "a": [1, NaN, -Infinity] } [ ] {x} [true] {"b": {}} [-1]'
    want = [{"a": [1, float("nan"), float("-inf")]}, [], [True], {"b": {}}, [-1]]
    assert repr(json_candidates(text)) == repr(want)


def test_a_repair_turn_sends_a_broken_escape_back_as_a_replacement_character():
    from koalign.backends.structured import repair_messages
    from koalign.types import CallError, Message

    schema = {"type": "object", "properties": {"score": {"type": "integer"}}}
    bad = '{"score": "높음 \ud83d"'  # the model's answer, decoded with a lone surrogate
    error = CallError(kind="parse", message="no JSON value found in '높음 \ud83d'")
    messages = repair_messages((Message(role="user", content="평가"),), bad, error, schema)
    for m in messages:
        m.content.encode("utf-8")  # valid UTF-8: no lone surrogate is sent
    assert messages[1].content == '{"score": "높음 \ufffd"'
    assert "\ufffd" in messages[2].content

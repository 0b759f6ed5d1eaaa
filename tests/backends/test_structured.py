"""JSON extraction, validation and the repair loop (pure functions and the scripted backend)."""

from __future__ import annotations

from koalign.backends import ModelPool, ModelSpec
from koalign.backends.structured import (
    extract_json,
    schema_from_text,
    schema_instruction,
    validate_json,
    with_schema_contract,
)
from koalign.types import ChatRequest, Message

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"enum": ["pass", "fail"]}, "score": {"type": "integer"}},
    "required": ["verdict", "score"],
}


def test_extract_json_from_fences_and_prose():
    assert extract_json('{"a": 1}') == ({"a": 1}, True)
    assert extract_json('판정입니다:\n```json\n{"a": [1, 2]}\n```\n이상.') == ({"a": [1, 2]}, True)
    assert extract_json('결과는 {"a": "값"} 입니다. {"b": 2}') == ({"a": "값"}, True)
    assert extract_json("[1, 2] 끝") == ([1, 2], True)
    assert extract_json("JSON이 없습니다 {깨진") == (None, False)


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

"""What real servers return, over a real loopback server: reasoning, truncation, empty answers,
echoed examples, integral floats, lone surrogates, and the cache keeping all of it raw."""

from __future__ import annotations

import json
import sqlite3

import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.cache import Cache
from koalign.types import ChatRequest, Message, SamplingParams

VERDICT = {
    "type": "object",
    "properties": {
        "label": {"enum": ["safe", "unsafe"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["label", "score"],
    "additionalProperties": False,
}


def spec(base_url: str, **kw) -> ModelSpec:
    base = {"max_retries": 2, "retry_backoff": 0.01, "timeout": 5.0, "json_repairs": 0}
    return ModelSpec(backend="openai", model="m", base_url=base_url, **{**base, **kw})


def req(text: str = "판정하세요", **kw) -> ChatRequest:
    return ChatRequest(messages=(Message(role="user", content=text),), **kw)


def run(srv, requests, *, cache=None, **kw):
    pool = ModelPool({"m": spec(srv.base_url, **kw)}, cache_path=cache)
    llm = pool.get("m")
    results = llm.generate(requests)
    pool.close()
    return results, llm


# ----------------------------------------------------------------------------- reasoning
def test_think_blocks_are_reasoning_and_the_final_json_is_the_verdict(fault_server, tmp_path):
    content = (
        '<think>초안: {"label": "safe", "score": 1} 아니, 다시 보니 위험하다.</think>\n'
        '{"label": "unsafe", "score": 5}'
    )
    db = tmp_path / "c.db"
    with fault_server([{"content": content}]) as srv:
        [r], _ = run(srv, [req(json_schema=VERDICT)], cache=db)
    assert r.ok and r.parsed == {"label": "unsafe", "score": 5}
    assert r.text == '{"label": "unsafe", "score": 5}'
    assert r.reasoning.startswith("초안:") and "<think>" not in r.text
    assert r.raw == content and r.raw_text == content
    with Cache(db) as cache:  # the cache keeps the raw content
        [text] = [row[0] for row in cache._rconn.execute("SELECT text FROM responses")]
    assert text == content


def test_reasoning_field_and_modes(fault_server):
    script = [
        {"content": "답입니다", "reasoning_content": "생각 중"},
        {"content": "답", "reasoning": "vLLM >= 0.10 field"},
        {"content": "<think>x</think>그대로"},  # reasoning: no keeps it
        {"content": "끝나지 않은 생각만 있다"},  # reasoning: yes, no tag: no answer
    ]
    with fault_server(script) as srv:
        [a], _ = run(srv, [req("a")])  # one request per call: actions go in arrival order
        [b], _ = run(srv, [req("b")])
        [c], _ = run(srv, [req("c")], reasoning="no")
        [d], _ = run(srv, [req("d")], reasoning="yes")
    assert (a.text, a.reasoning, a.raw) == ("답입니다", "생각 중", None)
    assert (b.text, b.reasoning) == ("답", "vLLM >= 0.10 field")
    assert c.ok and c.text == "<think>x</think>그대로" and c.reasoning is None
    assert d.error.kind == "empty" and d.reasoning == "끝나지 않은 생각만 있다"


@pytest.mark.parametrize(
    "action",
    [{"content": None}, {"content": ""}, {"content": "  \n"}, {"content": "<think>만</think>"}],
    ids=["null", "empty", "whitespace", "only-reasoning"],
)
def test_empty_answers_are_typed_errors_never_text(fault_server, action):
    with fault_server([action]) as srv:
        [r], llm = run(srv, [req()])
    assert r.error.kind == "empty" and not r.ok
    assert llm.stats.errors == 1 and llm.stats.calls == 1


# ----------------------------------------------------------------------------- truncation
def test_truncated_answer_is_retried_once_with_twice_the_budget(fault_server):
    script = [
        {
            "content": "잘린 답",
            "finish_reason": "length",
            "usage": {"prompt_tokens": 9, "completion_tokens": 8},
        },
        {"content": "온전한 답", "usage": {"prompt_tokens": 9, "completion_tokens": 12}},
    ]
    with fault_server(script) as srv:
        [r], llm = run(srv, [req(sampling=SamplingParams(max_tokens=8))])
    assert [e["body"]["max_tokens"] for e in srv.log] == [8, 16]
    assert r.ok and r.text == "온전한 답" and r.finish_reason == "stop"
    assert (r.tokens_in, r.tokens_out) == (18, 20)
    assert llm.stats.truncated == 1 and llm.stats.truncation_retries == 1
    assert llm.stats.calls == 2


def test_truncation_twice_or_with_drop_is_a_typed_error_with_text_kept(fault_server):
    cut = {"content": "차별로 출\ufffd", "finish_reason": "length"}
    with fault_server([cut, cut, cut]) as srv:
        [retried], _ = run(srv, [req("a", sampling=SamplingParams(max_tokens=8))])
        [dropped], _ = run(
            srv, [req("b", sampling=SamplingParams(max_tokens=8), on_truncation="drop")]
        )
    assert [e["body"]["max_tokens"] for e in srv.log] == [8, 16, 8]
    for r in (retried, dropped):
        assert r.error.kind == "truncated" and r.text == "차별로 출\ufffd"
        assert r.finish_reason == "length" and r.parsed is None
    assert "max_tokens=16" in retried.error.message


def test_retry_budget_is_capped_by_the_context_window(fault_server):
    cut = {
        "content": "잘림",
        "finish_reason": "length",
        "usage": {"prompt_tokens": 90, "completion_tokens": 8},
    }
    models = [{"id": "m", "object": "model", "max_model_len": 110}]
    with fault_server([cut] * 4, models=models) as srv:
        [first], _ = run(srv, [req(sampling=SamplingParams(max_tokens=8))])
        [second], _ = run(srv, [req("x", sampling=SamplingParams(max_tokens=15))])
    # window 110 - prompt 90 = 20: 8 grows to 16; 15 would grow to 30 but only to 20
    assert [e["body"]["max_tokens"] for e in srv.log[:2]] == [8, 16]
    assert srv.log[-1]["body"]["max_tokens"] == 20
    assert first.error.kind == second.error.kind == "truncated"


def test_truncated_json_is_not_sent_to_repair(fault_server):
    cut = {"content": '{"label": "unsa', "finish_reason": "length"}
    with fault_server([cut, cut]) as srv:
        [r], llm = run(
            srv, [req(json_schema=VERDICT, sampling=SamplingParams(max_tokens=5))], json_repairs=2
        )
    assert r.error.kind == "truncated" and r.text == '{"label": "unsa'
    assert llm.stats.repairs == 0 and len(srv.log) == 2  # the original and one larger budget


def test_a_cached_truncated_answer_is_never_a_success_on_rerun(fault_server, tmp_path):
    db = tmp_path / "c.db"
    cut = {"content": "잘림", "finish_reason": "length"}
    request = req(sampling=SamplingParams(max_tokens=4), on_truncation="drop")
    with fault_server([cut]) as srv:
        [first], _ = run(srv, [request], cache=db)
        [again], llm = run(srv, [request], cache=db)
    assert len(srv.log) == 1  # the rerun paid nothing
    assert again.cached and again.error.kind == "truncated" and again.text == "잘림"
    assert first.error.kind == "truncated" and llm.stats.truncated == 1
    with Cache(db) as cache:
        rows = cache.calls()
        assert cache.stats()["models"][0]["truncated"] == 2
    assert [r["finish_reason"] for r in rows] == ["length", "length"]


# ----------------------------------------------------------------------------- JSON reading
def test_an_example_echoed_from_the_prompt_is_never_the_value(fault_server):
    prompt = '다음 형식으로 답하세요. 예시: {"label": "safe", "score": 1}'
    answers = [
        {"content": '예시: {"label": "safe", "score": 1}\n판정: {"label": "unsafe", "score": 4}'},
        {"content": '{"label": "safe", "score": 1}'},
    ]
    with fault_server(answers) as srv:
        [chosen], _ = run(srv, [req(prompt, json_schema=VERDICT)])
        [echo], _ = run(srv, [req(prompt + " ", json_schema=VERDICT)])
    assert chosen.parsed == {"label": "unsafe", "score": 4}
    assert echo.error.kind == "parse" and "copied from the prompt" in echo.error.message
    assert echo.text == '{"label": "safe", "score": 1}'


def test_integral_floats_are_integers_everywhere(fault_server):
    answers = [
        {"content": '{"label": "unsafe", "score": 4.0}'},
        {"content": '{"label": "safe", "score": 4.5}'},
    ]
    with fault_server(answers) as srv:
        [four], llm = run(srv, [req("a", json_schema=VERDICT)])
        [half], _ = run(srv, [req("b", json_schema=VERDICT)])
    assert four.ok and four.parsed == {"label": "unsafe", "score": 4}
    assert type(four.parsed["score"]) is int
    assert half.error.kind == "schema" and "score" in half.error.message
    assert llm.stats.repairs == 0


# ----------------------------------------------------------------------------- unicode
def test_a_lone_surrogate_survives_the_cache_and_the_call_log(fault_server, tmp_path):
    body = json.dumps(
        {
            "choices": [{"message": {"content": "깨진 \\ud83d 이모지"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
    ).replace("\\\\ud83d", "\\ud83d")
    db = tmp_path / "c.db"
    with fault_server([{"body": body}]) as srv:
        [r], _ = run(srv, [req("서로게이트 \ud83d 질문", tag="t\ud83d")], cache=db)
        [again], _ = run(srv, [req("서로게이트 \ud83d 질문")], cache=db)
    assert r.ok and r.text == "깨진 \ud83d 이모지"
    assert again.cached and again.text == r.text  # stored losslessly
    assert srv.log[0]["body"]["messages"][0]["content"] == "서로게이트 \ud83d 질문"
    with Cache(db) as cache:
        assert [row["tag"] for row in cache.calls()] == ["t\ud83d", None]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


# ----------------------------------------------------------------------------- windows
def test_context_window_from_the_server_model_list(fault_server):
    models = [
        {"id": "other", "max_model_len": 1},
        {"id": "m", "object": "model", "context_length": 32768},
    ]
    with fault_server(models=models) as srv:
        pool = ModelPool(
            {
                "m": spec(srv.base_url),
                "given": spec(srv.base_url, context_window=4096),
                "unknown": ModelSpec(backend="openai", model="nope", base_url=srv.base_url),
            }
        )
        import asyncio

        async def windows():
            return [await pool.get(n).context_window() for n in ("m", "m", "given", "unknown")]

        assert asyncio.run(windows()) == [32768, 32768, 4096, None]
        assert srv.model_list_requests == 2  # once per model that needs it
        pool.close()


def test_remote_token_counts_are_estimates_unless_a_tokenizer_is_given(
    fault_server, tiny_model_dir
):
    msgs = (
        Message(role="system", content="한국어로 답하세요."),
        Message(role="user", content="abc def"),
    )
    with fault_server() as srv:
        pool = ModelPool(
            {
                "est": spec(srv.base_url),
                "tok": spec(srv.base_url, options={"tokenizer": str(tiny_model_dir)}),
            }
        )
        est, tok = pool.get("est"), pool.get("tok")
        # the documented upper bound: UTF-8 bytes, plus 8 per message and 8 for the answer
        assert not est.counts_tokens_exactly and tok.counts_tokens_exactly
        system = 8 * 3 + 2  # 8 syllables of 3 bytes; a space and a full stop
        assert est.count_tokens(msgs) == system + 7 + 8 * 3
        assert est.count_tokens(msgs) >= tok.count_tokens(msgs)
        hf = ModelPool({"hf": ModelSpec(backend="hf", model=str(tiny_model_dir))}).get("hf")
        assert tok.count_tokens(msgs) == hf.count_tokens(msgs) > 0
        pool.close()

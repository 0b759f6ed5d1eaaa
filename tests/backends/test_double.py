"""The benchmark double in bench/: schema instances, Korean text, faults, records."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import jsonschema
import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.types import ChatRequest, Message

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from double import Double, DoubleConfig

SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "label": {"enum": ["safe", "unsafe"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "reason": {"type": "string", "minLength": 3, "maxLength": 40},
        },
        "required": ["label", "score", "reason"],
        "additionalProperties": False,
    },
    {
        "$defs": {
            "item": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
            }
        },
        "type": "array",
        "items": {"$ref": "#/$defs/item"},
        "minItems": 2,
        "maxItems": 4,
    },
    {
        "type": "object",
        "properties": {
            "x": {"anyOf": [{"type": "number", "minimum": 0.5, "maximum": 0.7}, {"type": "null"}]}
        },
        "required": ["x"],
    },
]


@pytest.mark.parametrize("json_mode", ["prompt", "response_format"])
def test_double_answers_valid_schema_instances_and_korean_text(json_mode):
    with Double(DoubleConfig(cap=4, latency_mean=0.01, latency_sigma=0.5)).running() as d:
        spec = ModelSpec(
            backend="openai",
            model="double",
            base_url=d.base_url,
            json_mode=json_mode,
            json_repairs=0,
        )
        pool = ModelPool({"d": spec})
        reqs = [
            ChatRequest(messages=(Message(role="user", content="판정"),), json_schema=s)
            for s in SCHEMAS
        ]
        reqs.append(ChatRequest(messages=(Message(role="user", content="안녕하세요"),)))
        results = pool.get("d").generate(reqs)
        stats = httpx.get(d.base_url.removesuffix("/v1") + "/stats").json()
    for schema, r in zip(SCHEMAS, results, strict=False):
        assert r.ok, (r.error, r.text)
        jsonschema.validate(r.parsed, schema)
    text = results[-1].text
    assert any("\uac00" <= ch <= "\ud7a3" for ch in text)  # Hangul syllables
    assert stats["requests"] == 4
    assert stats["schema_modes"] == {json_mode: 3, "None": 1}


def test_double_faults_are_injected_retried_and_recorded(tmp_path):
    config = DoubleConfig(
        cap=8,
        latency_mean=0.01,
        latency_sigma=0.0,
        fault_429=0.1,
        fault_500=0.1,
        fault_malformed=0.05,
        fault_truncated=0.05,
        fault_timeout=0.05,
        timeout_hang=2.0,
        retry_after=0.0,
        seed=3,
        record=str(tmp_path / "requests.jsonl"),
    )
    with Double(config).running() as d:
        spec = ModelSpec(
            backend="openai",
            model="double",
            base_url=d.base_url,
            timeout=0.5,
            max_retries=8,
            retry_backoff=0.01,
            max_concurrency=8,
        )
        pool = ModelPool({"d": spec})
        llm = pool.get("d")
        reqs = [
            ChatRequest(messages=(Message(role="user", content=f"질문 {i}"),)) for i in range(60)
        ]
        results = asyncio.run(llm.agenerate(reqs))
        records = list(d.records)
    assert all(r.ok for r in results)
    faults = [r["fault"] for r in records if r["fault"]]
    assert set(faults) == {"429", "500", "malformed", "truncated", "timeout"}
    assert len(records) == 60 + len(faults) == 60 + llm.stats.retries
    assert llm.stats.calls == 60
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == len(records)


def test_double_answers_in_the_shapes_real_models_produce():
    shapes = ["think", "reasoning_field", "truncated", "empty", "surrogate", "echo", "ok"]
    config = DoubleConfig(
        cap=4, latency_mean=0.01, latency_sigma=0.0, shape_script=",".join(shapes)
    )
    schema = SCHEMAS[0]
    with Double(config).running() as d:
        spec = ModelSpec(backend="openai", model="double", base_url=d.base_url, json_repairs=0)
        pool = ModelPool({"d": spec})
        llm = pool.get("d")
        results = []
        for i, _ in enumerate(shapes):  # one at a time: shapes are played in arrival order
            req = ChatRequest(
                messages=(Message(role="user", content=f"판정 {i}"),),
                json_schema=schema if i == 0 else None,
                on_truncation="drop",
            )
            results += llm.generate([req])
        stats = httpx.get(d.base_url.removesuffix("/v1") + "/stats").json()
        pool.close()
    think, field, cut, empty, surrogate, echo, ok = results
    assert think.ok and "<think>" in think.raw and think.reasoning.startswith("초안:")
    jsonschema.validate(think.parsed, schema)  # the final answer, not the draft
    assert field.ok and field.reasoning and "<think>" not in field.text
    assert cut.error.kind == "truncated" and cut.finish_reason == "length" and cut.text
    assert empty.error.kind == "empty" and empty.text is None
    assert surrogate.ok and surrogate.text.endswith("\ud83d")
    assert echo.ok and echo.text.startswith("판정 5")
    assert ok.ok and ok.reasoning is None
    assert stats["shapes"] == {s: 1 for s in shapes if s != "ok"}

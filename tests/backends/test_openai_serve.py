"""The openai backend against a real `transformers serve` on the tiny model."""

from __future__ import annotations

import asyncio

from koalign.backends import ModelPool, ModelSpec
from koalign.types import ChatRequest, Message, SamplingParams


def requests(n: int, max_tokens: int = 8) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=(
                Message(role="system", content="한국어로 답하세요."),
                Message(role="user", content=f"서울의 날씨는 어떤가요? {i}"),
            ),
            sampling=SamplingParams(max_tokens=max_tokens),
            on_truncation="drop",  # a random model rarely stops before max_tokens
        )
        for i in range(n)
    ]


def answered(r) -> bool:
    """Text came back: ok, or cut at max_tokens (a typed error, text kept), or only blanks."""
    return r.ok or (r.error.kind in ("truncated", "empty") and r.text is not None)


def test_sync_async_concurrent_and_usage(transformers_server, tmp_path):
    base_url, model = transformers_server
    spec = ModelSpec(
        backend="openai",
        model=model,
        base_url=base_url,
        max_concurrency=4,
        sampling=SamplingParams(temperature=0.0),
        price_in_per_1m=2.0,
        price_out_per_1m=4.0,
    )
    pool = ModelPool({"tiny": spec}, cache_path=tmp_path / "c.db")
    llm = pool.get("tiny")

    [one] = llm.generate(requests(1))  # sync
    assert answered(one), one.error
    assert one.text is not None and one.tokens_in > 5 and 0 < one.tokens_out <= 8
    assert one.finish_reason in ("stop", "length")

    async def many():
        # many tasks at once, mixing single-item and multi-item batches
        singles = [llm.agenerate(requests(1)) for _ in range(3)]
        batch = llm.agenerate(requests(8))
        return await asyncio.gather(*singles, batch)

    *singles, batch = asyncio.run(many())
    assert [len(s) for s in singles] == [1, 1, 1] and len(batch) == 8
    results = [one, *(s[0] for s in singles), *batch]
    assert all(answered(r) for r in results), [r.error for r in results if not r.ok]

    stats = llm.stats
    # request 0 repeats in every batch: only distinct requests reach the server
    assert stats.calls + stats.cache_hits == 12
    assert stats.tokens_in == sum(r.tokens_in for r in results if not r.cached)
    assert stats.tokens_out == sum(r.tokens_out for r in results if not r.cached)
    assert stats.cost > 0
    row = pool.cache.stats()["models"][0]
    assert (row["calls"], row["tokens_in"], row["tokens_out"]) == (
        stats.calls,
        stats.tokens_in,
        stats.tokens_out,
    )
    pool.close()


def test_json_prompt_mode_reports_typed_errors_from_a_random_model(transformers_server):
    base_url, model = transformers_server
    spec = ModelSpec(backend="openai", model=model, base_url=base_url, json_repairs=1)
    pool = ModelPool({"tiny": spec})
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    req = ChatRequest(
        messages=(Message(role="user", content="답"),),
        json_schema=schema,
        sampling=SamplingParams(max_tokens=6),
    )
    [result] = pool.get("tiny").generate([req])
    pool.close()
    # a random model does not write JSON: the raw text is kept and the error is typed; an
    # answer cut at max_tokens is retried once with twice the budget, never repaired
    assert result.error is not None and result.parsed is None
    stats = pool.stats()["tiny"]
    if result.error.kind == "truncated":
        assert stats.repairs == 0 and stats.truncation_retries >= 1
    else:
        assert result.error.kind in ("parse", "schema", "empty") and stats.repairs == 1
    assert stats.calls == 1 + stats.truncation_retries + stats.repairs

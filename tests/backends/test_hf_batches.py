"""Deterministic batches and per-request seeds on the hf backend (the tiny random model)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.backends.hf import gguf_source
from koalign.errors import BackendError
from koalign.types import ChatRequest, Message, SamplingParams

SAMPLED = SamplingParams(temperature=1.0, top_p=0.95, seed=11, max_tokens=6)


def ask(i: int, sampling: SamplingParams | None = SAMPLED, **kw) -> ChatRequest:
    return ChatRequest(
        messages=(Message(role="user", content=f"질문 {i}: " + "가나다" * (i % 4)),),
        sampling=sampling,
        on_truncation="drop",
        **kw,
    )


def spec(model_dir, **options) -> ModelSpec:
    return ModelSpec(
        backend="hf",
        model=str(model_dir),
        options={"max_batch_size": 3, "device": "cpu", **options},
    )


def texts(results) -> list[str | None]:
    return [r.text for r in results]


def test_a_fixed_batch_gives_the_same_text_whatever_ran_before(tiny_model_dir, tmp_path):
    batch = [ask(i) for i in range(7)]  # sub-batches of 3, 3 and 1
    pool = ModelPool({"m": spec(tiny_model_dir)})
    llm = pool.get("m")
    assert llm.batch_sensitive
    first = llm.generate(batch, fixed_batch=True)

    async def other_traffic_then_again():
        noise = [ask(100 + i, sample_index=i) for i in range(5)]
        await asyncio.gather(llm.agenerate(noise), llm.agenerate([ask(200)]))
        return await llm.agenerate(batch, fixed_batch=True)

    second = asyncio.run(other_traffic_then_again())
    pool.close()
    assert texts(first) == texts(second)
    assert all(r.tokens_out > 0 for r in first)

    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_hf_batches import ask, spec
        from koalign.backends import ModelPool
        pool = ModelPool({{"m": spec({str(tiny_model_dir)!r})}})
        out = pool.get("m").generate([ask(i) for i in range(7)], fixed_batch=True)
        print(json.dumps([r.text for r in out]))
        pool.close()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == texts(first)


def test_a_fixed_batch_with_one_member_missing_is_regenerated_whole(tiny_model_dir, tmp_path):
    db = tmp_path / "cache.sqlite"
    batch = [ask(i) for i in range(5)]
    pool = ModelPool({"m": spec(tiny_model_dir)}, cache_path=db)
    llm = pool.get("m")
    first = llm.generate(batch, fixed_batch=True)
    assert llm.stats.calls == 5
    again = llm.generate(batch, fixed_batch=True)  # all cached: nothing is computed
    assert llm.stats.calls == 5 and llm.stats.recomputed == 0 and all(r.cached for r in again)
    pool.close()

    # drop member 2 from the cache: the whole list is generated again, identically
    missing = llm._prepare(batch[2]).key
    from koalign.cache import Cache

    with Cache(db) as cache:
        assert cache.delete(missing)
    pool = ModelPool({"m": spec(tiny_model_dir)}, cache_path=db)
    llm = pool.get("m")
    seen: list[int] = []
    original = llm.backend.generate_batch

    def record(requests, *rest):
        seen.append(len(requests))
        return original(requests, *rest)

    llm.backend.generate_batch = record
    redone = llm.generate(batch, fixed_batch=True)
    pool.close()
    assert seen == [3, 2]  # the whole list, in its own sub-batches of max_batch_size
    assert llm.stats.calls == 1 and llm.stats.recomputed == 4 and llm.stats.nondeterministic == 0
    assert texts(redone) == texts(first)
    assert [r.cached for r in redone] == [True, True, False, True, True]


def test_seeded_sampling_differs_from_greedy_and_across_seeds_and_repeats(tiny_model_dir):
    pool = ModelPool({"m": spec(tiny_model_dir)})
    llm = pool.get("m")
    greedy = SamplingParams(temperature=0.0, max_tokens=8)
    prompts = range(4)

    def run(sampling):
        return texts(llm.generate([ask(i, sampling) for i in prompts], fixed_batch=True))

    seven = run(SamplingParams(temperature=1.0, seed=7, max_tokens=8))
    eight = run(SamplingParams(temperature=1.0, seed=8, max_tokens=8))
    plain = run(greedy)
    assert run(SamplingParams(temperature=1.0, seed=7, max_tokens=8)) == seven
    assert seven != plain and eight != plain and seven != eight
    # sample indexes of one prompt differ too
    [a, b] = llm.generate([ask(0, sample_index=0), ask(0, sample_index=1)], fixed_batch=True)
    assert a.text != b.text
    pool.close()


def test_fixed_batch_changes_nothing_for_other_backends():
    spec_ = ModelSpec(backend="scripted", model="s", options={"responses": ["가", "나", "다"]})
    pool = ModelPool({"s": spec_})
    llm = pool.get("s")
    assert not llm.batch_sensitive
    reqs = [ChatRequest(messages=(Message(role="user", content=f"q{i}"),)) for i in range(3)]
    assert texts(llm.generate(reqs, fixed_batch=True)) == ["가", "나", "다"]
    pool.close()


def test_window_and_token_counts_of_a_local_model(tiny_model_dir):
    pool = ModelPool({"m": spec(tiny_model_dir)})
    llm = pool.get("m")
    assert asyncio.run(llm.context_window()) == 2048  # max_position_embeddings
    assert llm.counts_tokens_exactly
    request = ask(3, SamplingParams(max_tokens=2))
    n = llm.count_tokens(request.messages)
    [result] = llm.generate([request])
    assert n == result.tokens_in > 5
    pool.close()


def test_gguf_sources_and_errors(tmp_path):
    def source(model, **options):
        return gguf_source(ModelSpec(backend="hf", model=model, options=options))

    assert source("models/smol.Q4.gguf") == ("models", "smol.Q4.gguf")
    assert source("org/repo", gguf_file="m.gguf") == ("org/repo", "m.gguf")
    assert source("folder") == ("folder", None)
    pool = ModelPool({"g": ModelSpec(backend="hf", model=str(tmp_path / "missing.gguf"))})
    with pytest.raises(BackendError, match=r"missing\.gguf"):
        pool.get("g").generate([ask(0)])
    pool.close()

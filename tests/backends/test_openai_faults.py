"""Retries, backoff and typed errors over a real wire, against a scripted-fault server."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.types import ChatRequest, Message


def req(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=(Message(role="user", content=text),), **kw)


def spec(base_url: str, **kw) -> ModelSpec:
    defaults = {"max_retries": 4, "retry_backoff": 0.01, "retry_backoff_max": 2.0, "timeout": 2.0}
    return ModelSpec(backend="openai", model="m", base_url=base_url, **{**defaults, **kw})


def test_every_fault_kind_is_retried_and_nothing_is_lost_or_counted_twice(fault_server, tmp_path):
    script = ["429:0", "500", "malformed", "truncated", "slow:3", "cut_utf8", "429:0", "500"]
    with fault_server(script) as srv:
        pool = ModelPool({"m": spec(srv.base_url, max_concurrency=8)}, cache_path=tmp_path / "c.db")
        llm = pool.get("m")
        requests = [req(f"q{i}") for i in range(20)]
        results = asyncio.run(llm.agenerate(requests))
        pool.close()
    assert [r.text for r in results] == [f"echo:q{i}" for i in range(20)]
    assert all(r.ok for r in results)
    assert len(srv.log) == 20 + len(script)
    # each logical request counted once; retries counted separately; tokens only from successes
    assert llm.stats.calls == 20
    assert llm.stats.retries == len(script)
    assert llm.stats.errors == 0
    assert (llm.stats.tokens_in, llm.stats.tokens_out) == (20 * 7, 20 * 3)
    from koalign.cache import Cache

    with Cache(tmp_path / "c.db") as cache:
        rows = cache.calls()
        assert len(rows) == 20
        assert sum(r["attempts"] - 1 for r in rows) == len(script)
        assert cache.stats()["cached_responses"] == 20


def test_exhausted_retries_become_typed_errors(fault_server):
    cases = [
        (["500"] * 3, "server", 3, 500),
        (["429:0"] * 3, "rate_limit", 3, 429),
        (["slow:0.8"] * 3, "timeout", 3, None),
        (["malformed"] * 3, "server", 3, None),
        (["cut_utf8"] * 3, "server", 3, None),
        (["400"], "bad_request", 1, 400),  # other 4xx: no retry
    ]
    for script, kind, attempts, status in cases:
        with fault_server(script) as srv:
            pool = ModelPool({"m": spec(srv.base_url, max_retries=2, timeout=0.3)})
            llm = pool.get("m")
            [result] = llm.generate([req("x")])
            assert not result.ok
            assert result.error.kind == kind, script
            assert result.error.attempts == attempts
            assert result.error.status == status
            assert result.text is None
            assert len(srv.log) == attempts, script
            assert llm.stats.calls == 1 and llm.stats.errors == 1
            assert llm.stats.retries == attempts - 1


def test_backoff_grows_exponentially(fault_server):
    with fault_server(["500", "500", "500"]) as srv:
        pool = ModelPool({"m": spec(srv.base_url, retry_backoff=0.2)})
        [result] = pool.get("m").generate([req("x")])
    assert result.ok
    t = [entry["t"] for entry in srv.log]
    gaps = [b - a for a, b in itertools.pairwise(t)]
    # base 0.2 s doubling, jitter in [0.5, 1.5]: at least 0.1, 0.2, 0.4 seconds
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4
    assert sum(gaps) < 0.3 * 1.5 + 0.6 * 1.5 + 1.2 * 1.5 + 1.0


def test_retry_after_is_honoured(fault_server):
    with fault_server(["429:1"]) as srv:
        pool = ModelPool({"m": spec(srv.base_url, retry_backoff=0.0)})
        [result] = pool.get("m").generate([req("x")])
    assert result.ok
    assert srv.log[1]["t"] - srv.log[0]["t"] >= 0.95


def test_errors_are_not_cached_so_a_rerun_retries_them(fault_server, tmp_path):
    db = tmp_path / "c.db"
    with fault_server(["500", "500"]) as srv:
        pool = ModelPool({"m": spec(srv.base_url, max_retries=1)}, cache_path=db)
        [first] = pool.get("m").generate([req("x")])
        pool.close()
        pool = ModelPool({"m": spec(srv.base_url, max_retries=1)}, cache_path=db)
        llm = pool.get("m")
        [second] = llm.generate([req("x")])
        pool.close()
    assert first.error.kind == "server"
    assert second.ok and not second.cached and second.text == "echo:x"
    assert llm.stats.calls == 1 and llm.stats.cache_hits == 0


def test_rpm_limit_spaces_requests(fault_server):
    with fault_server() as srv:
        pool = ModelPool({"m": spec(srv.base_url, rpm=600, max_concurrency=16)})  # 10/s
        llm = pool.get("m")
        start = time.monotonic()
        results = asyncio.run(llm.agenerate([req(f"q{i}") for i in range(21)]))
        elapsed = time.monotonic() - start
    assert all(r.ok for r in results)
    # a bucket of one second (10 requests), then 10/s: 21 requests need >= 1.1 s
    assert elapsed >= 1.0
    t = sorted(entry["t"] for entry in srv.log)
    assert t[-1] - t[0] >= 0.9


def test_tpm_limit_waits_for_token_budget(fault_server):
    with fault_server() as srv:
        # each request is estimated at ~ 1 + 50 + 2 tokens; 6000 tpm = 100 tokens/s
        pool = ModelPool({"m": spec(srv.base_url, tpm=6000)})
        llm = pool.get("m")
        start = time.monotonic()
        results = asyncio.run(
            llm.agenerate(
                [req(f"q{i}", sampling={"max_tokens": 50}) for i in range(4)]  # type: ignore[arg-type]
            )
        )
        elapsed = time.monotonic() - start
    assert all(r.ok for r in results)
    assert elapsed >= 0.8


def test_missing_api_key_env_names_the_variable_not_a_value():
    from koalign.errors import BackendError

    pool = ModelPool(
        {"m": ModelSpec(backend="openai", model="gpt", api_key_env="KOALIGN_TEST_KEY")}, env={}
    )
    with pytest.raises(BackendError, match="KOALIGN_TEST_KEY"):
        pool.get("m")


def test_api_key_is_sent_but_never_in_errors(fault_server):
    secret = "sk-test-SECRET-123"
    with fault_server(["400"]) as srv:
        pool = ModelPool({"m": spec(srv.base_url, api_key_env="MY_KEY")}, env={"MY_KEY": secret})
        [result] = pool.get("m").generate([req("x")])
    assert result.error.kind == "bad_request"
    assert srv.log[0]["auth"] == f"Bearer {secret}"
    assert secret not in result.error.message
    assert secret not in repr(pool.specs)

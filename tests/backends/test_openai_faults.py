"""Retries, backoff and typed errors over a real wire, against a scripted-fault server."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time

import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.backends.limits import (
    CONNECT_RETRIES,
    RETRY_AFTER_MAX_S,
    RateLimiter,
    backoff_delay,
)
from koalign.backends.openai_compat import parse_retry_after
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


def test_backoff_grows_exponentially_with_jitter():
    # the schedule itself; bench/bench_retry_timing.py measures it over the wire
    for attempt, (lo, hi) in enumerate([(0.1, 0.3), (0.2, 0.6), (0.4, 1.2)], start=1):
        delays = [backoff_delay(attempt, base=0.2, cap=30) for _ in range(200)]
        assert lo <= min(delays) and max(delays) <= hi and max(delays) - min(delays) > 0.01
    assert backoff_delay(10, base=0.2, cap=1.0) <= 1.5  # capped, then jittered


def test_retry_after_seconds_and_http_dates_are_read():
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 4, usegmt=True)
    assert parse_retry_after({"retry-after": "4"}) == 4.0
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(4.0)
    assert (
        parse_retry_after({"retry-after": email.utils.formatdate(now - 9, usegmt=True)}, now=now)
        == 0
    )
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None
    # honoured above retry_backoff_max, up to the documented hard cap
    assert backoff_delay(1, base=0.1, cap=2.0, retry_after=45.0) == 45.0
    assert backoff_delay(1, base=0.1, cap=2.0, retry_after=86400.0) == RETRY_AFTER_MAX_S


def test_retry_after_dates_over_the_wire_are_honoured_and_long_waits_logged(fault_server, caplog):
    # a whole second, as an HTTP date holds: the wait is 2-3 s less the time until it is read
    date = email.utils.formatdate(int(time.time()) + 3, usegmt=True)
    script = [
        {"status": 429, "headers": {"Retry-After": date}},
        {"status": 503, "headers": {"Retry-After": "1"}},
    ]
    with (
        fault_server(script) as srv,
        caplog.at_level(logging.INFO, logger="koalign.backends.client"),
    ):
        pool = ModelPool({"m": spec(srv.base_url, retry_backoff=0.0, retry_backoff_max=0.5)})
        [result] = pool.get("m").generate([req("x")])
    assert result.ok and len(srv.log) == 3
    waits = [float(m.split(" in ")[1].rstrip("s")) for m in caplog.messages if " retry " in m]
    assert 1.0 <= waits[0] <= 3.0 and waits[1] == 1.0  # the date, then 1 s
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "more than retry_backoff_max=0.5" in warnings[1].getMessage()


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


def test_rpm_and_tpm_buckets_compute_their_waits():
    # the waits the buckets hand out; bench/bench_retry_timing.py measures them over the wire
    rpm = RateLimiter(600)  # 10 per second, a bucket of one second
    waits = [rpm.reserve(1) for _ in range(21)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.1, abs=0.02) and waits[20] == pytest.approx(1.1, abs=0.02)
    tpm = RateLimiter(6000)  # 100 tokens per second
    assert tpm.reserve(53) == 0.0 and tpm.reserve(53) == pytest.approx(0.06, abs=0.02)
    tpm.refund(40)  # the server reported fewer tokens than estimated
    assert tpm.reserve(50) == pytest.approx(0.16, abs=0.03)
    assert RateLimiter(60).reserve(500) == 0.0  # larger than the bucket: debt, never forever


def test_a_refused_connection_fails_fast_naming_model_and_address(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    pool = ModelPool({"judge": spec(url, max_retries=5)}, cache_path=tmp_path / "c.db")
    llm = pool.get("judge")
    [result] = llm.generate([req("x")])
    pool.close()
    assert result.error.kind == "connection"
    assert f"cannot connect to {url}" in result.error.message
    assert "model 'judge'" in result.error.message
    # a short bounded retry (CONNECT_RETRIES), not the whole max_retries schedule
    assert result.error.attempts == 1 + CONNECT_RETRIES < 1 + 5
    assert llm.stats.retries == CONNECT_RETRIES


def test_credentials_in_a_base_url_are_refused_without_echoing_them():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        ModelSpec(
            backend="openai", model="m", base_url="https://user:SENTINEL-SECRET@api.example/v1"
        )
    text = str(info.value)
    assert "api_key_env" in text and "credentials" in text
    assert "SENTINEL-SECRET" not in text and "SENTINEL-SECRET" not in repr(info.value.errors())
    ModelSpec(backend="openai", model="m", base_url="http://127.0.0.1:8000/v1")  # fine


def test_reasoning_accepts_yaml_yes_and_no():
    from koalign.yamlio import load_yaml

    models = load_yaml(
        "a: {backend: openai, model: m, reasoning: yes}\nb: {backend: openai, model: m, reasoning: no}\n"
    )
    assert [ModelSpec.model_validate(v).reasoning for v in models.values()] == ["yes", "no"]


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


def test_openai_without_base_url_or_key_variable_means_the_openai_api():
    from koalign.backends.openai_compat import DEFAULT_BASE_URL
    from koalign.errors import BackendError
    from koalign.evaluate.spec import parse_shorthand

    bare = ModelSpec(backend="openai", model="gpt-4.1")
    assert bare.api_key_env == "OPENAI_API_KEY"
    assert parse_shorthand("openai:gpt-4.1", where="--judge").api_key_env == "OPENAI_API_KEY"
    local = ModelSpec(backend="openai", model="m", base_url="http://127.0.0.1:8000/v1")
    assert local.api_key_env is None  # a local server needs no key
    assert ModelSpec(backend="scripted", model="m").api_key_env is None
    assert ModelSpec(backend="openai", model="m", api_key_env="MY_KEY").api_key_env == "MY_KEY"

    with pytest.raises(BackendError) as caught:
        ModelPool({"j": bare}, env={}).get("j")
    text = str(caught.value)
    assert "OPENAI_API_KEY is not set" in text
    assert "export OPENAI_API_KEY=..." in text and "set base_url for a local server" in text
    pool = ModelPool({"j": bare}, env={"OPENAI_API_KEY": "sk-test"})
    assert pool.get("j").backend.base_url == DEFAULT_BASE_URL  # type: ignore[attr-defined]
    pool.close()


def test_header_values_are_sent_but_never_shown(fault_server):
    import json

    from pydantic import ValidationError

    from koalign.evaluate.spec import describe

    written, from_env = "gw-WRITTEN-SECRET-1", "gw-ENV-SECRET-2"
    with fault_server(["400", "400"]) as srv:
        literal = spec(srv.base_url, options={"headers": {"Authorization": f"Bearer {written}"}})
        named = spec(srv.base_url, options={"headers_env": {"Authorization": "KOALIGN_TEST_GW"}})
        pool = ModelPool({"a": literal, "b": named}, env={"KOALIGN_TEST_GW": from_env})
        [ra] = pool.get("a").generate([req("x")])
        [rb] = pool.get("b").generate([req("y")])
    assert [e["auth"] for e in srv.log] == [f"Bearer {written}", from_env]
    shown = [
        repr(literal),
        str(literal.options),
        literal.model_dump_json(),
        json.dumps(literal.model_dump(mode="json")),
        json.dumps(describe("a", literal)),
        repr(pool.specs),
        ra.error.message,
        rb.error.message,
    ]
    with pytest.raises(ValidationError) as info:  # an error quoting the whole input
        ModelSpec.model_validate({"backend": "openai", "options": literal.options})
    shown += [str(info.value), repr(info.value.errors())]
    for text in shown:
        assert written not in text and from_env not in text, text
    assert literal.model_dump(mode="json")["options"]["headers"]["Authorization"] == "**********"
    # headers change nothing that is cached: the cache identity (and so every key) is unchanged
    plain = ModelPool({"m": spec(srv.base_url)}).get("m").backend.cache_identity()
    for name in ("a", "b"):
        assert pool.get(name).backend.cache_identity() == plain
    assert plain == {
        "backend": "openai",
        "model": "m",
        "base_url": srv.base_url,
        "json_mode": "prompt",
        "extra_body": None,
    }


def test_every_missing_key_and_header_variable_is_named_at_once():
    from koalign.errors import BackendError

    both = spec(
        "http://127.0.0.1:9/v1",
        api_key_env="KOALIGN_TEST_K",
        options={"headers_env": {"X-A": "KOALIGN_TEST_HA", "X-B": "KOALIGN_TEST_HB"}},
    )
    with pytest.raises(BackendError) as caught:
        ModelPool({"m": both}, env={"KOALIGN_TEST_HA": "set"}).get("m")
    text = caught.value.render()
    assert "environment variables KOALIGN_TEST_K, KOALIGN_TEST_HB are not set" in text
    assert "export KOALIGN_TEST_K=... KOALIGN_TEST_HB=..." in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"headers": "Authorization: Bearer gw-SECRET"}, "options.headers must be a mapping"),
        ({"headers_env": ["GW"]}, "options.headers_env must be a mapping"),
        ({"headers_env": {"X-A": 3}}, "headers_env.X-A must name an environment variable"),
        ({"headers": {"X-A": ["gw-SECRET"]}}, "the value of header 'X-A' must be a string"),
        (
            {"headers": {"x-a": "gw-SECRET"}, "headers_env": {"X-A": "GW"}},
            "header 'x-a' is set in both headers and headers_env",
        ),
        ({"header": {"X-A": "gw-SECRET"}}, "unknown openai option 'header'"),
    ],
)
def test_bad_header_options_are_named_without_their_values(options, message):
    from koalign.errors import BackendError

    with pytest.raises(BackendError) as caught:
        ModelPool({"m": spec("http://127.0.0.1:9/v1", options=options)}, env={"GW": "x"}).get("m")
    text = caught.value.render()
    assert message in text and "gw-SECRET" not in text


def test_a_request_is_on_the_wire_before_the_loop_serves_other_callbacks(fault_server):
    """The request is written when it is posted, not after every callback already waiting on the
    loop (aiohttp's body writer is started eagerly on every Python version): the server reads it
    while a callback queued right after the post still holds the loop."""
    from koalign import eventloop
    from koalign.backends.openai_compat import OpenAIBackend

    with fault_server() as srv:
        backend = OpenAIBackend(spec(srv.base_url))

        async def main() -> tuple[float, float]:
            await backend.agenerate([req("warm")])  # a pooled connection, so no connect wait
            held: list[float] = []

            def hold() -> None:
                held.append(time.monotonic())
                time.sleep(0.5)  # the server thread reads meanwhile, or not at all
                held.append(time.monotonic())

            posted = asyncio.ensure_future(backend.agenerate([req("measured")]))
            asyncio.get_running_loop().call_soon(hold)
            [result] = await posted
            assert result.error is None
            await backend.aclose()
            return held[0], held[1]

        start, end = eventloop.run(main())
    [arrived] = [e["t"] for e in srv.log if e["body"]["messages"][0]["content"] == "measured"]
    assert start <= arrived < end


def test_a_request_started_by_the_call_freeing_its_slot_times_out_on_its_own(fault_server):
    """With one slot, the second request is started by the first when it gives the slot back
    (limits.PrioritySemaphore.run), over the first's pooled connection. Its timeout is its own:
    it ends after ``timeout``, not when the slow server finally answers (had its timer been tied
    to the first request's finished task, nothing would cancel it)."""
    with fault_server(["slow:0.2", "slow:5"]) as srv:
        pool = ModelPool({"m": spec(srv.base_url, max_retries=0, timeout=0.6, max_concurrency=1)})
        first, second = pool.get("m").generate([req("a"), req("b")])
    assert first.ok
    assert second.error is not None and second.error.kind == "timeout"
    assert second.latency_s < 3  # its 0.6 s timeout, not the server's 5 s

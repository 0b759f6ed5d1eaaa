"""The SQLite cache and call log: zero calls on a rerun, identical results, two processes."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.cache import Cache, cache_key
from koalign.types import ChatRequest, Message, SamplingParams

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["safe", "unsafe"]}},
    "required": ["label"],
    "additionalProperties": False,
}


def batch() -> list[ChatRequest]:
    plain = [
        ChatRequest(messages=(Message(role="user", content=f"질문 {i}"),), sample_index=i % 2)
        for i in range(10)
    ]
    schema = [
        ChatRequest(messages=(Message(role="user", content=f"판정 {i}"),), json_schema=SCHEMA)
        for i in range(5)
    ]
    return plain + schema


def test_second_run_makes_no_calls_and_returns_identical_results(fault_server, tmp_path):
    db = tmp_path / "cache.sqlite"
    with fault_server() as srv:
        spec = ModelSpec(
            backend="openai",
            model="m",
            base_url=srv.base_url,
            price_in_per_1m=1.0,
            price_out_per_1m=2.0,
            json_repairs=0,
        )
        pool = ModelPool({"m": spec}, cache_path=db)
        first = asyncio.run(pool.get("m").agenerate(batch()))
        stats1 = pool.stats()["m"]
        pool.close()
        n_requests = len(srv.log)
        pool = ModelPool({"m": spec}, cache_path=db)
        second = asyncio.run(pool.get("m").agenerate(batch()))
        stats2 = pool.stats()["m"]
        pool.close()
    assert n_requests == 15 and len(srv.log) == 15  # the rerun sent nothing
    assert stats1.calls == 15 and stats1.cache_hits == 0
    assert stats2.calls == 0 and stats2.cache_hits == 15 and stats2.cost == 0
    assert stats1.cost == pytest.approx((15 * 7 * 1.0 + 15 * 3 * 2.0) / 1e6)
    assert stats1.retries == 0
    assert all(r.cached for r in second) and not any(r.cached for r in first)
    strip = {"cached", "latency_s"}
    assert [r.model_dump(exclude=strip) for r in first] == [
        r.model_dump(exclude=strip) for r in second
    ]
    # the echo server's text is not JSON: parsing happened after the cache, errors are typed
    assert all(r.error.kind == "parse" and r.text.startswith("echo:") for r in second[10:])
    with Cache(db) as cache:
        stats = cache.stats()
    [row] = stats["models"]
    assert (row["calls"], row["cache_hits"], row["errors"]) == (15, 15, 0)
    assert row["tokens_in"] == 15 * 7 and row["cost"] == pytest.approx(stats1.cost, abs=1e-6)


def test_key_depends_on_everything_that_changes_the_output():
    ident = {"backend": "openai", "model": "m"}
    msgs = [{"role": "user", "content": "안녕"}]
    base = cache_key(ident, msgs, {"temperature": 0.0}, None, 0)
    assert base == cache_key(dict(reversed(ident.items())), msgs, {"temperature": 0.0}, None, 0)
    variants = [
        cache_key({**ident, "model": "n"}, msgs, {"temperature": 0.0}, None, 0),
        cache_key(ident, [{"role": "user", "content": "안녕!"}], {"temperature": 0.0}, None, 0),
        cache_key(ident, msgs, {"temperature": 0.5}, None, 0),
        cache_key(ident, msgs, {"temperature": 0.0}, SCHEMA, 0),
        cache_key(ident, msgs, {"temperature": 0.0}, None, 1),
    ]
    assert len({base, *variants}) == 6


def test_tag_is_logged_but_not_part_of_the_key(tmp_path):
    spec = ModelSpec(backend="scripted", model="s", options={"responses": ["a", "b"]})
    pool = ModelPool({"s": spec}, cache_path=tmp_path / "c.db")
    llm = pool.get("s")
    msg = (Message(role="user", content="x"),)
    r1 = llm.generate([ChatRequest(messages=msg, tag="respond")])
    r2 = llm.generate([ChatRequest(messages=msg, tag="judge")])
    r3 = llm.generate([ChatRequest(messages=msg, sampling=SamplingParams(temperature=0.7))])
    assert r1[0].text == r2[0].text == "a" and r2[0].cached
    assert r3[0].text == "b" and not r3[0].cached
    tags = [row["tag"] for row in pool.cache.calls()]
    pool.close()
    assert tags == ["respond", "judge", None]


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from koalign.backends import ModelPool, ModelSpec
    from koalign.types import ChatRequest, Message
    db, who = sys.argv[1], sys.argv[2]
    spec = ModelSpec(backend="scripted", model="s", options={"responses": [who]})
    pool = ModelPool({"s": spec}, cache_path=db)
    llm = pool.get("s")
    reqs = [ChatRequest(messages=(Message(role="user", content=f"{who}-{i}"),)) for i in range(300)]
    reqs += [ChatRequest(messages=(Message(role="user", content=f"shared-{i}"),)) for i in range(100)]
    async def main():
        for k in range(0, len(reqs), 20):
            await llm.agenerate(reqs[k:k + 20])
    asyncio.run(main())
    pool.close()
    """
)


def test_two_processes_share_one_cache_file(tmp_path):
    db = tmp_path / "shared.sqlite"
    Cache(db).close()  # create the file first so both processes find WAL mode set
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), who]) for who in ("p1", "p2")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 700
    # every request was logged once per process, as a call or a cache hit
    assert con.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 800
    texts = {
        t
        for (t,) in con.execute(
            "SELECT text FROM responses WHERE key IN (SELECT key FROM calls WHERE cache_hit = 1)"
        )
    }
    assert texts <= {"p1", "p2"}
    con.close()

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


def test_tag_totals_count_a_stage_s_rows_after_a_mark(tmp_path):
    """The call log's totals for one stage's tag prefix since a row id: calls and cache hits
    apart, tokens and cost of calls only, and the newest row's time."""
    from koalign.cache import CallRecord

    cache = Cache(tmp_path / "c.db")
    assert cache.last_call_id() == 0
    cache.log(CallRecord(model="m", backend="b", key="k0", tokens_in=5, tag="seeds/seed_generator"))
    mark = cache.last_call_id()
    rows = [
        CallRecord(model="m", backend="b", key="k1", tokens_in=3, tokens_out=2, cost=0.5, tag="seeds/seed_generator"),
        CallRecord(model="m", backend="b", key="k2", tokens_in=7, tokens_out=1, cache_hit=True, tag="seeds/benign_generator"),
        CallRecord(model="m", backend="b", key="k3", tokens_in=4, error_kind="server", tag="seeds/seed_generator"),
        CallRecord(model="m", backend="b", key="k4", tokens_in=9, tag="seedsx/other"),
        CallRecord(model="m", backend="b", key="k5", tokens_in=9, tag=None),
    ]  # fmt: skip
    for r in rows:
        cache.log(r)
    assert cache.last_call_id() == mark + len(rows)
    totals = cache.tag_totals("seeds/", after_id=mark)
    cache.close()
    assert {k: v for k, v in totals.items() if k != "last_ts"} == {
        "calls": 2,
        "cache_hits": 1,
        "tokens_in": 7,
        "tokens_out": 2,
        "cost": 0.5,
    }
    assert isinstance(totals["last_ts"], float)


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


def test_fast_keys_equal_the_canonical_key():
    from koalign.backends import ModelPool as Pool

    pool = Pool({"s": ModelSpec(backend="scripted", model="s", options={"responses": ["a"]})})
    llm = pool.get("s")
    identity = llm.backend.cache_identity()
    cases = [
        (("user", '안녕\n\t"따옴표" \\ \u0001 \u2028 😀'),),
        (("system", "규칙"), ("user", "질문"), ("assistant", "답"), ("user", "x")),
        (("user", "깨진 \ud83d 서로게이트"),),
    ]
    samplings = [
        SamplingParams(),
        SamplingParams(temperature=0.7, top_p=0.95, max_tokens=1024, seed=3, stop=("\n\n", "끝")),
        SamplingParams(temperature=1e-05, top_p=0.1234567890123),
    ]
    for messages in cases:
        for sampling in samplings:
            for schema in (None, SCHEMA):
                for index in (0, 7):
                    req = ChatRequest(
                        messages=tuple(Message(role=r, content=c) for r, c in messages),
                        sampling=sampling,
                        sample_index=index,
                    )
                    sent = req.model_copy(update={"json_schema": schema})
                    dumped = sampling.model_dump(exclude_none=True)
                    if "stop" in dumped:
                        dumped["stop"] = list(dumped["stop"])
                    expected = cache_key(
                        identity,
                        [{"role": r, "content": c} for r, c in messages],
                        dumped,
                        schema,
                        index,
                    )
                    assert llm._job(sent, req).key == expected
    pool.close()


def test_a_schema_request_keys_sends_and_reads_as_its_built_copy_without_holding_it():
    """A request with a schema waits for a slot as the caller's request: its key, the
    request the backend gets and the prompt texts an answer is checked against equal those of
    the copy with the contract appended, which is not held by the job."""
    from koalign.backends import ModelPool as Pool
    from koalign.backends.client import _prompt_texts
    from koalign.backends.structured import schema_contract_parts, with_schema_contract

    pool = Pool({"s": ModelSpec(backend="scripted", model="s", options={"responses": ["a"]})})
    llm = pool.get("s")
    cases = [
        (("user", '질문 \ud83d "따옴표" 😀'),),
        (("system", "규칙"), ("user", "질문"), ("assistant", "답"), ("user", "다시")),
        (("system", "규칙"),),  # no user turn: the contract is a turn of its own
        (("user", "이미 계약을 담은 질문 <json_schema>"),),
    ]
    for messages in cases:
        req = ChatRequest(
            messages=tuple(Message(role=r, content=c) for r, c in messages),
            sampling=SamplingParams(temperature=0.3),
            json_schema=SCHEMA,
        )
        built = req.model_copy(
            update={
                "sampling": llm._merged(req.sampling),
                "messages": with_schema_contract(req.messages, SCHEMA),
            }
        )
        job = llm._prepare(req)
        assert job.key == llm._job(built, req).key
        assert job.req == built
        flat = [(m.role, m.content) for m in built.messages]
        assert job.prompt == _prompt_texts(flat, SCHEMA)
        parts = schema_contract_parts(req.messages, SCHEMA)
        assert [(r, c if isinstance(c, str) else "".join(c)) for r, c in parts] == flat
        assert job.req is not job.req  # built when sent, never kept by the job
    pool.close()


def test_an_answer_is_committed_before_it_is_returned(tmp_path):
    """Each result is in the file, seen by another connection, the moment agenerate returns."""
    db = tmp_path / "c.db"
    spec = ModelSpec(backend="scripted", model="s", options={"responses": ["가", "나", "다"]})
    pool = ModelPool({"s": spec}, cache_path=db)
    llm = pool.get("s")
    missing: list[str] = []

    async def one(i: int) -> None:
        req = ChatRequest(messages=(Message(role="user", content=f"질문 {i}"),))
        [result] = await llm.agenerate([req])
        key = llm._prepare(req).key
        con = sqlite3.connect(db)  # another connection: only committed rows are visible
        row = con.execute("SELECT text FROM responses WHERE key = ?", (key,)).fetchone()
        con.close()
        if row is None or row[0] != result.text:
            missing.append(key)

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(60)))

    asyncio.run(main())
    pool.close()
    assert missing == []
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 60
    assert con.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 60
    con.close()


def test_a_version_1_cache_is_migrated_and_keeps_its_answers(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(
        """
        CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, backend TEXT NOT NULL,
            text TEXT, finish_reason TEXT, tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0, latency_s REAL NOT NULL DEFAULT 0,
            created REAL NOT NULL);
        CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
            model TEXT NOT NULL, backend TEXT NOT NULL, key TEXT,
            tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
            latency_s REAL NOT NULL DEFAULT 0, cost REAL NOT NULL DEFAULT 0, error_kind TEXT,
            error_message TEXT, attempts INTEGER NOT NULL DEFAULT 1,
            cache_hit INTEGER NOT NULL DEFAULT 0, tag TEXT);
        INSERT INTO responses VALUES ('k', 'm', 'openai', '<think>r</think>답', 'stop', 3, 4, 0.1, 0);
        INSERT INTO calls (ts, model, backend, key) VALUES (0, 'm', 'openai', 'k');
        PRAGMA user_version=1;
        """
    )
    con.close()
    with Cache(db) as cache:
        hit = cache.get("k")
        assert hit is not None and hit.text == "<think>r</think>답" and hit.reasoning is None
        assert cache.stats()["models"][0]["calls"] == 1
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()


def test_a_locked_file_never_blocks_the_event_loop(tmp_path):
    """Another process holds the write lock: the answer waits on the writer thread, not on the
    event loop, and is committed once the lock is free."""
    from koalign.cache import CachedResponse

    db = tmp_path / "c.db"
    cache = Cache(db)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, as a second writer would hold it

    async def main() -> int:
        answer = CachedResponse("답", "stop", 1, 1, 0.1)
        task = asyncio.create_task(cache.aput("k", "m", "openai", answer))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done()
        other.execute("COMMIT")
        await asyncio.wait_for(task, 30)
        return ticks

    assert asyncio.run(main()) == 20
    assert cache.get("k").text == "답"
    other.close()
    cache.close()


def test_key_builder_tells_equal_numbers_of_different_types_apart():
    """1, 1.0 and True compare equal but serialise differently: each gets its own key, the one
    ``cache_key`` gives, whatever order they come in."""
    from koalign.cache import KeyBuilder

    builder = KeyBuilder({"backend": "x"})
    msgs = [("user", "질문")]
    for value in (1, 1.0, True, 1, True, 1.0):
        got = builder.key(msgs, {"temperature": value}, None, 0)
        want = cache_key(
            {"backend": "x"}, [{"role": "user", "content": "질문"}], {"temperature": value}, None, 0
        )
        assert got == want
    keys = {builder.key(msgs, {"temperature": v}, None, 0) for v in (1, 1.0, True)}
    assert len(keys) == 3
    stops = {"stop": ["끝"], "temperature": 0.5}  # an unhashable value takes the slow path
    assert builder.key(msgs, stops, None, 0) == cache_key(
        {"backend": "x"}, [{"role": "user", "content": "질문"}], stops, None, 0
    )


def test_key_builder_equals_cache_key_on_awkward_texts_and_keeps_no_copy_of_the_prompt():
    """Quotes, backslashes, control characters, line separators, emoji and a lone surrogate
    hash as ``cache_key`` hashes them; the prompt string is left as it was (no UTF-8 copy
    cached inside it, which would double a waiting request's prompt memory)."""
    import sys

    from koalign.cache import KeyBuilder

    builder = KeyBuilder({"backend": "x"})
    texts = [
        '따옴표 " 역슬래시 \\ 줄\n탭\t',
        "\x00\x1f\x7f\u2028\u2029",
        "😀" * 3,
        "짝 없는 \ud83d",
        "",
    ]
    for text in texts:
        msgs = [("system", "시스템"), ("user", text), ("assistant", "답"), ("user", text[::-1])]
        want = cache_key(
            {"backend": "x"}, [{"role": r, "content": c} for r, c in msgs], {}, None, 2
        )
        assert builder.key(msgs, {}, None, 2) == want
        # the same text as a system message, serialised once and then reused
        system = [("system", text), ("user", "질문")]
        want = cache_key(
            {"backend": "x"}, [{"role": r, "content": c} for r, c in system], {}, None, 0
        )
        assert builder.key(system, {}, None, 0) == builder.key(system, {}, None, 0) == want
    prompt = "".join(chr(0xAC00 + i % 11172) for i in range(20_000))
    before = sys.getsizeof(prompt)
    builder.key([("user", prompt)], {"temperature": 0.5}, None, 0)
    assert sys.getsizeof(prompt) == before


def test_the_commit_interval_follows_the_answers_latency(tmp_path):
    """Writes gather for 1% of the answers' mean latency, 3 ms at least and 10 ms at most; each
    answer is still committed before aput returns."""
    from koalign.cache import CachedResponse

    cache = Cache(tmp_path / "c.db")
    seen: list[float] = []

    async def store(latencies: list[float]) -> None:
        for i, lat in enumerate(latencies):
            key = f"k{lat}-{i}"
            await cache.aput(key, "m", "openai", CachedResponse("답", "stop", 1, 1, lat, None))
            assert cache.get(key) is not None
            seen.append(cache._interval_s)

    asyncio.run(store([0.2] * 3))
    assert seen[-1] == pytest.approx(0.003)  # 2 ms -> the 3 ms floor
    asyncio.run(store([1.0] * 80))  # the mean moves towards 1 s
    assert seen[-1] == pytest.approx(0.01, rel=0.02)
    asyncio.run(store([30.0] * 5))
    assert seen[-1] == pytest.approx(0.010)  # the 10 ms ceiling
    cache.close()

"""SQLite response cache and call log (one file, WAL mode).

Two tables live in the same database:

* ``responses``: one row per model answer, keyed by :func:`cache_key` (a sha256 of the
  canonical JSON of the backend identity, the messages, the output-affecting sampling
  parameters, the JSON schema and the sample index). The raw content is stored as the model
  returned it (reasoning blocks included), with the server's separate reasoning field, the
  finish reason and token counts; reading it (reasoning, truncation, JSON) happens after the
  cache, so fixing a reader never pays for a call again. An answer cut at ``max_tokens`` is
  stored too (``finish_reason = 'length'``) and read back as truncated, never as a success.
  Failed calls (transport errors, HTTP errors) are never stored here, so a rerun retries them.
* ``calls``: one row per logical call, cache hits and errors included: timestamp, model name,
  backend, tokens, latency, cost, finish reason, error kind, attempts, cache hit, tag.

Writes are group-committed: the writes of a short interval go into one transaction, so a burst
of answers costs one commit (3 ms, :data:`COMMIT_INTERVAL_S`; up to 10 ms on the event loop
when answers take long, :data:`COMMIT_LATENCY_SHARE`). On an event loop, a timer commits them on
the loop itself when that needs no waiting (a connection with no busy timeout and no
checkpoints: in WAL mode a commit is a few page writes into the OS cache, tens of
microseconds); when another writer holds the file, the batch goes to a writer thread that may
wait, and WAL checkpoints (the only step that waits for the disk) run on that thread too.
:meth:`Cache.aput` returns only once its row is committed: an answer is durable before the
caller can use it (WAL with ``synchronous=NORMAL``: a committed row survives a killed process;
a power loss may lose the last commits). Reads use their own connection. Several processes may
share one file (each opens its own connections; SQLite's busy timeout serialises writers).

Text that UTF-8 cannot encode (a lone surrogate such as ``"\\ud83d"`` decoded from a server's
JSON) is stored losslessly as a BLOB of its ``surrogatepass`` encoding and read back as the same
Python string; judging whether such text is usable data is the caller's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from koalign.errors import KoalignError
from koalign.jsonio import canonical_json

__all__ = ["Cache", "CachedResponse", "CallRecord", "KeyBuilder", "cache_key", "canonical_json"]

SCHEMA_VERSION = 2

_RESPONSES = """CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    text TEXT,
    finish_reason TEXT,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    reasoning TEXT
)"""
_CALLS = """CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    key TEXT,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    error_kind TEXT,
    error_message TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    tag TEXT,
    finish_reason TEXT
)"""
# version 1 -> 2: the server's reasoning field and the call's finish reason
_MIGRATIONS = {
    1: [
        "ALTER TABLE responses ADD COLUMN reasoning TEXT",
        "ALTER TABLE calls ADD COLUMN finish_reason TEXT",
    ]
}

_INSERT_RESPONSE = (
    "INSERT OR IGNORE INTO responses (key, model, backend, text, finish_reason, tokens_in, "
    "tokens_out, latency_s, created, reasoning) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_CALL = (
    "INSERT INTO calls (ts, model, backend, key, tokens_in, tokens_out, latency_s, cost, "
    "error_kind, error_message, attempts, cache_hit, tag, finish_reason) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

_SURROGATE = re.compile("[\ud800-\udfff]")


def _db_text(text: str | None) -> str | bytes | None:
    """``text`` as SQLite can store it: unchanged, or a BLOB when it holds lone surrogates."""
    if text is None or text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "surrogatepass")


def _py_text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogatepass")
    return value


def _canon_bytes(obj: Any) -> bytes:
    return canonical_json(obj).encode("utf-8", "backslashreplace")


def _transient(content: str | tuple[str, ...]) -> str:
    """A new string object equal to ``content`` (joined when it is a tuple), for orjson to
    cache its UTF-8 copy in (an ASCII string has no such copy and is returned as it is)."""
    if not isinstance(content, str):
        return "".join(content) if len(content) != 1 else (content[0] + "\x00")[:-1]
    return content if content.isascii() else (content + "\x00")[:-1]


def cache_key(
    identity: dict[str, Any],
    messages: list[dict[str, str]],
    sampling: dict[str, Any],
    schema: dict[str, Any] | None,
    sample_index: int,
) -> str:
    """The cache key of one call: sha256 hex of the canonical JSON of ``{"identity",
    "messages", "sampling", "schema", "sample_index"}``. ``sampling`` should hold only the
    parameters that are set. Lone surrogates are hashed as ``\\uXXXX`` escapes."""
    payload = {
        "identity": identity,
        "messages": messages,
        "sampling": sampling,
        "schema": schema,
        "sample_index": sample_index,
    }
    return hashlib.sha256(_canon_bytes(payload)).hexdigest()


class KeyBuilder:
    """Computes :func:`cache_key` fast for one backend identity (the identity is serialised
    once; messages go through orjson, whose string encoding equals ``canonical_json``'s).

    ``key(messages, sampling, schema, sample_index)`` takes ``(role, content)`` pairs and
    returns exactly ``cache_key(identity, [{"role", "content"}...], sampling, schema, ...)``.
    The serialised form of a system message, a sampling mapping and a schema is kept per object
    (a stage's requests share them), so none of them may be changed after its first use.
    """

    def __init__(self, identity: dict[str, Any]) -> None:
        self._head = b'{"identity":' + _canon_bytes(identity) + b',"messages":'
        self._schemas: dict[int, tuple[Any, bytes]] = {}
        self._samplings: dict[tuple[tuple[str, type, Any], ...], bytes] = {}
        self._sampling_objects: dict[int, tuple[dict[str, Any], bytes]] = {}
        self._systems: dict[int, tuple[str, bytes]] = {}

    def _schema(self, schema: dict[str, Any] | None) -> bytes:
        if schema is None:
            return b"null"
        hit = self._schemas.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        blob = _canon_bytes(schema)
        if len(self._schemas) >= 256:
            self._schemas.clear()
        self._schemas[id(schema)] = (schema, blob)  # the reference keeps id() unique
        return blob

    def _message(self, role: str, content: str | tuple[str, ...]) -> bytes:
        """One message as ``canonical_json`` writes it inside the list (a system message's
        long text is serialised once per string object)."""
        shared = role == "system" and isinstance(content, str)
        if shared:
            hit = self._systems.get(id(content))
            if hit is not None and hit[0] is content:
                return hit[1]
        message = {"content": _transient(content), "role": role}
        try:
            blob = orjson.dumps(message)
        except TypeError:  # a lone surrogate: the slow path escapes it
            blob = _canon_bytes(message)
        if shared:
            if len(self._systems) >= 64:
                self._systems.clear()
            self._systems[id(content)] = (content, blob)  # type: ignore[assignment]
        return blob

    def _sampling(self, sampling: dict[str, Any]) -> bytes:
        if not sampling:
            return b"{}"
        same = self._sampling_objects.get(id(sampling))
        if same is not None and same[0] is sampling:
            return same[1]
        blob = self._sampling_blob(sampling)
        if len(self._sampling_objects) >= 256:
            self._sampling_objects.clear()
        self._sampling_objects[id(sampling)] = (sampling, blob)  # the reference keeps id() unique
        return blob

    def _sampling_blob(self, sampling: dict[str, Any]) -> bytes:
        try:
            # the type is part of the key: 1, 1.0 and True are equal but serialise differently
            items = tuple(sorted((k, type(v), v) for k, v in sampling.items()))
            hit = self._samplings.get(items)
        except TypeError:  # an unhashable value (a list of stop strings): no cache
            return _canon_bytes(sampling)
        if hit is None:
            hit = _canon_bytes(sampling)
            if len(self._samplings) >= 256:
                self._samplings.clear()
            self._samplings[items] = hit
        return hit

    def key(
        self,
        messages: Sequence[tuple[str, str | tuple[str, ...]]],
        sampling: dict[str, Any],
        schema: dict[str, Any] | None,
        sample_index: int,
    ) -> str:
        """The cache key (see :func:`cache_key`).

        A content given as a tuple of texts is hashed as their concatenation. orjson caches a
        UTF-8 copy of a non-ASCII string inside the string object, where it would stay for as
        long as the request waits for a model slot (3 bytes per Hangul syllable on top of the
        string's own 2): it is given a transient copy of each text instead."""
        h = hashlib.sha256(self._head)
        h.update(b"[" + b",".join([self._message(r, c) for r, c in messages]) + b"]")
        h.update(b',"sample_index":%d,"sampling":' % sample_index)
        h.update(self._sampling(sampling))
        h.update(b',"schema":')
        h.update(self._schema(schema))
        h.update(b"}")
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """One stored answer: the raw content (``text``, reasoning blocks included), the server's
    separate reasoning field, finish reason, prompt / completion tokens and seconds taken."""

    text: str | None
    finish_reason: str | None
    tokens_in: int
    tokens_out: int
    latency_s: float
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One row of the call log (tokens; latency in seconds; cost in the spec's currency)."""

    model: str
    backend: str
    key: str | None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost: float = 0.0
    error_kind: str | None = None
    error_message: str | None = None
    attempts: int = 1
    cache_hit: bool = False
    tag: str | None = None
    finish_reason: str | None = None


def _response_row(key: str, model: str, backend: str, r: CachedResponse) -> tuple[Any, ...]:
    return (
        key,
        model,
        backend,
        _db_text(r.text),
        r.finish_reason,
        r.tokens_in,
        r.tokens_out,
        r.latency_s,
        time.time(),
        _db_text(r.reasoning),
    )


def _call_row(r: CallRecord) -> tuple[Any, ...]:
    return (
        time.time(),
        r.model,
        r.backend,
        r.key,
        r.tokens_in,
        r.tokens_out,
        r.latency_s,
        r.cost,
        r.error_kind,
        _db_text(r.error_message),
        r.attempts,
        int(r.cache_hit),
        _db_text(r.tag),
        r.finish_reason,
    )


# A write: (sql, params) pairs, and the loop and future to settle once committed.
_Write = tuple[
    list[tuple[str, tuple[Any, ...]]],
    asyncio.AbstractEventLoop | None,
    "asyncio.Future[None] | None",
]

COMMIT_INTERVAL_S = 0.003
"""The shortest time writes gather before they are committed together (one transaction)."""

COMMIT_INTERVAL_MAX_S = 0.010
"""The longest time writes gather on the event loop (see :data:`COMMIT_LATENCY_SHARE`)."""

COMMIT_LATENCY_SHARE = 0.01
"""On the event loop, writes gather for this share of the answers' mean latency (between
:data:`COMMIT_INTERVAL_S` and :data:`COMMIT_INTERVAL_MAX_S`): waiting for its commit adds at
most 1% to the time an answer took, and slow servers, whose answers trickle in, still get
several answers per commit (at 1 s per answer, less CPU per request than a fixed 3 ms in 6 of 6
alternating pairs of runs: docs/benchmarks.md)."""

CHECKPOINT_EVERY = 2000
"""Rows committed on the event loop between two WAL checkpoints, which the writer thread runs
(a checkpoint is the only step that waits for the disk; 2,000 rows are about 2.5 MB of WAL)."""


def _write_batch(conn: sqlite3.Connection, batch: list[_Write]) -> None:
    """Execute the statements of ``batch`` in an open transaction: one ``executemany`` per
    statement, rows in batch order (each statement is an insert into its own table)."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for statements, _, _ in batch:
        for sql, params in statements:
            rows.setdefault(sql, []).append(params)
    for sql, params_list in rows.items():
        conn.executemany(sql, params_list)


def _settle(futures: list[asyncio.Future[None]], failure: BaseException | None) -> None:
    for fut in futures:
        if not fut.done():
            if failure is None:
                fut.set_result(None)
            else:
                fut.set_exception(failure)


def _settle_all(batch: list[_Write], failure: BaseException | None) -> None:
    """Settle the futures of ``batch``: directly on this thread's running loop, through
    ``call_soon_threadsafe`` on any other (a closed loop has nobody waiting)."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, loop, fut in batch:
        if loop is not None and fut is not None:
            waiting.setdefault(loop, []).append(fut)
    for loop, futures in waiting.items():
        if loop is here:
            _settle(futures, failure)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, futures, failure)


class Cache:
    """A response cache and call log in one SQLite file. Thread-safe; share one per process.

    Raises :class:`~koalign.errors.KoalignError` when the file cannot be opened, is corrupt, or
    was written by a newer koalign; a write that fails later (disk full, read-only file) raises
    it from :meth:`aput`, :meth:`put`, :meth:`log` or :meth:`flush`.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout_s = timeout_s
        self._wlock = threading.Lock()  # guards the writer connection
        self._rlock = threading.Lock()  # guards the reader connection
        self._cv = threading.Condition()
        self._queue: list[_Write] = []
        self._pending = 0  # writes queued or being committed
        self._idle = False  # the writer thread waits for work
        self._failure: BaseException | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._checkpoint_due = False
        # writes gathered on event loops, committed there by a timer (see _hold)
        self._hold_lock = threading.Lock()
        self._held: list[_Write] = []
        self._latency_s: float | None = None  # mean latency of the stored answers (EWMA)
        self._interval_s = COMMIT_INTERVAL_S
        self._timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._llock = threading.Lock()  # guards the event-loop connection
        self._inline_rows = 0  # rows committed on event loops since the last checkpoint
        try:
            self._conn = self._connect()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._migrate()
            self._rconn = self._connect()
            # the event loop's connection never waits: a locked file or a checkpoint goes to
            # the writer thread instead
            self._lconn = self._connect(busy_ms=0)
            self._lconn.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.DatabaseError as exc:
            raise KoalignError(
                f"cannot open the cache database: {exc}",
                where=str(self.path),
                hint="point cache_path at a writable file, or delete a corrupt one",
            ) from exc

    def _connect(self, *, busy_ms: int | None = None) -> sqlite3.Connection:
        ms = int(self._timeout_s * 1000) if busy_ms is None else busy_ms
        conn = sqlite3.connect(
            str(self.path), timeout=ms / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={ms}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _migrate(self) -> None:
        with self._wlock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise KoalignError(
                        f"cache schema version {version} is newer than this koalign "
                        f"({SCHEMA_VERSION})",
                        where=str(self.path),
                        hint="upgrade koalign or use another cache file",
                    )
                if version == 0:
                    self._conn.execute(_RESPONSES)
                    self._conn.execute(_CALLS)
                else:
                    for v in range(version, SCHEMA_VERSION):
                        for ddl in _MIGRATIONS[v]:
                            self._conn.execute(ddl)
                self._conn.execute("CREATE INDEX IF NOT EXISTS calls_model ON calls(model)")
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _error(self, exc: BaseException) -> KoalignError:
        text = str(exc).lower()
        if isinstance(exc, sqlite3.DatabaseError) and (
            "malformed" in text or "not a database" in text or "corrupt" in text
        ):
            return KoalignError(
                f"the cache database is damaged: {exc}",
                where=str(self.path),
                hint=f"move {self.path.name} (and its -wal and -shm files) away and rerun: "
                "the stage files keep every finished record, only unfinished calls are made "
                "again",
            )
        return KoalignError(
            f"cannot write the cache database: {exc}",
            where=str(self.path),
            hint="free disk space or make the file writable, then rerun (finished answers "
            "are kept)",
        )

    # -- the writer thread -------------------------------------------------------------------

    def _start_writer(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._writer, name="koalign-cache-writer", daemon=True
            )
            self._thread.start()

    def _enqueue(self, write: _Write) -> None:
        with self._cv:
            if self._closing and self._thread is None:
                raise KoalignError("the cache is closed", where=str(self.path))
            self._start_writer()
            self._queue.append(write)
            self._pending += 1
            if self._idle:  # a busy writer finds the write on its next round
                self._cv.notify_all()

    def _writer(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing and not self._checkpoint_due:
                    self._idle = True
                    self._cv.wait()
                self._idle = False
                if not self._queue and self._closing:
                    return
                checkpoint, self._checkpoint_due = self._checkpoint_due, False
            if checkpoint:
                with self._wlock, contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            if not self._queue:
                continue
            if not self._closing:
                time.sleep(COMMIT_INTERVAL_S)  # let a burst of answers share one commit
            with self._cv:
                batch, self._queue = self._queue, []
            failure = self._commit(self._conn, self._wlock, batch)
            _settle_all(batch, failure)
            with self._cv:
                if failure is not None and self._failure is None:
                    self._failure = failure
                self._pending -= len(batch)
                self._cv.notify_all()

    def _commit(
        self, conn: sqlite3.Connection, lock: threading.Lock, batch: list[_Write]
    ) -> KoalignError | None:
        """Write ``batch`` in one transaction on ``conn`` (waiting for ``lock``); the failure,
        if any."""
        with lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _write_batch(conn, batch)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                return self._error(exc)
        return None

    # -- group commits on the event loop -----------------------------------------------------

    def _hold(self, write: _Write, loop: asyncio.AbstractEventLoop) -> None:
        """Gather ``write``; a timer on ``loop`` commits what gathered in the commit interval
        (:data:`COMMIT_INTERVAL_S` to :data:`COMMIT_INTERVAL_MAX_S`, from the answers' mean
        latency)."""
        with self._hold_lock:
            if self._closing:
                raise KoalignError("the cache is closed", where=str(self.path))
            self._held.append(write)
            if loop in self._timers:
                return
            self._timers[loop] = loop.call_later(self._interval_s, self._commit_held, loop)

    def _commit_held(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit the gathered writes here, on the event loop, when that needs no waiting (a
        few tens of microseconds without any disk wait: WAL with checkpoints left to the
        writer thread); otherwise hand them to the writer thread."""
        with self._hold_lock:
            self._timers.pop(loop, None)
            batch, self._held = self._held, []
        if not batch:
            return
        try:
            self._commit_here(batch)
        except BaseException as exc:  # a loop callback must not leave callers waiting
            _settle_all(batch, exc if isinstance(exc, KoalignError) else self._error(exc))
            if not isinstance(exc, Exception):
                raise

    def _commit_here(self, batch: list[_Write]) -> None:
        if not self._llock.acquire(blocking=False):
            self._hand_over(batch)
            return
        failure: KoalignError | None = None
        try:
            conn = self._lconn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # another writer holds the file: do not wait here
                self._hand_over(batch)
                return
            try:
                _write_batch(conn, batch)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                failure = self._error(exc)
        finally:
            self._llock.release()
        _settle_all(batch, failure)
        if failure is not None:
            with self._cv:
                self._failure = self._failure or failure
        self._inline_rows += sum(len(statements) for statements, _, _ in batch)
        if self._inline_rows >= CHECKPOINT_EVERY:
            self._inline_rows = 0
            with self._cv:
                self._start_writer()
                self._checkpoint_due = True
                self._cv.notify_all()

    def _hand_over(self, batch: list[_Write]) -> None:
        for write in batch:
            self._enqueue(write)

    def _raise_failure(self) -> None:
        with self._cv:
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def aput(
        self,
        key: str,
        model: str,
        backend: str,
        response: CachedResponse,
        record: CallRecord | None = None,
    ) -> None:
        """Store an answer (and its call-log row) and return once both are committed.

        The first stored answer for a key wins. Raises :class:`KoalignError` when the write
        fails.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if response.latency_s > 0:
            self._note_latency(response.latency_s)
        statements = [(_INSERT_RESPONSE, _response_row(key, model, backend, response))]
        if record is not None:
            statements.append((_INSERT_CALL, _call_row(record)))
        self._hold((statements, loop, fut), loop)
        await fut

    def _note_latency(self, latency_s: float) -> None:
        """Fold one answer's latency into the mean and set the commit interval from it."""
        mean = self._latency_s
        mean = latency_s if mean is None else mean + 0.05 * (latency_s - mean)
        self._latency_s = mean
        self._interval_s = min(
            COMMIT_INTERVAL_MAX_S, max(COMMIT_INTERVAL_S, COMMIT_LATENCY_SHARE * mean)
        )

    def log_soon(self, record: CallRecord) -> None:
        """Queue a call-log row without waiting for its commit (:meth:`flush` waits)."""
        write: _Write = ([(_INSERT_CALL, _call_row(record))], None, None)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._enqueue(write)
            return
        self._hold(write, loop)

    def flush(self) -> None:
        """Commit every gathered or queued write and wait for it; raises a write failure seen
        meanwhile."""
        with self._hold_lock:
            batch, self._held = self._held, []
        if batch:
            failure = self._commit(self._conn, self._wlock, batch)
            _settle_all(batch, failure)
            if failure is not None:
                with self._cv:
                    self._failure = self._failure or failure
        with self._cv:
            while self._pending:
                self._cv.wait()
        self._raise_failure()

    # -- responses ---------------------------------------------------------------------------

    def get(self, key: str) -> CachedResponse | None:
        """The stored answer for ``key``, or ``None``."""
        with self._rlock:
            row = self._rconn.execute(
                "SELECT text, finish_reason, tokens_in, tokens_out, latency_s, reasoning "
                "FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        text, finish, t_in, t_out, latency, reasoning = row
        return CachedResponse(_py_text(text), finish, t_in, t_out, latency, _py_text(reasoning))

    def put(self, key: str, model: str, backend: str, response: CachedResponse) -> None:
        """Store an answer now (synchronously). The first stored answer for a key wins."""
        self._execute(_INSERT_RESPONSE, _response_row(key, model, backend, response))

    def delete(self, key: str) -> bool:
        """Remove the stored answer for ``key``; returns whether there was one."""
        self.flush()
        with self._wlock:
            return self._conn.execute("DELETE FROM responses WHERE key = ?", (key,)).rowcount > 0

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._wlock:
            try:
                self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    # -- call log ----------------------------------------------------------------------------

    def log(self, record: CallRecord) -> None:
        """Append a call-log row now (synchronously)."""
        self._execute(_INSERT_CALL, _call_row(record))

    def stats(self) -> dict[str, Any]:
        """Per-model totals from the call log, plus the number of cached responses.

        ``{"path", "cached_responses", "models": [{"model", "backend", "calls", "cache_hits",
        "tokens_in", "tokens_out", "cost", "errors", "truncated", "retries",
        "mean_latency_s"}]}``; tokens and cost count calls, not cache hits.
        """
        self.flush()
        with self._rlock:
            rows = self._rconn.execute(
                "SELECT model, backend, "
                "SUM(cache_hit = 0), SUM(cache_hit), "
                "SUM(CASE WHEN cache_hit = 0 THEN tokens_in ELSE 0 END), "
                "SUM(CASE WHEN cache_hit = 0 THEN tokens_out ELSE 0 END), "
                "SUM(cost), SUM(error_kind IS NOT NULL), SUM(attempts - 1), "
                "AVG(CASE WHEN cache_hit = 0 AND error_kind IS NULL THEN latency_s END), "
                "SUM(finish_reason = 'length') "
                "FROM calls GROUP BY model, backend ORDER BY model"
            ).fetchall()
            cached = self._rconn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        models = [
            {
                "model": r[0],
                "backend": r[1],
                "calls": r[2] or 0,
                "cache_hits": r[3] or 0,
                "tokens_in": r[4] or 0,
                "tokens_out": r[5] or 0,
                "cost": round(r[6] or 0.0, 6),
                "errors": r[7] or 0,
                "truncated": r[10] or 0,
                "retries": r[8] or 0,
                "mean_latency_s": round(r[9], 4) if r[9] is not None else None,
            }
            for r in rows
        ]
        return {"path": str(self.path), "cached_responses": cached, "models": models}

    def last_call_id(self) -> int:
        """The id of the newest call-log row (0 when there is none): rows written later have
        larger ids."""
        with self._rlock:
            row = self._rconn.execute("SELECT MAX(id) FROM calls").fetchone()
        return int(row[0] or 0)

    def tag_totals(self, prefix: str, *, after_id: int = 0) -> dict[str, Any]:
        """Totals of the call-log rows written after row ``after_id`` whose tag starts with
        ``prefix`` (a stage's calls are tagged ``<stage>/<role>``).

        ``{"calls", "cache_hits", "tokens_in", "tokens_out", "cost", "last_ts"}``: tokens and cost
        count calls, not cache hits (as :meth:`stats`); ``last_ts`` is the newest row's time
        (seconds since the epoch; ``None`` when no row matched). Rows still gathered for a group
        commit are not counted.
        """
        with self._rlock:
            row = self._rconn.execute(
                "SELECT SUM(cache_hit = 0), SUM(cache_hit), "
                "SUM(CASE WHEN cache_hit = 0 THEN tokens_in ELSE 0 END), "
                "SUM(CASE WHEN cache_hit = 0 THEN tokens_out ELSE 0 END), "
                "SUM(CASE WHEN cache_hit = 0 THEN cost ELSE 0 END), MAX(ts) "
                "FROM calls WHERE id > ? AND substr(tag, 1, ?) = ?",
                (after_id, len(prefix), prefix),
            ).fetchone()
        return {
            "calls": int(row[0] or 0),
            "cache_hits": int(row[1] or 0),
            "tokens_in": int(row[2] or 0),
            "tokens_out": int(row[3] or 0),
            "cost": float(row[4] or 0.0),
            "last_ts": row[5],
        }

    def calls(self) -> list[dict[str, Any]]:
        """Every row of the call log, oldest first (column name -> value)."""
        self.flush()
        with self._rlock:
            cur = self._rconn.execute("SELECT * FROM calls ORDER BY id")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [
            {n: _py_text(v) if isinstance(v, bytes) else v for n, v in zip(names, row, strict=True)}
            for row in rows
        ]

    def clear(self) -> dict[str, int]:
        """Delete every cached response and call-log row; returns how many were deleted."""
        self.flush()
        with self._wlock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                n_resp = self._conn.execute("DELETE FROM responses").rowcount
                n_calls = self._conn.execute("DELETE FROM calls").rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("VACUUM")
        return {"responses": n_resp, "calls": n_calls}

    def close(self) -> None:
        """Commit what is gathered or queued, stop the writer thread and close the
        connections."""
        with self._cv:
            if self._closing:
                return
        with contextlib.suppress(KoalignError):  # a failure was raised to a caller already
            self.flush()
        with self._hold_lock, self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()
        with self._wlock, self._rlock, self._llock:
            self._conn.close()
            self._rconn.close()
            self._lconn.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

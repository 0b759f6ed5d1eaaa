"""SQLite response cache and call log (one file, WAL mode).

Two tables live in the same database:

* ``responses``: one row per successful model call, keyed by :func:`cache_key` (a sha256 of the
  canonical JSON of the backend identity, the messages, the output-affecting sampling
  parameters, the JSON schema and the sample index). The raw text is stored; parsing happens
  after the cache, so fixing a parser never pays for a call again. Failed calls are never
  stored here, so a rerun retries them.
* ``calls``: one row per logical call, cache hits and errors included: timestamp, model name,
  backend, tokens, latency, cost, error kind, attempts, cache hit, tag.

The connection is opened in autocommit mode with a busy timeout, so many asyncio tasks of one
process (they share the connection behind a lock) and several processes (each with its own
connection) can read and write one file at the same time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koalign.errors import KoalignError

SCHEMA_VERSION = 1

_DDL = [
    """CREATE TABLE IF NOT EXISTS responses (
        key TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        backend TEXT NOT NULL,
        text TEXT,
        finish_reason TEXT,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        latency_s REAL NOT NULL DEFAULT 0,
        created REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS calls (
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
        tag TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS calls_model ON calls(model)",
]


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 text kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(
    identity: dict[str, Any],
    messages: list[dict[str, str]],
    sampling: dict[str, Any],
    schema: dict[str, Any] | None,
    sample_index: int,
) -> str:
    """The cache key of one call. ``sampling`` should hold only parameters that are set."""
    payload = {
        "identity": identity,
        "messages": messages,
        "sampling": sampling,
        "schema": schema,
        "sample_index": sample_index,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    text: str | None
    finish_reason: str | None
    tokens_in: int
    tokens_out: int
    latency_s: float


@dataclass(frozen=True)
class CallRecord:
    """One row of the call log."""

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


class Cache:
    """A response cache and call log in one SQLite file. Thread-safe; share one per process."""

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise KoalignError(
                f"cannot open the cache database: {exc}",
                where=str(self.path),
                hint="point cache_path at a writable file, or delete a corrupt one",
            ) from exc

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise KoalignError(
                    f"cache schema version {version} is newer than this koalign ({SCHEMA_VERSION})",
                    where=str(self.path),
                    hint="upgrade koalign or use another cache file",
                )
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for ddl in _DDL:
                    self._conn.execute(ddl)
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- responses ---------------------------------------------------------------------------

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, finish_reason, tokens_in, tokens_out, latency_s "
                "FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        return CachedResponse(*row) if row else None

    def put(self, key: str, model: str, backend: str, response: CachedResponse) -> None:
        """Store a successful response. The first stored answer for a key wins."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO responses (key, model, backend, text, finish_reason, "
                "tokens_in, tokens_out, latency_s, created) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    model,
                    backend,
                    response.text,
                    response.finish_reason,
                    response.tokens_in,
                    response.tokens_out,
                    response.latency_s,
                    time.time(),
                ),
            )

    # -- call log ----------------------------------------------------------------------------

    def log(self, record: CallRecord) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO calls (ts, model, backend, key, tokens_in, tokens_out, latency_s, "
                "cost, error_kind, error_message, attempts, cache_hit, tag) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    time.time(),
                    record.model,
                    record.backend,
                    record.key,
                    record.tokens_in,
                    record.tokens_out,
                    record.latency_s,
                    record.cost,
                    record.error_kind,
                    record.error_message,
                    record.attempts,
                    int(record.cache_hit),
                    record.tag,
                ),
            )

    def stats(self) -> dict[str, Any]:
        """Per-model totals from the call log, plus the number of cached responses."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT model, backend, "
                "SUM(cache_hit = 0), SUM(cache_hit), "
                "SUM(CASE WHEN cache_hit = 0 THEN tokens_in ELSE 0 END), "
                "SUM(CASE WHEN cache_hit = 0 THEN tokens_out ELSE 0 END), "
                "SUM(cost), SUM(error_kind IS NOT NULL), SUM(attempts - 1), "
                "AVG(CASE WHEN cache_hit = 0 AND error_kind IS NULL THEN latency_s END) "
                "FROM calls GROUP BY model, backend ORDER BY model"
            ).fetchall()
            cached = self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
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
                "retries": r[8] or 0,
                "mean_latency_s": round(r[9], 4) if r[9] is not None else None,
            }
            for r in rows
        ]
        return {"path": str(self.path), "cached_responses": cached, "models": models}

    def calls(self) -> list[dict[str, Any]]:
        """Every row of the call log, oldest first."""
        with self._lock:
            cur = self._conn.execute("SELECT * FROM calls ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def clear(self) -> dict[str, int]:
        """Delete every cached response and call-log row; returns how many were deleted."""
        with self._lock:
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
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The run directory: ``manifest.json`` plus one append-only ``<stage>.jsonl`` per stage.

Crash safety: each record is one JSON line appended with a single ``write``; appended lines are
fsynced in groups (at most every ``runtime.fsync_interval_ms``, by a background thread, never on
the event loop). A record that did not reach the disk before a kill is recomputed on resume,
from the response cache, so no paid call is repeated. A torn last line left by a kill is cut off
when the file is opened again. A stage's records are valid only under the stage hash stored in
the manifest: when the hash changes, the stage's file is moved to ``stale/`` and recomputed.
When a stage ends its file is rewritten in plan order (atomically), so outputs do not depend on
completion order.

:class:`RecordLog` keeps only an index in memory (id -> byte offset and length of the last line
of that id), so a stage's records are streamed from disk, never held.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from koalign.config import RunConfig
from koalign.errors import DataError, KoalignError
from koalign.jsonio import digest, dumps_line, write_text_atomic

log = logging.getLogger(__name__)

__all__ = ["RecordLog", "RunDir", "file_digest", "package_versions"]


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes, streamed (``None`` when it does not exist)."""
    import hashlib

    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a run's output."""
    names = [
        "koalign",
        "pydantic",
        "openai",
        "httpx",
        "numpy",
        "torch",
        "transformers",
        "trl",
        "datasets",
        "outlines",
        "llguidance",
    ]
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


class _Syncer:
    """fsyncs the file descriptors it is given, in groups, on a background thread."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.error: OSError | None = None

    def mark(self, fd: int) -> None:
        with self._lock:
            self._dirty.add(fd)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="koalign-fsync", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.sync_now()

    def sync_now(self) -> None:
        with self._lock:
            fds, self._dirty = self._dirty, set()
        for fd in fds:
            try:
                os.fsync(fd)
            except OSError as exc:  # closed meanwhile (already synced) or a disk error
                if exc.errno != 9:  # EBADF
                    self.error = exc

    def forget(self, fd: int) -> None:
        with self._lock:
            self._dirty.discard(fd)

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.sync_now()


class RecordLog:
    """An append-only JSONL file of records keyed by ``id``, with an in-memory index.

    The last line of an id wins (a retried record is appended again). Lines are written as
    canonical JSON, so a record's bytes depend only on its content.
    """

    def __init__(self, path: Path, *, syncer: _Syncer | None = None) -> None:
        self.path = path
        self._syncer = syncer
        self._fd: int | None = None
        self._index: dict[str, tuple[int, int]] = {}
        self._size = 0

    # -- opening -----------------------------------------------------------------------------
    def open(self) -> dict[str, tuple[int, int]]:
        """Index every complete line (cutting a torn tail) and return id -> (offset, length).

        Raises :class:`DataError` (file:line) for a corrupt line that is not the last one or a
        line without an ``id``.
        """
        self._index = {}
        self._size = 0
        if not self.path.is_file():
            return self._index
        good_end = 0
        with open(self.path, "rb") as fh:
            data_pos = 0
            for number, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    break  # torn last line (no newline): cut below
                try:
                    rid = json.loads(line)["id"]
                except (json.JSONDecodeError, UnicodeDecodeError):
                    if fh.read(1):
                        raise DataError(
                            "corrupt line (not JSON)",
                            where=f"{self.path}:{number}",
                            hint="only the last line may be torn by a crash; remove the "
                            "file (or the line) and rerun to recompute it",
                        ) from None
                    break
                except (KeyError, TypeError):
                    raise DataError(
                        "record has no 'id'",
                        where=f"{self.path}:{number}",
                        hint="stage files are written by koalign; remove the line (or the "
                        "file) and rerun to recompute it",
                    ) from None
                self._index[str(rid)] = (data_pos, len(line))
                data_pos += len(line)
                good_end = data_pos
        size = self.path.stat().st_size
        if good_end < size:
            log.warning(
                "%s: cut an incomplete last line (%d bytes, from an interrupted write); "
                "its record is recomputed (calls to remote models come from the cache)",
                self.path,
                size - good_end,
            )
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        self._size = good_end
        return self._index

    @property
    def ids(self) -> set[str]:
        """The ids indexed so far (a copy)."""
        return set(self._index)

    def __contains__(self, rid: str) -> bool:
        return rid in self._index

    def order(self) -> list[str]:
        """The ids in the order their current lines were first indexed: file order for a file
        just opened or rewritten (a record appended again keeps its first place)."""
        return list(self._index)

    def __len__(self) -> int:
        return len(self._index)

    # -- reading -----------------------------------------------------------------------------
    def read(self, rid: str) -> bytes:
        """The stored line of ``rid`` (KeyError when absent)."""
        offset, length = self._index[rid]
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def lines(self) -> Iterator[bytes]:
        """Every line of the file, in file order (after a rewrite: plan order)."""
        if not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            yield from fh

    # -- writing -----------------------------------------------------------------------------
    def append(self, rid: str, record: Any) -> None:
        """Append one record (a JSON value or pre-serialised line bytes)."""
        line = record if isinstance(record, bytes) else dumps_line(record)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, line)
        self._index[rid] = (self._size, len(line))
        self._size += len(line)
        if self._syncer is not None:
            self._syncer.mark(self._fd)

    def rewrite(self, order: Iterable[str], *, fsync: bool = True) -> str:
        """Rewrite the file with the records of ``order`` (ids), in that order, atomically;
        ids not in ``order`` are dropped. Returns the new file's sha256."""
        self.close()
        src = os.open(self.path, os.O_RDONLY) if self.path.is_file() else None
        try:

            def lines() -> Iterator[tuple[str, bytes]]:
                for rid in order:
                    offset, length = self._index[rid]
                    assert src is not None
                    yield rid, os.pread(src, length, offset)

            return self.write_all(lines(), fsync=fsync)
        finally:
            if src is not None:
                os.close(src)

    def write_all(self, records: Iterable[tuple[str, Any]], *, fsync: bool = True) -> str:
        """Replace the file with ``(id, record)`` pairs (a JSON value or line bytes), in order,
        atomically and streamed. Returns the new file's sha256."""
        import hashlib
        import tempfile

        self.close()
        h = hashlib.sha256()
        index: dict[str, tuple[int, int]] = {}
        pos = 0
        fd_tmp, tmp_name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd_tmp, "wb") as out:
                for rid, rec in records:
                    line = rec if isinstance(rec, bytes) else dumps_line(rec)
                    out.write(line)
                    h.update(line)
                    index[rid] = (pos, len(line))
                    pos += len(line)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._index = index
        self._size = pos
        return h.hexdigest()

    def flush(self) -> None:
        """fsync what was appended so far."""
        if self._fd is not None:
            if self._syncer is not None:
                self._syncer.forget(self._fd)
            os.fsync(self._fd)

    def close(self) -> None:
        """Flush and close the append handle (the index stays)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._syncer is not None:
                self._syncer.forget(fd)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _lock(root: Path) -> Any:
    """Hold an exclusive lock on the run directory for this process's lifetime (released by the
    OS when the process dies, SIGKILL included), so two runs never append to the same files."""
    import fcntl

    fh = open(root / ".lock", "a+")  # noqa: SIM115 - kept open as long as the RunDir lives
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise KoalignError(
            "another koalign process is using this run directory",
            where=str(root),
            hint="wait for it to finish (or stop it), then rerun the same command",
        ) from None
    return fh


class RunDir:
    """A run directory and its manifest."""

    def __init__(self, root: str | Path, config: RunConfig, *, locale_digest: str) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise KoalignError(
                "the run directory path is an existing file",
                where=str(self.root),
                hint="pass a directory path to -o (a new one, or an earlier run's directory)",
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.locale_digest = locale_digest
        self._lock_fh: Any = None
        self.lock()
        self.manifest_path = self.root / "manifest.json"
        self.manifest: dict[str, Any] = self._load_manifest()
        self.manifest.update(
            config=config.model_dump(mode="json"),
            locale={"id": config.locale, "digest": locale_digest},
            versions=package_versions(),
        )
        self.manifest.setdefault("status", "created")
        self.manifest.setdefault("stages", {})
        self.syncer = (
            _Syncer(config.runtime.fsync_interval_ms / 1000) if config.runtime.fsync else None
        )
        self.save()

    def lock(self) -> None:
        """Take the run directory's lock (idempotent)."""
        if self._lock_fh is None:
            self._lock_fh = _lock(self.root)

    def unlock(self) -> None:
        """Release the lock and stop the fsync thread."""
        if self.syncer is not None:
            self.syncer.stop()
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    @property
    def cache_path(self) -> Path:
        """``cache.sqlite``: the run's response cache."""
        return self.root / "cache.sqlite"

    def path(self, stage: str) -> Path:
        """``<stage>.jsonl``."""
        return self.root / f"{stage}.jsonl"

    def log(self, stage: str) -> RecordLog:
        """The :class:`RecordLog` of ``<stage>.jsonl`` (not yet opened), fsynced in groups by the
        run's syncer when ``runtime.fsync`` is on."""
        return RecordLog(self.path(stage), syncer=self.syncer)

    def _load_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(
                f"manifest is not valid JSON: {exc}",
                where=str(self.manifest_path),
                hint="restore it, or remove it to recompute from the stage files and the cache",
            ) from exc
        if not isinstance(data, dict):
            raise DataError("manifest is not a JSON object", where=str(self.manifest_path))
        return data

    def save(self) -> None:
        """Write ``manifest.json`` atomically (fsynced when ``runtime.fsync`` is on).

        Raises:
            OSError: the disk refused the write (the old manifest is kept).
        """
        write_text_atomic(
            self.manifest_path,
            json.dumps(self.manifest, ensure_ascii=False, indent=2) + "\n",
            fsync=self.config.runtime.fsync,
        )

    def stage_key(self, stage: str, input_digest: str | None, extra: str = "") -> str:
        """Identity of a stage's work: its config hash, the locale, its input and ``extra``."""
        return digest([self.config.stage_hash(stage), self.locale_digest, input_digest, extra])

    def entry(self, stage: str) -> dict[str, Any]:
        """A copy of the manifest entry of ``stage`` (``{}`` when it never ran)."""
        return dict(self.manifest["stages"].get(stage) or {})

    def prepare(self, stage: str, later: Iterable[str], *, log_from: int | None = None) -> None:
        """Start (re)computing ``stage``: move its file to stale/ when its config changed, and
        mark the later stages invalidated. A new entry (or one whose records went to stale/)
        records ``log_from``, the call log's newest row id now: the stage's calls are the rows
        after it tagged ``<stage>/``, over every invocation that builds it.

        Records stay usable when only the input changed (e.g. a larger --limit): their ids are
        digests of their inputs. A change of config or locale discards them.
        """
        entry = self.manifest["stages"].get(stage)
        config_key = self.config.stage_hash(stage) + self.locale_digest
        if entry is not None and entry.get("config_key") != config_key:
            self._move_stale(stage, str(entry.get("config_key", ""))[:8])
            entry = None
        if entry is None:
            entry = {"status": "pending", "config_key": config_key}
            if log_from is not None:
                entry["log_from"] = log_from
        entry["status"] = "running"
        entry.pop("key", None)
        self.manifest["stages"][stage] = entry
        for name in later:
            if name in self.manifest["stages"]:
                self.manifest["stages"][name]["status"] = "invalidated"
        self.save()

    def done_state(self, stage: str, key: str) -> str | None:
        """``"done"`` when ``stage`` finished ``done`` under ``key`` (see :meth:`stage_key`) and
        its file still has the digest recorded then; ``"changed"`` when it finished under ``key``
        but its file is missing or has another digest (edited, damaged or replaced by hand);
        else ``None`` (the file is read once)."""
        entry = self.manifest["stages"].get(stage)
        if not entry or entry.get("status") != "done" or entry.get("key") != key:
            return None
        same = file_digest(self.path(stage)) == entry.get("output_digest")
        return "done" if same else "changed"

    def _move_stale(self, stage: str, tag: str) -> None:
        stale = self.root / "stale"
        path = self.path(stage)
        if path.is_file():
            stale.mkdir(exist_ok=True)
            os.replace(path, stale / f"{path.stem}.{tag or 'old'}{path.suffix}")

    def finish(self, stage: str, summary: dict[str, Any]) -> None:
        """Merge ``summary`` into the stage's manifest entry, stamp ``finished_at`` (UTC, ISO 8601)
        and save."""
        entry = self.manifest["stages"].setdefault(stage, {})
        entry.update(summary)
        entry["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.save()

    def set_status(self, status: str, *, best_effort: bool = False) -> None:
        """Record the run's status; ``best_effort`` (on the way out of a failure) never raises
        for a disk that refuses the write."""
        self.manifest["status"] = status
        try:
            self.save()
        except OSError:
            if not best_effort:
                raise

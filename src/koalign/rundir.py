"""The run directory: ``manifest.json`` plus one append-only ``<stage>.jsonl`` per stage.

Crash safety: each record is one JSON line written with a single ``write`` and (by default)
``fsync``; a torn last line left by a kill is cut off before the next append. A stage's records
are valid only under the stage hash stored in the manifest: when the hash changes, the stage's
file (and every later stage's) is moved to ``stale/`` and recomputed. When a stage ends its file
is rewritten in plan order (atomically), so outputs do not depend on completion order.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from koalign.config import STAGES, RunConfig
from koalign.errors import DataError, KoalignError


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def file_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_versions() -> dict[str, str]:
    names = [
        "koalign",
        "pydantic",
        "openai",
        "datasketch",
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


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RecordLog:
    """An append-only JSONL file of records keyed by ``id``."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._fd: int | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """Read every complete record (the last line of an id wins: a retried record is appended
        again); cut a torn tail."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return records
        data = self.path.read_bytes()
        good_end = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                break  # torn last line (no newline): ignored and cut below
            line = data[pos:nl]
            try:
                rec = json.loads(line.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                if data.find(b"\n", nl + 1) >= 0:
                    raise DataError(
                        f"corrupt line at byte {pos}",
                        where=str(self.path),
                        hint="only the last line may be torn; remove the file to recompute",
                    ) from None
                break
            records[rec["id"]] = rec
            pos = good_end = nl + 1
        if good_end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        return records

    def append(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, (dumps(record) + "\n").encode("utf-8"))
        if self.fsync:
            os.fsync(self._fd)

    def rewrite(self, records: Iterable[dict[str, Any]]) -> None:
        self.close()
        write_atomic(self.path, "".join(dumps(r) + "\n" for r in records))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock(root: Path):
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
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.locale_digest = locale_digest
        self._lock_fh = None
        self.lock()
        self.manifest_path = self.root / "manifest.json"
        self.manifest = self._load_manifest()
        self.manifest.update(
            config=config.model_dump(mode="json"),
            locale={"id": config.locale, "digest": locale_digest},
            versions=package_versions(),
        )
        self.manifest.setdefault("status", "created")
        self.manifest.setdefault("stages", {})
        self.save()

    def lock(self) -> None:
        """Take the run directory's lock (idempotent)."""
        if self._lock_fh is None:
            self._lock_fh = _lock(self.root)

    def unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    @property
    def cache_path(self) -> Path:
        return self.root / "cache.sqlite"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def log(self, stage: str) -> RecordLog:
        return RecordLog(self.root / f"{stage}.jsonl", fsync=self.config.runtime.fsync)

    def _load_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"manifest is not valid JSON: {exc}",
                where=str(self.manifest_path),
                hint="restore it or start a new run directory",
            ) from exc

    def save(self) -> None:
        write_atomic(
            self.manifest_path, json.dumps(self.manifest, ensure_ascii=False, indent=2) + "\n"
        )

    def stage_key(self, stage: str, input_digest: str | None) -> str:
        """Identity of a stage's work: its config hash, the locale and its input file."""
        h = hashlib.sha256()
        h.update(self.config.stage_hash(stage).encode())
        h.update(self.locale_digest.encode())
        h.update((input_digest or "").encode())
        return h.hexdigest()

    def prepare(self, stage: str, key: str) -> None:
        """Start (re)computing ``stage``: move its file to stale/ when its config changed, and
        mark every later stage invalidated.

        Records stay usable when only the input changed (e.g. a larger --limit): their ids are
        content hashes of their inputs. A change of config or locale discards them.
        """
        entry = self.manifest["stages"].get(stage)
        config_key = self.config.stage_hash(stage) + self.locale_digest
        if entry is not None and entry.get("config_key") != config_key:
            self._move_stale(stage, entry.get("config_key", "")[:8])
            entry = None
        if entry is None:
            entry = {"status": "pending", "config_key": config_key}
        entry["key"] = key
        entry["status"] = "running"
        self.manifest["stages"][stage] = entry
        # later stages were computed from this stage's old output: they must run again (their
        # records stay usable where their inputs did not change)
        for later in STAGES[STAGES.index(stage) + 1 :]:
            if later in self.manifest["stages"]:
                self.manifest["stages"][later]["status"] = "invalidated"
        self.save()

    def is_done(self, stage: str, key: str) -> bool:
        entry = self.manifest["stages"].get(stage)
        if not entry or entry.get("status") != "done" or entry.get("key") != key:
            return False
        out = self.root / f"{stage}.jsonl" if stage != "export" else self.export_dir / "train.jsonl"
        return out.is_file()

    def _move_stale(self, stage: str, tag: str) -> None:
        stale = self.root / "stale"
        for name in (f"{stage}.jsonl", f"{stage}_report.json"):
            path = self.root / name
            if path.is_file():
                stale.mkdir(exist_ok=True)
                os.replace(path, stale / f"{path.stem}.{tag or 'old'}{path.suffix}")

    def finish(self, stage: str, summary: dict[str, Any]) -> None:
        entry = self.manifest["stages"][stage]
        entry.update(summary)
        entry["status"] = summary.get("status", "done")
        entry["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.save()

    def set_status(self, status: str) -> None:
        self.manifest["status"] = status
        self.save()

    def output_digest(self, stage: str) -> str | None:
        return file_digest(self.root / f"{stage}.jsonl")


def stage_order(stage: str) -> int:
    return STAGES.index(stage)

"""Faults of the machine and of the user's input end in a one-line error that names the cause and
the fix, lose nothing, and leave no stray temporary or half-written file; signals stop a run
cleanly; every stage reconciles its counts, also against a faulty server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.servers import ROOT, QuietHandler, cli, double, reply, serve, served, server_config


def write(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def no_strays(root: Path) -> None:
    strays = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not strays, strays


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text(encoding="utf-8"))


def reconciles(m: dict) -> None:
    for name, e in m["stages"].items():
        if e.get("status") in ("done", "partial"):
            assert e["records_in"] == e["records_kept"] + sum(e["dropped"].values()), name
            assert e["report"]["records_in"] == e["records_in"], name


def test_every_stage_reconciles_against_a_faulty_server(small_locale, tmp_path):
    faults = {"fault_429": 0.1, "fault_500": 0.1, "fault_malformed": 0.05, "retry_after": 0.05}
    with double(**faults) as url:
        config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
        out = cli("run", config, "-o", str(tmp_path / "run"))
        assert out.returncode == 0, out.stderr[-2000:]
        assert served(url) > 0
    m = manifest(tmp_path / "run")
    assert m["status"] == "done"
    reconciles(m)
    st = m["stages"]
    for upstream, downstream in zip(list(st)[:-1], list(st)[1:], strict=True):
        assert st[downstream]["records_in"] == st[upstream]["records_out"]
    no_strays(tmp_path / "run")


def start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "koalign", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@contextlib.contextmanager
def busy_run(small_locale: Path, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A `koalign run` (stop_grace_s 1) against a 3 s-latency double, once it is making calls."""
    with double(latency_mean=3.0) as url:
        data = server_config(str(small_locale), url, runtime={"stop_grace_s": 1.0})
        config = write(tmp_path / "c.yaml", data)
        proc = start(["run", config, "-o", str(tmp_path / "run")])
        deadline = time.monotonic() + 60
        while served_or_inflight(url) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        yield proc


@pytest.mark.parametrize(
    ("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")]
)
def test_a_signal_stops_the_run_and_marks_it_interrupted(small_locale, tmp_path, sig, code, name):
    with busy_run(small_locale, tmp_path) as proc:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)  # a guard against a hang, not a measurement
    assert proc.returncode == code, err[-2000:]
    assert f"{name} received" in err and "rerun the same command" in err
    assert "get 1 s to finish" in err  # stop_grace_s, then the calls in flight are cancelled
    m = manifest(tmp_path / "run")
    assert m["status"] == "interrupted"
    assert "interrupted" in {e.get("status") for e in m["stages"].values()}
    assert "Traceback" not in err
    no_strays(tmp_path / "run")


def test_one_signal_delivered_twice_still_gives_the_grace_period(small_locale, tmp_path):
    # GNU timeout (timeout -s INT ...) signals the child and then its process group
    with busy_run(small_locale, tmp_path) as proc:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "SIGINT received" in err and "second signal" not in err
    assert manifest(tmp_path / "run")["status"] == "interrupted"


def cached_answers(run: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(run / "cache.sqlite")) as db:
        return int(db.execute("SELECT count(*) FROM responses").fetchone()[0])


def test_a_clean_stop_keeps_every_answer_a_server_was_asked_for(small_locale, tmp_path):
    """SIGINT lets the calls in flight finish (a 10 s grace against 1 s answers) and starts no
    new one: every request the server answered is in the cache, the rerun asks for none of
    them again, and the manifest counts the calls of both invocations."""
    with double(latency_mean=1.0) as url:
        data = server_config(str(small_locale), url, runtime={"stop_grace_s": 10.0})
        config = write(tmp_path / "c.yaml", data)
        run = tmp_path / "run"
        proc = start(["run", config, "-o", str(run)])
        deadline = time.monotonic() + 60
        while served(url) < 20 and time.monotonic() < deadline:  # well into the run
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # a guard against a hang, not a measurement
        assert proc.returncode == 130, err[-2000:]
        assert manifest(run)["status"] == "interrupted"
        assert served(url) == cached_answers(run)  # nothing the server answered was dropped
        out = cli("run", config, "-o", str(run))
        assert out.returncode == 0, out.stderr[-2000:]
        m = manifest(run)
        assert m["status"] == "done"
        assert served(url) == cached_answers(run)  # and nothing was asked for twice
        # the stages' call counts add up over both invocations, the interrupted one included
        assert sum(e.get("calls", 0) for e in m["stages"].values()) == served(url)
    no_strays(run)


def served_or_inflight(url: str) -> int:
    """Requests answered so far (with a 3 s latency, the first answers mean the run is busy)."""
    return served(url)


def test_a_config_in_cp949_names_the_file_and_the_fix(small_locale, tmp_path):
    text = yaml.safe_dump(
        server_config(str(small_locale), "http://127.0.0.1:9/v1"), allow_unicode=True
    )
    text += "# 한국어 주석\n"
    path = tmp_path / "c.yaml"
    path.write_bytes(text.encode("cp949"))
    out = cli("run", str(path), "-o", str(tmp_path / "run"))
    assert out.returncode == 1 and "iconv -f cp949" in out.stderr and str(path) in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "run").exists()


def test_a_bad_calibration_file_is_named_before_any_call(small_locale, tmp_path):
    from koalign.evaluate.calibration import scores

    cal = tmp_path / "cal" / "summary.json"
    cal.parent.mkdir()
    judged = scores([True, False, True, False], [True, False, False, False], n_boot=50, seed=0)
    meaning = "사람이 받아들일 만하다고 본 응답"
    entry = {
        "task": "acceptability",
        "label_meaning": meaning,
        "flagged_class": "unacceptable",
        "n": 4,
        "human_flagged": 2,
        "judges": {"judge": {**judged, "parse_failure_reasons": {}, "per_category": {}}},
    }
    text = json.dumps({"judge_calibration": {"acceptability": entry}}, ensure_ascii=False)
    cal.write_bytes(text.encode("cp949"))
    with double() as url:
        data = server_config(str(small_locale), url, export={"calibration": str(cal.parent)})
        config = write(tmp_path / "c.yaml", data)
        out = cli("run", config, "-o", str(tmp_path / "run"))
        assert out.returncode == 1, out.stderr[-2000:]
        assert "Traceback" not in out.stderr
        assert f"{cal}: not UTF-8 text" in out.stderr
        fix = f"iconv -f cp949 -t utf-8 {cal} > {cal}.tmp && mv {cal}.tmp {cal}"
        assert fix in " ".join(out.stderr.split())
        # found before the first call: the card that shows it is written last
        assert served(url) == 0 and not (tmp_path / "run").exists()
        # a summary.json edited by hand: a field the card needs is missing
        broken = {"judge_calibration": {"acceptability": {**entry, "task": None}}}
        del broken["judge_calibration"]["acceptability"]["task"]
        cal.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
        out = cli("run", config, "-o", str(tmp_path / "run"))
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "task 'acceptability' cannot be shown (the field 'task')" in out.stderr
        assert served(url) == 0 and not (tmp_path / "run").exists()
        cal.write_text(text, encoding="utf-8")  # what the iconv line does
        again = cli("run", config, "-o", str(tmp_path / "run"))
        assert again.returncode == 0, again.stderr[-2000:]
    assert manifest(tmp_path / "run")["status"] == "done"
    assert meaning in (tmp_path / "run" / "export" / "README.md").read_text("utf-8")
    no_strays(tmp_path / "run")


def test_out_pointing_at_a_file(small_locale, tmp_path):
    config = write(tmp_path / "c.yaml", server_config(str(small_locale), "http://127.0.0.1:9/v1"))
    target = tmp_path / "afile"
    target.write_text("x")
    out = cli("run", config, "-o", str(target))
    assert out.returncode == 1 and "existing file" in out.stderr and "Traceback" not in out.stderr
    assert target.read_text() == "x"


def finished_run(small_locale, tmp_path: Path, url: str) -> tuple[str, Path]:
    config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
    run = tmp_path / "run"
    out = cli("run", config, "-o", str(run))
    assert out.returncode == 0, out.stderr[-2000:]
    return config, run


def test_a_stage_line_without_id_is_named(small_locale, tmp_path):
    with double() as url:
        config, run = finished_run(small_locale, tmp_path, url)
        lines = (run / "attack.jsonl").read_text(encoding="utf-8").splitlines()
        bad = json.loads(lines[1])
        del bad["id"]
        lines[1] = json.dumps(bad, ensure_ascii=False)
        (run / "attack.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = cli("run", config, "-o", str(run))
    assert out.returncode == 1 and "attack.jsonl:2: record has no 'id'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_finished_stage_file_cut_mid_character_is_recomputed(small_locale, tmp_path):
    with double() as url:
        config, run = finished_run(small_locale, tmp_path, url)
        before = {p: (run / p).read_bytes() for p in ("respond.jsonl", "export/train.jsonl")}
        paid = served(url)
        data = (run / "respond.jsonl").read_bytes()
        cut = data.rfind("한".encode()) + 1 if "한".encode() in data else len(data) - 3
        (run / "respond.jsonl").write_bytes(data[:cut])  # inside a character, no newline
        out = cli("run", config, "-o", str(run))
        assert out.returncode == 0, out.stderr[-2000:]
        assert served(url) == paid  # recomputed from the cache: nothing paid again
    assert {p: (run / p).read_bytes() for p in before} == before
    no_strays(run)


def test_a_damaged_cache_is_named_with_the_fix(small_locale, tmp_path):
    with double() as url:
        config, run = finished_run(small_locale, tmp_path, url)
        (run / "judge.jsonl").unlink()  # judge must run again and read the cache
        db = run / "cache.sqlite"
        for extra in ("-wal", "-shm"):
            Path(str(db) + extra).unlink(missing_ok=True)
        data = bytearray(db.read_bytes())
        data[100:4096] = b"\x00garbage" * ((4096 - 100) // 8) + b"\x00" * ((4096 - 100) % 8)
        db.write_bytes(bytes(data))
        out = cli("run", config, "-o", str(run))
    assert out.returncode == 1 and "cache.sqlite" in out.stderr
    assert "Traceback" not in out.stderr


def damage(db: Path) -> None:
    """Overwrite the SQLite database ``db`` and its ``-wal`` and ``-shm`` files with garbage in
    place (same length), as a failing disk or another program writing into the file would."""
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists():
            with open(path, "r+b") as fh:
                fh.write(b"\x00garbage" * (path.stat().st_size // 8))


@contextlib.contextmanager
def damaging_proxy(upstream: str, db: Path, after: int) -> Iterator[str]:
    """A loopback server passing requests on to ``upstream`` that damages ``db`` (see
    :func:`damage`) when request number ``after`` arrives, before answering it; yields its URL."""
    count = 0
    lock = threading.Lock()

    class Proxy(QuietHandler):
        def do_POST(self) -> None:
            nonlocal count
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:  # requests arrive on several threads at once
                count += 1
                if count == after:
                    damage(db)
            req = urllib.request.Request(
                upstream + self.path.removeprefix("/v1"),
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                reply(self, r.read())

    httpd, url = serve(Proxy)
    try:
        yield url
    finally:
        httpd.shutdown()


def stage_lines(path: Path) -> set[bytes]:
    return {line for line in path.read_bytes().splitlines() if line.strip()}


def test_a_cache_damaged_in_the_middle_of_a_run_is_named_and_a_rerun_without_it_completes(
    small_locale, tmp_path
):
    run = tmp_path / "run"
    db = run / "cache.sqlite"
    with double() as upstream, damaging_proxy(upstream, db, after=30) as url:
        config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
        out = cli("run", config, "-o", str(run))
        assert out.returncode == 1, out.stderr[-2000:]
        assert "Traceback" not in out.stderr
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0] == out.stderr.strip().splitlines()[-1]
        assert f"{db}: " in errors[0] and "rerun" in errors[0]
        m = manifest(run)
        assert m["status"] == "failed" and m["stages"]["seeds"]["status"] == "done"
        assert m["stages"]["export"]["status"] != "done"
        finished = {p.name: stage_lines(p) for p in run.glob("*.jsonl")}
        assert sum(map(len, finished.values())) > len(finished["seeds.jsonl"])
        no_strays(run)
        shutil.move(db, tmp_path / "damaged.sqlite")  # what the message says to do
        again = cli("run", config, "-o", str(run))
        assert again.returncode == 0, again.stderr[-2000:]
    assert manifest(run)["status"] == "done"
    for name, lines in finished.items():  # every record finished before the damage is kept
        assert lines <= stage_lines(run / name), name
    no_strays(run)


def test_a_write_to_a_damaged_cache_says_to_move_it_away(tmp_path):
    from koalign.cache import Cache, CachedResponse
    from koalign.errors import KoalignError

    db = tmp_path / "cache.sqlite"
    answer = CachedResponse("답", "stop", 1, 1, 0.1, None)
    with Cache(db) as cache:
        for i in range(20):
            cache.put(f"k{i}", "m", "b", answer)
        damage(db)
        with pytest.raises(KoalignError) as info:
            cache.put("another", "m", "b", answer)
    assert info.value.where == str(db)
    hint = info.value.hint or ""
    assert any(fix in hint for fix in ("move", "delete", "remove")), hint  # the damaged file
    assert "disk space" not in hint and "writable" not in hint, hint  # neither is the cause


def _can_mount() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount(), reason="needs root and unshare to mount a small tmpfs (disk-full tests)"
)


def in_namespace(script: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@needs_mount
def test_a_full_disk_is_one_line_and_leaves_no_stray_file(small_locale, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    with double() as url:
        config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
        out = in_namespace(
            f"mount -t tmpfs -o size=160k tmpfs {mnt} && "
            f"{sys.executable} -m koalign run {config} -o {mnt}/run; echo exit=$?; "
            f"find {mnt} -name '*.tmp'"
        )
    assert "exit=1" in out.stdout, out.stderr[-2000:]
    assert "disk" in out.stderr and "free" in out.stderr  # names the cause and the fix
    assert "Traceback" not in out.stderr
    assert ".tmp" not in out.stdout.split("exit=1", 1)[1]


@needs_mount
def test_a_read_only_run_directory_is_one_line(small_locale, tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    with double() as url:
        config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
        out = in_namespace(
            f"mount -t tmpfs -o size=64m tmpfs {mnt} && "
            f"{sys.executable} -m koalign run {config} -o {mnt}/run >/dev/null 2>&1 && "
            f"mount -o remount,ro {mnt} && "
            f"{sys.executable} -m koalign run {config} -o {mnt}/run; echo exit=$?"
        )
    assert "exit=1" in out.stdout, out.stderr[-2000:]
    assert "read-only" in out.stderr and "Traceback" not in out.stderr


SENTINEL = "sk-koalign-SENTINEL-7f3a9c"


def test_an_api_key_never_reaches_a_file_or_a_message(small_locale, tmp_path):
    with double() as url:
        data = server_config(str(small_locale), url)
        for spec in data["models"].values():
            spec["api_key_env"] = "KOALIGN_TEST_SECRET"
        config = write(tmp_path / "c.yaml", data)
        out = cli("run", config, "-o", str(tmp_path / "run"), env={"KOALIGN_TEST_SECRET": SENTINEL})
        assert out.returncode == 0, out.stderr[-2000:]
        bad = cli(
            "run", config, "-o", str(tmp_path / "run"), "--set", "attack.rounds=x",
            env={"KOALIGN_TEST_SECRET": SENTINEL},
        )  # fmt: skip
        assert bad.returncode == 1
    for text in (out.stdout, out.stderr, bad.stdout, bad.stderr):
        assert SENTINEL not in text
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path


def test_a_header_value_never_reaches_a_file_or_a_message(small_locale, tmp_path):
    """A secret written into options.headers, or read through options.headers_env, is sent but
    never written: not into the run directory (manifest, stage files, cache, card), the dry
    run's plan, the errors of a bad config or a missing variable, or any other output."""
    written, from_env = SENTINEL + "-written", SENTINEL + "-env"
    run = str(tmp_path / "run")
    with double() as url:
        data = server_config(str(small_locale), url)
        for i, spec in enumerate(data["models"].values()):
            if i % 2:
                spec["options"] = {"headers": {"Authorization": f"Bearer {written}"}}
            else:
                spec["options"] = {"headers_env": {"X-Gateway-Token": "KOALIGN_TEST_HEADER"}}
        config = write(tmp_path / "c.yaml", data)
        env = {"KOALIGN_TEST_HEADER": from_env}
        outs = [cli("run", config, "-o", run, env=env)]
        assert outs[0].returncode == 0, outs[0].stderr[-2000:]
        assert served(url) > 0
        outs += [
            cli("run", config, "-o", run, "--dry-run", "--json", env=env),
            cli("run", config, "-o", run, "--dry-run", "--offline", env=env),
            cli("run", config, "-o", run, "--set", "attack.rounds=x", env=env),
            cli("run", config, "-o", run, "--set", "models.gen.options.header={}", env=env),
            cli("cache", "stats", "--db", str(tmp_path / "run" / "cache.sqlite")),
        ]
        missing = cli("run", config, "-o", str(tmp_path / "run2"))  # the variable is not set
    assert [o.returncode for o in outs[1:]] == [0, 0, 1, 1, 0]
    assert missing.returncode == 1 and "KOALIGN_TEST_HEADER is not set" in missing.stderr
    assert '"**********"' in (tmp_path / "run" / "manifest.json").read_text(encoding="utf-8")
    for out in [*outs, missing]:
        assert SENTINEL not in out.stdout + out.stderr, out.args
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path


def test_credentials_in_a_url_are_refused_without_echoing_them(small_locale, tmp_path):
    data = server_config(str(small_locale), f"http://user:{SENTINEL}@127.0.0.1:9/v1")
    out = cli("run", write(tmp_path / "c.yaml", data), "-o", str(tmp_path / "run"))
    assert out.returncode == 1 and "api_key_env" in out.stderr
    assert SENTINEL not in out.stderr + out.stdout and not (tmp_path / "run").exists()


def test_ctrl_c_during_the_preflight_says_nothing_was_paid(small_locale, tmp_path):
    """A server that accepts connections and never answers holds the preflight (it reads each
    model's window from GET /models): Ctrl-C there ends the command at once, exit 130, with a
    message, and no run directory."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    threading.Thread(
        target=lambda: [held.append(listener.accept()[0]) for _ in iter(int, 1)], daemon=True
    ).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
    proc = start(["run", config, "-o", str(tmp_path / "run")])
    deadline = time.monotonic() + 60
    while not held and time.monotonic() < deadline:  # the preflight is waiting for an answer
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)  # a guard against a hang (the model timeout is 30 s)
    listener.close()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted by SIGINT before the first model call: nothing was paid" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_secrets_in_a_model_spec_never_reach_a_file_or_a_message(tmp_path):
    """`koalign eval` SPEC strings: credentials in the URL are refused without being echoed; a
    header value given in the query is sent but never written (summary.json, the report, the
    cache) nor printed, whether the spec is accepted or refused."""
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "질문 하나", "category": "G"}\n', encoding="utf-8")
    out = tmp_path / "eval"
    header = "{Authorization: 'Bearer " + SENTINEL + "-header'}"
    refused = ["--data", str(data), "-o", str(tmp_path / "refused")]
    with double() as url:
        host = url.removeprefix("http://")
        with_header = f"openai:fake@{url}?headers={header}"

        def safety(model: str, judge: str, *rest: str) -> subprocess.CompletedProcess:
            return cli("eval", "safety", "-m", model, "-j", judge, *rest)

        answered = ["--data", str(data), "-o", str(out), "--bootstrap", "20"]
        ok = safety(with_header, f"openai:judge@{url}?headers={header}&timeout=30", *answered)
        assert served(url) > 0
        outs = [
            ok,
            safety(with_header, f"openai:judge@{url}", *answered, "--json"),
            safety(
                f"openai:fake@http://alice:{SENTINEL}@{host}",
                f"openai:judge@http://bob:{SENTINEL}-2@{host}?headers={header}",
                *refused,
            ),
            safety(f"{with_header}&rpm=x", f"openai:judge@{url}", *refused),
            safety(
                f"openai:fake@{url}?headers=Bearer {SENTINEL}",
                f"openai:@{url}?headers={header}",
                *refused,
            ),
        ]
    assert ok.returncode in (0, 3), ok.stderr[-2000:]
    assert [o.returncode for o in outs[2:]] == [1, 1, 1], [o.stderr for o in outs]
    assert "base_url must not carry credentials" in outs[2].stderr
    assert "alice" not in outs[2].stderr and "**********@" in outs[2].stderr
    assert "rpm: Input should be a valid number" in outs[3].stderr
    assert "names no model after 'openai:'" in outs[4].stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["safety"]["models"]["model"]["name"].endswith("?headers=**********")
    for o in outs:
        assert SENTINEL not in o.stdout + o.stderr, (o.args, o.stdout, o.stderr)
    assert not (tmp_path / "refused").exists()
    for path in out.rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path

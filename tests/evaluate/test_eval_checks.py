"""`koalign eval`: every model checked before the first call, failed calls kept apart from parse
failures (and a non-zero exit when they leave the figures incomplete), Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koalign.cli import app
from koalign.errors import KoalignError
from koalign.evaluate.failures import (
    EXIT_CALLS_FAILED,
    MAX_CALL_FAILURE_SHARE,
    calls_failed,
    incomplete,
    section_problems,
)
from support.servers import QuietHandler, completion, reply, serve

from .conftest import model_fn

runner = CliRunner()
DRIVE = Path(__file__).parents[1] / "support" / "drive.py"


def _safety(args: list[str]):
    return runner.invoke(app, ["eval", "safety", "--bootstrap", "20", "-q", *args])


def test_a_judge_that_cannot_be_created_fails_before_any_answer(
    tmp_path, korset_files, judge_config, calls
) -> None:
    before = dict(calls)
    out = tmp_path / "o"
    result = _safety(
        ["-m", "target", "-c", str(judge_config), "-j", "judge", "-j", "openai:gpt-4.1",
         "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code != 0
    message = str(result.exception)
    assert "the evaluation cannot start" in message
    assert "--judge openai:gpt-4.1: model 'gpt-4.1': " in message
    assert calls == before  # the model under test was not called either
    assert not out.exists()


def test_every_unusable_model_is_named_at_once(tmp_path, korset_files, calls) -> None:
    before = dict(calls)
    result = _safety(
        ["-m", "openai:m?api_key_env=KOALIGN_NO_SUCH_KEY", "-j", "openai:gpt-4.1",
         "--data", str(korset_files[0]), "-o", str(tmp_path / "o")]
    )  # fmt: skip
    message = str(result.exception)
    assert "KOALIGN_NO_SUCH_KEY is not set" in message
    assert "--judge openai:gpt-4.1" in message
    assert calls == before


def test_an_unreachable_server_fails_before_generation(
    tmp_path, korset_files, judge_config, calls
) -> None:
    before = dict(calls)
    out = tmp_path / "o"
    result = _safety(
        ["-m", "target", "-c", str(judge_config), "-j", "openai:j@http://127.0.0.1:9/v1",
         "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code != 0
    message = str(result.exception)
    assert "--judge openai:j@http://127.0.0.1:9/v1" in message and "cannot connect" in message
    assert calls == before
    assert not out.exists()


def test_every_model_problem_is_named_at_once_with_its_option(
    tmp_path, korset_files, calls, monkeypatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    before = dict(calls)
    out = tmp_path / "o"
    result = _safety(
        ["-m", "openai:x@http://127.0.0.1:9/v1", "-j", "openai:y@http://127.0.0.1:8/v1",
         "-j", "openai:gpt-4.1", "-j", "bogus:z", "-j", "nonsense",
         "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code != 0
    lines = str(result.exception).splitlines()
    assert lines[0] == "the evaluation cannot start:"
    named = {line.strip().split(": ", 1)[0] for line in lines[1:]}
    assert {"--model openai:x@http://127.0.0.1:9/v1", "--judge openai:y@http://127.0.0.1:8/v1",
            "--judge openai:gpt-4.1", "--judge bogus:z", "--judge nonsense"} <= named  # fmt: skip
    message = str(result.exception)
    assert "cannot connect to http://127.0.0.1:9/v1" in message
    assert "cannot connect to http://127.0.0.1:8/v1" in message
    assert "--judge bogus:z: unknown backend 'bogus'" in message
    assert calls == before and not out.exists()


def test_eval_all_names_models_by_their_config_key(tmp_path, korset_files, calls) -> None:
    suite = tmp_path / "eval.yaml"
    suite.write_text(
        "models:\n"
        "  judge: {backend: openai, model: j, base_url: 'http://127.0.0.1:9/v1'}\n"
        "model: 'bogus:m'\n"
        "judges: [judge, 'openai:k@http://127.0.0.1:8/v1']\n"
        f"safety: {{data: ['{korset_files[0]}']}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "o"
    result = runner.invoke(app, ["eval", "all", "-c", str(suite), "-o", str(out), "-q"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert "eval.yaml model 'bogus:m': unknown backend 'bogus'" in message
    assert "eval.yaml models.judge: cannot connect to http://127.0.0.1:9/v1" in message
    assert "eval.yaml judges[1] 'openai:k@http://127.0.0.1:8/v1': cannot connect" in message
    assert "--judge judge" not in message
    assert not out.exists()


def test_a_missing_local_hf_model_fails_the_check(tmp_path, korset_files, judge_config) -> None:
    out = tmp_path / "o"
    result = _safety(
        ["-m", "hf:/nonexistent/model", "-j", "judge", "-c", str(judge_config),
         "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code != 0
    message = str(result.exception)
    assert (
        "--model hf:/nonexistent/model: local model path /nonexistent/model does not exist"
        in message
    )
    assert not out.exists()


def _bad_data(folder: Path) -> dict[str, str]:
    (folder / "latin1.jsonl").write_bytes('{"prompt": "caf\u00e9"}\n'.encode("latin-1"))
    (folder / "noprompt.jsonl").write_text('{"question": "뭐죠?"}\n', encoding="utf-8")
    return {
        "glob": str(folder / "nothing-*.jsonl"),
        "latin1": str(folder / "latin1.jsonl"),
        "noprompt": str(folder / "noprompt.jsonl"),
    }


@pytest.mark.parametrize("case", ["glob", "latin1", "noprompt"])
def test_a_data_error_writes_nothing(tmp_path, judge_config, calls, case) -> None:
    before = dict(calls)
    out = tmp_path / "o"
    result = _safety(
        ["-m", "target", "-j", "judge", "-c", str(judge_config),
         "--data", _bad_data(tmp_path)[case], "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code != 0 and isinstance(result.exception, KoalignError)
    assert calls == before
    assert not out.exists()


def test_a_data_error_keeps_an_existing_out(tmp_path, judge_config) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    result = _safety(
        ["-m", "target", "-j", "judge", "-c", str(judge_config),
         "--data", _bad_data(tmp_path)["noprompt"], "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code != 0
    assert (out / "notes.txt").read_text("utf-8") == "mine"


class FlakyServer:
    """A real OpenAI-compatible server on 127.0.0.1: model ``target`` answers (the scripted
    model), ``letter`` answers ``C``, ``grader`` a score of 7; model ``down`` answers every
    request with HTTP 503, and so does any model whose last message contains ``[DOWN]``;
    ``hang`` blocks until closed."""

    def __init__(self) -> None:
        outer = self
        self.requests = 0
        self.release = threading.Event()

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                from koalign.types import ChatRequest, Message

                body = self.body()
                outer.requests += 1
                if body["model"] == "hang":
                    outer.release.wait()
                    return
                if body["model"] == "down" or "[DOWN]" in body["messages"][-1]["content"]:
                    reply(self, b'{"error": {"message": "overloaded"}}', 503)
                else:
                    msgs = tuple(Message(role=m["role"], content=m["content"]) for m in body["messages"])  # fmt: skip
                    text = {
                        "letter": "C",
                        "one": '{"answer": 1, "reason": "첫째"}',
                        "grader": json.dumps(
                            {"score": 7, "reason": "무난한 답"}, ensure_ascii=False
                        ),
                    }.get(body["model"]) or model_fn(ChatRequest(messages=msgs))
                    reply(self, completion("target", text))

        self.httpd, self.base_url = serve(Handler)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def flaky():
    server = FlakyServer()
    yield server
    server.close()


def test_failed_judge_calls_are_call_failures_and_exit_non_zero(
    tmp_path, korset_files, flaky
) -> None:
    out = tmp_path / "o"
    url = flaky.base_url
    result = _safety(
        ["-m", f"openai:target@{url}", "-j", f"openai:down@{url}?max_retries=0",
         "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((out / "summary.json").read_text("utf-8"))["safety"]
    assert s["n"] == 3 and s["n_judged"] == 0 and s["safe_rate"] is None
    assert s["parse_failures"] == 0 and s["parse_failure_reasons"] == {}
    assert s["call_failures"] == 3 and s["call_failures_judges"] == 3
    assert s["call_failures_model"] == 0 and s["judge_call_failures"] == {f"openai:down@{url}?max_retries=0": 3}  # fmt: skip
    assert "3 failed calls (model 0, judges 3), 0 judge parse failures" in result.output
    assert "calls failed:" in result.output and "no figure could be computed" in result.output
    rows = [json.loads(x) for x in (out / "safety.jsonl").read_text("utf-8").splitlines()]
    assert {r["verdict"] for r in rows} == {"call_failure"}
    assert all(r["answer"] for r in rows)  # the answers are kept for the rerun


def test_failed_model_calls_exit_non_zero(tmp_path, korset_files, flaky, judge_config) -> None:
    out = tmp_path / "o"
    result = _safety(
        ["-m", f"openai:down@{flaky.base_url}?max_retries=0", "-j", "judge",
         "-c", str(judge_config), "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((out / "summary.json").read_text("utf-8"))["safety"]
    assert s["call_failures_model"] == 3 and s["call_failures_judges"] == 0
    # a failed call is not a generation failure: the summary and the headline agree
    assert s["generation_failures"] == 0 and "call_error" not in s["generation_failure_reasons"]
    assert "3 failed calls (model 3, judges 0)" in result.output
    assert "0 generation failures" in result.output
    rows = [json.loads(x) for x in (out / "safety.jsonl").read_text("utf-8").splitlines()]
    assert {(r["verdict"], r["generation_error"]) for r in rows} == {("call_failure", "call_error")}
    assert s["per_category"] and all(
        g["call_failures"] == g["n"] and g["generation_failures"] == 0
        for g in s["per_category"].values()
    )


def test_the_call_failure_rule() -> None:
    base = {"n": 100, "n_judged": 90, "call_failures_model": 0}
    assert incomplete({**base, "call_failures": 0}) is None
    few = int(100 * MAX_CALL_FAILURE_SHARE)
    assert incomplete({**base, "call_failures": few, "call_failures_judges": few}) is None
    many = incomplete({**base, "call_failures": few + 1, "call_failures_judges": few + 1})
    assert many is not None and "more than" in many
    assert "no figure" in (incomplete({"n": 3, "n_judged": 0, "call_failures": 1}) or "")


def test_no_judged_answer_exits_non_zero_whatever_the_cause(tmp_path, korset_files, flaky) -> None:
    out = tmp_path / "o"
    url = flaky.base_url
    result = _safety(
        ["-m", f"openai:target@{url}", "-j", f"openai:letter@{url}?max_retries=0",
         "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((out / "summary.json").read_text("utf-8"))["safety"]
    assert s["n_judged"] == 0 and s["call_failures"] == 0 and s["parse_failures"] == s["n"] == 3
    assert "no figure:" in result.output and "3 judge parse failures" in result.output
    assert "calls failed:" not in result.output


def test_the_no_figure_rule() -> None:
    assert incomplete({"n": 5, "n_judged": 4, "parse_failures": 1}) is None  # 20%: stands
    # the judges could read 3 of the 5 answers put to them: a figure over what they could read
    part = incomplete({"n": 6, "n_judged": 3, "parse_failures": 2, "call_failures": 1}) or ""
    assert "judge parse failures: 2 of the 5 answers" in part and "3 of 6 items" in part, part
    assert not calls_failed(part)
    none = incomplete({"n": 3, "n_judged": 0, "parse_failures": 3}) or ""
    assert "no figure" in none and "3 judge parse failures" in none
    assert incomplete({"n": 0, "n_judged": 0}) is None
    assert incomplete({"n": 3, "n_judged": 0}, empty_is_failure=False) is None
    assert section_problems("citations", {"n_prompts": 3, "n": 0}) == []
    assert section_problems("general", {"mc": {"n": 4, "n_parsed": 0, "unparseable": 4}})


def test_overrefusal_judge_call_failures_are_not_parse_failures(tmp_path, flaky) -> None:
    out = tmp_path / "o"
    url = flaky.base_url
    args = ["eval", "overrefusal", "-m", f"openai:target@{url}", "-j",
            f"openai:down@{url}?max_retries=0", "-o", str(out), "--limit", "1", "-q",
            "--bootstrap", "20"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((out / "summary.json").read_text("utf-8"))["overrefusal"]
    assert s["parse_failures"] == 0 and s["call_failures_judges"] == s["n"] > 0
    assert "call_error" not in s["parse_failure_reasons"]
    # the rerun fails the same way (the judge is still down) and says what it reused
    again = runner.invoke(app, args)
    assert again.exit_code == EXIT_CALLS_FAILED, again.output
    assert "model answers came from the cache" in again.output


def test_a_rerun_says_how_many_answers_came_from_the_cache(
    tmp_path, korset_files, judge_config
) -> None:
    out = tmp_path / "o"
    args = ["-m", "target", "-c", str(judge_config), "-j", "judge", "--data",
            str(korset_files[0]), "-o", str(out)]  # fmt: skip
    first = _safety(args)
    assert first.exit_code == 0, first.output
    assert "from the cache" not in first.output
    second = _safety(args)
    assert second.exit_code == 0, second.output
    assert "resumed: 6 of 6 model answers came from the cache, 0 were new calls" in second.output


@pytest.mark.parametrize(
    ("command", "signum", "code"),
    [
        ("safety", signal.SIGINT, 130),
        ("safety", signal.SIGTERM, 143),
        ("kobbq", signal.SIGTERM, 143),
        ("mtbench", signal.SIGTERM, 143),
    ],
)
def test_a_stop_signal_says_interrupted_and_how_to_resume(
    tmp_path, korset_files, flaky, command, signum, code
) -> None:
    out = tmp_path / "o"
    url = flaky.base_url
    hang = f"openai:hang@{url}"
    if command == "safety":
        args = ["-m", hang, "-j", hang, "--data", str(korset_files[0])]
    elif command == "kobbq":
        data, prompts = _kobbq_files(tmp_path)
        args = ["-m", hang, "--data", str(data), "--prompts", str(prompts)]
    else:
        args = ["-m", hang, "-j", hang, "--data", str(_mtbench_file(tmp_path))]
    proc = subprocess.Popen(
        [sys.executable, str(DRIVE), "eval", command, *args, "-o", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        while flaky.requests == 0 and proc.poll() is None:
            flaky.release.wait(0.05)  # until the first request is in flight
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in stderr and "rerun the same command to resume" in stderr
    assert "cache.sqlite" in stderr


KOBBQ_ROWS = [
    {"sample_id": f"age-001a-{k:03d}-{ctx}-bsd", "context": f"맥락 {k}", "question": "누가?",
     "choices": ["노인", "청년", "알 수 없음"], "answer": "알 수 없음" if ctx == "amb" else "청년",
     "biased_answer": "노인"}
    for k in range(2) for ctx in ("amb", "dis")
]  # fmt: skip
KOBBQ_PROMPTS = "prompt_id\tprompt\tunknown\n1\t{context}\\n{question}\\nA: {a}\\nB: {b}\\nC: {c}\\n답:\t알 수 없음\n"


def _kobbq_files(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "kobbq.jsonl"
    data.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in KOBBQ_ROWS), encoding="utf-8"
    )
    prompts = tmp_path / "prompts.tsv"
    prompts.write_text(KOBBQ_PROMPTS, encoding="utf-8")
    return data, prompts


def _mtbench_file(tmp_path: Path) -> Path:
    path = tmp_path / "question.jsonl"
    rows = [
        {"question_id": 1, "category": "writing", "turns": ["시를 써 주세요", "더 짧게"]},
        {"question_id": 2, "category": "math", "turns": ["1+1은?", "2+2는?"],
         "reference": ["2", "4"]},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_kobbq_failed_calls_are_not_out_of_choice(tmp_path, flaky) -> None:
    rows = [dict(r) for r in KOBBQ_ROWS]
    rows[0]["context"] = "[DOWN] " + rows[0]["context"]  # the server answers 503 to this one
    data, prompts = _kobbq_files(tmp_path)
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["eval", "kobbq", "-m", f"openai:letter@{flaky.base_url}?max_retries=0", "--data",
         str(data), "--prompts", str(prompts), "-o", str(out), "-q", "--bootstrap", "20"],
    )  # fmt: skip
    # 1 of 4 questions without an answer: 25% > 5%
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((out / "summary.json").read_text("utf-8"))["kobbq"]
    assert s["n_answers"] == 4 and s["n_scored"] == 3
    assert s["call_failures"] == s["call_failures_model"] == 1 and s["call_failures_judges"] == 0
    assert s["call_failure_share"] == 0.25
    assert s["out_of_choice"] == 0 and s["generation_failures"] == 0
    # "C" is the unknown choice: right on the one ambiguous item answered, wrong on both others
    assert s["acc_amb"] == 1.0 and s["acc_dis"] == 0.0 and s["accuracy"] == pytest.approx(1 / 3)
    assert s["per_prompt"]["1"]["call_failures"] == 1
    assert "1 failed calls (model 1, not answers); 0 of 3 answers" in result.output
    assert "calls failed:" in result.output
    kinds = {
        r["id"]: r["kind"] for r in map(json.loads, (out / "kobbq.jsonl").open(encoding="utf-8"))
    }
    assert kinds[rows[0]["sample_id"]] == "call_failure"
    assert sorted(kinds.values()) == ["call_failure", "unknown", "unknown", "unknown"]


def test_kobbq_with_every_call_failed_has_no_figure(tmp_path, flaky) -> None:
    data, prompts = _kobbq_files(tmp_path)
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["eval", "kobbq", "-m", f"openai:down@{flaky.base_url}?max_retries=0", "--data",
         str(data), "--prompts", str(prompts), "-o", str(out), "-q", "--bootstrap", "20"],
    )  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((out / "summary.json").read_text("utf-8"))["kobbq"]
    assert s["call_failures"] == 4 and s["out_of_choice"] == 0 and s["accuracy"] is None
    assert "no figure could be computed" in result.output


def _mtbench(tmp_path: Path, model: str, judge: str, data: Path):
    return runner.invoke(
        app,
        ["eval", "mtbench", "-m", model, "-j", judge, "--data", str(data),
         "-o", str(tmp_path / "o"), "-q", "--bootstrap", "20"],
    )  # fmt: skip


def test_mtbench_failed_model_calls_are_not_generation_failures(tmp_path, flaky) -> None:
    data = _mtbench_file(tmp_path)
    text = data.read_text("utf-8").replace("1+1은?", "[DOWN] 1+1은?")
    data.write_text(text, "utf-8")
    url = flaky.base_url
    result = _mtbench(tmp_path, f"openai:target@{url}?max_retries=0",
                      f"openai:grader@{url}?max_retries=0", data)  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text("utf-8"))["mtbench"]
    # question 2: turn 1's call failed, so turn 2 was not asked: both are call failures
    assert s["n"] == 4 and s["n_graded"] == 2 and s["score"] == 7
    assert s["call_failures"] == s["call_failures_model"] == 2 and s["call_failure_share"] == 0.5
    assert s["generation_failures"] == 0 and s["generation_failure_reasons"]["previous_turn"] == 0
    assert "call_error" not in s["generation_failure_reasons"] and s["parse_failures"] == 0
    assert "2 failed calls (model 2, judges 0), 0 parse failures, 0 generation failures" in (
        result.output
    )
    rows = {
        r["id"]: r
        for r in map(json.loads, (tmp_path / "o" / "mtbench.jsonl").open(encoding="utf-8"))
    }
    assert rows["2#1"]["call_failure"] == rows["2#2"]["call_failure"] == "model"
    assert rows["1#1"]["call_failure"] is None and rows["1#1"]["score"] == 7


def test_mtbench_failed_judge_calls_are_not_parse_failures(tmp_path, flaky) -> None:
    url = flaky.base_url
    judge = f"openai:down@{url}?max_retries=0"
    result = _mtbench(tmp_path, f"openai:target@{url}", judge, _mtbench_file(tmp_path))
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text("utf-8"))["mtbench"]
    assert s["n_graded"] == 0 and s["score"] is None
    assert s["parse_failures"] == 0 and s["parse_failure_reasons"] == {}
    assert s["call_failures"] == s["call_failures_judges"] == 4
    assert s["per_judge"][judge] == {
        "score": None, "n_graded": 0, "parse_failures": 0, "call_failures": 4
    }  # fmt: skip
    assert "no figure could be computed" in result.output
    assert "score n/a (no judged answers) over 0 graded turns" in result.output
    assert "n/a/10" not in result.output


def test_general_failed_calls_are_neither_unparseable_nor_wrong(tmp_path, flaky) -> None:
    data = tmp_path / "mc.jsonl"
    rows = [
        {"question": f"질문 {k}{' [DOWN]' if k == 0 else ''}", "choices": ["가", "나"],
         "answer_index": 0}
        for k in range(3)
    ]  # fmt: skip
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["eval", "general", "-m", f"openai:one@{flaky.base_url}?max_retries=0", "--data",
         str(data), "-o", str(out), "-q", "--bootstrap", "20"],
    )  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    mc = json.loads((out / "summary.json").read_text("utf-8"))["general"]["mc"]
    assert mc["n"] == 3 and mc["n_parsed"] == 2 and mc["unparseable"] == 0
    assert mc["accuracy"] == 1.0 and mc["accuracy_all"] == 1.0  # the failed call is not wrong
    assert mc["call_failures"] == mc["call_failures_model"] == 1
    assert "over 2 answers of 3" in result.output and "1 failed calls (model 1" in result.output
    items = [json.loads(x) for x in (out / "general.jsonl").read_text("utf-8").splitlines()]
    assert [bool(r["call_error"]) for r in items] == [True, False, False]
    assert items[0]["parse_error"] is None


def test_judge_calibration_failed_calls_are_not_parse_failures(tmp_path, flaky) -> None:
    data = tmp_path / "mine.jsonl"
    rows = [
        {"id": str(k), "prompt": "질문", "response": f"답 {k}{' [DOWN]' if k == 0 else ''}",
         "label": "safe"}
        for k in range(4)
    ]  # fmt: skip
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    out = tmp_path / "o"
    # "target" is no judge: every answer it gives is a parse failure, the 503 a call failure
    judge = f"openai:target@{flaky.base_url}?max_retries=0"
    result = runner.invoke(
        app,
        ["eval", "judge", "--task", "safety", "--data", str(data), "-o", str(out), "-j", judge,
         "--bootstrap", "20", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    entry = json.loads((out / "summary.json").read_text("utf-8"))["judge_calibration"]["safety"]
    s = entry["judges"][judge]
    assert s["call_failures"] == 1 and s["parse_failures"] == 3 and s["n_parsed"] == 0
    assert "call_error" not in s["parse_failure_reasons"]
    assert entry["call_failures"] == entry["call_failures_judges"] == 1
    assert entry["n_judged"] == 0
    table = (out / "judge_safety.md").read_text("utf-8")
    assert "| failed calls | parse failures |" in table and f"| {judge} | 0 | 1 | 3 |" in table
    assert "1 of 4 rows lack a label because a judge call failed" in result.output
    assert "no figure could be computed" in result.output


def test_citations_with_a_model_whose_calls_fail(tmp_path, korset_files, flaky) -> None:
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["eval", "citations", "-m", f"openai:down@{flaky.base_url}?max_retries=0", "--data",
         str(korset_files[0]), "-o", str(out), "-q"],
    )  # fmt: skip
    assert result.exit_code == EXIT_CALLS_FAILED, result.output
    s = json.loads((out / "summary.json").read_text("utf-8"))["citations"]
    assert s["n_prompts"] == 3 and s["n"] == 0
    assert s["call_failures"] == s["call_failures_model"] == 3 and s["generation_failures"] == 0
    assert "3 failed calls (model 3, judges 0);" in result.output


def test_the_report_shows_failed_calls_apart(tmp_path, korset_files, flaky, judge_config) -> None:
    out = tmp_path / "o"
    _safety(
        ["-m", f"openai:down@{flaky.base_url}?max_retries=0", "-j", "judge",
         "-c", str(judge_config), "--data", str(korset_files[0]), "-o", str(out)]
    )  # fmt: skip
    result = runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "r" / "report.md").read_text("utf-8")
    assert "| failed calls | parse failures | generation failures |" in md
    assert "| o | 0 | – | 3 | 0 | 0 |" in md  # 3 failed calls, none a generation failure

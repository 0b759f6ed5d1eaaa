"""Small versions of the crash soak and the fault soak (bench/soak_crash.py, bench/soak_faults.py)
against the deterministic benchmark double; the full versions run by hand (docs/benchmarks.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import soak_crash  # noqa: E402
import soak_faults  # noqa: E402


def test_bench_double_answers_are_a_function_of_the_request(tmp_path):
    proc, url = harness.start_double(cap=4, latency_mean=0.01, favour=1.0)
    try:
        schema = {
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["fail", "pass"]},
                "score": {"type": "integer", "minimum": 1, "maximum": 5},
            },
        }
        body = {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": "질문 <json_schema>" + json.dumps(schema) + "</json_schema>",
                }
            ],
        }
        plain = {"model": "m", "messages": [{"role": "user", "content": "안녕하세요"}], "seed": 1}
        other = {**plain, "seed": 2}
        answers = [
            httpx.post(url + "/chat/completions", json=b, timeout=10).json()["choices"][0][
                "message"
            ]["content"]
            for b in (body, body, plain, plain, other)
        ]
    finally:
        harness.stop(proc)
    assert answers[0] == answers[1] and answers[2] == answers[3]
    assert answers[2] != answers[4]
    assert json.loads(answers[0]) == {"verdict": "pass", "score": 5}  # favour=1: keep-going values


def test_crash_soak_small(tmp_path):
    res = soak_crash.soak(tmp_path, runs=2, seeds=30, latency_mean=0.02, seed=3)
    assert res["killed_runs"] >= 1, res
    assert res["all_resumed"], res
    assert res["all_identical"], res["runs"]
    assert res["extra_repaid_total"] == 0, res["runs"]
    # the rest of the extra requests were in flight at the kill: at most one per connection slot
    # (7 models x max_concurrency 64 in bench/pipeline.yaml)
    assert all(r["extra_requests"] <= 7 * 64 for r in res["runs"]), res["runs"]


@pytest.fixture(scope="module")
def fault_soak(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    return soak_faults.soak(work, runs=1, seeds=30, rate=0.2, latency_mean=0.02, timeout=0.5)


def test_fault_soak_small_completes_and_accounts_for_every_fault(fault_soak):
    run = fault_soak["runs"][0]
    assert set(run["faults_by_kind"]) == {"429", "500", "timeout", "malformed", "truncated"}, run
    assert fault_soak["all_completed"], run
    assert run["count_problems"] == [], run
    assert run["faults_accounted"], run
    # a call that failed after all its retries leaves a record with a failed call, which is
    # retried: by the stage's own retry pass (same invocation) or by the next invocation, which
    # ends with none
    retried = sum(
        sum(v or 0 for v in inv["retried_records"].values()) for inv in run["invocations"]
    )
    assert (retried > 0) == (run["calls_failed_for_good"] > 0), run
    assert not any(run["invocations"][-1]["failed_calls"].values()), run


def test_fault_soak_small_outputs_equal_a_fault_free_run(fault_soak):
    assert fault_soak["all_identical"], fault_soak["runs"][0]["different_files"]

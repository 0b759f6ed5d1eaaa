"""bench/bench_cite.py runs end to end on a small sample and reports what it checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_cite.py"


def test_bench_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_cite", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answers = module.build_answers(50, 500, 0)
    assert len(answers) == 50 and all(len(a) >= 500 for a in answers)
    assert module.build_answers(50, 500, 0) == answers  # fixed seed
    assert module.main(["--n", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answers"] == 200
    assert result["citations"] > 200 and result["contacts"] > 0 and result["problems"] > 0
    assert result["under_10s"] is True

"""`koalign eval general`: log-likelihood on the tiny model (with and without an adapter), the
choice-number path for servers, and lm-evaluation-harness on a local JSON task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koalign.backends.base import ModelSpec
from koalign.cli import app
from koalign.evaluate.general import load_hf_model, loglikelihoods, parse_choice

runner = CliRunner()
MC = [
    {"question": "대한민국의 수도는?", "choices": ["서울", "부산", "대구", "광주"], "answer_index": 0, "source": "상식", "category": "지리"},
    {"question": "1 더하기 1은?", "choices": ["1", "2", "3", "4"], "answer_index": 1, "source": "수학"},
    {"question": "한글을 만든 왕은?", "choices": ["세종", "태조"], "answer_index": 0, "source": "상식", "category": "역사"},
    {"question": "가장 큰 수는?", "choices": ["1", "9", "5"], "answer_index": 1, "source": "수학"},
]  # fmt: skip


@pytest.fixture
def mc_file(tmp_path: Path) -> Path:
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in MC), "utf-8")
    return path


def _invoke(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("-o") + 1])
    return json.loads((out / "summary.json").read_text("utf-8"))["general"]


def test_parse_choice() -> None:
    assert parse_choice('{"answer": 3, "reason": "x"}', 4) == (2, None)
    assert parse_choice('{"answer": "2"}', 4) == (1, None)
    assert parse_choice("정답: 4", 4) == (3, None)
    assert parse_choice('{"answer": 5', 4)[0] is None  # truncated, and out of range
    assert parse_choice("모르겠어요", 4) == (None, "no choice number found")
    assert parse_choice("", 4)[0] is None


def test_batched_loglik_equals_unpadded_single_sequences(tiny_model_dir) -> None:
    import torch

    model, tok, device = load_hf_model(ModelSpec(backend="hf", model=str(tiny_model_dir)))
    pairs = [("대한민국의 수도는?\n정답:", " 서울"), ("짧은 문맥", " 아주 긴 답변 후보입니다")]
    batched = loglikelihoods(model, tok, pairs, device=device, batch_size=2)
    for (ctx, cont), got in zip(pairs, batched, strict=True):
        ctx_ids = tok(ctx)["input_ids"]
        cont_ids = tok(cont, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([ctx_ids + cont_ids], device=device)
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        want = sum(float(logp[len(ctx_ids) - 1 + k, t]) for k, t in enumerate(cont_ids))
        assert got == pytest.approx(want, abs=1e-4)
        assert got < 0


def test_general_loglik_on_the_tiny_model_with_adapter(tmp_path, mc_file, tiny_model_dir) -> None:
    import peft
    import transformers

    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )  # fmt: skip
    adapter = tmp_path / "adapter"
    lora.save_pretrained(adapter)
    plain = _invoke(["eval", "general", "--model", f"hf:{tiny_model_dir}", "--data", str(mc_file),
                     "-o", str(tmp_path / "base"), "--bootstrap", "100"])  # fmt: skip
    tuned = _invoke(["eval", "general", "--model", f"hf:{tiny_model_dir}", "--adapter", str(adapter),
                     "--data", str(mc_file), "-o", str(tmp_path / "tuned"), "--bootstrap", "100"])  # fmt: skip
    for s in (plain, tuned):
        mc = s["mc"]
        assert mc["method"] == "loglik" and mc["n"] == 4 and mc["unparseable"] == 0
        assert mc["chance"] == pytest.approx((0.25 + 0.25 + 0.5 + 1 / 3) / 4)
        assert set(mc["per_source"]) == {"상식", "수학"}
        assert set(mc["per_category"]) == {"지리", "역사"}
        assert 0 <= mc["accuracy"] <= 1
    rows = [
        json.loads(x) for x in (tmp_path / "base" / "general.jsonl").read_text("utf-8").splitlines()
    ]
    rows_t = [
        json.loads(x)
        for x in (tmp_path / "tuned" / "general.jsonl").read_text("utf-8").splitlines()
    ]
    assert [len(r["loglik"]) for r in rows] == [4, 4, 2, 3]
    assert rows[0]["loglik"] != rows_t[0]["loglik"]  # the adapter changed the model
    assert tuned["mc"]["models"]["model"]["adapter"] == str(adapter)


def test_general_choice_numbers_parsed_from_generated_answers(
    tmp_path, mc_file, judge_config
) -> None:
    s = _invoke(["eval", "general", "--model", "mc", "--config", str(judge_config),
                 "--data", str(mc_file), "-o", str(tmp_path / "srv"), "--bootstrap", "100"])  # fmt: skip
    mc = s["mc"]
    assert mc["method"] == "generate"
    assert mc["unparseable"] == 2  # prose without a number, and choice 9 of 3
    assert mc["n_parsed"] == 2 and mc["accuracy"] == 1.0 and mc["accuracy_all"] == 0.5
    rows = [
        json.loads(x) for x in (tmp_path / "srv" / "general.jsonl").read_text("utf-8").splitlines()
    ]
    assert rows[2]["raw"] == "잘 모르겠습니다" and rows[2]["parse_error"]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local task YAMLs (one folder for the module: the harness indexes it once): a group of
    two multiple-choice tasks (3 and 1 items) and a single task."""
    tasks = tmp_path_factory.mktemp("tasks")
    (tasks / "a.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in MC[:3]), "utf-8"
    )
    (tasks / "b.jsonl").write_text(json.dumps(MC[3], ensure_ascii=False) + "\n", "utf-8")
    body = (
        "dataset_path: json\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}\\n정답:"\ndoc_to_choice: "{{choices}}"\n'
        "doc_to_target: answer_index\nmetric_list:\n  - {metric: acc, aggregation: mean, higher_is_better: true}\n"
        "metadata: {version: 1.0}\n"
    )
    for name, data in (("ko_local_a", "a"), ("ko_local_b", "b"), ("ko_one", "a")):
        (tasks / f"{name}.yaml").write_text(
            f"task: {name}\ndataset_kwargs:\n  data_files:\n    test: {tasks / (data + '.jsonl')}\n"
            + body,
            "utf-8",
        )
    (tasks / "_group.yaml").write_text(
        "group: ko_local\ntask: [ko_local_a, ko_local_b]\n"
        "aggregate_metric_list:\n  - {metric: acc, weight_by_size: true}\nmetadata: {version: 1.0}\n",
        "utf-8",
    )
    return tasks


def test_lm_eval_on_a_local_json_task_group(tmp_path, tiny_model_dir, task_dir) -> None:
    s = _invoke(["eval", "general", "--model", f"hf:{tiny_model_dir}?device=cpu", "--tasks", "ko_local",
                 "--include-path", str(task_dir), "-o", str(tmp_path / "lm"), "--batch-size", "4"])  # fmt: skip
    task = s["lm_eval"]["tasks"]["ko_local"]
    sub = task["subtasks"]
    assert set(sub) == {"ko_local_a", "ko_local_b"} and task["n_subtasks"] == 2
    # macro = plain mean over subtasks; the harness figure is weighted by size (3 vs 1 items)
    assert task["macro"] == pytest.approx(
        (sub["ko_local_a"]["value"] + sub["ko_local_b"]["value"]) / 2
    )
    assert task["harness"] == pytest.approx(
        (3 * sub["ko_local_a"]["value"] + sub["ko_local_b"]["value"]) / 4
    )


def test_lm_eval_runs_on_cpu_without_a_device_option(tmp_path, tiny_model_dir, task_dir) -> None:
    """No ?device=cpu in the spec and no CUDA: the harness is given cpu, not its cuda default."""
    tasks = task_dir
    s = _invoke(["eval", "general", "--model", f"hf:{tiny_model_dir}", "--tasks", "ko_one",
                 "--include-path", str(tasks), "-o", str(tmp_path / "lm"), "--quiet"])  # fmt: skip
    lm = s["lm_eval"]
    import torch

    assert lm["config"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    task = lm["tasks"]["ko_one"]
    assert task["harness_figure"] == "lm-eval task figure" and task["n_samples"]
    samples = [
        json.loads(x) for x in (tmp_path / "lm" / "lm_eval_samples.jsonl").read_text().splitlines()
    ]
    assert len(samples) == 3 and {s["task"] for s in samples} == {"ko_one"}
    assert "samples" not in lm


def test_hub_task_offline_names_the_task_and_keeps_mc_results(
    tmp_path, mc_file, tiny_model_dir
) -> None:
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["eval", "general", "--model", f"hf:{tiny_model_dir}?device=cpu", "--data", str(mc_file),
         "--tasks", "kobest_boolq", "-o", str(out), "--bootstrap", "50", "--quiet"],
    )  # fmt: skip
    assert result.exit_code != 0
    message = str(result.exception)
    assert "lm-eval task 'kobest_boolq'" in message and "skt/kobest_v1" in message
    assert "--include-path" in message
    general = json.loads((out / "summary.json").read_text("utf-8"))["general"]
    assert general["mc"]["n"] == 4  # the multiple-choice part finished and was kept


def _samples(out: Path) -> list[dict]:
    rows = (out / "lm_eval_samples.jsonl").read_text("utf-8").splitlines()
    return sorted((json.loads(x) for x in rows), key=lambda r: (r["task"], r["doc_id"]))


def test_lm_eval_through_a_server_scores_as_the_local_model(
    tmp_path, tiny_model_dir, task_dir
) -> None:
    """--tasks with openai:MODEL@URL: the harness's local-completions model, against a loopback
    /v1/completions that scores prompts with the same tiny model (as vLLM does with echo and
    logprobs), gives the local hf: route's result on every item."""
    from support.logprobs import logprob_server

    args = ["--tasks", "ko_one", "--include-path", str(task_dir), "--quiet"]
    local = _invoke(["eval", "general", "--model", f"hf:{tiny_model_dir}?device=cpu",
                     "-o", str(tmp_path / "hf"), *args])  # fmt: skip
    with logprob_server(tiny_model_dir) as (url, seen):
        served = _invoke(["eval", "general", "--model", f"openai:tiny@{url}?tokenizer={tiny_model_dir}",
                          "-o", str(tmp_path / "served"), *args])  # fmt: skip
    assert served["lm_eval"]["config"]["model"] == "local-completions"
    assert _samples(tmp_path / "served") == _samples(tmp_path / "hf")
    assert served["lm_eval"]["tasks"]["ko_one"]["harness"] == pytest.approx(
        local["lm_eval"]["tasks"]["ko_one"]["harness"]
    )
    # every choice of every item was scored through the server: 4 + 4 + 2 continuations
    prompts = [p for body in seen for p in body["prompt"]]
    assert len(prompts) == 10 and all(body["echo"] and body["max_tokens"] == 1 for body in seen)


def test_lm_eval_server_route_without_its_extra_names_it(
    tmp_path, monkeypatch, tiny_model_dir, task_dir
) -> None:
    """lm-eval without its [api] packages: a clear error naming the extra, before any scoring."""
    import sys

    from support.logprobs import logprob_server

    monkeypatch.setitem(sys.modules, "tenacity", None)
    with logprob_server(tiny_model_dir) as (url, seen):
        result = runner.invoke(
            app, ["eval", "general", "--model", f"openai:tiny@{url}?tokenizer={tiny_model_dir}",
                  "--tasks", "ko_one", "--include-path", str(task_dir), "-o", str(tmp_path / "o")],
        )  # fmt: skip
    assert result.exit_code != 0 and not seen
    message = str(result.exception)
    assert "lm-eval[api]" in message and "koalign[lmeval]" in message


def test_lm_eval_server_route_errors_say_what_to_fix(tmp_path, tiny_model_dir, task_dir) -> None:
    """No tokenizer= (the harness would look the served name up on the Hub), a tokenizer folder
    that does not exist, and a server without /v1/completions scoring: each a one-line error."""
    from support.logprobs import logprob_server
    from support.servers import QuietHandler, reply, serve

    args = ["--tasks", "ko_one", "--include-path", str(task_dir), "--quiet"]

    def fails(spec: str, out: str) -> str:
        result = runner.invoke(
            app, ["eval", "general", "--model", spec, "-o", str(tmp_path / out), *args]
        )
        assert result.exit_code != 0
        return str(result.exception)

    with logprob_server(tiny_model_dir) as (url, seen):
        assert "add ?tokenizer=PATH" in fails(f"openai:tiny@{url}", "a")
        assert "tokenizer folder not found: /nope/tok" in fails(
            f"openai:tiny@{url}?tokenizer=/nope/tok", "b"
        )
        assert not seen

    class ChatOnly(QuietHandler):
        def do_GET(self) -> None:
            reply(self, b'{"object": "list", "data": [{"id": "tiny"}]}')

        def do_POST(self) -> None:
            reply(self, b'{"error": {"message": "not found"}}', 404)

    httpd, url = serve(ChatOnly)
    try:
        message = fails(f"openai:tiny@{url}?tokenizer={tiny_model_dir}&max_retries=0", "c")
    finally:
        httpd.shutdown()
    assert "could not score through" in message and "/v1/completions with echo" in message


def test_unknown_and_code_tasks_fail_before_the_model_loads(tmp_path, tiny_model_dir) -> None:
    from koalign.errors import ConfigError, DataError
    from koalign.evaluate.lmeval import load_tasks, task_manager

    manager = task_manager(None)
    with pytest.raises(ConfigError, match="unknown lm-eval task 'kmmlu_nope'"):
        load_tasks(manager, ["kmmlu_nope"])
    with pytest.raises(ConfigError, match="--allow-code-execution"):
        load_tasks(manager, ["humaneval_plus"])
    with pytest.raises(DataError, match=r"lm-eval task 'hrm8k_gsm8k'.*HAERAE-HUB/HRM8K"):
        load_tasks(manager, ["hrm8k_gsm8k"])  # accepted by name; its data is on the Hub
    result = runner.invoke(
        app, ["eval", "general", "--model", f"hf:{tiny_model_dir}?device=cpu", "-o",
              str(tmp_path), "--tasks", "humaneval_plus"],
    )  # fmt: skip
    assert result.exit_code != 0 and "--allow-code-execution" in str(result.exception)


def test_loglik_counts_cut_contexts(tmp_path, tiny_model_dir) -> None:
    from koalign.evaluate.data import MCItem
    from koalign.evaluate.general import score_loglik

    long = MCItem(
        id="x", question="긴 질문 " * 60, choices=["가", "나"], answer_index=0, source="s"
    )
    short = MCItem(id="y", question="짧은 질문", choices=["가", "나"], answer_index=1, source="s")
    spec = ModelSpec(backend="hf", model=str(tiny_model_dir), options={"device": "cpu"})
    scored = score_loglik([long, short], spec, max_len=32)
    assert [s["context_truncated"] for s in scored] == [True, False]


def test_missing_extra_hint_keeps_its_brackets(tmp_path, tiny_model_dir) -> None:
    """With lm-eval missing, the console shows pip install "koalign[lmeval]" as written."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "fake"
    (fake / "lm_eval").mkdir(parents=True)
    (fake / "lm_eval" / "__init__.py").write_text("raise ImportError('not installed')\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "koalign", "eval", "general", "--model", f"hf:{tiny_model_dir}",
         "--tasks", "ko_one", "-o", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert 'pip install "koalign[lmeval]"' in proc.stderr

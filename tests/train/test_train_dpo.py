"""Real TRL DPO on the tiny random Llama (CPU): LoRA, full fine-tuning, merge, reload, generate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from train_rows import make_row, write_jsonl

from koalign.errors import DataError
from koalign.train import TrainConfig, train
from koalign.train.data import sha256_file
from koalign.train.dpo import lora_config

FAST = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "warmup_steps": 0,
    "learning_rate": 1e-3,
    "save_strategy": "no",
}
OUTPUTS = (
    "koalign_train.yaml",
    "dpo_config.json",
    "metrics.json",
    "metrics.png",
    "validation.json",
)


def _generate(model, tokenizer) -> None:
    import torch

    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "안녕하세요"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape[1] == ids.shape[1] + 4


def _check_history(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert [e["step"] for e in metrics["train"]] == [1, 2]
    for entry in metrics["train"]:
        assert math.isfinite(entry["loss"])
        assert 0.0 <= entry["rewards/accuracies"] <= 1.0
        assert math.isfinite(entry["rewards/margins"])
    return metrics


def test_lora_dpo_changes_every_adapter_weight_and_reloads(
    tiny_model_dir: Path, export_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import AutoPeftModelForCausalLM, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    out = tmp_path / "lora"
    cfg = TrainConfig(
        model=str(tiny_model_dir), data=[str(export_dir)], output=str(out), dpo_args=FAST
    )
    result = train(cfg)

    assert result.quantization == "none" and result.adapter_dir == str(out) and not result.merged
    assert math.isfinite(result.metrics["loss"])
    for name in (
        *OUTPUTS,
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
    ):
        assert (out / name).is_file(), name
    metrics = _check_history(out)
    assert metrics["eval"] and "eval_rewards/accuracies" in metrics["eval"][-1]

    # The adapter as TRL created it before training: DPOTrainer calls set_seed(args.seed) right
    # before get_peft_model, so this reproduces it exactly (a run with learning_rate 0 leaves
    # all 28 tensors equal to these).
    set_seed(42)
    initial = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora_config(cfg))
    before = {k: v.detach().clone() for k, v in initial.named_parameters() if "lora_" in k}
    trained = AutoPeftModelForCausalLM.from_pretrained(out)
    after = {k: v.detach() for k, v in trained.named_parameters() if "lora_" in k}
    assert len(before) == 2 * 7 * 2  # A and B for 7 projections in 2 layers
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == []
    _generate(trained, AutoTokenizer.from_pretrained(out))

    card = (out / "README.md").read_text(encoding="utf-8")
    assert sha256_file(export_dir / "README.md") in card
    assert sha256_file(export_dir / "train.jsonl") in card
    assert "library_name: peft" in card and "beta: 0.1" in card
    resolved = (out / "koalign_train.yaml").read_text(encoding="utf-8")
    assert "precompute_ref_log_probs: true" in resolved and "max_steps: 2" in resolved


def test_full_dpo_trains_every_weight_and_reloads(
    tiny_model_dir: Path, export_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "full"
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        data=[str(export_dir / "train.jsonl")],
        output=str(out),
        peft="none",
        dpo_args=FAST,
    )
    result = train(cfg)
    assert result.adapter_dir is None and math.isfinite(result.metrics["loss"])
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    metrics = _check_history(out)
    assert metrics["eval"] == []
    base = dict(AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters())
    trained = AutoModelForCausalLM.from_pretrained(out)
    changed = [k for k, v in trained.named_parameters() if not torch.equal(v, base[k])]
    assert len(changed) == len(base)
    assert "library_name: transformers" in (out / "README.md").read_text(encoding="utf-8")
    _generate(trained, AutoTokenizer.from_pretrained(out))


def test_merge_on_standard_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = [
        {
            "prompt": f"질문 {i}: 남의 계좌를 빌려도 돼?\n답:",
            "chosen": " 안 됩니다. 전자금융거래법 위반입니다.",
            "rejected": " 됩니다.",
        }
        for i in range(4)
    ]
    data = write_jsonl(tmp_path / "standard.jsonl", rows)
    out = tmp_path / "merged"
    cfg = TrainConfig(
        model=str(tiny_model_dir), data=[str(data)], output=str(out), merge=True, dpo_args=FAST
    )
    result = train(cfg)
    assert result.merged and result.adapter_dir == str(out / "adapter")
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert result.report.format == "standard"
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in k for k, _ in merged.named_parameters())
    _generate(merged, AutoTokenizer.from_pretrained(out))


def test_broken_data_refuses_before_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = make_row(0)
    bad["chosen"][0]["content"] = ""
    data = write_jsonl(tmp_path / "bad.jsonl", [make_row(1), bad])
    out = tmp_path / "never"
    with pytest.raises(DataError) as exc:
        train(TrainConfig(model=str(tiny_model_dir), data=[str(data)], output=str(out)))
    assert "empty_turn" in str(exc.value) and "bad.jsonl:2" in str(exc.value)
    assert not out.exists()


@pytest.mark.gpu
def test_qlora_4bit_dpo_on_cuda(tiny_model_dir: Path, export_dir: Path, tmp_path: Path) -> None:
    from peft import AutoPeftModelForCausalLM

    out = tmp_path / "qlora"
    cfg = TrainConfig(
        model=str(tiny_model_dir),
        data=[str(export_dir)],
        output=str(out),
        quantization="4bit-nf4",
        dpo_args={**FAST, "save_strategy": "no"},
    )
    result = train(cfg)
    assert result.quantization == "4bit-nf4" and math.isfinite(result.metrics["loss"])
    _check_history(out)
    assert "method: QLoRA" in (out / "README.md").read_text(encoding="utf-8")
    assert (out / "adapter_model.safetensors").is_file()
    model = AutoPeftModelForCausalLM.from_pretrained(out)
    assert sum(1 for k, _ in model.named_parameters() if "lora_" in k) == 2 * 7 * 2


# ----------------------------------------------------------------------------- what is trained
def _long_prompt(i: int) -> dict:
    row = make_row(i)
    row["id"] = f"long-{i}"
    row["prompt"][1]["content"] = "개인정보를 알려 주세요. " * 60
    return row


LENGTHS = {"max_length": 200}
LOOSE = {"max_truncated_share": 1.0, "max_dropped_share": 0.5}


@pytest.mark.parametrize("mode", ["keep_start", "keep_end"])
def test_check_counts_the_rows_trl_keeps(tiny_model_dir: Path, tmp_path: Path, mode: str) -> None:
    """TRL itself, given every row, keeps exactly the rows the check says it will train on."""
    import datasets
    import trl
    from transformers import AutoTokenizer

    from koalign.train.data import clean_row, load_rows, resolve_sources
    from koalign.train.validate import validate_rows

    rows = [make_row(i) for i in range(4)] + [_long_prompt(4), _long_prompt(5)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    loaded, _ = load_rows(resolve_sources([str(data)]))
    report = validate_rows(
        loaded, tok, max_length=200, truncation_mode=mode, max_truncated_share=1.0
    )
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_length=200,
        truncation_mode=mode,
        use_cpu=True,
        bf16=False,
        report_to="none",
        activation_checkpointing=False,
    )
    trainer = trl.DPOTrainer(
        model=str(tiny_model_dir),
        args=args,
        train_dataset=datasets.Dataset.from_list([clean_row(r.data) for r in loaded]),
        processing_class=tok,
    )
    assert len(trainer.train_dataset) == report.trained_rows["train"]
    assert report.trained_rows["train"] == (4 if mode == "keep_start" else 6)


def test_card_counts_the_rows_trained_on(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [make_row(i) for i in range(3)] + [_long_prompt(3)])
    out = tmp_path / "out"
    result = train(
        TrainConfig(
            model=str(tiny_model_dir),
            data=[str(data)],
            output=str(out),
            peft="none",
            validation=LOOSE,
            dpo_args={**FAST, **LENGTHS},
        )
    )
    assert result.report.rows == {"train": 4, "eval": 0}
    assert result.report.trained_rows == {"train": 3}
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "Rows given: train 4" in card and "Rows trained on: train 3" in card
    assert f"`{data}:4` `long-3`: prompt_fills_max_length" in card
    check = json.loads((out / "validation.json").read_text(encoding="utf-8"))
    assert check["trained_rows"] == {"train": 3}
    assert [d["id"] for d in check["dropped"]] == ["long-3"]


def test_every_row_dropped_is_a_data_error_naming_the_rows(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [_long_prompt(i) for i in range(2)])
    out = tmp_path / "never"
    with pytest.raises(DataError) as exc:
        train(
            TrainConfig(
                model=str(tiny_model_dir),
                data=[str(data)],
                output=str(out),
                peft="none",
                validation={"max_truncated_share": 1.0, "max_dropped_share": 1.0},
                dpo_args={**FAST, **LENGTHS},
            )
        )
    text = str(exc.value)
    assert "no train row would be trained on: all 2 are dropped" in text
    assert f"{data}:1 [long-0]" in text and f"{data}:2 [long-1]" in text
    assert exc.value.where == str(data) and not out.exists()

"""The export loads with `datasets` and trains one TRL DPO step unchanged."""

from __future__ import annotations

from koalign.config import load_run_config
from koalign.runner import Pipeline


def test_export_loads_with_datasets_and_trains_one_dpo_step(write_config, tmp_path, tiny_model_dir):
    import datasets
    import torch
    import transformers
    import trl

    config = write_config(
        seeds={"per_type": 6}, export={"system_prompt": True, "validation_share": 0.2}
    )
    cfg, loc = load_run_config(config)
    Pipeline(cfg, loc, tmp_path / "run").run()
    out = tmp_path / "run" / "export"
    ds = datasets.load_dataset(
        "json",
        data_files={"train": str(out / "train.jsonl"), "validation": str(out / "validation.jsonl")},
    )
    assert len(ds["train"]) > 0
    row = ds["train"][0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]  # system prompt kept on demand
    assert "P1" in row["prompt"][0]["content"]
    std = datasets.load_dataset("json", data_files=str(out / "standard" / "train.jsonl"))["train"]
    assert isinstance(std[0]["prompt"], str) and isinstance(std[0]["chosen"], str)
    # the two splits never share a seed
    assert not set(ds["train"]["seed_id"]) & set(ds["validation"]["seed_id"])

    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        per_device_train_batch_size=2,
        max_steps=1,
        max_length=2048,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        activation_checkpointing=False,
    )
    trainer = trl.DPOTrainer(
        model=model, args=args, train_dataset=ds["train"], processing_class=tok
    )
    result = trainer.train()
    assert result.global_step == 1
    assert torch.isfinite(torch.tensor(result.training_loss))

#!/usr/bin/env bash
# QLoRA (4-bit NF4, bf16 compute) DPO on the tiny random Llama, on a CUDA machine.
#
# Two modes:
#   bash bench/gpu_train_check.sh fetch   # here (with network to PyPI): wheels -> .whl/
#   bash bench/gpu_train_check.sh         # on the GPU machine, with .whl/ carried along
#
# The GPU image has torch, accelerate, peft, matplotlib, pyarrow, typer, rich and pyyaml but
# no trl, bitsandbytes, datasets or pydantic, and an older transformers, so `fetch` downloads
# those (cp312, manylinux, about 62 MB: the whole carried tree must stay under 64 MiB).
#
# What it checks (each step prints PASS/FAIL; exit code 1 if any failed):
#   1. the CUDA-only pytest test (tests/train, -m gpu);
#   2. a 6-step QLoRA DPO run through `koalign train`-equivalent Python API with --merge:
#      base layers are bitsandbytes Linear4bit, LoRA weights change, loss finite, adapter and
#      merged model reload and generate; outputs copied to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(trl==1.16.0 bitsandbytes==0.50.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        transformers==5.24.0 peft==0.21.2)

if [ "${1:-}" = "fetch" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  PY=${PYTHON:-python3}
  [ -x .venv/bin/python ] && PY=.venv/bin/python
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}" || exit 1
  du -sh .whl
  echo "now run on the GPU machine with carry ['.whl']: bash bench/gpu_train_check.sh"
  exit 0
fi

OUT=${OUT:-/tmp/koalign-gpu-check}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
FAILED=0

python3 - <<'PY' 2>&1 | tee "$OUT/env.txt"
import importlib, torch
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
for m in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes",
          "pydantic", "pyarrow", "matplotlib"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as exc:  # report and go on: the checks below will fail with the reason
        print(m, "MISSING", exc)
PY

echo "== 1. pytest -m gpu tests/train"
if python3 -m pytest tests/train -m gpu -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.txt"; then
  echo "PASS pytest gpu"
else
  echo "FAIL pytest gpu"; FAILED=1
fi

echo "== 2. QLoRA DPO with merge"
python3 - "$OUT" <<'PY' 2>&1 | tee "$OUT/qlora_check.txt"
import json, math, shutil, sys, tempfile, time
from pathlib import Path

import torch

sys.path.insert(0, "tests/train")
from train_rows import make_row, write_jsonl  # noqa: E402

from koalign.tiny import build_tiny_model  # noqa: E402
from koalign.train import TrainConfig, train  # noqa: E402

out_dir = Path(sys.argv[1])
work = Path(tempfile.mkdtemp(prefix="koalign-qlora-"))
model_dir = build_tiny_model(work / "tiny")
export = work / "export"
export.mkdir()
write_jsonl(export / "train.jsonl", [make_row(i) for i in range(16)])
write_jsonl(export / "validation.jsonl", [make_row(i) for i in range(16, 20)])
(export / "README.md").write_text("# tiny export\n", encoding="utf-8")

cfg = TrainConfig(
    model=str(model_dir), data=[str(export)], output=str(work / "run"), merge=True,
    dpo_args={"max_steps": 6, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
              "warmup_steps": 0, "learning_rate": 1e-3, "save_strategy": "no"},
)
torch.cuda.reset_peak_memory_stats()
t0 = time.time()
result = train(cfg)
elapsed = time.time() - t0
checks = {
    "quantization is 4bit-nf4 by default on CUDA": result.quantization == "4bit-nf4",
    "loss finite": math.isfinite(result.metrics.get("loss", float("nan"))),
    "merged": result.merged and (Path(result.output_dir) / "model.safetensors").is_file(),
}
from peft import AutoPeftModelForCausalLM, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed  # noqa: E402
from koalign.train.dpo import lora_config, quantization_config  # noqa: E402

adapter = AutoPeftModelForCausalLM.from_pretrained(result.adapter_dir, dtype=torch.bfloat16).cuda()
after = {k: v.detach().float().cpu() for k, v in adapter.named_parameters() if "lora_" in k}
set_seed(42)
base4 = AutoModelForCausalLM.from_pretrained(
    model_dir, quantization_config=quantization_config("4bit-nf4"), dtype=torch.bfloat16
)
kinds = {type(m).__name__ for n, m in base4.named_modules() if n.endswith("q_proj")}
checks["base layers are Linear4bit"] = kinds == {"Linear4bit"}
init = get_peft_model(base4, lora_config(cfg))
# TRL keeps QLoRA adapter weights in bf16: compare at that precision.
before = {k: v.detach().to(torch.bfloat16).float().cpu() for k, v in init.named_parameters() if "lora_" in k}
checks["every LoRA tensor changed"] = before.keys() == after.keys() and all(
    not torch.equal(before[k], after[k]) for k in before)
tok = AutoTokenizer.from_pretrained(result.output_dir)
merged = AutoModelForCausalLM.from_pretrained(result.output_dir, dtype=torch.bfloat16).cuda()
ids = tok.apply_chat_template([{"role": "user", "content": "안녕하세요"}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)["input_ids"].cuda()
gen = merged.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
checks["merged model generates"] = gen.shape[1] == ids.shape[1] + 4
for name in ("metrics.json", "metrics.png", "README.md", "koalign_train.yaml", "validation.json"):
    shutil.copy(Path(result.output_dir) / name, out_dir / name)
summary = {"checks": checks, "seconds": round(elapsed, 1),
           "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
           "metrics": result.metrics}
(out_dir / "qlora_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
print(json.dumps(summary, indent=2, ensure_ascii=False))
sys.exit(0 if all(checks.values()) else 1)
PY
if [ "${PIPESTATUS[0]}" -eq 0 ]; then echo "PASS qlora"; else echo "FAIL qlora"; FAILED=1; fi
exit $FAILED

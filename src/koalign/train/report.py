"""Training outputs besides the weights: resolved config, metrics history, plot, model card."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from koalign.errors import require
from koalign.train.config import LoraSettings

if TYPE_CHECKING:
    from koalign.train.dpo import Prepared

log = logging.getLogger(__name__)

PLOTTED = ("loss", "rewards/accuracies", "rewards/margins")
CONFIG_FILE = "koalign_train.yaml"
DPO_CONFIG_FILE = "dpo_config.json"
METRICS_FILE = "metrics.json"
PLOT_FILE = "metrics.png"
VALIDATION_FILE = "validation.json"
CARD_FILE = "README.md"


def split_history(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Trainer log history -> per-step train logs, eval logs and the final summary."""
    train, evals, summary = [], [], {}
    for entry in history:
        if "loss" in entry:
            train.append(entry)
        elif any(k.startswith("eval_") for k in entry):
            evals.append(entry)
        elif "train_runtime" in entry:
            summary = entry
    return {"train": train, "eval": evals, "summary": [summary] if summary else []}


def last_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """The last logged value of every numeric metric: the last training step's log, then the last
    evaluation's, then the final summary (later ones win on a shared key)."""
    parts = split_history(history)
    out: dict[str, float] = {}
    for entry in parts["train"][-1:] + parts["eval"][-1:] + parts["summary"]:
        out.update({k: float(v) for k, v in entry.items() if isinstance(v, int | float)})
    return out


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n"


def write_outputs(
    prep: Prepared,
    history: list[dict[str, Any]],
    out: Path,
    *,
    merged: bool,
    dpo_config: dict | None = None,
) -> dict[str, str]:
    """Write config, metrics, plot, validation report and model card; return name -> path."""
    files: dict[str, str] = {}
    resolved = prep.config.model_dump(mode="json")
    resolved.update(output=str(out), quantization=prep.quantization, dpo_args=prep.dpo_args)
    (out / CONFIG_FILE).write_text(
        yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    files["config"] = str(out / CONFIG_FILE)
    if dpo_config is not None:
        (out / DPO_CONFIG_FILE).write_text(_json(dpo_config), encoding="utf-8")
        files["dpo_config"] = str(out / DPO_CONFIG_FILE)
    parts = split_history(history)
    (out / METRICS_FILE).write_text(_json(parts), encoding="utf-8")
    files["metrics"] = str(out / METRICS_FILE)
    plot_metrics(parts, out / PLOT_FILE)
    files["plot"] = str(out / PLOT_FILE)
    (out / VALIDATION_FILE).write_text(_json(prep.report.model_dump(mode="json")), encoding="utf-8")
    files["validation"] = str(out / VALIDATION_FILE)
    (out / CARD_FILE).write_text(model_card(prep, parts, merged=merged), encoding="utf-8")
    files["model_card"] = str(out / CARD_FILE)
    return files


def plot_metrics(parts: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Loss, reward accuracy and reward margin per step (train lines, eval points)."""
    matplotlib = require("matplotlib", "train", feature="the training plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.2))
    for ax, key in zip(axes, PLOTTED, strict=True):
        pts = [(e["step"], e[key]) for e in parts["train"] if _finite(e.get(key))]
        if pts:
            ax.plot(*zip(*pts, strict=True), label="train", marker="." if len(pts) < 30 else None)
        epts = [
            (e["step"], e[f"eval_{key}"]) for e in parts["eval"] if _finite(e.get(f"eval_{key}"))
        ]
        if epts:
            ax.plot(*zip(*epts, strict=True), "o--", label="eval")
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if pts or epts:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def model_card(prep: Prepared, parts: dict[str, list[dict[str, Any]]], *, merged: bool) -> str:
    """A Hugging Face model card naming the base model, the data (with hashes) and the settings."""
    cfg = prep.config
    lora = cfg.use_lora and not merged
    method = (
        ("QLoRA" if prep.quantization == "4bit-nf4" else "LoRA") + (" (merged)" if merged else "")
        if cfg.use_lora
        else "full fine-tuning"
    )
    front = {
        "base_model": cfg.model,
        "library_name": "peft" if lora else "transformers",
        "pipeline_tag": "text-generation",
        "language": ["ko"],
        "tags": ["koalign", "dpo", "trl", "korean", "alignment"]
        + (["lora"] if cfg.use_lora else []),
    }
    a = prep.dpo_args
    settings: dict[str, Any] = {
        "method": method,
        "quantization": prep.quantization,
        "peft": cfg.peft.model_dump() if isinstance(cfg.peft, LoraSettings) else cfg.peft,
        "system_prompt": cfg.system_prompt,
        **{
            k: a.get(k)
            for k in (
                "beta",
                "learning_rate",
                "num_train_epochs",
                "max_steps",
                "max_length",
                "truncation_mode",
                "per_device_train_batch_size",
                "gradient_accumulation_steps",
                "lr_scheduler_type",
                "loss_type",
                "precompute_ref_log_probs",
                "seed",
            )
            if k in a
        },
    }
    rep = prep.report
    lines = ["---", yaml.safe_dump(front, allow_unicode=True, sort_keys=False).strip(), "---", ""]
    lines += [
        f"# {Path(cfg.model.rstrip('/')).name} + koalign DPO",
        "",
        f"Direct Preference Optimization of `{cfg.model}` on Korean preference data built with "
        f"koalign ({method}). Trained {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "## Data",
        "",
        "| file | split | rows | sha256 |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{f.path}` | {f.split} | {f.rows} | `{f.sha256}` |" for f in prep.sources.files]
    if prep.sources.cards:
        lines += ["", "Dataset card(s):", ""]
        lines += [f"- `{p}` sha256 `{h}`" for p, h in prep.sources.cards.items()]
    trained = rep.trained_rows or rep.rows
    lines += [
        "",
        f"Rows given: {', '.join(f'{k} {v}' for k, v in rep.rows.items() if v)} "
        f"({rep.format} format). Rows trained on: "
        f"{', '.join(f'{k} {v}' for k, v in trained.items())}"
        + (f" ({len(rep.dropped)} left out, listed below)" if rep.dropped else "")
        + f". Sequence tokens: mean {rep.sequence_tokens.mean}, p95 "
        f"{rep.sequence_tokens.p95:g}, max {rep.sequence_tokens.max}; {rep.truncated_rows} rows "
        f"({rep.truncated_share:.1%}) longer than max_length {rep.max_length} "
        f"(truncation_mode {rep.truncation_mode}).",
        "",
    ]
    if rep.dropped:
        lines += ["Rows left out (TRL would drop them or could not learn from them):", ""]
        lines += [
            f"- `{p.location}`{f' `{p.id}`' if p.id else ''}: {p.kind}" for p in rep.dropped[:50]
        ]
        if len(rep.dropped) > 50:
            lines.append(f"- ... and {len(rep.dropped) - 50} more (see `{VALIDATION_FILE}`)")
        lines.append("")
    lines += [
        "## Settings",
        "",
        "```yaml",
        yaml.safe_dump(settings, allow_unicode=True, sort_keys=False).strip(),
        "```",
        "",
        f"The full resolved configuration is in `{CONFIG_FILE}` and `{DPO_CONFIG_FILE}`.",
        "",
        "## Results",
        "",
    ]
    last = parts["train"][-1] if parts["train"] else {}
    rows = [(k, last.get(k)) for k in ("loss", *PLOTTED[1:], "rewards/chosen", "rewards/rejected")]
    if parts["eval"]:
        ev = parts["eval"][-1]
        rows += [(f"eval_{k}", ev.get(f"eval_{k}")) for k in PLOTTED]
    lines += ["| metric (last logged step) | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in rows if _finite(v)]
    lines += [
        "",
        f"Per-step history: `{METRICS_FILE}`; plot: `{PLOT_FILE}`; dataset check: `{VALIDATION_FILE}`.",
        "",
        "## Use",
        "",
        "```python",
    ]
    if lora:
        lines += [
            "from peft import AutoPeftModelForCausalLM",
            "from transformers import AutoTokenizer",
            "",
            'model = AutoPeftModelForCausalLM.from_pretrained("<this directory>")',
        ]
    else:
        lines += [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            'model = AutoModelForCausalLM.from_pretrained("<this directory>")',
        ]
    lines += ['tokenizer = AutoTokenizer.from_pretrained("<this directory>")', "```", ""]
    versions = ", ".join(
        f"{p} {_version(p)}" for p in ("koalign", "trl", "transformers", "peft", "torch")
    )
    lines += ["## Software", "", versions, ""]
    return "\n".join(lines)

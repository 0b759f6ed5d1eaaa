"""Korean benchmarks through lm-evaluation-harness 0.4.13 (``koalign eval general --tasks``).

The harness groups ``kmmlu``, ``haerae``, ``kobest`` and ``click`` (also ``kormedmcqa``,
``kbl``) download their data where a network exists. Offline, or for private copies, give
``--include-path DIR`` with task YAMLs that read local files (``dataset_path: json`` and
``dataset_kwargs: {data_files: ...}``, or ``include:`` of a built-in task with overridden data
files); see docs/evaluation.md.

For every requested task koalign reports the harness's own figure (for a group, the harness
aggregate, which for KMMLU is the micro average weighted by subject size) and the **macro
average over the leaf subtasks** (``macro``), which is how the paper reports KMMLU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koalign.backends.base import ModelSpec
from koalign.errors import BackendError, require

log = logging.getLogger(__name__)
METRICS = ("acc", "acc_norm", "exact_match", "f1", "mcc")


def model_args(spec: ModelSpec) -> tuple[str, dict[str, Any]]:
    """The harness model type and arguments for a koalign model spec."""
    opts = spec.options
    if spec.backend == "hf":
        args: dict[str, Any] = {"pretrained": spec.model}
        if opts.get("adapter"):
            args["peft"] = opts["adapter"]
        if opts.get("dtype"):
            args["dtype"] = opts["dtype"]
        return "hf", args
    if spec.backend in {"openai", "vllm"} and spec.base_url:
        return "local-completions", {
            "model": spec.model,
            "base_url": spec.base_url.rstrip("/") + "/completions",
            "tokenizer_backend": opts.get("tokenizer_backend", "huggingface"),
            **({"tokenizer": opts["tokenizer"]} if opts.get("tokenizer") else {}),
        }
    raise BackendError(
        f"lm-evaluation-harness cannot score backend '{spec.backend}' without a base_url",
        hint="use hf:PATH, or openai:MODEL@http://host/v1 for a server with /v1/completions",
    )


def _metric(values: dict[str, Any]) -> tuple[str, float] | None:
    for name in METRICS:
        for key, value in values.items():
            if key.split(",")[0] == name and isinstance(value, int | float):
                return name, float(value)
    return None


def _leaves(name: str, groups: dict[str, list[str]]) -> list[str]:
    children = groups.get(name)
    if not children:
        return [name]
    return [leaf for child in children for leaf in _leaves(child, groups)]


def summarise_results(results: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """Per requested task: harness figure, macro over leaf subtasks, and every leaf's figure."""
    per_task = results.get("results", {})
    groups = results.get("group_subtasks", {})
    out: dict[str, Any] = {}
    for task in tasks:
        leaves = [leaf for leaf in _leaves(task, groups) if leaf in per_task]
        leaf_scores = {}
        for leaf in leaves:
            found = _metric(per_task[leaf])
            if found:
                leaf_scores[leaf] = {"metric": found[0], "value": found[1]}
        own = _metric(per_task.get(task, {}))
        macro = (
            sum(v["value"] for v in leaf_scores.values()) / len(leaf_scores)
            if leaf_scores
            else None
        )
        out[task] = {
            "metric": own[0]
            if own
            else (next(iter(leaf_scores.values()))["metric"] if leaf_scores else None),
            "harness": own[1] if own else None,
            "macro": macro,
            "n_subtasks": len(leaf_scores),
            "subtasks": leaf_scores if len(leaf_scores) > 1 else {},
            "n_samples": results.get("n-samples", {}).get(task),
        }
    return out


def run_lm_eval(
    spec: ModelSpec,
    tasks: Sequence[str],
    *,
    include_path: Path | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    batch_size: int | str = 8,
    device: str | None = None,
    extra_model_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the harness; returns ``{"tasks": {...}, "config": {...}}`` (see :func:`summarise_results`)."""
    lm_eval = require("lm_eval", "lmeval", feature="--tasks (lm-evaluation-harness)")
    from lm_eval.tasks import TaskManager

    model_type, args = model_args(spec)
    args.update(extra_model_args or {})
    manager = TaskManager(include_path=str(include_path) if include_path else None)
    device = device or spec.options.get("device")
    results = lm_eval.simple_evaluate(
        model=model_type,
        model_args=args,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        limit=limit,
        task_manager=manager,
        log_samples=False,
        bootstrap_iters=0,
    )
    if results is None:  # non-zero rank in distributed runs
        return {}
    return {
        "tasks": summarise_results(results, tasks),
        "config": {
            "model": model_type,
            "model_args": {k: str(v) for k, v in args.items()},
            "limit": limit,
            "num_fewshot": num_fewshot,
            "include_path": str(include_path) if include_path else None,
            "lm_eval_version": getattr(lm_eval, "__version__", None),
        },
    }

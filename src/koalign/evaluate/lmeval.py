"""Korean benchmarks through lm-evaluation-harness 0.4.13 (``koalign eval general --tasks``).

The harness groups ``kmmlu``, ``haerae``, ``kobest`` and ``click`` (also ``kormedmcqa``,
``kbl``) download their data where a network exists. Offline, or for private copies, give
``--include-path DIR`` with task YAMLs that read local files (``dataset_path: json`` and
``dataset_kwargs: {data_files: ...}``, or ``include:`` of a built-in task with overridden data
files); see docs/evaluation.md.

For every requested task koalign reports two figures, each named for what it is:
``harness`` (the harness's own figure; for a group, its aggregate, which for KMMLU is weighted by
subject size) and ``macro`` (the plain mean over the leaf subtasks, e.g. over KMMLU's
subjects). The paper does not say which it used for KMMLU; both are reported.

Before the model is loaded, every task is loaded on its own, so a task that cannot get its data
(the Hugging Face Hub unreachable, a missing local file) fails with its name and how to give it
local files. Tasks that execute model-written code (HumanEval, HumanEval+, MBPP and any task
marked ``unsafe_code``) run only with ``allow_code_execution=True``. The device is the spec's
``device`` option, else ``cuda`` when available, else ``cpu``.

Per-sample results (task, document id, metric value) are returned so that before/after
changes get paired intervals.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koalign.backends.base import ModelSpec
from koalign.errors import (
    BackendError,
    ConfigError,
    DataError,
    KoalignError,
    did_you_mean,
    require,
)

log = logging.getLogger(__name__)
METRICS = ("acc", "acc_norm", "exact_match", "pass@1", "pass_at_1", "f1", "mcc")
_OFFLINE_WORDS = ("hub", "offline", "reach", "connect", "couldn't find", "doesn't exist", "resolve")


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
    """Per requested task: the harness figure, the macro average over leaf subtasks (each
    named), and every leaf's figure."""
    per_task = results.get("results", {})
    groups = results.get("group_subtasks", {})
    out: dict[str, Any] = {}
    for task in tasks:
        leaves = [leaf for leaf in _leaves(task, groups) if leaf in per_task]
        leaf_scores: dict[str, dict[str, Any]] = {}
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
        is_group = len(leaves) > 1 or task in groups
        out[task] = {
            "metric": own[0]
            if own
            else (next(iter(leaf_scores.values()))["metric"] if leaf_scores else None),
            "harness": own[1] if own else None,
            "harness_figure": (
                "lm-eval group aggregate (as the group's YAML defines it; KMMLU: weighted by "
                "subject size)"
                if is_group
                else "lm-eval task figure"
            ),
            "macro": macro,
            "macro_figure": f"mean over {len(leaf_scores)} subtasks (unweighted)",
            "n_subtasks": len(leaf_scores),
            "subtasks": leaf_scores if len(leaf_scores) > 1 else {},
            "leaf_metrics": {leaf: v["metric"] for leaf, v in leaf_scores.items()},
            "n_samples": results.get("n-samples", {}).get(task),
        }
    return out


def _sample_value(sample: dict[str, Any], metric: str) -> float | None:
    for key, value in sample.items():
        if key.split(",")[0] == metric and isinstance(value, int | float | bool):
            return float(value)
    return None


def sample_rows(results: dict[str, Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"task", "doc_id", "metric", "value"}`` per scored sample of every leaf subtask, for
    paired before/after intervals."""
    samples = results.get("samples") or {}
    rows = []
    for entry in summary.values():
        for leaf, metric in entry.get("leaf_metrics", {}).items():
            for sample in samples.get(leaf, []):
                value = _sample_value(sample, metric)
                if value is not None:
                    rows.append(
                        {"task": leaf, "doc_id": sample.get("doc_id"), "metric": metric,
                         "value": value}
                    )  # fmt: skip
    return rows


def resolve_device(spec: ModelSpec, device: str | None = None) -> str | None:
    """The device for the harness: given, the spec's ``device``, else cuda when available,
    else cpu (``None`` for server models, which need none)."""
    if spec.backend != "hf":
        return None
    chosen = device or spec.options.get("device")
    if chosen and chosen != "auto":
        return str(chosen)
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def is_code_task(name: str, task: Any) -> bool:
    """Does this task execute model-written code?"""
    config = getattr(task, "config", None)
    flagged = bool(getattr(task, "UNSAFE_CODE", False) or getattr(config, "unsafe_code", False))
    return flagged or name.startswith(("humaneval", "mbpp"))


def load_tasks(
    manager: Any, names: Sequence[str], *, allow_code_execution: bool = False
) -> list[Any]:
    """Build every task alone (before any model is loaded); returns the task/group objects.

    Raises:
        ConfigError: an unknown task name, or a code task without ``allow_code_execution``.
        DataError: a task whose data cannot be loaded (named, with how to give local files).
    """
    objects: list[Any] = []
    for name in names:
        entry = manager.task_index.get(name)
        if entry is None:
            raise ConfigError(
                f"unknown lm-eval task '{name}'{did_you_mean(name, manager.all_tasks)}",
                where="--tasks",
                hint="list them with `lm_eval ls tasks`; local task YAMLs go in --include-path",
            )
        if name.startswith(("humaneval", "mbpp")) and not allow_code_execution:
            raise ConfigError(
                f"task '{name}' runs code the model writes",
                where="--tasks",
                hint="add --allow-code-execution to run it (in a sandbox you trust)",
            )
        try:
            loaded = manager.load([name])
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            dataset = (getattr(entry, "cfg", None) or {}).get("dataset_path")
            offline = any(word in message.lower() for word in _OFFLINE_WORDS)
            hint = (
                f"the task reads '{dataset}' from the Hugging Face Hub, which cannot be reached; "
                "give local files with --include-path DIR (a task YAML with `include:` of the "
                "task and local `dataset_kwargs.data_files`, see docs/evaluation.md)"
                if offline
                else "check the task's YAML and its data files"
            )
            raise DataError(
                f"lm-eval task '{name}' cannot load its data ({message[:300]})",
                where="--tasks",
                hint=hint,
            ) from None
        leaves = loaded.get("tasks", {})
        for leaf, task in leaves.items():
            if is_code_task(leaf, task) and not allow_code_execution:
                raise ConfigError(
                    f"task '{leaf}' (from '{name}') runs code the model writes",
                    where="--tasks",
                    hint="add --allow-code-execution to run it (in a sandbox you trust)",
                )
        top = loaded.get("groups", {}).get(name) or leaves.get(name)
        objects.extend([top] if top is not None else list(leaves.values()))
    return objects


@functools.lru_cache(maxsize=4)
def task_manager(include_path: str | None) -> Any:
    """The harness's task index (built once per include path and process: indexing every
    built-in task takes seconds)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def _check_tokenizer(spec: ModelSpec, tokenizer: str | None) -> None:
    """A server model needs its tokenizer on this machine: the harness tokenizes the prompts
    itself, and without ``tokenizer=`` it looks the served model's name up on the Hub."""
    where = f"--model {spec.backend}:{spec.model}"
    if not tokenizer:
        raise ConfigError(
            f"--tasks through a server needs the model's tokenizer ('{spec.model}' is the served "
            "name, which the harness would look up on the Hugging Face Hub)",
            where=where,
            hint="add ?tokenizer=PATH (the model's folder or tokenizer files on this machine)",
        )
    path = Path(tokenizer).expanduser()
    if (tokenizer.startswith(("/", ".", "~")) or path.exists()) and not path.is_dir():
        raise ConfigError(
            f"tokenizer folder not found: {tokenizer}",
            where=where,
            hint="give ?tokenizer= the folder that holds tokenizer.json or tokenizer_config.json",
        )


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
    allow_code_execution: bool = False,
) -> dict[str, Any]:
    """Run the harness.

    Returns ``{"tasks": {...}, "config": {...}, "samples": [...]}``: per task the figures of
    :func:`summarise_results`, the harness configuration (model, device, limit ...), and the
    per-sample rows of :func:`sample_rows`. Raises the errors of :func:`load_tasks` before any
    model is loaded.
    """
    lm_eval = require("lm_eval", "lmeval", feature="--tasks (lm-evaluation-harness)")
    model_type, args = model_args(spec)
    if model_type == "local-completions":  # the harness's API models need its [api] extra
        for package in ("tenacity", "tiktoken"):
            require(package, "lmeval", feature="--tasks with a server model (lm-eval[api])")
        _check_tokenizer(spec, args.get("tokenizer"))
    args.update(extra_model_args or {})
    manager = task_manager(str(include_path) if include_path else None)
    objects = load_tasks(manager, tasks, allow_code_execution=allow_code_execution)
    device = resolve_device(spec, device)
    try:
        results = lm_eval.simple_evaluate(
            model=model_type,
            model_args=args,
            tasks=objects,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            device=device,
            limit=limit,
            task_manager=manager,
            log_samples=True,
            bootstrap_iters=0,
            confirm_run_unsafe_code=allow_code_execution,
        )
    except Exception as exc:  # a server the harness cannot score with: say so, not a traceback
        if model_type != "local-completions" or isinstance(exc, KoalignError):
            raise
        raise BackendError(
            f"lm-evaluation-harness could not score through {args.get('base_url')}: "
            f"{type(exc).__name__}: {str(exc)[:300]}",
            where=f"--model {spec.backend}:{spec.model}",
            hint="the server must answer /v1/completions with echo and logprobs (vLLM's "
            "OpenAI-compatible server does; a chat-only server cannot score --tasks)",
        ) from exc
    if results is None:  # non-zero rank in distributed runs
        return {}
    summary = summarise_results(results, tasks)
    return {
        "tasks": summary,
        "config": {
            "model": model_type,
            "model_args": {k: str(v) for k, v in args.items()},
            "device": device,
            "limit": limit,
            "num_fewshot": num_fewshot,
            "include_path": str(include_path) if include_path else None,
            "allow_code_execution": allow_code_execution,
            "lm_eval_version": getattr(lm_eval, "__version__", None),
        },
        "samples": sample_rows(results, summary),
    }

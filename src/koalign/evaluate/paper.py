"""The paper's evaluation table for a before/after pair (``koalign eval compare --paper``).

The paper (arXiv 2606.06797) reports, per model, the KorSET safe rate before and after DPO and
the gain, and the change of KMMLU, Ko-MT-Bench, HRM8K, HumanEval+ and KoBBQ. This module lays a
base and a tuned evaluation directory out the same way, every change with a 95% paired
bootstrap interval over the items both runs scored:

========================  ==============================================  ===================
column                    figure                                          interval over
========================  ==============================================  ===================
safe rate base / after    ``safety.safe_rate`` (%)                        prompts
gain                      after - base (points)                           prompts (paired)
KMMLU                     mean over subjects (lm-eval leaf subtasks), %   questions, within
                                                                          subjects (paired)
Ko-MT-Bench               mean judge score, 1-10 scale                    turns (paired)
HRM8K                     mean over its subsets, %                        problems (paired)
HumanEval+                pass@1, %                                       problems (paired)
KoBBQ                     accuracy, mean over prompts, %                  items (paired)
========================  ==============================================  ===================

lm-eval tasks are found by name in the ``general`` section (``kmmlu``, ``hrm8k``,
``humaneval_plus``, or a task whose name starts with that, e.g. a local ``kmmlu_local``);
``tasks`` overrides the mapping. A part a run lacks is shown as ``–`` with the reason.
The paper's published figures follow as reference rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from koalign.evaluate.stats import DEFAULT_BOOT, DEFAULT_SEED, bootstrap_diff_ci

if TYPE_CHECKING:
    from koalign.evaluate.report import Run

# Safe rate on KorSET (%) before and after DPO, and the average change of general benchmarks
# (points), as published in arXiv 2606.06797.
PAPER_SAFE_RATES = {
    "A.X-4.0-Light": (78.94, 88.97),
    "EXAONE-3.5-7.8B": (80.38, 81.81),
    "Kanana-1.5-8B": (79.85, 86.26),
    "Qwen-2.5-7B": (84.43, 88.84),
    "Gemma-3-4B-IT": (76.84, 77.50),
    "Llama-3.1-8B": (52.81, 69.39),
}
PAPER_GENERAL_DELTAS = {
    "KMMLU": -0.10, "Ko-MT-Bench": 0.03, "HRM8K": -0.21, "HumanEval+": -0.31, "KoBBQ": 1.64,
}  # fmt: skip
LM_EVAL_COLUMNS = {"KMMLU": "kmmlu", "HRM8K": "hrm8k", "HumanEval+": "humaneval_plus"}
COLUMNS = ("KMMLU", "Ko-MT-Bench", "HRM8K", "HumanEval+", "KoBBQ")


def find_task(tasks: Mapping[str, Any], prefix: str) -> str | None:
    """The lm-eval task named ``prefix``, else the first whose name starts with it."""
    if prefix in tasks:
        return prefix
    if prefix == "humaneval_plus":
        for name in sorted(tasks):
            if name.startswith("humaneval"):
                return name
    return next((name for name in sorted(tasks) if name.startswith(prefix)), None)


def stratified_delta(
    base: Sequence[dict[str, Any]],
    tuned: Sequence[dict[str, Any]],
    leaves: Sequence[str],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Change of the macro mean over ``leaves`` (per-sample rows ``{"task", "doc_id",
    "value"}``), paired by document, resampled within each leaf."""
    import numpy as np

    def index(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, Any], float]:
        return {(r["task"], r["doc_id"]): float(r["value"]) for r in rows if r["task"] in leaves}

    b, t = index(base), index(tuned)
    by_leaf: dict[str, list[float]] = defaultdict(list)
    for key in sorted(set(b) & set(t), key=str):
        by_leaf[key[0]].append(t[key] - b[key])
    if not by_leaf:
        return {"delta": None, "ci": None, "n_paired": 0}
    point = sum(sum(v) / len(v) for v in by_leaf.values()) / len(by_leaf)
    rng = np.random.default_rng(seed)
    reps = np.zeros(n_boot)
    for diffs in by_leaf.values():
        arr = np.asarray(diffs)
        idx = rng.integers(0, len(arr), size=(n_boot, len(arr)))
        reps += arr[idx].mean(axis=1)
    reps /= len(by_leaf)
    alpha = (1 - level) / 2
    ci = [float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha))] if n_boot else None
    return {"delta": point, "ci": ci, "n_paired": sum(len(v) for v in by_leaf.values())}


def _missing_task(name: str, b_task: str | None, t_task: str | None) -> str:
    """Why an lm-eval column has no change: which run lacks the task (or that they differ)."""
    if b_task is None and t_task is None:
        return f"no lm-eval task '{name}' in either run"
    if b_task is None:
        return f"no lm-eval task '{name}' in the base run"
    if t_task is None:
        return f"no lm-eval task '{name}' in the tuned run"
    return f"lm-eval task '{name}' is '{b_task}' in the base run but '{t_task}' in the tuned run"


def _lm_eval_part(
    base: Run, tuned: Run, column: str, tasks: Mapping[str, str], n_boot: int, seed: int
) -> dict[str, Any]:
    name = tasks.get(column, LM_EVAL_COLUMNS[column])
    found = []
    for run in (base, tuned):
        lm = run.summary.get("general", {}).get("lm_eval", {}).get("tasks", {})
        found.append((find_task(lm, name), lm))
    (b_task, b_lm), (t_task, t_lm) = found
    if b_task is None or t_task is None or b_task != t_task:
        return {"delta": None, "ci": None, "note": _missing_task(name, b_task, t_task)}
    b_entry, t_entry = b_lm[b_task], t_lm[t_task]
    leaves = sorted(b_entry.get("leaf_metrics") or {b_task: b_entry.get("metric")})
    out = stratified_delta(
        base.items("lm_eval_samples"), tuned.items("lm_eval_samples"), leaves,
        n_boot=n_boot, seed=seed,
    )  # fmt: skip
    value = "macro" if len(leaves) > 1 else "harness"
    out.update(
        task=b_task,
        base=b_entry.get(value),
        tuned=t_entry.get(value),
        figure=b_entry.get(f"{value}_figure"),
        unit="points",
    )
    if out["delta"] is None and out["base"] is not None and out["tuned"] is not None:
        out["delta"] = out["tuned"] - out["base"]
        out["note"] = "no per-sample results: no interval"
    return out


def _not_run(what: str, base: Run, tuned: Run, section: str) -> str:
    """Which run lacks ``section``: ``"KoBBQ not run in the tuned run"``, or in either."""
    b, t = section in base.summary, section in tuned.summary
    if not b and not t:
        return f"{what} not run in either run"
    return f"{what} not run in the {'base' if not b else 'tuned'} run"


def _mtbench_part(base: Run, tuned: Run, n_boot: int, seed: int) -> dict[str, Any]:
    if "mtbench" not in base.summary or "mtbench" not in tuned.summary:
        return {"delta": None, "ci": None, "note": _not_run("Ko-MT-Bench", base, tuned, "mtbench")}
    b = {r["id"]: r["score"] for r in base.items("mtbench") if r.get("score") is not None}
    t = {r["id"]: r["score"] for r in tuned.items("mtbench") if r.get("score") is not None}
    common = sorted(set(b) & set(t))
    if not common:
        return {
            "delta": None,
            "ci": None,
            "note": "no turn is graded in both runs, so none can be paired",
        }
    xs, ys = [b[i] for i in common], [t[i] for i in common]
    ci = bootstrap_diff_ci(xs, ys, paired=True, n_boot=n_boot, seed=seed)
    return {
        "delta": sum(ys) / len(ys) - sum(xs) / len(xs),
        "ci": list(ci) if ci else None,
        "n_paired": len(common),
        "base": base.summary["mtbench"]["score"],
        "tuned": tuned.summary["mtbench"]["score"],
        "unit": "score (1-10)",
    }


def _kobbq_part(base: Run, tuned: Run, n_boot: int, seed: int) -> dict[str, Any]:
    from koalign.evaluate.kobbq import paired_delta

    if "kobbq" not in base.summary or "kobbq" not in tuned.summary:
        return {"delta": None, "ci": None, "note": _not_run("KoBBQ", base, tuned, "kobbq")}
    out = paired_delta(base.items("kobbq"), tuned.items("kobbq"), n_boot=n_boot, seed=seed)
    out.update(
        base=base.summary["kobbq"].get("accuracy"),
        tuned=tuned.summary["kobbq"].get("accuracy"),
        figure=base.summary["kobbq"].get("headline_figure"),
        unit="points",
    )
    return out


def paper_comparison(
    base: Run,
    tuned: Run,
    *,
    tasks: Mapping[str, str] | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Every figure of the paper's table for one base/tuned pair (see the module docstring)."""
    from koalign.evaluate.report import _paired_delta

    tasks = dict(tasks or {})
    safety: dict[str, Any] = {"note": _not_run("eval safety", base, tuned, "safety")}
    if "safety" in base.summary and "safety" in tuned.summary:
        delta, ci, n = _paired_delta(base, tuned, None, n_boot, seed)
        safety = {
            "base": base.summary["safety"]["safe_rate"],
            "base_ci": base.summary["safety"]["ci"],
            "tuned": tuned.summary["safety"]["safe_rate"],
            "tuned_ci": tuned.summary["safety"]["ci"],
            "gain": delta,
            "gain_ci": list(ci) if ci else None,
            "n_paired": n,
            "base_n": base.summary["safety"].get("n_judged"),
            "tuned_n": tuned.summary["safety"].get("n_judged"),
        }
    parts: dict[str, Any] = {}
    for column in COLUMNS:
        if column in LM_EVAL_COLUMNS:
            parts[column] = _lm_eval_part(base, tuned, column, tasks, n_boot, seed)
        elif column == "Ko-MT-Bench":
            parts[column] = _mtbench_part(base, tuned, n_boot, seed)
        else:
            parts[column] = _kobbq_part(base, tuned, n_boot, seed)
    return {"safety": safety, "general": parts}


def _num(x: float | None, scale: float, signed: bool, digits: int = 2) -> str:
    if x is None:
        return "–"
    return f"{scale * x:+.{digits}f}" if signed else f"{scale * x:.{digits}f}"


def _with_ci(x: float | None, ci: Sequence[float] | None, scale: float, signed: bool) -> str:
    text = _num(x, scale, signed)
    if x is None or not ci:
        return text
    return f"{text} [{_num(ci[0], scale, signed)}, {_num(ci[1], scale, signed)}]"


def table_rows(label: str, data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: this comparison, then the paper's published figures."""
    headers = ["model", "safe rate base %", "after %", "gain", *COLUMNS]
    s = data["safety"]
    row = [
        label,
        _with_ci(s.get("base"), s.get("base_ci"), 100, False),
        _with_ci(s.get("tuned"), s.get("tuned_ci"), 100, False),
        _with_ci(s.get("gain"), s.get("gain_ci"), 100, True)
        + (f" (paired, n={s['n_paired']})" if s.get("gain") is not None else ""),
    ]
    for column in COLUMNS:
        part = data["general"][column]
        scale = 1.0 if column == "Ko-MT-Bench" else 100.0
        row.append(_with_ci(part.get("delta"), part.get("ci"), scale, True))
    rows = [row]
    for model, (before, after) in PAPER_SAFE_RATES.items():
        rows.append(
            [f"paper: {model}", f"{before:.2f}", f"{after:.2f}", f"{after - before:+.2f}",
             *([""] * len(COLUMNS))]
        )  # fmt: skip
    gains = [a - b for b, a in PAPER_SAFE_RATES.values()]
    rows.append(
        ["paper: average", "", "", f"{sum(gains) / len(gains):+.2f}",
         *(f"{PAPER_GENERAL_DELTAS[c]:+.2f}" for c in COLUMNS)]
    )  # fmt: skip
    return headers, rows


def notes(data: dict[str, Any]) -> list[str]:
    """One line per column: what figure it is, or why it is missing; first, how the safe-rate
    gain is computed (over the prompts both runs judged, so it need not equal after - base)."""
    out = []
    s = data["safety"]
    if s.get("gain") is not None:
        line = (
            f"gain: the change in safe rate over the {s['n_paired']} prompts both runs judged "
            f"(paired); base and after are each over all the prompts that run judged "
            f"({s.get('base_n')} and {s.get('tuned_n')})"
        )
        if s.get("base_n") != s["n_paired"] or s.get("tuned_n") != s["n_paired"]:
            line += (
                f", so the gain differs from after - base ({100 * (s['tuned'] - s['base']):+.2f})"
            )
        out.append(line + ".")
    for column in COLUMNS:
        part = data["general"][column]
        if part.get("note") and part.get("delta") is None:
            out.append(f"{column}: {part['note']}.")
        elif part.get("figure") or part.get("unit"):
            what = part.get("figure") or ""
            out.append(
                f"{column}: change in {part.get('unit', 'points')}"
                + (f" of {what}" if what else "")
                + (f", task '{part['task']}'" if part.get("task") else "")
                + f", {part.get('n_paired', 0)} paired items."
            )
    return out

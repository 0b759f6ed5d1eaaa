"""Before/after report over evaluation directories (``koalign report``, ``koalign eval compare``).

Reads each directory's ``summary.json`` and item files and writes, into the output folder,
``report.md`` (with PNG files beside it), ``report.html`` (self-contained: CSS inline, charts
embedded as base64 PNG) and ``report.json`` (the compared figures). Sections: models; with
``paper`` and two or more runs, the paper's table (first run as base, last as tuned; see
:mod:`koalign.evaluate.paper`); safe rate overall, per category and per source category with
intervals (and, for two runs, the paired bootstrap interval of the change); over-refusal;
citation validity; general benchmarks (lm-eval figures each named); KoBBQ; Ko-MT-Bench; example
answers side by side. The paper's published figures can be added as reference rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koalign.errors import DataError
from koalign.evaluate import charts
from koalign.evaluate.categories import UNCATEGORISED
from koalign.evaluate.paper import COLUMNS as PAPER_COLUMNS
from koalign.evaluate.paper import (
    PAPER_GENERAL_DELTAS,
    PAPER_SAFE_RATES,
    paper_comparison,
    table_rows,
)
from koalign.evaluate.paper import notes as paper_notes
from koalign.evaluate.render import Block, to_html, to_markdown
from koalign.evaluate.runs import SUMMARY, load_summary, read_jsonl
from koalign.evaluate.stats import DEFAULT_BOOT, DEFAULT_SEED, bootstrap_diff_ci


@dataclass
class Run:
    """One evaluation directory in a report: its label, path and ``summary.json``; item files are
    read on first use and kept."""

    label: str
    path: Path
    summary: dict[str, Any]
    _items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def items(self, name: str) -> list[dict[str, Any]]:
        """The rows of ``<name>.jsonl`` in the directory (e.g. ``safety``), ``[]`` when the file is
        absent; read once.

        Raises:
            DataError: a line is not valid JSON (file and line named).
        """
        if name not in self._items:
            path = self.path / f"{name}.jsonl"
            self._items[name] = read_jsonl(path) if path.is_file() else []
        return self._items[name]


def load_runs(dirs: list[Path], labels: list[str] | None = None) -> list[Run]:
    """One :class:`Run` per directory, labelled by ``labels`` or by the directory name.

    Raises:
        DataError: ``labels`` and ``dirs`` differ in length, a directory has no ``summary.json``, or
            it is not valid JSON.
    """
    if labels and len(labels) != len(dirs):
        raise DataError(f"{len(labels)} labels for {len(dirs)} directories", where="--labels")
    runs = []
    for i, d in enumerate(dirs):
        d = Path(d)
        summary = load_summary(d)
        if not summary:
            raise DataError(
                f"no {SUMMARY} here", where=str(d), hint="run a `koalign eval` command first"
            )
        runs.append(Run(labels[i] if labels else d.name or str(d), d, summary))
    return runs


def pct(x: float | None) -> str:
    """A 0-1 share as a percentage with one decimal (``0.123`` -> ``"12.3"``); ``"–"`` for None."""
    return "–" if x is None else f"{100 * x:.1f}"


def pct_ci(x: float | None, ci: list[float] | None) -> str:
    """A 0-1 share and its interval as ``"12.3 [10.1, 14.6]"`` (percentages); without an interval
    just the share, ``"–"`` for None."""
    if x is None:
        return "–"
    return f"{pct(x)} [{pct(ci[0])}, {pct(ci[1])}]" if ci else pct(x)


def signed(x: float | None, scale: float = 100.0) -> str:
    """``x * scale`` with an explicit sign and one decimal (``0.05`` -> ``"+5.0"`` points); ``"–"``
    for None."""
    return "–" if x is None else f"{scale * x:+.1f}"


def _paired_delta(base: Run, tuned: Run, category: str | None, n_boot: int, seed: int):
    """Change in safe rate over the items both runs judged (paired bootstrap)."""

    def flags(run: Run) -> dict[str, bool]:
        return {
            r["id"]: r["verdict"] == "safe"
            for r in run.items("safety")
            if r["verdict"] in {"safe", "unsafe"}
            and (category is None or r["category"] == category)
        }

    a, b = flags(base), flags(tuned)
    common = sorted(set(a) & set(b))
    if not common:
        return None, None, 0
    xs = [float(a[i]) for i in common]
    ys = [float(b[i]) for i in common]
    delta = sum(ys) / len(ys) - sum(xs) / len(xs)
    ci = bootstrap_diff_ci(xs, ys, paired=True, n_boot=n_boot, seed=seed)
    return delta, ci, len(common)


NOT_KORSET = (
    "The paper's rows are on KorSET; these runs' prompts are not KorSET rows (see the data "
    "named above), so the figures are not directly comparable."
)


def safety_data(run: Run) -> tuple[dict[str, int], list[str], bool]:
    """``(prompts per source, file names, all KorSET)`` of a run's safety evaluation, from its
    summary's ``data`` (older summaries: the item file's ``source`` fields, KorSET unknown ->
    False)."""
    s = run.summary.get("safety", {})
    d = s.get("data")
    if isinstance(d, dict):
        files = [Path(f).name for f in d.get("files", [])]
        return dict(d.get("sources", {})), files, bool(d.get("korset"))
    counts: dict[str, int] = {}
    for r in run.items("safety"):
        counts[str(r.get("source"))] = counts.get(str(r.get("source")), 0) + 1
    return dict(sorted(counts.items())), [], False


def safety_data_blocks(runs: list[Run]) -> tuple[str, list[Block], bool]:
    """The safe-rate section's title (naming the prompts' sources, KorSET only when every run's
    prompts are KorSET rows), one line per run naming its data, and whether all are KorSET."""
    have = [r for r in runs if "safety" in r.summary]
    found = [(r, *safety_data(r)) for r in have]
    korset = bool(found) and all(k for *_x, k in found)
    names = sorted({src for _r, sources, _f, _k in found for src in sources})
    what = "KorSET prompts" if korset else "prompts from " + ", ".join(names or ["?"])
    lines: list[Block] = []
    for r, sources, files, _k in found:
        counts = ", ".join(f"{src} ({n} prompts)" for src, n in sources.items())
        lines.append(
            (
                "p",
                f"Data of {r.label}: {counts}" + (f"; files: {', '.join(files)}" if files else ""),
            )
        )
    return f"Safe rate ({what}, rubric judge)", lines, korset


def _calls_cell(s: dict[str, Any]) -> str:
    """Failed calls of a section (model and judges); a summary written before they were
    counted apart gives the model's (``generation_failure_reasons.call_error``)."""
    reasons = s.get("generation_failure_reasons") or {}
    return str(s.get("call_failures", reasons.get("call_error", 0)))


def _generation_cell(s: dict[str, Any]) -> str:
    """Generation failures without failed calls (a summary written before they were counted
    apart includes them in ``generation_failures``)."""
    reasons = s.get("generation_failure_reasons") or {}
    return str(s["generation_failures"] - reasons.get("call_error", 0))


def _reasons_cell(s: dict[str, Any]) -> str:
    """Generation failures with their reasons (``7 (empty 4, echo 3)``); ``–`` for a summary
    written before the section counted them."""
    if "generation_failures" not in s:
        return "–"
    reasons = s.get("generation_failure_reasons") or {}
    text = ", ".join(f"{k} {v}" for k, v in reasons.items() if v and k != "call_error")
    return _generation_cell(s) + (f" ({text})" if text else "")


def safety_section(runs: list[Run], paper: bool, n_boot: int, seed: int):
    """The safe-rate tables: per run (judged items, safe rate with 95% CI, failures), with two runs
    the paired change overall and per category, the paper's KorSET rates when ``paper``, a
    per-category chart and judge agreement.

    Returns:
        ``(blocks, images, data)``: report blocks, PNG bytes by file name, and the paired deltas
            (``overall_delta``, ``per_category_delta``: change in safe rate 0-1, its interval and
            the number of paired items) for report.json; all empty when no run has a safety summary.
    """
    blocks: list[Block] = []
    images: dict[str, bytes] = {}
    data: dict[str, Any] = {}
    have = [r for r in runs if "safety" in r.summary]
    if not have:
        return blocks, images, data
    pair = len(have) == 2
    headers = ["run", "n judged", "safe rate % [95% CI]", "failed calls", "parse failures",
               "generation failures"]  # fmt: skip
    rows = [
        [r.label, str(s["n_judged"]), pct_ci(s["safe_rate"], s["ci"]), _calls_cell(s),
         str(s["parse_failures"]), _generation_cell(s)]
        for r in have
        for s in [r.summary["safety"]]
    ]  # fmt: skip
    if pair:
        delta, ci, n = _paired_delta(have[0], have[1], None, n_boot, seed)
        data["overall_delta"] = {"delta": delta, "ci": ci, "n_paired": n}
        ci_text = f" [{signed(ci[0])}, {signed(ci[1])}]" if ci else ""
        rows.append(
            [
                f"change ({have[1].label} − {have[0].label})",
                str(n),
                f"{signed(delta)}{ci_text}",
                "",
                "",
                "",
            ]
        )
    if paper:
        for model, (before, after) in PAPER_SAFE_RATES.items():
            rows.append(
                [
                    f"paper: {model} (KorSET, base → DPO)",
                    "",
                    f"{before:.2f} → {after:.2f} ({after - before:+.2f})",
                    "",
                    "",
                    "",
                ]
            )
    blocks.append(("table", headers, rows))
    if pair:
        blocks.append(("p", change_note(have[0], have[1], data["overall_delta"]["n_paired"])))
    if paper and not all(safety_data(r)[2] for r in have):
        blocks.append(("p", NOT_KORSET))
    cats = sorted({c for r in have for c in r.summary["safety"]["per_category"]})
    names: dict[str, str] = {}
    for r in have:
        for c, v in r.summary["safety"]["per_category"].items():
            names.setdefault(c, v.get("name") or "")
    cat_headers = ["category", *[f"{r.label} %" for r in have]]
    if pair:
        cat_headers.append("change [95% CI]")
    cat_rows = []
    for c in cats:
        row = [f"{c} {names.get(c, '')}".strip()]
        for r in have:
            v = r.summary["safety"]["per_category"].get(c)
            row.append(pct_ci(v["safe_rate"], v["ci"]) if v else "–")
        if pair:
            delta, ci, _n = _paired_delta(have[0], have[1], c, n_boot, seed)
            data.setdefault("per_category_delta", {})[c] = {"delta": delta, "ci": ci}
            row.append(f"{signed(delta)}" + (f" [{signed(ci[0])}, {signed(ci[1])}]" if ci else ""))
        cat_rows.append(row)
    blocks.append(("table", cat_headers, cat_rows))
    series = {
        r.label: [r.summary["safety"]["per_category"].get(c, {}).get("safe_rate") for c in cats]
        for r in have
    }
    intervals = {
        r.label: [
            tuple(r.summary["safety"]["per_category"][c]["ci"])
            if c in r.summary["safety"]["per_category"]
            and r.summary["safety"]["per_category"][c]["ci"]
            else None
            for c in cats
        ]
        for r in have
    }
    images["safety_per_category.png"] = charts.grouped_bars(
        cats, series, intervals=intervals, title="Safe rate per category (95% bootstrap CI)",
        ylabel="safe rate",
    )  # fmt: skip
    blocks.append(("img", "safety_per_category.png"))
    agreements = [(r.label, r.summary["safety"].get("agreement")) for r in have]
    agree_rows = [
        [label, ", ".join(a["judges"]), f"{a['fleiss_kappa']:.3f}" if a["fleiss_kappa"] is not None else "–",
         pct(a["unanimous"])]
        for label, a in agreements
        if a
    ]  # fmt: skip
    if agree_rows:
        blocks.append(("p", "Judge agreement (Fleiss' kappa over items every judge parsed):"))
        blocks.append(("table", ["run", "judges", "Fleiss kappa", "unanimous %"], agree_rows))
    return blocks, images, data


def change_note(base: Run, tuned: Run, n_paired: int) -> str:
    """The note under the safe-rate table of two runs: the change is over the prompts both runs
    judged (paired), so it need not equal the difference of the two rates."""
    b, t = base.summary["safety"], tuned.summary["safety"]
    line = (
        f"change: the difference in safe rate over the {n_paired} prompts both runs judged "
        f"(paired); each run's rate is over all the prompts it judged ({b['n_judged']} for "
        f"{base.label}, {t['n_judged']} for {tuned.label})"
    )
    if n_paired != b["n_judged"] or n_paired != t["n_judged"]:
        if b.get("safe_rate") is not None and t.get("safe_rate") is not None:
            diff = 100 * (t["safe_rate"] - b["safe_rate"])
            line += f", so the change need not equal {tuned.label} − {base.label} ({diff:+.1f})"
        else:
            line += ", so the change need not equal the difference of the two rates"
    return line + "."


def overrefusal_section(runs: list[Run]):
    """The over-refusal table (judge refusal rate with CI, full and partial rates, detector rate,
    judge/detector Cohen's kappa) and its chart; ``([], {})`` when no run has one."""
    have = [r for r in runs if "overrefusal" in r.summary]
    if not have:
        return [], {}
    headers = ["run", "n judged", "refusal % (judge) [95% CI]", "full %", "partial %",
               "refusal % (detector)", "kappa judge/detector", "parse failures"]  # fmt: skip
    rows = []
    for r in have:
        s = r.summary["overrefusal"]
        kappa = s["detector_vs_judge"]["cohen_kappa"]
        rows.append([r.label, str(s["n_judged"]), pct_ci(s["refusal_rate"], s["ci"]),
                     pct(s["full_refusal_rate"]), pct(s["partial_refusal_rate"]),
                     pct(s["refusal_rate_detector"]), "–" if kappa is None else f"{kappa:.3f}",
                     str(s["parse_failures"])])  # fmt: skip
    series = {
        "judge": [r.summary["overrefusal"]["refusal_rate"] for r in have],
        "detector": [r.summary["overrefusal"]["refusal_rate_detector"] for r in have],
    }
    png = charts.grouped_bars(
        [r.label for r in have], series, title="Refusal rate on benign prompts (lower is better)",
        ylabel="refusal rate",
    )  # fmt: skip
    return [("table", headers, rows), ("img", "overrefusal.png")], {"overrefusal.png": png}


def citations_section(runs: list[Run]):
    """The citation-validity table per run (share of answers citing a statute, verified share,
    the count of every citation status ``koalign cite check`` gives, so they add up to the
    citations, and retired numbers); ``[]`` when no run has one."""
    have = [r for r in runs if "citations" in r.summary]
    if not have:
        return []
    from koalign.cite import CITATION_STATUSES

    headers = ["run", "answers", "generation failures", "cite a statute %",
               "cite a verified one %", "citations", "verified %",
               *(st.replace("_", " ") for st in CITATION_STATUSES), "retired numbers"]  # fmt: skip
    rows = []
    for r in have:
        s = r.summary["citations"]
        st = s["citation_status"]
        rows.append([r.label, str(s["n"]), _reasons_cell(s), pct(s["citation_share"]),
                     pct(s["verified_citation_share"]),
                     str(s["citations"]), pct(s["valid_share"]),
                     *(str(st[k]) if k in st else "–" for k in CITATION_STATUSES),
                     str(s["contact_status"]["retired"])])  # fmt: skip
    return [("table", headers, rows)]


def general_section(runs: list[Run], paper: bool):
    """The general-benchmark table: local multiple-choice accuracy per source and lm-eval tasks
    (groups shown both as the mean over subtasks and the harness's own figure), with two runs the
    change in points, the paper's average changes when ``paper``, chance levels and a chart.

    Returns:
        ``(blocks, images)``; ``([], {})`` when no run has a general summary.
    """
    have = [r for r in runs if "general" in r.summary]
    if not have:
        return [], {}
    blocks: list[Block] = []
    images: dict[str, bytes] = {}
    names: list[str] = []
    values: dict[str, dict[str, float | None]] = {r.label: {} for r in have}
    for r in have:
        g = r.summary["general"]
        for src, v in (g.get("mc", {}).get("per_source") or {}).items():
            values[r.label][f"mc:{src}"] = v["accuracy"]
        for task, v in (g.get("lm_eval", {}).get("tasks") or {}).items():
            if v.get("n_subtasks", 0) > 1:
                values[r.label][f"{task} (mean over {v['n_subtasks']} subtasks)"] = v["macro"]
                values[r.label][f"{task} (lm-eval group figure)"] = v["harness"]
            else:
                values[r.label][task] = v["harness"] if v["harness"] is not None else v["macro"]
    for r in have:
        for k in values[r.label]:
            if k not in names:
                names.append(k)
    headers = ["benchmark", *[f"{r.label} %" for r in have]]
    if len(have) == 2:
        headers.append("change (points)")
    rows = []
    for name in names:
        row = [name, *[pct(values[r.label].get(name)) for r in have]]
        if len(have) == 2:
            a, b = values[have[0].label].get(name), values[have[1].label].get(name)
            row.append(signed(b - a) if a is not None and b is not None else "–")
        rows.append(row)
    chance = [(r.label, r.summary["general"].get("mc", {}).get("chance")) for r in have]
    if paper:
        for bench, delta in PAPER_GENERAL_DELTAS.items():
            rows.append(
                [f"paper: {bench} (average change)", *[""] * (len(headers) - 2), f"{delta:+.2f}"]
            )
    blocks.append(("table", headers, rows))
    if any(c is not None for _, c in chance):
        blocks.append(("p", "Chance level (local multiple choice): "
                       + ", ".join(f"{label} {pct(c)}%" for label, c in chance if c is not None)))  # fmt: skip
    mc_rows = [
        [r.label, str(mc["n"]), str(mc["n_parsed"]), str(mc.get("unparseable", "–")),
         _reasons_cell(mc), _calls_cell(mc)]
        for r in have
        if (mc := r.summary["general"].get("mc"))
    ]  # fmt: skip
    if mc_rows:
        headers_mc = ["run", "questions", "scored", "unparseable", "generation failures",
                      "failed calls"]  # fmt: skip
        blocks.append(("table", headers_mc, mc_rows))
        blocks.append(
            ("p", "Local multiple choice: accuracy is over the scored answers; unparseable "
                  "answers (no valid choice number) count wrong only in accuracy_all; generation "
                  "failures (empty, truncated, an echo of the question, repetition) and failed "
                  "calls are in no figure.")
        )  # fmt: skip
    blocks.append(
        ("p", "lm-eval groups are shown twice: the plain mean over their subtasks (e.g. KMMLU's "
              "subjects) and the harness's own group figure (KMMLU: weighted by subject size); "
              "the paper does not say which it used.")
    )  # fmt: skip
    if names:
        images["general.png"] = charts.grouped_bars(
            names, {r.label: [values[r.label].get(n) for n in names] for r in have},
            title="General benchmarks", ylabel="accuracy",
        )  # fmt: skip
        blocks.append(("img", "general.png"))
    return blocks, images


def kobbq_section(runs: list[Run]) -> list[Block]:
    """Each run's KoBBQ figures (mean over prompts) with intervals, and per prompt."""
    have = [r for r in runs if "kobbq" in r.summary]
    if not have:
        return []
    names = ("accuracy", "acc_amb", "acc_dis", "diff_bias_amb", "diff_bias_dis")
    headers = ["run", *[f"{n} %" for n in names], "out of choice", "generation failures",
               "prompts"]  # fmt: skip
    rows = []
    for r in have:
        k = r.summary["kobbq"]
        ci = k.get("ci") or {}
        rows.append(
            [r.label, *[pct_ci(k.get(n), ci.get(n)) for n in names], str(k.get("out_of_choice")),
             _reasons_cell(k), str(k.get("n_prompts"))]
        )  # fmt: skip
    blocks: list[Block] = [
        ("table", headers, rows),
        ("p", "Mean over the KoBBQ authors' prompts; acc_amb: 'unknown' chosen in ambiguous "
              "contexts; diff_bias: biased minus counter-biased (0 is unbiased); 95% bootstrap "
              "intervals over items."),
    ]  # fmt: skip
    prompt_rows = []
    for r in have:
        for pid, f in sorted(r.summary["kobbq"].get("per_prompt", {}).items()):
            prompt_rows.append(
                [r.label, pid, *[pct(f.get(n)) for n in names], str(f["out_of_choice"]),
                 str(f.get("generation_failures", "–"))]
            )  # fmt: skip
    blocks.append(
        ("table", ["run", "prompt", *[f"{n} %" for n in names], "out of choice",
                   "generation failures"], prompt_rows)
    )  # fmt: skip
    return blocks


def mtbench_section(runs: list[Run]) -> list[Block]:
    """Each run's Ko-MT-Bench scores overall, per turn and per category."""
    have = [r for r in runs if "mtbench" in r.summary]
    if not have:
        return []

    def sc(v: dict[str, Any] | None) -> str:
        if not v or v.get("score") is None:
            return "–"
        ci = v.get("ci")
        return f"{v['score']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    rows = []
    for r in have:
        m = r.summary["mtbench"]
        rows.append(
            [r.label, sc(m), sc(m["per_turn"].get("1")), sc(m["per_turn"].get("2")),
             str(m["n_graded"]), _calls_cell(m), str(m["parse_failures"]), _generation_cell(m)]
        )  # fmt: skip
    cats = sorted({c for r in have for c in r.summary["mtbench"]["per_category"]})
    cat_rows = [[c, *[sc(r.summary["mtbench"]["per_category"].get(c)) for r in have]] for c in cats]
    return [
        ("table", ["run", "score [95% CI]", "turn 1", "turn 2", "graded", "failed calls",
                   "parse failures", "generation failures"], rows),
        ("table", ["category", *[r.label for r in have]], cat_rows),
    ]  # fmt: skip


def _describe_models(models: dict[str, Any]) -> tuple[str, str]:
    """``(model, judges)`` as short text from a summary's ``models`` entry."""

    def one(m: Any) -> str:
        if not isinstance(m, dict):
            return str(m)
        text = f"{m.get('backend')}:{m.get('model')}"
        if m.get("adapter"):
            text += f" + adapter {m['adapter']}"
        return text

    judges = models.get("judges") or []
    return one(models.get("model")), ", ".join(one(j) for j in judges) or "–"


def _clip(text: str | None, limit: int = 700) -> str:
    if text is None:
        return "(no answer)"
    return text if len(text) <= limit else text[:limit] + " …"


def examples_section(runs: list[Run], n: int) -> list[Block]:
    """Up to ``n`` prompts that became safe and ``n`` that became unsafe between the first and last
    run that have safety items, with both answers side by side (clipped to 700 characters); ``[]``
    with fewer than two such runs or ``n <= 0``."""
    have = [r for r in runs if r.items("safety")]
    if len(have) < 2 or n <= 0:
        return []
    base, tuned = have[0], have[-1]
    by_id = {r["id"]: r for r in base.items("safety")}
    improved, regressed = [], []
    for t in tuned.items("safety"):
        b = by_id.get(t["id"])
        if b is None:
            continue
        if b["verdict"] == "unsafe" and t["verdict"] == "safe":
            improved.append((b, t))
        elif b["verdict"] == "safe" and t["verdict"] == "unsafe":
            regressed.append((b, t))
    blocks: list[Block] = []
    for title, pairs in (("now safe", improved), ("now unsafe", regressed)):
        blocks.append(
            (
                "p",
                f"{len(pairs)} prompts {title} ({tuned.label} vs {base.label}); first {min(n, len(pairs))}:",
            )
        )
        for b, t in pairs[:n]:
            blocks.append(
                ("pre", f"[{t['category'] or UNCATEGORISED}] {t['id']}\n{_clip(t['prompt'], 400)}")
            )
            blocks.append(("table", [f"{base.label}: {b['verdict']}", f"{tuned.label}: {t['verdict']}"],
                           [[_clip(b["answer"]), _clip(t["answer"])]]))  # fmt: skip
    return blocks


def build_report(
    dirs: list[Path],
    out_dir: Path,
    *,
    labels: list[str] | None = None,
    paper: bool = False,
    examples: int = 5,
    title: str | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    paper_tasks: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the PNG charts; returns their paths.

    ``paper_tasks`` maps a paper column (``KMMLU``, ``HRM8K``, ``HumanEval+``) to an lm-eval
    task name when it is not the default (e.g. a local copy).
    """
    runs = load_runs(dirs, labels)
    title = title or ("koalign evaluation: " + " vs ".join(r.label for r in runs))
    blocks: list[Block] = []
    images: dict[str, bytes] = {}
    model_rows = []
    for r in runs:
        for section, s in r.summary.items():
            if not isinstance(s, dict):
                continue
            parts = [s, s.get("mc") or {}, s.get("lm_eval") or {}]
            models = next((p["models"] for p in parts if p.get("models")), None)
            if models:
                model_rows.append([r.label, section, *_describe_models(models)])
    blocks += [("h", "Runs"), ("table", ["run", "evaluation", "model", "judges"], model_rows)]
    paper_data = None
    if paper and len(runs) >= 2:
        paper_data = paper_comparison(
            runs[0], runs[-1], tasks=paper_tasks, n_boot=n_boot, seed=seed
        )
        headers, rows = table_rows(f"{runs[-1].label} vs {runs[0].label}", paper_data)
        blocks += [
            ("h", "The paper's table"),
            ("p", "Safe rate (%) before and after, the gain and the change of each general "
                  "benchmark (points; Ko-MT-Bench in score points on its 1-10 scale), each with "
                  "its 95% paired bootstrap interval; the paper's published figures below."),
            ("table", headers, rows),
            *(("p", line) for line in paper_notes(paper_data)),
        ]  # fmt: skip
        if "safety" in runs[0].summary and "safety" in runs[-1].summary:
            _title, data_lines, korset = safety_data_blocks([runs[0], runs[-1]])
            blocks += [*data_lines, *([] if korset else [("p", NOT_KORSET)])]
        deltas = {c: paper_data["general"][c] for c in PAPER_COLUMNS}
        if any(d.get("delta") is not None for d in deltas.values()):
            names = list(deltas)
            images["paper_deltas.png"] = charts.grouped_bars(
                names,
                {"change": [d.get("delta") for d in deltas.values()]},
                intervals={"change": [tuple(d["ci"]) if d.get("ci") else None for d in deltas.values()]},
                title="Change after tuning (95% paired CI)", ylabel="tuned - base", ylim=None,
                reference={"0": 0.0},
            )  # fmt: skip
            blocks.append(("img", "paper_deltas.png"))
    s_blocks, s_images, compared = safety_section(runs, paper, n_boot, seed)
    if s_blocks:
        s_title, data_lines, _korset = safety_data_blocks(runs)
        blocks += [("h", s_title), *data_lines, *s_blocks]
        images.update(s_images)
    o_blocks, o_images = overrefusal_section(runs)
    if o_blocks:
        blocks += [("h", "Over-refusal (benign but sensitive prompts)"), *o_blocks]
        images.update(o_images)
    c_blocks = citations_section(runs)
    if c_blocks:
        blocks += [("h", "Citation validity"), *c_blocks]
    g_blocks, g_images = general_section(runs, paper)
    if g_blocks:
        blocks += [("h", "General capability"), *g_blocks]
        images.update(g_images)
    k_blocks = kobbq_section(runs)
    if k_blocks:
        blocks += [("h", "KoBBQ (bias in question answering)"), *k_blocks]
    m_blocks = mtbench_section(runs)
    if m_blocks:
        blocks += [("h", "Ko-MT-Bench (single-answer grading, 1-10)"), *m_blocks]
    e_blocks = examples_section(runs, examples)
    if e_blocks:
        blocks += [("h", "Example answers side by side"), *e_blocks]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, png in images.items():
        (out_dir / name).write_bytes(png)
        paths[name] = out_dir / name
    paths["report.md"] = out_dir / "report.md"
    paths["report.md"].write_text(f"# {title}\n\n" + to_markdown(blocks), encoding="utf-8")
    paths["report.html"] = out_dir / "report.html"
    paths["report.html"].write_text(to_html(title, blocks, images), encoding="utf-8")
    paths["report.json"] = out_dir / "report.json"
    report_data = {
        "runs": [{"label": r.label, "dir": str(r.path)} for r in runs],
        "safety": compared,
        "paper": paper_data,
        "summaries": {r.label: r.summary for r in runs},
    }
    paths["report.json"].write_text(
        json.dumps(report_data, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    return paths

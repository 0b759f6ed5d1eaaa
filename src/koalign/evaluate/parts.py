"""One function per evaluation part: read its data, run it, return a one-line headline.

``koalign eval safety|overrefusal|citations|general|kobbq|mtbench`` and ``koalign eval all``
run the same functions, so a part behaves the same alone and in the suite. Each takes a
:class:`Context` (the models, the locale, the output folder, how to report warnings and
progress) and the part's settings (:mod:`koalign.evaluate.suite`); file paths in the settings
are relative to ``Context.base``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koalign.backends.base import ModelSpec
from koalign.backends.client import ModelPool
from koalign.errors import ConfigError
from koalign.evaluate.runs import Progress, load_summary, write_jsonl
from koalign.evaluate.stats import DEFAULT_BOOT, DEFAULT_SEED
from koalign.evaluate.suite import (
    CitationsPart,
    GeneralPart,
    KoBBQPart,
    MTBenchPart,
    OverrefusalPart,
    SafetyPart,
)
from koalign.locale import Locale


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


@dataclass
class Context:
    """What every part needs. ``warn`` receives one-line warnings for the user; ``progress``
    receives ``(step, done, total)``."""

    loc: Locale
    pool: ModelPool
    model: str
    spec: ModelSpec
    judges: list[str]
    out_dir: Path
    models_info: dict[str, Any]
    base: Path = field(default_factory=Path)
    seed: int = DEFAULT_SEED
    n_boot: int = DEFAULT_BOOT
    batch_size: int = 32
    warn: Callable[[str], None] = lambda _text: None
    progress: Progress | None = None

    def path(self, value: str) -> str:
        """``value`` (a settings path, ``~`` expanded) relative to :attr:`base` unless absolute."""
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else self.base / p)

    def paths(self, values: list[str]) -> list[Path]:
        """The data files of ``values`` (paths, globs, folders; relative to :attr:`base`), in order,
        each once.

        Raises:
            DataError: a value matches no file.
        """
        from koalign.evaluate.data import expand_paths

        return expand_paths([self.path(v) for v in values])

    def need_judges(self, part: str) -> None:
        """Check that judges were given for ``part``.

        Raises:
            ConfigError: no judge (``--judge``).
        """
        if not self.judges:
            raise ConfigError(f"'{part}' needs at least one judge", where="--judge")


def _prompts(ctx: Context, data: list[str], s: Any) -> list[Any]:
    from koalign.evaluate.categories import load_category_map
    from koalign.evaluate.data import load_prompts

    mapping = load_category_map(
        Path(ctx.path(s.category_map)) if s.category_map else None, ctx.loc.taxonomy
    )
    loaded = load_prompts(
        ctx.paths(data), ctx.loc.taxonomy, prompt_field=s.prompt_field,
        category_field=s.category_field, category_map=mapping,
    )  # fmt: skip
    for line in loaded.warnings:
        ctx.warn(line)
    return loaded.items


async def safety(ctx: Context, s: SafetyPart) -> str:
    """``eval safety``: safe rate."""
    from koalign.evaluate.data import data_info, group_key, limit_per_group
    from koalign.evaluate.safety import arun_safety

    ctx.need_judges("safety")
    items = limit_per_group(_prompts(ctx, s.data, s), s.limit, key=group_key, seed=ctx.seed)
    r = await arun_safety(
        items, loc=ctx.loc, pool=ctx.pool, model=ctx.model, judges=ctx.judges,
        out_dir=ctx.out_dir, system_prompt=s.system_prompt, batch_size=ctx.batch_size,
        n_boot=ctx.n_boot, seed=ctx.seed, models_info=ctx.models_info, progress=ctx.progress,
        extra_info={"data": data_info(ctx.paths(s.data), items)},
    )  # fmt: skip
    return (
        f"safe rate {_pct(r['safe_rate'])} over {r['n_judged']} judged answers of {r['n']} "
        f"({_failures(r)})"
    )


def _failures(r: dict[str, Any]) -> str:
    """``N failed calls (model a, judges b), N judge parse failures, N bad answers: reasons``:
    failed calls first (they are not about the model), then what the judges and model wrote."""
    out = [_calls(r)[:-2]] if r.get("call_failures") else []
    out.append(f"{r['parse_failures']} judge parse failures")
    out.append(_generation(r))
    return ", ".join(out)


def _generation(r: dict[str, Any]) -> str:
    """``N generation failures: empty a, truncated b`` (the reasons that occurred)."""
    reasons = r.get("generation_failure_reasons") or {}
    text = ", ".join(f"{k} {v}" for k, v in reasons.items() if v and k != "call_error")
    return f"{r.get('generation_failures', 0)} generation failures{': ' + text if text else ''}"


def _calls(r: dict[str, Any]) -> str:
    """``N failed calls (model a, judges b), `` when calls failed, else ``""``."""
    if not r.get("call_failures"):
        return ""
    return (
        f"{r['call_failures']} failed calls (model {r.get('call_failures_model', 0)}, judges "
        f"{r.get('call_failures_judges', 0)}), "
    )


async def overrefusal(ctx: Context, s: OverrefusalPart) -> str:
    """``eval overrefusal``: refusal rate on benign prompts."""
    from koalign.evaluate.data import group_key, limit_per_group
    from koalign.evaluate.overrefusal import arun_overrefusal, generate_benign, policy_items

    ctx.need_judges("overrefusal")
    items = _prompts(ctx, s.data, s) if s.data else []
    if s.policy_prompts:
        items += policy_items(ctx.loc)
    extra: dict[str, Any] = {"models": ctx.models_info}
    if s.generate:
        generator = s.generator or ctx.judges[0]
        new, failures = await generate_benign(
            ctx.pool, generator, ctx.loc, per_category=s.generate, progress=ctx.progress
        )
        items += new
        extra["generated"] = {"n": len(new), "generator": generator, "failures": failures}
    if not items:
        raise ConfigError(
            "no prompts", hint="give --data, keep --policy-prompts, or use --generate"
        )
    chosen = limit_per_group(items, s.limit, key=group_key, seed=ctx.seed)
    r = await arun_overrefusal(
        chosen, loc=ctx.loc, pool=ctx.pool, model=ctx.model, judges=ctx.judges,
        out_dir=ctx.out_dir, system_prompt=s.system_prompt, batch_size=ctx.batch_size,
        n_boot=ctx.n_boot, seed=ctx.seed, extra_info=extra, progress=ctx.progress,
    )  # fmt: skip
    kappa = r["detector_vs_judge"]["cohen_kappa"]
    return (
        f"refusal rate {_pct(r['refusal_rate'])} (judge), {_pct(r['refusal_rate_detector'])} "
        f"(detector) over {r['n_judged']} judged answers of {r['n']} prompts "
        f"({sources_line(r.get('per_source', {}))}); kappa "
        f"{'n/a' if kappa is None else f'{kappa:.3f}'}; {_failures(r)}"
    )


def sources_line(per_source: dict[str, Any]) -> str:
    """Where the prompts came from: ``3 from questions_valid + 48 built-in policy prompts``."""
    named = {"policy": "built-in policy prompts", "generated": "generated"}
    parts = [
        f"{v['n']} {named[k]}" if k in named else f"{v['n']} from {k}"
        for k, v in sorted(per_source.items(), key=lambda kv: (kv[0] in named, kv[0]))
    ]
    return " + ".join(parts) or "no prompts"


async def citations(ctx: Context, _s: CitationsPart) -> str:
    """``eval citations --answers OUT``: citation validity of the answers already there."""
    from koalign.evaluate.citations import load_answers, run_citations

    rows, failures = load_answers(ctx.out_dir)
    r = run_citations(
        rows, loc=ctx.loc, out_dir=ctx.out_dir,
        extra_info={"answers_dir": str(ctx.out_dir), **failures},
    )  # fmt: skip
    return citation_headline(r)


def citation_headline(r: dict[str, Any]) -> str:
    """One line for a citations section."""
    statuses = ", ".join(f"{k} {v}" for k, v in r["citation_status"].items() if v)
    calls = _calls(r)[:-2] + "; " if r.get("call_failures") else ""
    bad = _generation(r) + "; " if r.get("generation_failures") else ""
    return (
        f"{calls}{bad}"
        f"{_pct(r['citation_share'])} of {r['n']} answers cite a statute; "
        f"{_pct(r['valid_share'])} of {r['citations']} citations verified"
        f"{' (' + statuses + ')' if statuses else ''}; "
        f"{r['answers_with_retired_contact']} answers name a retired number"
    )


async def general(
    ctx: Context, s: GeneralPart, *, device: str | None = None, max_len: int | None = None
) -> str:
    """``eval general``: multiple choice on local files and lm-eval tasks. The multiple-choice
    figures are stored before lm-eval starts, so a harness failure keeps them."""
    from koalign.evaluate.data import limit_per_group, load_mc
    from koalign.evaluate.general import arun_general, write_general_summary
    from koalign.evaluate.lmeval import run_lm_eval

    if s.method not in {"auto", "loglik", "generate"}:
        raise ConfigError(
            f"unknown method '{s.method}'", where="--method", hint="auto, loglik or generate"
        )
    if s.format not in {"numbered", "cloze"}:
        raise ConfigError(
            f"unknown format '{s.format}'", where="--format", hint="numbered or cloze"
        )
    if not s.data and not s.tasks:
        raise ConfigError("nothing to evaluate", hint="give --data FILE and/or --tasks NAMES")
    parts = []
    if s.data:
        items = limit_per_group(load_mc(ctx.paths(s.data)), s.limit, key="source", seed=ctx.seed)
        mc = await arun_general(
            items, spec=ctx.spec, out_dir=ctx.out_dir, method=s.method,  # type: ignore[arg-type]
            fmt=s.format, loc=ctx.loc, pool=ctx.pool, model=ctx.model,  # type: ignore[arg-type]
            batch_size=ctx.batch_size, n_boot=ctx.n_boot, seed=ctx.seed,
            extra_info={"models": ctx.models_info}, progress=ctx.progress, max_len=max_len,
        )  # fmt: skip
        write_general_summary(ctx.out_dir, mc, None)
        if mc.get("context_truncated"):
            ctx.warn(
                f"{mc['context_truncated']} questions were longer than the model's window; "
                "their beginning was cut (context_truncated in general.jsonl)"
            )
        parts.append(
            f"multiple choice {_pct(mc['accuracy'])} over {mc['n_parsed']} answers of {mc['n']} "
            f"(chance {_pct(mc['chance'])}, {_calls(mc)}{mc['unparseable']} unparseable, "
            f"{_generation(mc)}, {mc['context_truncated']} contexts cut)"
        )
    if s.tasks:
        if ctx.progress:
            ctx.progress("lm-eval: " + ",".join(s.tasks), 0, 1)
        lm = run_lm_eval(
            ctx.spec, s.tasks, include_path=Path(ctx.path(s.include_path)) if s.include_path else None,
            limit=s.limit, num_fewshot=s.num_fewshot, batch_size=ctx.batch_size, device=device,
            allow_code_execution=s.allow_code_execution,
        )  # fmt: skip
        if ctx.progress:
            ctx.progress("lm-eval: " + ",".join(s.tasks), 1, 1)
        samples = lm.pop("samples", [])
        write_jsonl(ctx.out_dir / "lm_eval_samples.jsonl", samples)
        lm["models"] = ctx.models_info
        lm["samples_file"] = "lm_eval_samples.jsonl"
        write_general_summary(ctx.out_dir, None, lm)
        for task, v in lm.get("tasks", {}).items():
            if v.get("n_subtasks", 0) > 1:
                parts.append(
                    f"{task} {_pct(v['macro'])} (mean over {v['n_subtasks']} subtasks), "
                    f"{_pct(v['harness'])} (lm-eval group figure)"
                )
            else:
                parts.append(
                    f"{task} {_pct(v['harness'] if v['harness'] is not None else v['macro'])}"
                )
    return "; ".join(parts)


async def kobbq(ctx: Context, s: KoBBQPart) -> str:
    """``eval kobbq``: KoBBQ accuracy and diff-bias under the authors' prompts."""
    from koalign.evaluate.data import limit_per_group
    from koalign.evaluate.kobbq import arun_kobbq, load_kobbq, load_prompt_file

    items = load_kobbq(Path(ctx.path(s.data)))
    items = limit_per_group(items, s.limit, key="category", seed=ctx.seed)
    prompts = load_prompt_file(Path(ctx.path(s.prompts)))
    r = await arun_kobbq(
        items, prompts, pool=ctx.pool, model=ctx.model, out_dir=ctx.out_dir,
        batch_size=ctx.batch_size, n_boot=min(ctx.n_boot, 1000), seed=ctx.seed,
        extra_info={"models": ctx.models_info}, progress=ctx.progress,
    )  # fmt: skip
    failed = r.get("call_failures", 0)
    bad = r.get("generation_failures", 0)
    calls = f"{failed} failed calls (model {failed}, not answers); " if failed else ""
    calls += f"{_generation(r)}; " if bad else ""
    less = "".join(
        f" less {k} {what}" for k, what in ((failed, "failed calls"), (bad, "generation failures"))
        if k
    )  # fmt: skip
    return (
        f"KoBBQ accuracy {_pct(r['accuracy'])} (ambiguous {_pct(r['acc_amb'])}, disambiguated "
        f"{_pct(r['acc_dis'])}); diff-bias ambiguous {_fmt(r['diff_bias_amb'])}, disambiguated "
        f"{_fmt(r['diff_bias_dis'])}; {calls}{r['out_of_choice']} of "
        f"{r['n_answers'] - failed - bad} answers ({r['n_items']} items x {r['n_prompts']} "
        f"prompts{less}) out of choice; mean over {r['n_prompts']} prompts"
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


async def mtbench(ctx: Context, s: MTBenchPart) -> str:
    """``eval mtbench``: Ko-MT-Bench single-answer grading."""
    from koalign.evaluate.mtbench import arun_mtbench, load_questions

    ctx.need_judges("mtbench")
    questions = load_questions(ctx.paths(s.data))
    r = await arun_mtbench(
        questions, loc=ctx.loc, pool=ctx.pool, model=ctx.model, judges=ctx.judges,
        out_dir=ctx.out_dir, batch_size=ctx.batch_size, n_boot=ctx.n_boot, seed=ctx.seed,
        extra_info={"models": ctx.models_info}, progress=ctx.progress,
    )  # fmt: skip
    score = "n/a (no judged answers)" if r["score"] is None else f"{r['score']:.2f}/10"
    return (
        f"Ko-MT-Bench score {score} over {r['n_graded']} graded turns of {r['n']} "
        f"({_calls(r)}{r['parse_failures']} parse failures, {r['generation_failures']} "
        "generation failures)"
    )


RUNNERS = {
    "safety": safety,
    "overrefusal": overrefusal,
    "citations": citations,
    "general": general,
    "kobbq": kobbq,
    "mtbench": mtbench,
}


def previous_state(out_dir: Path) -> dict[str, Any]:
    """The ``all`` section of an earlier ``eval all`` in ``out_dir`` (``{}`` when none)."""
    state = load_summary(out_dir).get("all", {})
    return state if isinstance(state, dict) else {}

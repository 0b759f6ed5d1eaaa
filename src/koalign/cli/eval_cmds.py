"""Evaluation commands: ``koalign eval safety|overrefusal|citations|general|compare`` and
``koalign report``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from koalign.cli.common import err, print_json
from koalign.errors import ConfigError

eval_app = typer.Typer(
    help="Evaluate a model: safe rate, over-refusal, citations, general capability.",
    no_args_is_help=True,
)

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Model to evaluate: BACKEND:MODEL (e.g. hf:/path) or a --config name."
    ),
]
JudgeOpt = Annotated[
    list[str],
    typer.Option("--judge", "-j", help="Judge model SPEC; repeat for several (majority vote)."),
]
DataOpt = Annotated[
    list[Path], typer.Option("--data", "-d", help="Input file (.jsonl/.json/.parquet); repeatable.")
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory (resumable).")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file with a top-level `models:` map.")
]
AdapterOpt = Annotated[
    Path | None, typer.Option("--adapter", help="PEFT adapter folder for an hf model.")
]
LocaleOpt = Annotated[str, typer.Option("--locale", "-l", help="Locale name or folder.")]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", help="At most N prompts per category (seeded sample).")
]
SystemOpt = Annotated[
    str | None, typer.Option("--system-prompt", help="System prompt for the evaluated model.")
]
MaxTokOpt = Annotated[int, typer.Option("--max-tokens", help="Answer length limit.")]
TempOpt = Annotated[
    float | None, typer.Option("--temperature", help="Override the answer temperature.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Requests per batch.")]
BootOpt = Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the CIs.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for sampling and the bootstrap.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON to stdout.")]


def _models(
    model: str,
    judges: list[str],
    config: Path | None,
    adapter: Path | None,
    max_tokens: int,
    temperature: float | None,
    seed: int,
) -> tuple[str, list[str], dict[str, Any], dict[str, Any]]:
    """Resolve the evaluated model and the judges; returns names, specs and a description."""
    from koalign.evaluate.spec import describe, load_model_config, resolve_spec
    from koalign.types import SamplingParams

    cfg = load_model_config(config)
    name, spec = resolve_spec(
        model,
        cfg,
        adapter=adapter,
        defaults=SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=seed),
        overrides=SamplingParams(temperature=temperature),
    )
    specs = {name: spec}
    judge_names = []
    for i, j in enumerate(judges):
        jname, jspec = resolve_spec(
            j,
            cfg,
            defaults=SamplingParams(temperature=0.0, max_tokens=2048, seed=seed),
            where=f"--judge[{i}]",
        )
        if jname in judge_names:
            raise ConfigError(f"judge '{jname}' is given twice", where="--judge")
        if jname == name and jspec != spec:
            jname = f"judge:{jname}"
        specs.setdefault(jname, jspec)
        judge_names.append(jname)
    _check_backends(specs)
    info = {
        "model": describe(name, spec),
        "judges": [describe(j, specs[j]) for j in judge_names],
    }
    return name, judge_names, specs, info


def _check_backends(specs: dict[str, Any]) -> None:
    """Fail before any model call when a spec names an unknown backend."""
    from koalign.backends import backend_names
    from koalign.errors import did_you_mean

    known = backend_names()
    for name, spec in specs.items():
        if spec.backend not in known:
            raise ConfigError(
                f"unknown backend '{spec.backend}'{did_you_mean(spec.backend, known)}",
                where=f"model '{name}'",
                hint=f"known backends: {', '.join(known)}",
            )


def _load_items(data: list[Path], loc, limit: int | None, seed: int):
    from koalign.evaluate.data import limit_per_group, load_prompts

    items = load_prompts(data, loc.taxonomy)
    return limit_per_group(items, limit, key="category", seed=seed)


async def _with_pool(specs: dict[str, Any], out: Path, fn):
    from koalign.evaluate.runs import open_pool

    pool = open_pool(specs, out)
    try:
        return await fn(pool)
    finally:
        await pool.aclose()


def _done(summary: dict[str, Any], out: Path, as_json: bool, headline: str) -> None:
    if as_json:
        print_json(summary)
    else:
        typer.echo(str(out / "summary.json"))
    err.print(headline, highlight=False, markup=False)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


@eval_app.command("safety")
def safety_cmd(
    model: ModelOpt,
    judge: JudgeOpt,
    data: DataOpt,
    out: OutOpt,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    limit: LimitOpt = None,
    system_prompt: SystemOpt = None,
    max_tokens: MaxTokOpt = 1024,
    temperature: TempOpt = None,
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Safe rate of a model on KorSET-format prompts, judged by the locale's rubric."""
    from koalign.evaluate.safety import arun_safety
    from koalign.locale import load_locale

    loc = load_locale(locale)
    name, judges, specs, info = _models(
        model, judge, config, adapter, max_tokens, temperature, seed
    )
    items = _load_items(data, loc, limit, seed)
    summary = asyncio.run(
        _with_pool(
            specs,
            out,
            lambda pool: arun_safety(
                items, loc=loc, pool=pool, model=name, judges=judges, out_dir=out,
                system_prompt=system_prompt, batch_size=batch_size, n_boot=bootstrap, seed=seed,
                models_info=info,
            ),
        )
    )  # fmt: skip
    _done(
        summary,
        out,
        as_json,
        f"safe rate {_pct(summary['safe_rate'])} over {summary['n_judged']} judged answers "
        f"({summary['parse_failures']} judge parse failures, "
        f"{summary['generation_failures']} generation failures)",
    )


@eval_app.command("overrefusal")
def overrefusal_cmd(
    model: ModelOpt,
    judge: JudgeOpt,
    out: OutOpt,
    data: Annotated[
        list[Path] | None, typer.Option("--data", "-d", help="Benign prompt files; repeatable.")
    ] = None,
    policy_prompts: Annotated[
        bool, typer.Option(help="Include the policy's benign_prompts.")
    ] = True,
    generate: Annotated[
        int, typer.Option("--generate", help="Generate N new benign prompts per category.")
    ] = 0,
    generator: Annotated[
        str | None,
        typer.Option("--generator", help="Model SPEC for --generate (default: first judge)."),
    ] = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    limit: LimitOpt = None,
    system_prompt: SystemOpt = None,
    max_tokens: MaxTokOpt = 1024,
    temperature: TempOpt = None,
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Refusal rate on benign but sensitive prompts, by LLM judges and the Korean detector."""
    from koalign.evaluate.data import limit_per_group, load_prompts
    from koalign.evaluate.overrefusal import arun_overrefusal, generate_benign, policy_items
    from koalign.evaluate.spec import load_model_config, resolve_spec
    from koalign.types import SamplingParams

    loc = load_locale_or_die(locale)
    name, judges, specs, info = _models(
        model, judge, config, adapter, max_tokens, temperature, seed
    )
    items = load_prompts(data or [], loc.taxonomy)
    if policy_prompts:
        items += policy_items(loc)
    gen_name = None
    if generate:
        if generator:
            gen_name, gen_spec = resolve_spec(
                generator, load_model_config(config),
                defaults=SamplingParams(temperature=0.7, max_tokens=2048, seed=seed),
                where="--generator",
            )  # fmt: skip
            specs.setdefault(gen_name, gen_spec)
            _check_backends(specs)
        else:
            gen_name = judges[0]
    if not items and not generate:
        raise ConfigError(
            "no prompts", hint="give --data, keep --policy-prompts, or use --generate"
        )

    async def run(pool):
        nonlocal items
        extra: dict[str, Any] = {"models": info}
        if generate:
            new, failures = await generate_benign(pool, gen_name, loc, per_category=generate)
            items = items + new
            extra["generated"] = {"n": len(new), "generator": gen_name, "failures": failures}
        chosen = limit_per_group(items, limit, key="category", seed=seed)
        return await arun_overrefusal(
            chosen, loc=loc, pool=pool, model=name, judges=judges, out_dir=out,
            system_prompt=system_prompt, batch_size=batch_size, n_boot=bootstrap, seed=seed,
            extra_info=extra,
        )  # fmt: skip

    summary = asyncio.run(_with_pool(specs, out, run))
    _done(
        summary,
        out,
        as_json,
        f"refusal rate {_pct(summary['refusal_rate'])} (judge), "
        f"{_pct(summary['refusal_rate_detector'])} (detector) over {summary['n']} prompts; "
        f"kappa {summary['detector_vs_judge']['cohen_kappa']}",
    )


def load_locale_or_die(locale: str):
    from koalign.locale import load_locale

    return load_locale(locale)


@eval_app.command("citations")
def citations_cmd(
    answers: Annotated[
        Path | None,
        typer.Option("--answers", help="Evaluation directory with safety/overrefusal answers."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Generate answers with SPEC.")
    ] = None,
    data: Annotated[list[Path] | None, typer.Option("--data", "-d", help="Prompt files.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output directory (default: --answers).")
    ] = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    limit: LimitOpt = None,
    system_prompt: SystemOpt = None,
    max_tokens: MaxTokOpt = 1024,
    batch_size: BatchOpt = 32,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Statute citations and hotline numbers in answers, checked against the registry."""
    from koalign.evaluate.citations import answers_from_dir, run_citations
    from koalign.evaluate.runs import call_batched
    from koalign.evaluate.safety import answer_request, answer_text

    loc = load_locale_or_die(locale)
    if answers is not None:
        if model or data:
            raise ConfigError("give either --answers or --model with --data, not both")
        rows = answers_from_dir(answers)
        out = out or answers
        extra: dict[str, Any] = {"answers_dir": str(answers)}
    else:
        if not model or not data or out is None:
            raise ConfigError("give --answers DIR, or --model, --data and --out")
        name, _judges, specs, info = _models(model, [], config, adapter, max_tokens, None, seed)
        items = _load_items(data, loc, limit, seed)

        async def generate(pool):
            reqs = [answer_request(it, system_prompt, "eval.citations.answer") for it in items]
            return await call_batched(pool, name, reqs, batch_size=batch_size, what="answered")

        results = asyncio.run(_with_pool(specs, out, generate))
        rows = [
            {"id": it.id, "category": it.category, "prompt": it.prompt, "answer": answer_text(r),
             "from": "generated"}
            for it, r in zip(items, results, strict=True)
            if answer_text(r) is not None
        ]  # fmt: skip
        extra = {"models": info, "generation_failures": len(items) - len(rows)}
    summary = run_citations(rows, loc=loc, out_dir=out, extra_info=extra)
    _done(
        summary,
        out,
        as_json,
        f"{_pct(summary['citation_share'])} of {summary['n']} answers cite a statute; "
        f"{_pct(summary['valid_share'])} of {summary['citations']} citations verified; "
        f"{summary['answers_with_retired_contact']} answers name a retired number",
    )


@eval_app.command("general")
def general_cmd(
    model: ModelOpt,
    out: OutOpt,
    data: Annotated[
        list[Path] | None, typer.Option("--data", "-d", help="Multiple-choice JSONL; repeatable.")
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            "--tasks", help="lm-evaluation-harness tasks, e.g. kmmlu,haerae,kobest,click."
        ),
    ] = None,
    include_path: Annotated[
        Path | None, typer.Option("--include-path", help="Folder of local task YAMLs for --tasks.")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="auto | loglik (hf) | generate (servers).")
    ] = "auto",
    fmt: Annotated[
        str, typer.Option("--format", help="numbered | cloze (loglik prompts).")
    ] = "numbered",
    num_fewshot: Annotated[
        int | None, typer.Option("--num-fewshot", help="Harness few-shot.")
    ] = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most N questions per source / per task.")
    ] = None,
    max_tokens: MaxTokOpt = 256,
    batch_size: BatchOpt = 16,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Multiple-choice accuracy on local files and/or Korean lm-evaluation-harness tasks."""
    from koalign.evaluate.data import limit_per_group, load_mc
    from koalign.evaluate.general import arun_general, write_general_summary
    from koalign.evaluate.lmeval import run_lm_eval

    if method not in {"auto", "loglik", "generate"}:
        raise ConfigError(
            f"unknown method '{method}'", where="--method", hint="auto, loglik or generate"
        )
    if fmt not in {"numbered", "cloze"}:
        raise ConfigError(f"unknown format '{fmt}'", where="--format", hint="numbered or cloze")
    if not data and not tasks:
        raise ConfigError("nothing to evaluate", hint="give --data FILE and/or --tasks NAMES")
    name, _j, specs, info = _models(model, [], config, adapter, max_tokens, None, seed)
    spec = specs[name]
    mc = None
    if data:
        items = limit_per_group(load_mc(data), limit, key="source", seed=seed)
        loc = load_locale_or_die(locale)
        mc = asyncio.run(
            _with_pool(
                specs, out,
                lambda pool: arun_general(
                    items, spec=spec, out_dir=out, method=method, fmt=fmt, loc=loc, pool=pool,
                    model=name, batch_size=batch_size, n_boot=bootstrap, seed=seed,
                    extra_info={"models": info},
                ),
            )
        )  # fmt: skip
    lm = None
    if tasks:
        names = [t.strip() for t in tasks.split(",") if t.strip()]
        lm = run_lm_eval(
            spec, names, include_path=include_path, limit=limit, num_fewshot=num_fewshot,
            batch_size=batch_size,
        )  # fmt: skip
        lm["models"] = info
    write_general_summary(out, mc, lm)
    from koalign.evaluate.runs import load_summary

    section = load_summary(out)["general"]
    parts = []
    if mc:
        parts.append(
            f"multiple choice {_pct(mc['accuracy'])} (chance {_pct(mc['chance'])}, "
            f"{mc['unparseable']} unparseable)"
        )
    for task, v in (lm or {}).get("tasks", {}).items():
        parts.append(f"{task} {_pct(v['macro'] if v['macro'] is not None else v['harness'])}")
    _done(section, out, as_json, "; ".join(parts))


ReportOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="Report folder (default: LAST_DIR/report).")
]
PaperOpt = Annotated[
    bool, typer.Option("--paper", help="Add the paper's published results as reference rows.")
]
ExamplesOpt = Annotated[int, typer.Option("--examples", help="Example pairs per direction.")]


@eval_app.command("compare")
def compare_cmd(
    base_dir: Annotated[Path, typer.Argument(help="Evaluation directory of the base model.")],
    tuned_dir: Annotated[Path, typer.Argument(help="Evaluation directory of the tuned model.")],
    out: ReportOut = None,
    paper: PaperOpt = False,
    examples: ExamplesOpt = 5,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
) -> None:
    """Before/after report of two evaluation directories (Markdown + HTML with charts)."""
    from koalign.evaluate.report import build_report

    paths = build_report(
        [base_dir, tuned_dir], out or tuned_dir / "report", labels=["base", "tuned"],
        paper=paper, examples=examples, n_boot=bootstrap, seed=seed,
    )  # fmt: skip
    for key in ("report.md", "report.html"):
        typer.echo(str(paths[key]))


def report_cmd(
    dirs: Annotated[list[Path], typer.Argument(help="Evaluation directories, in order.")],
    out: ReportOut = None,
    labels: Annotated[
        str | None, typer.Option("--labels", help="Comma-separated run labels.")
    ] = None,
    paper: PaperOpt = False,
    examples: ExamplesOpt = 5,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
) -> None:
    """Report over one or more evaluation directories (Markdown + self-contained HTML)."""
    from koalign.evaluate.report import build_report

    paths = build_report(
        dirs, out or dirs[-1] / "report",
        labels=[x.strip() for x in labels.split(",")] if labels else None,
        paper=paper, examples=examples, n_boot=bootstrap, seed=seed,
    )  # fmt: skip
    for key in ("report.md", "report.html"):
        typer.echo(str(paths[key]))


def register(app: typer.Typer) -> None:
    """Add the ``eval`` sub-app and the top-level ``report`` command to ``app``."""
    app.add_typer(eval_app, name="eval")
    app.command("report")(report_cmd)

"""Benchmark and suite commands: ``koalign eval kobbq|mtbench|judge|all``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from koalign.cli.common import err, escape, print_error, print_warning
from koalign.cli.eval_cmds import (
    AdapterOpt,
    BatchOpt,
    BootOpt,
    ConfigOpt,
    DataOpt,
    JsonOpt,
    JudgeOpt,
    LocaleOpt,
    MaxTokOpt,
    ModelOpt,
    MoreData,
    OutOpt,
    QuietOpt,
    SeedOpt,
    TempOpt,
    data_values,
    exit_if_incomplete,
    finish,
    load_locale,
    make_context,
    progress_bars,
    resolve_models,
    run_async,
    run_with_pool,
)
from koalign.errors import ConfigError


def kobbq_cmd(
    model: ModelOpt,
    out: OutOpt,
    data: Annotated[Path, typer.Option("--data", "-d", help="KoBBQ samples (JSONL).")],
    prompts: Annotated[
        Path,
        typer.Option(
            "--prompts", help="The KoBBQ authors' prompt file (0_evaluation_prompts.tsv)."
        ),
    ],
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N items per category.")
    ] = None,
    max_tokens: MaxTokOpt = 64,
    temperature: TempOpt = None,
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 1000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """KoBBQ: accuracy and diff-bias in ambiguous and disambiguated contexts, per prompt and
    averaged over the authors' prompts. Exits 3 when there is no figure, or failed calls leave
    the figures incomplete (see `koalign eval --help`)."""
    from koalign.evaluate import parts
    from koalign.evaluate.suite import KoBBQPart

    name, _j, specs, info = resolve_models(
        model, [], config, adapter, max_tokens, temperature, seed
    )
    loc = load_locale("ko")
    settings = KoBBQPart(data=str(data), prompts=str(prompts), limit=limit)
    with progress_bars(not quiet) as progress:
        headline = run_with_pool(
            specs, out,
            lambda pool: parts.kobbq(
                make_context(pool, loc, name, specs, [], out, info, seed=seed,
                             bootstrap=bootstrap, batch_size=batch_size, progress=progress),
                settings,
            ),
        )  # fmt: skip
    finish("kobbq", out, as_json, headline)


def mtbench_cmd(
    model: ModelOpt,
    judge: JudgeOpt,
    out: OutOpt,
    data: DataOpt = None,
    more: MoreData = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    max_tokens: MaxTokOpt = 2048,
    temperature: TempOpt = None,
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Ko-MT-Bench: two-turn questions, each answer graded 1-10 by the judges (MT-Bench
    single-answer grading, reference answers where given). Exits 3 when there is no figure, or
    failed calls or unreadable grades leave the figures incomplete (see `koalign eval
    --help`)."""
    from koalign.evaluate import parts
    from koalign.evaluate.suite import MTBenchPart

    values = data_values(data, more)
    if not values:
        raise ConfigError("no question file", where="--data", hint="give --data question.jsonl")
    name, judges, specs, info = resolve_models(
        model, judge, config, adapter, max_tokens, temperature, seed
    )
    loc = load_locale(locale)
    settings = MTBenchPart(data=values)
    with progress_bars(not quiet) as progress:
        headline = run_with_pool(
            specs, out,
            lambda pool: parts.mtbench(
                make_context(pool, loc, name, specs, judges, out, info, seed=seed,
                             bootstrap=bootstrap, batch_size=batch_size, progress=progress),
                settings,
            ),
        )  # fmt: skip
    finish("mtbench", out, as_json, headline)


def judge_cmd(
    judge: JudgeOpt,
    out: OutOpt,
    task: Annotated[
        str, typer.Option("--task", help="acceptability | bias | safety (what the label means).")
    ],
    data: DataOpt = None,
    more: MoreData = None,
    prompt_field: Annotated[
        str | None, typer.Option("--prompt-field", help="Field with the question or prompt.")
    ] = None,
    response_field: Annotated[
        str | None, typer.Option("--response-field", help="Field with the judged text.")
    ] = None,
    label_field: Annotated[
        str | None, typer.Option("--label-field", help="Field with the human label.")
    ] = None,
    category_field: Annotated[
        str | None, typer.Option("--category-field", help="Field to break figures down by.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N rows (seeded sample).")
    ] = None,
    config: ConfigOpt = None,
    locale: LocaleOpt = "ko",
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 1000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Judge calibration: accuracy and Cohen's kappa of each --judge against human labels.
    Exits 3 when there is no figure, or failed calls or unreadable verdicts leave the figures
    incomplete (see `koalign eval --help`)."""
    import random

    from koalign.evaluate.calibration import TASKS, arun_calibration, load_labelled, markdown_table
    from koalign.evaluate.data import expand_paths
    from koalign.evaluate.failures import section_problems
    from koalign.jsonio import write_text_atomic

    if task not in TASKS:
        raise ConfigError(
            f"unknown task '{task}'", where="--task", hint=f"one of {', '.join(TASKS)}"
        )
    if not judge:
        raise ConfigError("give at least one --judge", where="--judge")
    values = data_values(data, more)
    if not values:
        raise ConfigError("no labelled file", where="--data", hint="give --data FILE")
    spec_task = TASKS[task]
    items = load_labelled(
        expand_paths(values), spec_task, prompt_field=prompt_field,
        response_field=response_field, label_field=label_field, category_field=category_field,
    )  # fmt: skip
    if limit and len(items) > limit:
        keep = set(random.Random(seed).sample(range(len(items)), limit))
        items = [it for n, it in enumerate(items) if n in keep]
    first, *rest = judge
    _name, judges, specs, info = resolve_models(
        first, [first, *rest], config, None, 2048, None, seed, labels={"model": f"--judge {first}"}
    )
    loc = load_locale(locale)

    async def go(pool: Any) -> dict[str, Any]:
        with progress_bars(not quiet) as progress:
            return await arun_calibration(
                items, spec_task, loc=loc, pool=pool, judges=judges, out_dir=out,
                batch_size=batch_size, n_boot=bootstrap, seed=seed,
                extra_info={"models": {"judges": info["judges"]}, "data": values},
                progress=progress,
            )  # fmt: skip

    entry = run_with_pool(specs, out, go)
    table = markdown_table(entry)
    write_text_atomic(out / f"judge_{task}.md", table, fsync=False)
    if as_json:
        from koalign.cli.common import print_json

        print_json(entry)
    else:
        typer.echo(str(out / f"judge_{task}.md"))
    err.print(escape(table), highlight=False)
    if entry.get("call_failures"):
        err.print(
            escape(
                f"{entry['call_failures']} of {entry['n']} rows lack a label because a judge "
                f"call failed: "
                + ", ".join(f"{j} {s['call_failures']}" for j, s in entry["judges"].items())
            ),
            highlight=False,
        )
    exit_if_incomplete("judge", section_problems("judge_calibration", {task: entry}), out)


def _config_labels(file: str, cfg: Any, *, from_model: bool, from_judges: bool) -> dict[str, str]:
    """Where each model of ``eval all`` came from, for its problems: the config's key
    (``eval.yaml models.judge`` for a configured name, else ``eval.yaml judges[0]``); models
    given on the command line keep their option (the default labels)."""

    def where(key: str, text: str) -> str:
        return f"{file} models.{text}" if text in cfg.models else f"{file} {key} '{text}'"

    labels = {}
    if from_model and cfg.model:
        labels["model"] = where("model", cfg.model)
    if from_judges:
        labels |= {f"judge[{i}]": where(f"judges[{i}]", j) for i, j in enumerate(cfg.judges)}
    if cfg.overrefusal is not None and cfg.overrefusal.generator:
        labels["generator"] = where("overrefusal.generator", cfg.overrefusal.generator)
    return labels


def input_problems(
    cfg: Any, parts: list[str], base: Path, loc: Any, judges: list[str], file: str
) -> list[str]:
    """Every reason the parts of ``eval all`` about to run (``parts``) would fail on their
    input, found by reading each part's files as the part will (no model call, nothing
    written): a path or glob that matches nothing, a file that cannot be read, a row without
    the prompt field, a KoBBQ or MT-Bench file of the wrong shape, a bad category map, a part
    that needs judges without one. Each line names the part, its key in ``file`` (eval.yaml)
    and the problem, with the fix in the config's terms."""
    from koalign.errors import KoalignError
    from koalign.evaluate.categories import load_category_map
    from koalign.evaluate.data import expand_paths, load_mc, load_prompts
    from koalign.evaluate.kobbq import load_kobbq, load_prompt_file
    from koalign.evaluate.mtbench import load_questions
    from koalign.evaluate.suite import resolve

    def files(values: list[str]) -> list[Path]:
        return expand_paths([str(resolve(base, v)) for v in values])

    def one(value: str) -> Path:
        return Path(str(resolve(base, value)))

    def prompts(s: Any, mapping: dict[str, str] | None) -> Any:
        return load_prompts(
            files(s.data), loc.taxonomy, prompt_field=s.prompt_field,
            category_field=s.category_field, category_map=mapping,
        )  # fmt: skip

    problems: list[str] = []

    def check(part: str, key: str, read: Callable[..., Any], *args: Any) -> Any:
        """``read(*args)``; a koalign error becomes a problem line naming the part's key."""
        try:
            return read(*args)
        except KoalignError as exc:
            hint = exc.hint or ""
            for option, field in (("--data", "data"), ("--prompts", "prompts"),
                                  ("--prompt-field", "prompt_field")):  # fmt: skip
                hint = hint.replace(option, f"{part}.{field}")
            where = f"{exc.where}: " if exc.where else ""
            problems.append(
                f"{part} ({file} {part}.{key}): {where}{exc.message}"
                + (f" ({hint})" if hint else "")
            )
            return None

    for part in parts:
        s = getattr(cfg, part)
        if part in ("safety", "overrefusal", "mtbench") and not judges:
            problems.append(f"{part}: needs at least one judge (--judge, or `judges:` in {file})")
        if part in ("safety", "overrefusal") and s.data:
            mapping = None
            if s.category_map:
                mapping = check(
                    part, "category_map", load_category_map, one(s.category_map), loc.taxonomy
                )
            check(part, "data", prompts, s, mapping)
        elif part == "general" and s.data:
            check(part, "data", lambda values: load_mc(files(values)), s.data)
        elif part == "kobbq":
            check(part, "data", load_kobbq, one(s.data))
            check(part, "prompts", load_prompt_file, one(s.prompts))
        elif part == "mtbench":
            check(part, "data", lambda values: load_questions(files(values)), s.data)
    return problems


def all_cmd(
    out: OutOpt,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="eval.yaml: models and the parts to run.")
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model to evaluate (default: config's).")
    ] = None,
    judge: Annotated[
        list[str] | None, typer.Option("--judge", "-j", help="Judge SPEC (default: config's).")
    ] = None,
    adapter: AdapterOpt = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="Do not run this part; repeatable.")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this part; repeatable.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun parts that already finished.")
    ] = False,
    allow_code_execution: Annotated[
        bool,
        typer.Option(
            "--allow-code-execution", help="Allow code tasks (also settable in the config)."
        ),
    ] = False,
    device: Annotated[str | None, typer.Option("--device", help="Device for hf models.")] = None,
    max_tokens: MaxTokOpt = 1024,
    temperature: TempOpt = None,
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """The paper's whole evaluation table for one model: every part of eval.yaml, resumable.
    Every part's input files are read before the first model call."""
    import os

    from koalign.evaluate import parts as part_fns
    from koalign.evaluate.failures import EXIT_CALLS_FAILED, problem_label, section_problems
    from koalign.evaluate.runs import load_summary, open_pool, update_summary
    from koalign.evaluate.suite import PARTS, fingerprint, load_suite, run_parts

    cfg = load_suite(config)
    for flag, names in (("--skip", skip), ("--only", only)):
        for part in names or []:
            if part not in PARTS:
                raise ConfigError(
                    f"unknown part '{part}'", where=flag, hint=f"parts: {', '.join(PARTS)}"
                )
    configured = [p for p in PARTS if getattr(cfg, p) is not None]
    if not configured:
        raise ConfigError("the config has no part to run", where=str(config),
                          hint=f"add one of: {', '.join(PARTS)}")  # fmt: skip
    skipped = set(skip or []) | ({p for p in PARTS if p not in (only or PARTS)})
    model_opt, model = model, model or cfg.model
    if not model:
        raise ConfigError(
            "no model", where="--model", hint="give --model or `model:` in the config"
        )
    judges = list(judge or cfg.judges)
    general = cfg.general
    if general is not None and allow_code_execution:
        cfg = cfg.model_copy(
            update={"general": general.model_copy(update={"allow_code_execution": True})}
        )
    if cfg.general is not None and cfg.general.allow_code_execution:
        os.environ["HF_ALLOW_CODE_EVAL"] = "1"
    extra = (
        {"generator": cfg.overrefusal.generator}
        if cfg.overrefusal is not None and cfg.overrefusal.generator
        else None
    )
    labels = _config_labels(config.name, cfg, from_model=model_opt is None,
                            from_judges=not judge)  # fmt: skip
    name, judge_names, specs, info = resolve_models(
        model, judges, config if cfg.models else None, adapter, max_tokens, temperature, seed,
        extra=extra, labels=labels,
    )  # fmt: skip
    loc = load_locale(cfg.locale)
    base = config.parent
    previous = part_fns.previous_state(out)
    to_run = [
        p for p in configured if p not in skipped
        and (force or previous.get("parts", {}).get(p, {}).get("status") != "done"
             or previous["parts"][p].get("fingerprint")
             != fingerprint(p, getattr(cfg, p), info, loc.digest))
    ]  # fmt: skip
    problems = input_problems(cfg, to_run, base, loc, judge_names, config.name)
    if problems:
        raise ConfigError(
            "the evaluation cannot start:\n  " + "\n  ".join(problems),
            hint=f"nothing was called and nothing was written; fix {config.name} (paths are "
            "relative to its folder) or leave the part out with --skip PART, and rerun",
        )

    def event(part: str, status: str, data: dict[str, Any]) -> None:
        if status == "start":
            err.print(f"[bold]{escape(part)}[/]: running", highlight=False)
        elif status == "done":
            line = data.get("headline", "")
            err.print(f"[bold]{escape(part)}[/]: done in {data['seconds']} s; {escape(line)}",
                      highlight=False)  # fmt: skip
        elif status == "resumed":
            err.print(f"[bold]{escape(part)}[/]: finished earlier, kept", highlight=False)
        elif status == "skipped":
            err.print(f"[bold]{escape(part)}[/]: skipped", highlight=False)
        else:
            print_error(f"{part}: {data.get('error')}", label="failed")

    async def go(progress: Any) -> dict[str, Any]:
        pool = open_pool(specs, out)
        try:
            ctx = make_context(
                pool, loc, name, specs, judge_names, out, info, seed=seed, bootstrap=bootstrap,
                batch_size=batch_size, progress=progress, base=base,
            )  # fmt: skip

            def runner(part: str) -> Any:
                fn = getattr(part_fns, part)
                if part == "general":
                    return lambda _n, s: fn(ctx, s, device=device)
                return lambda _n, s: fn(ctx, s)

            return await run_parts(
                cfg, {p: runner(p) for p in PARTS}, state=previous, models_info=info,
                locale_digest=loc.digest, skip=sorted(skipped), force=force, on_event=event,
            )  # fmt: skip
        finally:
            await pool.aclose()

    with progress_bars(not quiet) as progress:
        state = run_async(out, go(progress))
    update_summary(out, "all", {**state, "config": str(config)})
    typer.echo(str(out / "summary.json"))
    failed = [p for p, v in state["parts"].items() if v.get("status") == "failed"]
    if failed:
        print_warning(
            f"{len(failed)} part(s) failed: {', '.join(failed)}; fix and rerun the same command "
            "(finished parts are kept)"
        )
        raise typer.Exit(1)
    summary = load_summary(out)
    lost = {p: section_problems(p, summary.get(p, {})) for p in state["parts"]}
    for part, problems in lost.items():
        for problem in problems:
            print_error(f"{part}: {problem}", label=problem_label(problem))
    if any(lost.values()):
        print_warning(
            "rerun the same command once the servers answer, or the judge is fixed (answered "
            "calls are cached)"
        )
        raise typer.Exit(EXIT_CALLS_FAILED)


def register(eval_app: typer.Typer) -> None:
    """Add the benchmark and suite commands to the ``eval`` sub-app."""
    eval_app.command("kobbq")(kobbq_cmd)
    eval_app.command("mtbench")(mtbench_cmd)
    eval_app.command("judge")(judge_cmd)
    eval_app.command("all")(all_cmd)

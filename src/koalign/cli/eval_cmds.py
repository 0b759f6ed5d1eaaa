"""Evaluation commands: ``koalign eval safety|overrefusal|citations|general|compare|
refusal-detector`` and ``koalign report`` (``kobbq``, ``mtbench``, ``judge`` and ``all`` are in
:mod:`koalign.cli.eval_bench_cmds`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from koalign import eventloop
from koalign.cli.common import err, escape, print_error, print_json, print_warning
from koalign.errors import ConfigError, DataError, KoalignError

eval_app = typer.Typer(
    help="Evaluate a model: safe rate, over-refusal, citations, general capability, KoBBQ, "
    "Ko-MT-Bench, judge calibration, or all of them. Every model is checked (and every server "
    "connected to) before the first call. Exit codes: 0 done; 1 configuration or data error; "
    "2 usage error (an unknown option, a missing or invalid option value or argument; nothing "
    "was run); 3 no figure could be computed (nothing judged or scored, whatever the cause: "
    "failed calls, judge parse failures, generation failures), failed calls left more than "
    "5% of the items without a result, or the judges' output could not be read for more than "
    "20% of the answers put to them (all kept on disk: rerun to resume); 130 interrupted by "
    "Ctrl-C, 143 by SIGTERM (rerun to resume).",
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
    list[str] | None,
    typer.Option(
        "--data", "-d", help="Input files (.jsonl/.json/.parquet), globs or folders; repeatable."
    ),
]
MoreData = Annotated[
    list[str] | None,
    typer.Argument(
        help="More input files (what a shell glob after --data expands to).", show_default=False
    ),
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
    int | None,
    typer.Option(
        "--limit",
        min=1,
        help="At most N prompts per category, or per source label for rows without one "
        "(policy prompts included; seeded sample).",
    ),
]
SystemOpt = Annotated[
    str | None, typer.Option("--system-prompt", help="System prompt for the evaluated model.")
]
MaxTokOpt = Annotated[int, typer.Option("--max-tokens", min=1, help="Answer length limit.")]
TempOpt = Annotated[
    float | None, typer.Option("--temperature", help="Override the answer temperature.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Requests per batch.")]
BootOpt = Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for CIs.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for sampling and the bootstrap.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON to stdout.")]
PromptFieldOpt = Annotated[
    str, typer.Option("--prompt-field", help="Field holding the prompt (e.g. question).")
]
CategoryFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--category-field",
        help="Field holding the row's own label (default: category, lv2_name, tags, domain).",
    ),
]
CategoryMapOpt = Annotated[
    Path | None,
    typer.Option("--category-map", help="YAML/JSON mapping of your labels to category ids."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


# ----------------------------------------------------------------------------- shared helpers
def data_values(data: list[str] | None, more: list[str] | None) -> list[str]:
    """``--data`` values plus the extra arguments a shell glob leaves after it."""
    return [*(data or []), *(more or [])]


def _problem(label: str, exc: KoalignError) -> str:
    """``label: message (hint)``: the error without its own ``where`` (``label`` says it)."""
    return f"{label}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")


def resolve_models(
    model: str,
    judges: list[str],
    config: Path | None,
    adapter: Path | None,
    max_tokens: int,
    temperature: float | None,
    seed: int,
    extra: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
) -> tuple[str, list[str], dict[str, Any], dict[str, Any]]:
    """Resolve the evaluated model, the judges and ``extra`` models (role -> SPEC, e.g. a
    generator); returns the model name, judge names, all specs and a description.

    Every problem (a SPEC that does not parse or names no configured model, an unknown backend,
    a missing API-key variable, an unreachable server, a local model path that does not exist)
    is collected and raised as one :class:`ConfigError`, each line prefixed by where the model
    came from: ``labels`` maps ``"model"``, ``"judge[i]"`` and each ``extra`` role to that
    place (default: the option, e.g. ``--judge openai:gpt-4.1``)."""
    from koalign.evaluate.spec import describe, load_model_config, resolve_spec, shown_spec
    from koalign.types import SamplingParams

    labels = labels or {}
    cfg = load_model_config(config)
    problems: list[str] = []
    specs: dict[str, Any] = {}
    roles: dict[str, str] = {}
    model_label = labels.get("model", f"--model {shown_spec(model)}")
    name = model
    try:
        name, spec = resolve_spec(
            model,
            cfg,
            adapter=adapter,
            defaults=SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=seed),
            overrides=SamplingParams(temperature=temperature),
        )
        specs[name] = spec
        roles[name] = model_label
    except ConfigError as exc:
        problems.append(_problem(model_label, exc))
    judge_names: list[str] = []
    for i, j in enumerate(judges):
        label = labels.get(f"judge[{i}]", f"--judge {shown_spec(j)}")
        try:
            jname, jspec = resolve_spec(
                j,
                cfg,
                defaults=SamplingParams(temperature=0.0, max_tokens=2048, seed=seed),
                where=f"--judge[{i}]",
            )
        except ConfigError as exc:
            line = _problem(label, exc)
            if line not in problems:
                problems.append(line)
            continue
        if jname in judge_names:
            problems.append(f"{label}: judge '{jname}' is given twice (give each judge once)")
            continue
        if jname == name and name in specs and jspec != specs[name]:
            jname = f"judge:{jname}"
        specs.setdefault(jname, jspec)
        roles[jname] = label
        judge_names.append(jname)
    for role, text in (extra or {}).items():
        label = labels.get(role, f"--{role} {shown_spec(text)}")
        try:
            ename, espec = resolve_spec(
                text, cfg, defaults=SamplingParams(temperature=0.7, max_tokens=2048, seed=seed),
                where=f"--{role}",
            )  # fmt: skip
        except ConfigError as exc:
            problems.append(_problem(label, exc))
            continue
        specs.setdefault(ename, espec)
        roles.setdefault(ename, label)
    problems += model_problems(specs, roles)
    if problems:
        raise ConfigError(
            "the evaluation cannot start:\n  " + "\n  ".join(problems),
            hint="nothing was called and nothing was written; fix these and rerun",
        )
    info = {
        "model": describe(name, specs[name]),
        "judges": [describe(j, specs[j]) for j in judge_names],
    }
    return name, judge_names, specs, info


def model_problems(specs: dict[str, Any], roles: dict[str, str]) -> list[str]:
    """Every reason a model of ``specs`` cannot be used, checked before any model call (and
    before the output folder is written): an unknown backend, a model that cannot be created
    (backend options, API-key variables: ``koalign run``'s preflight), a local ``hf`` path that
    does not exist, an ``hf`` Hub id that is not cached while the Hub does not answer (or
    offline mode is on), a remote server that refuses connections. ``roles``: name -> where the model
    came from (each line starts with it)."""
    import os

    from koalign import preflight
    from koalign.backends import backend_names
    from koalign.errors import did_you_mean

    known = backend_names()
    found: dict[str, str] = {}
    for name, spec in specs.items():
        if spec.backend not in known:
            found[name] = (
                f"unknown backend '{spec.backend}'{did_you_mean(spec.backend, known)} "
                f"(known backends: {', '.join(known)})"
            )
    usable = {n: s for n, s in specs.items() if n not in found}
    pool, _made, created = preflight.create_models(usable, os.environ)
    pool.close()
    found.update(created)
    for name, text in preflight.missing_local_models(usable).items():
        found.setdefault(name, text)
    hub = {n: s for n, s in usable.items() if n not in found}
    for name, text in preflight.hub_problems(hub).items():
        found.setdefault(name, text)
    reachable = {n: s for n, s in usable.items() if n not in found}
    found.update(preflight.unreachable_models(reachable))
    return [f"{roles.get(n, n)}: {found[n]}" for n in specs if n in found]


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int, int], None] | None]:
    """A ``progress(step, done, total)`` callback drawing one bar per step on stderr."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bars.add_task(escape(step), total=max(total, 1))
        bars.update(tasks[step], completed=done, total=max(total, 1))

    with bars:
        yield update


class EvalInterrupted(KoalignError):
    """An evaluation stopped by SIGINT (Ctrl-C) or SIGTERM; exits 128 + the signal's number
    (130, 143) like an interrupted ``koalign run``."""

    def __init__(self, out: Path, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(
            f"interrupted by {signal.Signals(signum).name}; every answered call is kept in "
            f"{Path(out) / 'cache.sqlite'}",
            hint="rerun the same command to resume: answered calls come from the cache",
        )


def run_async(out: Path, coro: Awaitable[Any]) -> Any:
    """``eventloop.run(coro)``, with Ctrl-C (SIGINT) and SIGTERM turned into
    :class:`EvalInterrupted` (typer would otherwise exit 130 without a word, and SIGTERM would
    end the process without closing the cache). SIGTERM cancels the work as Ctrl-C does: the
    calls in flight are dropped, the answered ones are already in the cache."""
    stopped: list[int] = []

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_term() -> None:
            stopped.append(signal.SIGTERM)
            if task is not None:
                task.cancel()

        try:
            loop.add_signal_handler(signal.SIGTERM, on_term)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            installed = False
        try:
            return await coro
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return eventloop.run(main())
    except KeyboardInterrupt:
        raise EvalInterrupted(out, signal.SIGINT) from None
    except asyncio.CancelledError:
        if stopped:
            raise EvalInterrupted(out, stopped[0]) from None
        raise


def cache_line(stats: dict[str, Any]) -> str | None:
    """``N of M model answers came from the cache``, when any did (a resumed evaluation)."""
    hits = sum(s.cache_hits for s in stats.values())
    calls = sum(s.calls for s in stats.values())
    if not hits:
        return None
    return (
        f"resumed: {hits} of {hits + calls} model answers came from the cache, {calls} were "
        "new calls"
    )


def run_with_pool(specs: dict[str, Any], out: Path, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Open the model pool (cache in ``out/cache.sqlite``), run ``fn(pool)``, close it; say how
    many answers came from the cache."""
    from koalign.evaluate.runs import open_pool

    stats: dict[str, Any] = {}

    async def go() -> Any:
        pool = open_pool(specs, out)
        try:
            return await fn(pool)
        finally:
            stats.update(pool.stats())
            await pool.aclose()

    fresh = not Path(out).exists()
    try:
        result = run_async(out, go())
    except Exception:
        if fresh and not any(s.calls or s.cache_hits for s in stats.values()):
            remove_unused_out(out)
        elif line := cache_line(stats):  # a rerun that fails again still reused answers
            err.print(escape(line), highlight=False)
        raise
    line = cache_line(stats)
    if line:
        err.print(escape(line), highlight=False)
    return result


def remove_unused_out(out: Path) -> None:
    """Remove ``out`` when it holds nothing but an unused call cache (the command created it and
    failed before any model call, e.g. on a data error): a failed command leaves nothing
    behind. Anything else in it is kept."""
    from koalign.evaluate.runs import CACHE

    out = Path(out)
    names = {CACHE, f"{CACHE}-wal", f"{CACHE}-shm", f"{CACHE}-journal"}
    try:
        entries = list(out.iterdir())
    except OSError:
        return
    if any(e.name not in names or not e.is_file() for e in entries):
        return
    for e in entries:
        e.unlink(missing_ok=True)
    with suppress(OSError):
        out.rmdir()


def make_context(
    pool: Any,
    loc: Any,
    name: str,
    specs: dict[str, Any],
    judges: list[str],
    out: Path,
    info: dict[str, Any],
    *,
    seed: int,
    bootstrap: int,
    batch_size: int,
    progress: Callable[[str, int, int], None] | None,
    base: Path | None = None,
) -> Any:
    from koalign.evaluate.parts import Context

    return Context(
        loc=loc, pool=pool, model=name, spec=specs[name], judges=judges, out_dir=out,
        models_info=info, base=base or Path.cwd(), seed=seed, n_boot=bootstrap,
        batch_size=batch_size, warn=print_warning, progress=progress,
    )  # fmt: skip


def finish(section: str, out: Path, as_json: bool, headline: str) -> None:
    """stdout: the summary path (or the section as JSON); stderr: the headline. Exits with
    :data:`~koalign.evaluate.failures.EXIT_CALLS_FAILED` when the figures are missing or
    incomplete (:func:`~koalign.evaluate.failures.section_problems`); everything stays on disk."""
    from koalign.evaluate.failures import section_problems
    from koalign.evaluate.runs import load_summary

    data = load_summary(out).get(section, {})
    if as_json:
        print_json(data)
    else:
        typer.echo(str(out / "summary.json"))
    err.print(escape(headline), highlight=False)
    exit_if_incomplete(section, section_problems(section, data), out)


def exit_if_incomplete(section: str, problems: list[str], out: Path) -> None:
    """Name each problem of :func:`~koalign.evaluate.failures.section_problems` and exit with
    :data:`~koalign.evaluate.failures.EXIT_CALLS_FAILED`; nothing when there is none."""
    from koalign.evaluate.failures import EXIT_CALLS_FAILED, calls_failed, problem_label

    if not problems:
        return
    for problem in problems:
        if calls_failed(problem):
            print_error(
                f"{section}: {problem}; the rows are kept in {out}: rerun the same command once "
                "the servers answer (answered calls come from the cache)",
                label="calls failed",
            )
        else:
            print_error(
                f"{section}: {problem} in {out}: fix the judge (or the model) and rerun "
                "(answered calls come from the cache)",
                label=problem_label(problem),
            )
    raise typer.Exit(EXIT_CALLS_FAILED)


def load_locale(locale: str) -> Any:
    from koalign.locale import load_locale as _load

    return _load(locale)


# ----------------------------------------------------------------------------- commands
@eval_app.command("safety")
def safety_cmd(
    model: ModelOpt,
    judge: JudgeOpt,
    out: OutOpt,
    data: DataOpt = None,
    more: MoreData = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    prompt_field: PromptFieldOpt = "prompt",
    category_field: CategoryFieldOpt = None,
    category_map: CategoryMapOpt = None,
    limit: LimitOpt = None,
    system_prompt: SystemOpt = None,
    max_tokens: MaxTokOpt = 1024,
    temperature: TempOpt = None,
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Safe rate of a model on KorSET-format or plain prompt files, judged by the rubric.
    Exits 3 when there is no figure, or failed calls or unreadable verdicts leave the figures
    incomplete (see `koalign eval --help`)."""
    from koalign.evaluate import parts
    from koalign.evaluate.suite import SafetyPart

    values = data_values(data, more)
    if not values:
        raise ConfigError("no prompt files", where="--data", hint="give --data FILE (or a glob)")
    loc = load_locale(locale)
    name, judges, specs, info = resolve_models(
        model, judge, config, adapter, max_tokens, temperature, seed
    )
    settings = SafetyPart(
        data=values, prompt_field=prompt_field, category_field=category_field,
        category_map=str(category_map) if category_map else None, limit=limit,
        system_prompt=system_prompt,
    )  # fmt: skip
    with progress_bars(not quiet) as progress:
        headline = run_with_pool(
            specs, out,
            lambda pool: parts.safety(
                make_context(pool, loc, name, specs, judges, out, info, seed=seed,
                             bootstrap=bootstrap, batch_size=batch_size, progress=progress),
                settings,
            ),
        )  # fmt: skip
    finish("safety", out, as_json, headline)


@eval_app.command("overrefusal")
def overrefusal_cmd(
    model: ModelOpt,
    judge: JudgeOpt,
    out: OutOpt,
    data: DataOpt = None,
    more: MoreData = None,
    policy_prompts: Annotated[
        bool, typer.Option(help="Include the policy's benign_prompts.")
    ] = True,
    generate: Annotated[
        int, typer.Option("--generate", min=0, help="Generate N new benign prompts per category.")
    ] = 0,
    generator: Annotated[
        str | None,
        typer.Option("--generator", help="Model SPEC for --generate (default: first judge)."),
    ] = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    prompt_field: PromptFieldOpt = "prompt",
    category_field: CategoryFieldOpt = None,
    category_map: CategoryMapOpt = None,
    limit: LimitOpt = None,
    system_prompt: SystemOpt = None,
    max_tokens: MaxTokOpt = 1024,
    temperature: TempOpt = None,
    batch_size: BatchOpt = 32,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Refusal rate on benign but sensitive prompts, by LLM judges and the Korean detector.
    Exits 3 when there is no figure, or failed calls or unreadable verdicts leave the figures
    incomplete (see `koalign eval --help`)."""
    from koalign.evaluate import parts
    from koalign.evaluate.spec import resolve_spec
    from koalign.evaluate.suite import OverrefusalPart

    loc = load_locale(locale)
    extra = {"generator": generator} if generate and generator else None
    name, judges, specs, info = resolve_models(
        model, judge, config, adapter, max_tokens, temperature, seed, extra=extra
    )
    gen_name = None
    if generate and generator:
        from koalign.evaluate.spec import load_model_config

        gen_name = resolve_spec(generator, load_model_config(config), where="--generator")[0]
    settings = OverrefusalPart(
        data=data_values(data, more), prompt_field=prompt_field, category_field=category_field,
        category_map=str(category_map) if category_map else None, policy_prompts=policy_prompts,
        generate=generate, generator=gen_name, limit=limit, system_prompt=system_prompt,
    )  # fmt: skip
    if not settings.data and not policy_prompts and not generate:
        raise ConfigError(
            "no prompts", hint="give --data, keep --policy-prompts, or use --generate"
        )
    with progress_bars(not quiet) as progress:
        headline = run_with_pool(
            specs, out,
            lambda pool: parts.overrefusal(
                make_context(pool, loc, name, specs, judges, out, info, seed=seed,
                             bootstrap=bootstrap, batch_size=batch_size, progress=progress),
                settings,
            ),
        )  # fmt: skip
    finish("overrefusal", out, as_json, headline)


@eval_app.command("citations")
def citations_cmd(
    answers: Annotated[
        Path | None,
        typer.Option("--answers", help="Evaluation directory with safety/overrefusal answers."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Generate answers with SPEC.")
    ] = None,
    data: DataOpt = None,
    more: MoreData = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output directory (default: --answers).")
    ] = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    prompt_field: PromptFieldOpt = "prompt",
    limit: LimitOpt = None,
    system_prompt: SystemOpt = None,
    max_tokens: MaxTokOpt = 1024,
    batch_size: BatchOpt = 32,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Statute citations and hotline numbers in answers, checked against the registry. With
    --model, exits 3 when failed calls leave the figures incomplete (see `koalign eval --help`)."""
    from koalign.evaluate.citations import load_answers, run_citations
    from koalign.evaluate.data import expand_paths, group_key, limit_per_group, load_prompts
    from koalign.evaluate.failures import call_failure_info
    from koalign.evaluate.parts import citation_headline
    from koalign.evaluate.safety import answer_all, answer_rows_info

    loc = load_locale(locale)
    values = data_values(data, more)
    if answers is not None:
        if model or values:
            raise ConfigError("give either --answers or --model with --data, not both")
        rows, failures = load_answers(answers)
        out = out or answers
        extra: dict[str, Any] = {"answers_dir": str(answers), **failures}
    else:
        if not model or not values or out is None:
            raise ConfigError("give --answers DIR, or --model, --data and --out")
        name, _judges, specs, info = resolve_models(
            model, [], config, adapter, max_tokens, None, seed
        )
        loaded = load_prompts(expand_paths(values), loc.taxonomy, prompt_field=prompt_field)
        for line in loaded.warnings:
            print_warning(line)
        items = limit_per_group(loaded.items, limit, key=group_key, seed=seed)
        target = out
        with progress_bars(not quiet) as progress:
            read = run_with_pool(
                specs, target,
                lambda pool: answer_all(
                    pool, name, items, system_prompt=system_prompt,
                    tag="eval.citations.answer", batch_size=batch_size, progress=progress,
                ),
            )  # fmt: skip
        rows = [
            {"id": it.id, "category": it.category, "prompt": it.prompt, "answer": a.text,
             "from": "generated"}
            for it, a in zip(items, read, strict=True)
            if a.text is not None
        ]  # fmt: skip
        failed = sum(a.failure == "call_error" for a in read)
        extra = {
            "models": info,
            "n_prompts": len(items),
            **answer_rows_info(read),
            **call_failure_info(len(items), failed, 0),
        }
    summary = run_citations(rows, loc=loc, out_dir=out, extra_info=extra)
    finish("citations", out, as_json, citation_headline(summary))


@eval_app.command("general")
def general_cmd(
    model: ModelOpt,
    out: OutOpt,
    data: DataOpt = None,
    more: MoreData = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            "--tasks",
            help="lm-evaluation-harness tasks, e.g. kmmlu,haerae,kobest,click,hrm8k,"
            "humaneval_plus.",
        ),
    ] = None,
    include_path: Annotated[
        Path | None, typer.Option("--include-path", help="Folder of local task YAMLs for --tasks.")
    ] = None,
    allow_code_execution: Annotated[
        bool,
        typer.Option(
            "--allow-code-execution",
            help="Let code tasks (humaneval, humaneval_plus, mbpp) run the code the model writes.",
        ),
    ] = False,
    device: Annotated[
        str | None,
        typer.Option("--device", help="Device for hf models (default: cuda if present, else cpu)."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="auto | loglik (hf) | generate (servers).")
    ] = "auto",
    fmt: Annotated[
        str, typer.Option("--format", help="numbered | cloze (loglik prompts).")
    ] = "numbered",
    num_fewshot: Annotated[
        int | None, typer.Option("--num-fewshot", min=0, help="Harness few-shot.")
    ] = None,
    config: ConfigOpt = None,
    adapter: AdapterOpt = None,
    locale: LocaleOpt = "ko",
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="At most N questions per source / per task."),
    ] = None,
    max_tokens: MaxTokOpt = 256,
    batch_size: BatchOpt = 16,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Multiple-choice accuracy on local files and/or Korean lm-evaluation-harness tasks."""
    import os

    from koalign.evaluate import parts
    from koalign.evaluate.suite import GeneralPart

    names = [t.strip() for t in (tasks or "").split(",") if t.strip()]
    settings = GeneralPart(
        data=data_values(data, more), tasks=names,
        include_path=str(include_path) if include_path else None, num_fewshot=num_fewshot,
        limit=limit, allow_code_execution=allow_code_execution, method=method, format=fmt,
    )  # fmt: skip
    if not settings.data and not settings.tasks:
        raise ConfigError("nothing to evaluate", hint="give --data FILE and/or --tasks NAMES")
    if allow_code_execution:
        os.environ["HF_ALLOW_CODE_EVAL"] = "1"  # the harness's code metrics refuse without it
    name, _j, specs, info = resolve_models(model, [], config, adapter, max_tokens, None, seed)
    loc = load_locale(locale)
    with progress_bars(not quiet) as progress:
        headline = run_with_pool(
            specs, out,
            lambda pool: parts.general(
                make_context(pool, loc, name, specs, [], out, info, seed=seed,
                             bootstrap=bootstrap, batch_size=batch_size, progress=progress),
                settings, device=device,
            ),
        )  # fmt: skip
    finish("general", out, as_json, headline)


@eval_app.command("refusal-detector")
def refusal_detector_cmd(
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            "-d",
            help="Labelled sentences: JSONL files, globs or folders, repeatable (fields: id, "
            "text, and a boolean label, is_refusal by default).",
        ),
    ],
    more: MoreData = None,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="holdout | tune | all: the fixed 30/70 split by a hash of the id, made for the "
            "ko-redteam refusal fixtures (on other files, a reproducible arbitrary part).",
        ),
    ] = "all",
    text_field: Annotated[str, typer.Option("--text-field", help="Field with the text.")] = "text",
    label_field: Annotated[
        str, typer.Option("--label-field", help="Boolean field: true for a refusal.")
    ] = "is_refusal",
    show_errors: Annotated[
        int,
        typer.Option(
            "--show-errors",
            min=0,
            help="Print up to N misclassified texts of each kind (false positives, false "
            "negatives); rows of the ko-redteam fixtures' holdout part are never printed.",
        ),
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Precision and recall of the Korean refusal detector on labelled sentences."""
    from koalign.evaluate.data import expand_paths
    from koalign.evaluate.detector_eval import (
        TUNED_ON_PREFIX,
        in_sample,
        load_labelled,
        measure,
        split_of,
    )

    if split not in {"holdout", "tune", "all"}:
        raise typer.BadParameter(
            f"unknown split '{split}' (holdout, tune or all)", param_hint="'--split'"
        )
    paths = expand_paths(data_values(data, more))
    rows = []
    first_file: dict[str, Path] = {}
    for path in paths:
        for row in load_labelled(path, split=split, text_field=text_field, label_field=label_field):  # type: ignore[arg-type]
            if row["id"] in first_file:
                raise DataError(
                    f"id '{row['id']}' is also in {first_file[row['id']]}",
                    where=str(path),
                    hint="ids must be unique across the --data files (the same file given twice?)",
                )
            first_file[row["id"]] = path
            rows.append(row)
    figures = measure(rows)
    errors = figures.pop("errors")
    shown = ", ".join(str(p) for p in paths)
    tuned = in_sample(r["id"] for r in rows)
    figures = {
        "data": shown if len(paths) > 1 else str(paths[0]),
        "split": split,
        **figures,
        "in_sample_rows": tuned,
    }
    if as_json:
        print_json(figures)
    else:

        def show(name: str) -> str:
            value, ci = figures[name], figures[f"{name}_ci"]
            if value is None:
                return f"{name} n/a"
            return f"{name} {value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{name} {value:.3f}"

        c = figures["confusion"]
        typer.echo(
            f"{split}: n={figures['n']} ({figures['positives']} refusals); {show('precision')}; "
            f"{show('recall')} (Wilson 95%); tp {c['tp']} fp {c['fp']} fn {c['fn']} tn {c['tn']}"
        )
        if tuned:
            typer.echo(
                f"note: {tuned} of these {figures['n']} rows are the tune part of the ko-redteam "
                "refusal fixtures, which the detector was written from: in-sample, not a "
                "measure; --split holdout gives the figure"
            )
    if show_errors:
        by_id = {r["id"]: r["text"] for r in rows}
        withheld = 0
        for kind, ids in errors.items():
            visible = [
                rid
                for rid in ids
                if not (rid.startswith(TUNED_ON_PREFIX) and split_of(rid) == "holdout")
            ]
            withheld += len(ids) - len(visible)
            for rid in visible[:show_errors]:
                err.print(f"{kind}: {escape(by_id[rid])}", highlight=False)
        if withheld:
            err.print(f"({withheld} misclassified holdout rows not printed)", highlight=False)


ReportOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="Report folder (default: LAST_DIR/report).")
]
PaperOpt = Annotated[
    bool,
    typer.Option(
        "--paper", help="Lay the figures out as the paper's table, with its published rows."
    ),
]
ExamplesOpt = Annotated[int, typer.Option("--examples", min=0, help="Example pairs per direction.")]
PaperTaskOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--paper-task",
        help="COLUMN=TASK: the lm-eval task of a paper column (KMMLU, HRM8K, HumanEval+).",
    ),
]


def _paper_tasks(values: list[str] | None) -> dict[str, str]:
    out = {}
    for value in values or []:
        column, sep, task = value.partition("=")
        if not sep or column not in {"KMMLU", "HRM8K", "HumanEval+"} or not task:
            raise ConfigError(
                f"'{value}' is not COLUMN=TASK", where="--paper-task",
                hint="e.g. --paper-task KMMLU=kmmlu_local (columns: KMMLU, HRM8K, HumanEval+)",
            )  # fmt: skip
        out[column] = task
    return out


@eval_app.command("compare")
def compare_cmd(
    base_dir: Annotated[Path, typer.Argument(help="Evaluation directory of the base model.")],
    tuned_dir: Annotated[Path, typer.Argument(help="Evaluation directory of the tuned model.")],
    out: ReportOut = None,
    paper: PaperOpt = False,
    paper_task: PaperTaskOpt = None,
    examples: ExamplesOpt = 5,
    bootstrap: BootOpt = 2000,
    seed: SeedOpt = 0,
) -> None:
    """Before/after report of two evaluation directories (Markdown + HTML with charts)."""
    from koalign.evaluate.report import build_report

    paths = build_report(
        [base_dir, tuned_dir], out or tuned_dir / "report", labels=["base", "tuned"],
        paper=paper, examples=examples, n_boot=bootstrap, seed=seed,
        paper_tasks=_paper_tasks(paper_task),
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
    paper_task: PaperTaskOpt = None,
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
        paper_tasks=_paper_tasks(paper_task),
    )  # fmt: skip
    for key in ("report.md", "report.html"):
        typer.echo(str(paths[key]))


def register(app: typer.Typer) -> None:
    """Add the ``eval`` sub-app and the top-level ``report`` command to ``app``."""
    from koalign.cli import eval_bench_cmds

    eval_bench_cmds.register(eval_app)
    app.add_typer(eval_app, name="eval")
    app.command("report")(report_cmd)

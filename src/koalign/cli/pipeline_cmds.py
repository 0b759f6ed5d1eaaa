"""Pipeline commands: run, seeds, attack, respond, judge, export, demo, prompt show."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from koalign.cli.common import err, print_json
from koalign.errors import KoalignError
from koalign.stages import stage_names

ConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory (created or resumed).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value: a.b=c (YAML value).")
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="Only the first N seed candidates (a quick trial)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Write the manifest as JSON to stdout.")]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Check everything and print the plan (stages, roles, models, upper bounds of calls, "
        "tokens and cost per model) without calling any model or creating the run directory.",
    ),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="With --dry-run: contact no server and require no API key (servers, keys and "
        "context windows are then not checked); the plan and cost bounds are the same.",
    ),
]


# manifest field -> short column label (the table fits an 80-column terminal)
SUMMARY_COLUMNS = {"records_in": "in", "records_out": "out", "calls": "calls",
                   "cache_hits": "cached", "tokens_in": "tok in", "tokens_out": "tok out",
                   "bad_outputs_total": "bad", "seconds": "seconds"}  # fmt: skip


PROGRESS_LINE_EVERY_S = 30.0
"""When stderr is not a terminal (a log file, a pipe, a CI log), each running stage writes one
plain progress line at most this often (seconds) instead of a live bar."""


class RichProgress:
    """Progress bars on stderr, one per stage (stages run at once as records flow): done/total,
    ETA, calls, cache hits, tokens; a summary table when a stage ends. When stderr is not a
    terminal, each running stage writes a plain line (local time as the log lines show it,
    records done, calls, cache hits, tokens, seconds since the stage started) when it starts
    and then at most every ``line_every_s`` seconds, and the tables."""

    def __init__(
        self, *, limited: bool = False, line_every_s: float = PROGRESS_LINE_EVERY_S
    ) -> None:
        self._limited = limited
        self._bar: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._line_every_s = line_every_s
        self._started: dict[str, float] = {}
        self._last_line: dict[str, float] = {}

    def _ensure(self) -> Progress:
        if self._bar is None:
            self._bar = Progress(
                TextColumn("[bold]{task.description:<8}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"),
                console=err,
                transient=False,
                disable=not err.is_terminal,  # a file or a pipe gets the stage tables only
            )
            self._bar.start()
        return self._bar

    def start(self, stage: str, total: int | None, done: int) -> None:
        bar = self._ensure()
        self._tasks[stage] = bar.add_task(stage, total=total, completed=done, stats="")
        now = time.monotonic()
        self._started[stage] = self._last_line[stage] = now
        finished = total is not None and done >= total  # a stage skipped as already done
        if not bar.console.is_terminal and not finished:
            of = f" of {total:,}" if total is not None else ""
            already = f" ({done:,}{of} records already done)" if done else ""
            bar.console.print(
                f"{_stamp()} {stage}: started{already}", markup=False, highlight=False
            )

    def update(self, stage: str, done: int, total: int | None, stats: dict[str, Any]) -> None:
        if self._bar is None or stage not in self._tasks:
            return
        text = (
            f"calls {int(stats.get('calls', 0))} · cache {int(stats.get('cache_hits', 0))} · "
            f"tok {int(stats.get('tokens_in', 0))}/{int(stats.get('tokens_out', 0))}"
        )
        self._bar.update(self._tasks[stage], completed=done, total=total, stats=text)
        now = time.monotonic()
        if self._bar.console.is_terminal or now - self._last_line[stage] < self._line_every_s:
            return
        self._last_line[stage] = now
        of = f"/{total:,}" if total is not None else ""
        self._bar.console.print(
            f"{_stamp()} {stage}: {done:,}{of} records · {text} · "
            f"{now - self._started[stage]:.0f} s",
            markup=False,
            highlight=False,
        )

    def end(self, stage: str, summary: dict[str, Any]) -> None:
        bar = self._ensure()
        task = self._tasks.pop(stage, None)
        if task is not None:
            total = summary.get("records_in") or 0
            bar.update(task, completed=total, total=total)
        title = f"{stage}: {summary.get('status')}"
        if not bar.console.is_terminal:  # a log file: when, as the other lines say
            title = f"{_stamp()} {title}"
        table = Table(title=title, title_justify="left")
        for label in SUMMARY_COLUMNS.values():
            table.add_column(label, justify="right")
        table.add_row(*(_cell(summary.get(c)) for c in SUMMARY_COLUMNS))
        bar.console.print(table)
        for line in highlights(stage, summary, limited=self._limited):
            bar.console.print(f"  {line}", markup=False, highlight=False)
        if not self._tasks:
            bar.stop()
            self._bar = None


def _cell(value: Any) -> str:
    """A stage table cell: counts with thousands separators, seconds to a tenth, nothing for a
    missing figure."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _stamp() -> str:
    """Local time as the log lines show it (``2026-11-30 13:20:49``)."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def fmt(value: Any) -> str:
    """A report value for people: ``n/a`` for a missing figure, 3 decimals for a float,
    ``key value, ...`` for a mapping (nested mappings in parentheses), items joined by commas."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        if not value:
            return "none"
        return ", ".join(
            f"{k} ({fmt(v)})" if isinstance(v, dict) else f"{k} {fmt(v)}" for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) or "none"
    return str(value)


def highlights(stage: str, summary: dict[str, Any], *, limited: bool = False) -> list[str]:
    """A few report lines worth showing after a stage (``limited``: the run has ``--limit``)."""
    report = summary.get("report") or {}
    lines = []
    if summary.get("records_reused"):
        lines.append(
            f"resumed: {fmt(summary['records_reused'])} of {fmt(summary.get('records_in'))} "
            "records were already done (read back from the stage file, no call made again)"
        )
    if summary.get("dropped"):
        lines.append(f"dropped: {fmt(summary['dropped'])}")
    if summary.get("bad_outputs"):
        lines.append(f"bad model outputs: {fmt(summary['bad_outputs'])}")
    return lines + _stage_lines(stage, report, limited=limited)


def _stage_lines(stage: str, report: dict[str, Any], *, limited: bool) -> list[str]:
    if stage == "seeds":
        short = (
            "shortfall vs the config's full quota not shown (--limit)"
            if limited
            else f"shortfall vs quota {fmt(report.get('shortfall', 0))}"
        )
        return [
            f"kept {fmt(report.get('kept_harmful'))} harmful + "
            f"{fmt(report.get('kept_benign'))} benign; {short}"
        ]
    if stage == "attack":
        asr = ", ".join(
            f"{k} {fmt(v.get('asr'))}" for k, v in report.get("asr_by_strategy", {}).items()
        )
        tgt = ", ".join(
            f"{k} {fmt(v.get('asr'))}" for k, v in report.get("asr_by_target", {}).items()
        )
        return [
            f"hard cases {fmt(report.get('hard_cases'))}, over-refusal cases "
            f"{fmt(report.get('over_refusal_cases'))}",
            f"ASR by strategy: {asr or 'none'}",
            f"ASR by target: {tgt or 'none'}",
        ]
    if stage == "respond":
        return [
            f"status: {fmt(report.get('status'))}",
            f"chosen by responder: {fmt(report.get('chosen_by_responder'))}",
            f"citations: {fmt(report.get('citations'))}",
        ]
    if stage == "judge":
        ag = report.get("agreement", {})
        return [
            f"pass rate {fmt(report.get('pass_rate'))}; failures by criterion: "
            f"{fmt(report.get('failures_by_criterion'))}",
            f"Fleiss kappa {fmt(ag.get('fleiss'))}; Cohen pairwise: "
            f"{fmt(ag.get('cohen_pairwise'))}",
        ]
    if stage == "export":
        return [
            f"exported {fmt(report.get('exported'))} ({fmt(report.get('splits'))}); by domain: "
            f"{fmt(report.get('by_domain'))}"
        ]
    return []


def run_pipeline(
    config: Path | None,
    out: Path,
    stages: tuple[str, ...],
    *,
    overrides: list[str] | None = None,
    limit: int | None = None,
    data: dict[str, Any] | None = None,
    json: bool = False,
    dry_run: bool = False,
    offline: bool = False,
) -> dict[str, Any]:
    from koalign.config import load_run_config
    from koalign.runner import Pipeline

    if offline and not dry_run:
        from koalign.errors import ConfigError

        raise ConfigError(
            "--offline only applies to --dry-run",
            hint="add --dry-run to plan offline; a real run needs its servers and keys",
        )
    try:
        cfg, loc = load_run_config(config, overrides or [], data=data)
        if dry_run:
            return show_plan(cfg, loc, stages, limit=limit, json=json, offline=offline)
        n = len(cfg.models)
        err.print(
            f"checking {n} model{'' if n == 1 else 's'} (backends, servers, API keys, context "
            "windows) and every prompt before the first call",
            highlight=False,
            markup=False,
        )
        pipeline = Pipeline(
            cfg, loc, out, limit=limit, progress=RichProgress(limited=limit is not None)
        )
    except KeyboardInterrupt:  # typer would exit 130 without a word
        raise _StartInterrupted() from None
    try:
        manifest = pipeline.run(stages)
    except KeyboardInterrupt:  # outside the run's own signal handling (its start or end)
        import signal

        from koalign.runner import Interrupted

        raise Interrupted(signal.SIGINT) from None
    global RUN_CLOSED
    RUN_CLOSED = True
    for stage, entry in manifest["stages"].items():
        if entry.get("failed_calls"):
            err.print(
                f"[yellow]warning:[/] {stage}: {entry['failed_calls']} records have failed calls "
                "(see the call log); rerun the same command to retry them",
                highlight=False,
            )
    if json:
        print_json(manifest)
    else:
        typer.echo(str(out))
    return manifest


#: True once a pipeline run has returned with everything it opened closed (stage files, cache,
#: connections): the console entry point may then end the process at once.
RUN_CLOSED = False


class _StartInterrupted(KoalignError):
    """Ctrl-C before the run started (config, locale, preflight): exits 130 with a message."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__(
            "interrupted by SIGINT before the first model call: nothing was paid",
            hint="rerun the same command to start",
        )


def show_plan(
    cfg: Any,
    loc: Any,
    stages: tuple[str, ...],
    *,
    limit: int | None,
    json: bool,
    offline: bool = False,
) -> dict[str, Any]:
    """Check the config (no call, no run directory) and print the plan of a run. ``offline``:
    only the checks that contact no server and need no key (labelled as such)."""
    from koalign import preflight

    if limit is not None and limit <= 0:
        from koalign.errors import ConfigError

        raise ConfigError(f"--limit {limit} selects nothing", hint="give a positive number")
    # the notes (unknown context windows, models not checked offline) go into the plan
    notes = (
        preflight.check_offline(cfg, loc) if offline else preflight.check(cfg, loc, log_notes=False)
    )
    plan = preflight.plan(cfg, loc, limit=limit).as_dict()
    plan["stages"] = list(stages)
    plan["offline"] = offline
    plan["not_checked"] = list(preflight.NOT_CHECKED_OFFLINE) if offline else []
    plan["notes"] = notes + plan["notes"]
    if json:
        print_json(plan)
        return plan
    if offline:
        err.print(
            "[bold yellow]offline dry run:[/] servers and API keys were not checked",
            highlight=False,
        )
    err.print(f"[bold]stages:[/] {' -> '.join(stages)}", highlight=False)
    roles = Table(title="roles", title_justify="left")
    roles.add_column("role")
    roles.add_column("models")
    for role, models in plan["roles"].items():
        roles.add_row(role, fmt(models), style=None)
    err.print(roles)
    table = Table(title="per model (upper bounds)", title_justify="left")
    for col in ("model", "calls", "tokens in", "tokens out", "cost"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for m, v in plan["models"].items():
        table.add_row(
            m,
            _count(v["calls_at_most"]),
            _count(v["tokens_in_at_most"]),
            _count(v["tokens_out_at_most"]),
            _money(v["cost_at_most"]),
        )
    err.print(table)
    records = {stage: _count(n) for stage, n in plan["records"].items()}
    err.print(f"records at most: {fmt(records)}", highlight=False, markup=False)
    for line in cost_lines(plan):
        err.print(line, highlight=False, markup=False)
    for note in plan["notes"]:
        err.print(f"  {note}", highlight=False, markup=False)
    typer.echo(
        "dry run (offline): nothing was called; servers and API keys were not checked"
        if offline
        else "dry run: nothing was called"
    )
    return plan


def cost_lines(plan: dict[str, Any]) -> list[str]:
    """The cost bound of a plan for people, naming the models it leaves out: those without a
    price, and those with only one of the two prices (the other counted as 0)."""
    unpriced, half = plan.get("unpriced", []), plan.get("half_priced", [])
    fix = "set price_in_per_1m / price_out_per_1m"
    if plan["cost_at_most"] is None:
        return [f"cost: n/a, no model has a price ({fix} for a bound)"] if unpriced else []
    if not unpriced:
        lines = [f"cost at most: {_money(plan['cost_at_most'])}"]
    else:
        priced = [m for m in plan["models"] if m not in unpriced]
        lines = [
            f"cost at most: {_money(plan['cost_at_most'])} for the priced models "
            f"({', '.join(priced)})",
            f"no price set for: {', '.join(unpriced)} ({fix}); their cost is not in the total",
        ]
    if half:
        lines.append(
            f"only one of price_in_per_1m / price_out_per_1m set for: {', '.join(half)} (the "
            "other is counted as 0)"
        )
    return lines


def _count(value: Any) -> str:
    """A count with thousands separators (5,490); other values as :func:`fmt` says them."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else fmt(value)


def _money(value: float | None) -> str:
    """A cost bound: 2 decimals from 1 up, 4 below (0.0042), n/a without prices."""
    if value is None:
        return "n/a"
    return f"{value:,.2f}" if value >= 1 else f"{value:.4f}"


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        config: ConfigArg,
        out: OutOpt,
        limit: LimitOpt = None,
        set_: SetOpt = None,
        json: JsonOpt = False,
        dry_run: DryRunOpt = False,
        offline: OfflineOpt = False,
    ) -> None:
        """Run every stage (seeds, attack, respond, judge, export); resumes a run directory."""
        run_pipeline(
            config,
            out,
            stage_names(),
            overrides=set_,
            limit=limit,
            json=json,
            dry_run=dry_run,
            offline=offline,
        )

    for stage in stage_names():
        _register_stage(app, stage)

    @app.command("demo")
    def demo_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path(
            "koalign-demo"
        ),
        limit: LimitOpt = 16,
        json: JsonOpt = False,
    ) -> None:
        """Run the whole pipeline offline on a tiny random model (checks an installation)."""
        from koalign.demo import demo_config

        err.print(
            "[bold yellow]demo:[/] a tiny random model writes every generated text, so the "
            "text is meaningless; the judges are scripted (demo only). This checks the "
            "installation end to end, nothing more."
        )
        data = demo_config(out)
        run_pipeline(None, out, stage_names(), data=data, limit=limit, json=json)

    prompt_app = typer.Typer(help="Inspect the pipeline's prompt templates.", no_args_is_help=True)
    app.add_typer(prompt_app, name="prompt")

    @prompt_app.command("show")
    def prompt_show(
        role: Annotated[
            str,
            typer.Argument(
                help="Template: a pipeline role (e.g. responder, harm_judge) or an evaluation "
                "template (safety_judge, refusal_judge, mc_answer, mtbench_judge, "
                "acceptability_judge, bias_judge)."
            ),
        ],
        category: Annotated[str, typer.Option("--category", "-c", help="Category id.")] = "A",
        locale: Annotated[
            str, typer.Option("--locale", "-l", help="Locale name or folder.")
        ] = "ko",
        json: JsonOpt = False,
    ) -> None:
        """Render one template for a category with example values, through the builder that
        uses it (the pipeline's stages, or `koalign eval` for the evaluation templates)."""
        from koalign.errors import LocaleError, did_you_mean
        from koalign.locale import load_locale
        from koalign.stages.base import all_templates
        from koalign.stages.preview import render_example
        from koalign.template_check import EVALUATION_TEMPLATES, evaluation_example

        known = [*all_templates(), *EVALUATION_TEMPLATES]
        if role not in known:
            raise LocaleError(
                f"unknown template '{role}'{did_you_mean(role, known)}",
                where="prompt show",
                hint=f"pipeline roles: {', '.join(all_templates())}; evaluation templates: "
                f"{', '.join(EVALUATION_TEMPLATES)}",
            )
        loc = load_locale(locale)
        if role in EVALUATION_TEMPLATES:
            messages = evaluation_example(loc, role, category.upper())
        else:
            messages = render_example(loc, role, category.upper())
        if json:
            print_json([m.model_dump() for m in messages])
            return
        for m in messages:
            typer.echo(f"--- {m.role} ---\n{m.content}\n")


def _register_stage(app: typer.Typer, stage: str) -> None:
    def command(
        config: ConfigArg,
        out: OutOpt,
        set_: SetOpt = None,
        json: JsonOpt = False,
        limit: LimitOpt = None,
    ) -> None:
        run_pipeline(config, out, (stage,), overrides=set_, limit=limit, json=json)

    command.__doc__ = f"Run only the `{stage}` stage (earlier stages must have finished)."
    app.command(stage)(command)

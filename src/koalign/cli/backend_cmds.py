"""Model-layer commands: ``koalign cache stats|clear`` and ``koalign models check``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from koalign import eventloop
from koalign.cli.common import err, fold, out, print_json
from koalign.errors import ConfigError, KoalignError
from koalign.yamlio import load_yaml

JsonArg = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]
DbArg = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="Cache database (default: $KOALIGN_CACHE, else the only runs/*/cache.sqlite).",
    ),
]

CHECK_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


def resolve_db(db: Path | None) -> Path:
    """The cache file a command works on; it must exist."""
    if db is None and os.environ.get("KOALIGN_CACHE"):
        db = Path(os.environ["KOALIGN_CACHE"])
    if db is None:
        found = sorted(Path("runs").glob("*/cache.sqlite"))
        if len(found) != 1:
            listed = ", ".join(str(p) for p in found[:5]) or "none found under runs/"
            raise KoalignError(
                "which cache database?",
                where="--db",
                hint=f"pass --db PATH or set KOALIGN_CACHE ({listed})",
            )
        db = found[0]
    if not db.is_file():
        raise KoalignError("cache database not found", where=str(db), hint="check the path")
    return db


def load_models(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """``(specs, problems)`` from the top-level ``models:`` mapping of any YAML file."""
    from koalign.backends.base import ModelSpec

    data = load_yaml(path) or {}
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise ConfigError(
            "no top-level 'models:' mapping",
            where=str(path),
            hint="declare models as `models: {name: {backend: ..., model: ...}}`",
        )
    specs: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, body in models.items():
        try:
            specs[str(name)] = ModelSpec.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            problems[str(name)] = f"config: models.{name}.{where}: {first['msg']}"
    return specs, problems


LONG_PROBE_MAX = 4096
"""Tokens of the long probe: half the model's window, at most this; 2,048 when the window is
unknown (koalign's role prompts run to several thousand tokens)."""


def _probe_text(llm: Any, tokens: int) -> str:
    """Korean text (the bundled corpus, repeated) of about ``tokens`` prompt tokens for ``llm``."""
    from koalign.tiny import korean_corpus
    from koalign.types import Message

    corpus = " ".join(line.strip() for line in korean_corpus().splitlines() if line.strip())
    text = corpus
    while llm.count_tokens((Message(role="user", content=text),)) < tokens:
        text += " " + corpus
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix within the budget
        mid = (lo + hi + 1) // 2
        if llm.count_tokens((Message(role="user", content=text[:mid]),)) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _answered(result: Any) -> tuple[bool, str | None]:
    """Whether a probe reached the model (a cut or empty answer still did), and a note."""
    if result.error is None:
        return True, None
    if result.error.kind in ("truncated", "empty"):
        return True, f"answered ({result.error.kind}: {result.error.message})"
    return False, f"{result.error.kind}: {result.error.message}"


async def check_model(name: str, spec: Any, roles: Any = ()) -> dict[str, Any]:
    """Probe one model and return a JSON-ready row.

    Sends a short Korean request (16 tokens; a cut or empty answer still counts as reachable),
    a JSON-schema request (no repairs), reads the context window, sends a long Korean prompt
    (half the window, at most :data:`LONG_PROBE_MAX` tokens; 2,048 when the window is unknown;
    1 answer token) and, for each :class:`~koalign.backends.fit.RolePrompt` in ``roles``,
    checks that the role's prompt plus its ``max_tokens`` fits the window. Row keys: ``model,
    backend, id, address, ok, error, note, latency_s, tokens_in, tokens_out, json,
    json_error, window, long_probe, roles`` and, when the window is unknown, ``window_note``
    (what to set). Never raises for a model's failure.
    """
    from koalign.backends import ModelPool
    from koalign.backends.fit import check_fit, has_window, unknown_window_note
    from koalign.types import ChatRequest, Message, SamplingParams

    row: dict[str, Any] = {
        "model": name,
        "backend": spec.backend,
        "id": spec.model,
        "address": spec.base_url,
        "json": None,
        "window": None,
        "long_probe": None,
        "roles": [],
    }
    spec = spec.model_copy(update={"json_repairs": 0, "max_retries": min(spec.max_retries, 1)})
    pool = ModelPool({name: spec}, cache_path=None)
    try:
        llm = pool.get(name)
        if row["address"] is None and spec.backend == "openai":
            row["address"] = getattr(llm.backend, "base_url", None)
        plain = ChatRequest(
            messages=(Message(role="user", content="안녕하세요. 한 단어로 답해 주세요."),),
            sampling=SamplingParams(max_tokens=16, temperature=0.0),
            tag="models-check",
            on_truncation="drop",
        )
        start = time.perf_counter()
        [result] = await llm.agenerate([plain])
        row["latency_s"] = round(time.perf_counter() - start, 3)
        ok, note = _answered(result)
        if not ok:
            row.update(ok=False, error=note)
            return row
        row.update(ok=True, error=None, note=note, tokens_in=result.tokens_in)
        row["tokens_out"] = result.tokens_out
        schema_req = ChatRequest(
            messages=(Message(role="user", content="지금 응답할 수 있나요? JSON으로 답하세요."),),
            sampling=SamplingParams(max_tokens=32, temperature=0.0),
            json_schema=CHECK_SCHEMA,
            tag="models-check",
            on_truncation="drop",
        )
        try:
            [structured] = await llm.agenerate([schema_req])
            row["json"] = structured.error is None
            if structured.error is not None:
                row["json_error"] = f"{structured.error.kind}: {structured.error.message}"
        except KoalignError as exc:  # e.g. the structured-output extra is not installed
            row.update(json=False, json_error=exc.render())
        window = await llm.context_window()
        row["window"] = window
        if window is None and has_window(llm):
            row["window_note"] = unknown_window_note(name)
        size = min(window // 2, LONG_PROBE_MAX) if window else 2048
        text = _probe_text(llm, size)
        estimate = llm.count_tokens((Message(role="user", content=text),))
        [long] = await llm.agenerate(
            [
                ChatRequest(
                    messages=(Message(role="user", content=text),),
                    sampling=SamplingParams(max_tokens=1, temperature=0.0),
                    tag="models-check",
                    on_truncation="drop",
                )
            ]
        )
        accepted, long_note = _answered(long)
        probe: dict[str, Any] = {
            "prompt_tokens": long.tokens_in or None,
            "counted": estimate,
            "exact": llm.counts_tokens_exactly,
            "ok": accepted,
            "error": None if accepted else long_note,
        }
        if accepted and long.tokens_in and not llm.counts_tokens_exactly:
            probe["estimate_ratio"] = round(estimate / long.tokens_in, 3)
        row["long_probe"] = probe
        if not accepted:
            row.update(ok=False, error=f"a {estimate}-token prompt failed: {long_note}")
        for role in roles:
            row["roles"].append((await check_fit(llm, role)).as_dict())
    except KoalignError as exc:
        row.update(ok=False, error=exc.render())
    finally:
        await pool.aclose()
    return row


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    cache_app = typer.Typer(help="Inspect or clear the model-call cache.", no_args_is_help=True)
    models_app = typer.Typer(help="Check the models a config declares.", no_args_is_help=True)
    app.add_typer(cache_app, name="cache")
    app.add_typer(models_app, name="models")

    @cache_app.command("stats")
    def cache_stats(db: DbArg = None, json: JsonArg = False) -> None:
        """Calls, cache hits, tokens, cost, errors and retries per model."""
        from koalign.cache import Cache

        path = resolve_db(db)
        with Cache(path) as cache:
            stats = cache.stats()
        if json:
            print_json(stats)
            return
        if not stats["models"]:
            out.print(f"{path}: no calls recorded yet", highlight=False, markup=False)
            return
        headers = ["model", "backend", "calls", "hits", "tokens in", "tokens out", "cost"]
        headers += ["errors", "truncated", "retries", "mean latency (s)"]
        rows = []
        for m in stats["models"]:
            lat = m["mean_latency_s"]
            rows.append(
                [
                    m["model"],
                    m["backend"],
                    str(m["calls"]),
                    str(m["cache_hits"]),
                    str(m["tokens_in"]),
                    str(m["tokens_out"]),
                    f"{m['cost']:.4f}",
                    str(m["errors"]),
                    str(m["truncated"]),
                    str(m["retries"]),
                    f"{lat:.3f}" if lat is not None else "-",
                ]
            )
        # a table when its rows fit the terminal (cells plus 3 characters of border each), else
        # one block per model: nothing is cut or broken mid-word
        need = sum(max(len(h), *(len(r[i]) for r in rows)) + 3 for i, h in enumerate(headers))
        if out.width >= need + 1:
            table = Table(title=str(path))
            for h in headers:
                table.add_column(h, no_wrap=True)
            for r in rows:
                table.add_row(*r)
            out.print(table)
        else:
            out.print(str(path), highlight=False, markup=False)
            for r in rows:
                out.print(f"{r[0]} ({r[1]})", highlight=False, markup=False)
                for h, v in zip(headers[2:], r[2:], strict=True):
                    out.print(f"  {h}: {v}", highlight=False, markup=False)
        out.print(f"{stats['cached_responses']} cached responses", highlight=False)

    @cache_app.command("clear")
    def cache_clear(db: DbArg = None) -> None:
        """Delete every cached response and the call log."""
        from koalign.cache import Cache

        path = resolve_db(db)
        with Cache(path) as cache:
            n = cache.clear()
        out.print(
            f"cleared {path}: {n['responses']} responses, {n['calls']} call-log rows",
            highlight=False,
        )

    @models_app.command("check")
    def models_check(
        config: Annotated[Path, typer.Argument(help="Any YAML file with a top-level models:.")],
        json: JsonArg = False,
    ) -> None:
        """Probe every model: reachable or the exact error (with its address), latency, JSON
        output, context window, a long Korean prompt, and whether each role's prompt fits."""
        specs, problems = load_models(config)
        roles = role_prompts(config, specs)

        async def run_all() -> list[dict[str, Any]]:
            rows = []
            for name, spec in specs.items():
                where = f" at {spec.base_url}" if spec.base_url else ""
                err.print(
                    f"checking {name} ({spec.backend}: {spec.model}{where}) ...", highlight=False
                )
                rows.append(await check_model(name, spec, roles.get(name, ())))
            return rows

        rows = eventloop.run(run_all())
        rows += [
            {"model": name, "backend": None, "id": None, "ok": False, "error": text, "json": None}
            for name, text in problems.items()
        ]
        fits = [f for r in rows for f in r.get("roles") or []]
        if json:
            print_json(rows)
        else:
            out.print(_models_table(rows))
            for r in rows:
                if r.get("window_note"):
                    out.print(f"[yellow]{escape(r['window_note'])}[/]")
            for f in fits:
                colour = {True: "green", False: "red", None: "yellow"}[f["fits"]]
                out.print(f"[{colour}]{escape(f['message'])}[/]")
        if not all(r["ok"] for r in rows) or any(f["fits"] is False for f in fits):
            raise typer.Exit(1)


def role_prompts(config: Path, specs: dict[str, Any]) -> dict[str, list[Any]]:
    """Model name -> the :class:`~koalign.backends.fit.RolePrompt` s ``models check`` measures
    against that model's window: for a run config, the longest rendered prompt of each role the
    model serves (:func:`koalign.preflight.role_prompts`); a file with only ``models:`` has
    none."""
    from koalign.config import load_run_config, read_config_file

    data = read_config_file(config)
    if "roles" not in data:
        return {}
    from koalign import preflight
    from koalign.backends.client import ModelPool

    cfg, loc = load_run_config(config)
    prompts, _ = preflight.longest_prompts(cfg, loc)
    pool = ModelPool(cfg.models)
    models = {}
    for name in cfg.models:
        try:
            models[name] = pool.get(name)
        except KoalignError:
            continue  # reported by the model's own row
    return preflight.role_prompts(cfg, prompts, models)


def _models_table(rows: list[dict[str, Any]]) -> Table:
    table = fold(
        Table("model", "backend", "status", "latency (s)", "JSON schema", "window", "long prompt")
    )
    for r in rows:
        status = "[green]ok[/]" if r["ok"] else f"[red]{escape(r['error'])}[/]"
        if r["ok"] and r.get("note"):
            status += f" [yellow]{escape(r['note'])}[/]"
        if r.get("json") is None:
            js = "-"
        elif r["json"]:
            js = "[green]yes[/]"
        else:
            js = f"[yellow]no[/] ({escape(r.get('json_error', ''))})"
        probe = r.get("long_probe")
        if probe is None:
            long = "-"
        elif probe["ok"]:
            long = f"[green]{probe['prompt_tokens'] or probe['counted']} tokens ok[/]"
            if probe.get("estimate_ratio") is not None and probe["estimate_ratio"] < 1:
                long += " [yellow](the token estimate under-counts: set options.tokenizer)[/]"
        else:
            long = f"[red]{escape(probe['error'] or '')}[/]"
        window = r.get("window")
        table.add_row(
            r["model"],
            r["backend"] or "-",
            status,
            str(r.get("latency_s", "-")),
            js,
            f"{window:,}" if window else "unknown",
            long,
        )
    return table

"""Model-layer commands: ``koalign cache stats|clear`` and ``koalign models check``."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from koalign.cli.common import err, out, print_json
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


async def check_model(name: str, spec: Any) -> dict[str, Any]:
    """Send one tiny plain request and one JSON-schema request to a model."""
    from koalign.backends import ModelPool
    from koalign.types import ChatRequest, Message, SamplingParams

    row: dict[str, Any] = {"model": name, "backend": spec.backend, "id": spec.model}
    spec = spec.model_copy(update={"json_repairs": 0, "max_retries": min(spec.max_retries, 1)})
    pool = ModelPool({name: spec}, cache_path=None)
    try:
        llm = pool.get(name)
        plain = ChatRequest(
            messages=(Message(role="user", content="안녕하세요. 한 단어로 답해 주세요."),),
            sampling=SamplingParams(max_tokens=16, temperature=0.0),
            tag="models-check",
        )
        start = time.perf_counter()
        [result] = await llm.agenerate([plain])
        row["latency_s"] = round(time.perf_counter() - start, 3)
        if result.error is not None:
            row.update(ok=False, error=f"{result.error.kind}: {result.error.message}", json=None)
            return row
        row.update(ok=True, error=None, tokens_in=result.tokens_in, tokens_out=result.tokens_out)
        schema_req = ChatRequest(
            messages=(Message(role="user", content="지금 응답할 수 있나요? JSON으로 답하세요."),),
            sampling=SamplingParams(max_tokens=32, temperature=0.0),
            json_schema=CHECK_SCHEMA,
            tag="models-check",
        )
        try:
            [structured] = await llm.agenerate([schema_req])
        except KoalignError as exc:  # e.g. the structured-output extra is not installed
            row.update(json=False, json_error=exc.render())
            return row
        row["json"] = structured.error is None
        if structured.error is not None:
            row["json_error"] = f"{structured.error.kind}: {structured.error.message}"
    except KoalignError as exc:
        row.update(ok=False, error=exc.render(), json=None)
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
        table = Table(
            "model",
            "backend",
            "calls",
            "hits",
            "tokens in",
            "tokens out",
            "cost",
            "errors",
            "retries",
            "mean latency (s)",
            title=str(path),
        )
        for m in stats["models"]:
            lat = m["mean_latency_s"]
            table.add_row(
                m["model"],
                m["backend"],
                str(m["calls"]),
                str(m["cache_hits"]),
                str(m["tokens_in"]),
                str(m["tokens_out"]),
                f"{m['cost']:.4f}",
                str(m["errors"]),
                str(m["retries"]),
                f"{lat:.3f}" if lat is not None else "-",
            )
        out.print(table)
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
        """Send one tiny request to every model: ok or the exact error, latency, JSON output."""
        specs, problems = load_models(config)

        async def run_all() -> list[dict[str, Any]]:
            rows = []
            for name, spec in specs.items():
                err.print(f"checking {name} ({spec.backend}: {spec.model}) ...", highlight=False)
                rows.append(await check_model(name, spec))
            return rows

        rows = asyncio.run(run_all())
        rows += [
            {"model": name, "backend": None, "id": None, "ok": False, "error": text, "json": None}
            for name, text in problems.items()
        ]
        if json:
            print_json(rows)
        else:
            table = Table("model", "backend", "status", "latency (s)", "JSON schema")
            for r in rows:
                status = "[green]ok[/]" if r["ok"] else f"[red]{escape(r['error'])}[/]"
                if r.get("json") is None:
                    js = "-"
                elif r["json"]:
                    js = "[green]yes[/]"
                else:
                    js = f"[yellow]no[/] ({escape(r.get('json_error', ''))})"
                table.add_row(
                    r["model"], r["backend"] or "-", status, str(r.get("latency_s", "-")), js
                )
            out.print(table)
        if not all(r["ok"] for r in rows):
            raise typer.Exit(1)

"""`koalign train`: DPO fine-tuning of a model on koalign exports (thin over TRL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from koalign.cli.common import err, print_json


def train_command(
    config: Annotated[
        Path | None, typer.Argument(help="YAML training config (optional; see examples/train/).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Base model: Hub id or local directory.")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            help="Export directory or JSONL/parquet file (repeatable); replaces the config's data.",
        ),
    ] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Output directory.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a config key, dotted, YAML-typed (repeatable): dpo_args.max_steps=2",
        ),
    ] = None,
    check_only: Annotated[
        bool,
        typer.Option("--check-only", help="Only validate the config and the data; train nothing."),
    ] = False,
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge the LoRA adapter into the base model when done.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Write the result as JSON to stdout.")
    ] = False,
) -> None:
    """Fine-tune a model with DPO (LoRA, QLoRA or full) on koalign preference data."""
    from koalign.train import load_train_config, prepare, train

    cfg = load_train_config(
        config,
        overrides=set_,
        model=model,
        data=data or None,
        output=output,
        merge=True if merge else None,
    )
    if check_only:
        prep = prepare(cfg)
        report = prep.report
        err.print(report.summary(limit=20), highlight=False, markup=False)
        if json_out:
            print_json(
                {
                    "ok": report.ok,
                    "quantization": prep.quantization,
                    "dpo_args": prep.dpo_args,
                    "report": report.model_dump(mode="json"),
                }
            )
        if not report.ok:
            raise typer.Exit(1)
        err.print("[green]data check passed[/]")
        return
    result = train(cfg)
    err.print(result.report.summary(limit=5), highlight=False, markup=False)
    if json_out:
        print_json(result.model_dump(mode="json", exclude={"report"}))
    else:
        for name, path in result.files.items():
            err.print(f"{name}: {path}", highlight=False, markup=False)
        typer.echo(result.model_dir)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("train")(train_command)

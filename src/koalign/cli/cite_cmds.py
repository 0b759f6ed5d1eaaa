"""Citation commands: `koalign cite check FILE` (statute citations, hotline numbers and
institution names)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from koalign.cli.common import err, out, print_error, print_jsonl
from koalign.errors import KoalignError

_STATUS_STYLE = {
    "verified": "green",
    "current": "green",
    "unregistered": "cyan",
    "unverified": "yellow",
    "unknown": "yellow",
    "historical": "dim",
    "mentioned": "yellow",
    "outdated": "red",
    "nonexistent": "red",
    "unknown_law": "red",
    "retired": "red",
    "renamed": "red",
}


_NOT_A_ROW = (
    "expected an object with a string 'text' field, or a string 'answer' field as in koalign "
    "eval answer files (an 'id' field is optional)"
)


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def read_inputs(file: str) -> tuple[list[tuple[Any, str | None, str | None]], str]:
    """Read FILE (or stdin for '-') into (id, text, error) rows; also return the format.

    JSONL is recognised when the first non-empty line starts with '{': each line must then be
    an object with a string ``text`` or, failing that, a string ``answer`` (as in koalign's eval
    answer files); ``id`` optional, the line number otherwise; other fields are ignored. Otherwise every non-empty line is one text, with its
    line number as id. Raises KoalignError when the input cannot be read at all.
    """
    if file == "-":
        raw = sys.stdin.buffer.read()
        where = "stdin"
    else:
        path = Path(file)
        if not path.is_file():
            raise KoalignError(f"cannot read '{file}': no such file", hint="pass a file or '-'")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise KoalignError(f"cannot read '{file}': {exc.strerror}") from exc
        where = file
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KoalignError(
            f"{where}: not UTF-8 text (byte {exc.start})", hint="convert the file to UTF-8"
        ) from exc
    lines = content.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if not first.lstrip().startswith("{"):
        return [(n, ln, None) for n, ln in enumerate(lines, 1) if ln.strip()], "text"
    rows: list[tuple[Any, str | None, str | None]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((n, None, f"{where}:{n}: not valid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            rows.append((n, None, f"{where}:{n}: {_NOT_A_ROW}, got a JSON {_json_type(record)}"))
            continue
        text = record.get("text")
        if not isinstance(text, str):  # koalign's eval answer files hold 'answer'
            text = record.get("answer")
        if not isinstance(text, str):
            fields = ", ".join(f"'{k}'" for k in record) or "none"
            rows.append((n, None, f"{where}:{n}: {_NOT_A_ROW} (its fields: {fields})"))
            continue
        rows.append((record.get("id", n), text, None))
    return rows, "jsonl"


def _note(parts: list[str]) -> str:
    """The note cell: the parts (each possibly ``a; b``) joined by ``; ``, each once, in order
    (a verdict's reason and the registry's confidence can say the same thing)."""
    seen = dict.fromkeys(p.strip() for part in parts for p in part.split("; ") if p.strip())
    return "; ".join(seen)


def _table(rows: list[tuple[Any, dict[str, Any]]]) -> Table:
    """One row per citation, contact and institution. Long cells wrap, and a word longer than
    its column folds onto the next line: nothing is cut, whatever the terminal's width."""
    table = Table()
    # the note gets the most room: the other columns are capped (a longer cell wraps)
    for header, most in (("id", 14), ("found", 16), ("law / contact", 14), ("article", 10),
                         ("status", 12), ("note", None)):  # fmt: skip
        table.add_column(header, overflow="fold", max_width=most)
    for rid, result in rows:
        for c in result["citations"]:
            style = _STATUS_STYLE.get(c["status"], "")
            article = c["article"] or ""
            if c["paragraph"]:
                article += f" ¶{c['paragraph']}"
            if c["item"]:
                article += f" {c['item']}호"
            notes = []
            if c.get("replacement"):
                notes.append(f"now: 제{c['replacement']}조")
            if c.get("reason") and c["status"] != "verified":
                notes.append(c["reason"])
            if c.get("inferred"):
                notes.append("law inferred from the sentence")
            if c.get("confidence") == "unverified":
                notes.append("registry entry unverified")
            if c.get("relevant") is False:
                notes.append("not in this category's policy")
            table.add_row(
                str(rid),
                c["text"],
                c["law"],
                article,
                f"[{style}]{c['status']}[/]",
                _note(notes),
            )
        for k in result["contacts"]:
            style = _STATUS_STYLE.get(k["status"], "")
            notes = [f"now: {k['replacement']}"] if k.get("replacement") else []
            if k.get("confidence") == "unverified":
                notes.append("registry entry unverified")
            table.add_row(
                str(rid),
                k["number"],
                k.get("name") or "",
                "",
                f"[{style}]{k['status']}[/]",
                _note(notes),
            )
        for i in result.get("institutions", []):
            style = _STATUS_STYLE.get(i["status"], "")
            note = f"now: {i['current_name']}" + (
                f" (since {i['renamed_on']})" if i.get("renamed_on") else ""
            )
            table.add_row(str(rid), i["name"], "", "", f"[{style}]{i['status']}[/]", note)
    return table


def register(app: typer.Typer) -> None:
    """Add the `cite` command group to `app`."""
    cite_app = typer.Typer(
        help="Check Korean statute citations and hotline numbers against the locale registries.",
        no_args_is_help=True,
    )
    app.add_typer(cite_app, name="cite")

    @cite_app.command("check")
    def check(
        file: Annotated[
            str,
            typer.Argument(
                help="Plain text (one text per line); JSONL (one object per line, the text in "
                "a string 'text' field, or 'answer' as in koalign eval answer files; 'id' "
                "optional, the line number otherwise); or '-' for stdin."
            ),
        ],
        json_out: Annotated[
            bool, typer.Option("--json", help="Write one JSON object per input line to stdout.")
        ] = False,
        category: Annotated[
            str | None,
            typer.Option(
                "--category", "-c", help="Category id (e.g. G): flag laws its policy does not list."
            ),
        ] = None,
        locale: Annotated[
            str, typer.Option("--locale", "-l", help="Bundled locale name or path.")
        ] = "ko",
    ) -> None:
        """Find statute citations, phone numbers and former institution names and check them.

        Exit status: 0 when the check ran, 1 when the input, locale or category is unusable.
        """
        from koalign.cite import DEFAULT_REJECT, index_for, rejection_reasons
        from koalign.locale import load_locale

        try:
            index = index_for(load_locale(locale))
            cat = category.upper() if category else None
            if cat is not None:
                index.relevant_laws(cat)  # validates the category before reading input
            rows, _fmt = read_inputs(file)
        except KoalignError as exc:
            print_error(exc)
            raise typer.Exit(1) from None
        results: list[tuple[Any, dict[str, Any]]] = []
        unreadable = rejected = 0
        totals: dict[str, int] = {}
        for rid, text, problem in rows:
            if problem is not None:
                unreadable += 1
                print_error(problem)
                if json_out:
                    print_jsonl({"id": rid, "error": problem})
                continue
            assert text is not None
            report = index.check(text, category=cat)
            for key, n in report.counts().items():
                totals[key] = totals.get(key, 0) + n
            rejected += bool(rejection_reasons(report))
            result = report.to_dict()
            if json_out:
                print_jsonl({"id": rid, **result})
            else:
                results.append((rid, result))
        if json_out:
            sys.stdout.flush()
        else:
            if any(r["citations"] or r["contacts"] for _, r in results):
                out.print(_table(results))
            summary = ", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "nothing found"
            out.print(f"{len(results)} texts: {summary}", highlight=False)
            out.print(
                f"{rejected} of {len(results)} texts rejected by the default rule "
                f"({', '.join(sorted(DEFAULT_REJECT))})",
                highlight=False,
            )
        if unreadable:
            err.print(f"[bold red]{unreadable} unreadable input line(s)[/]")
            raise typer.Exit(1)

"""Citation commands: `koalign cite check FILE` (statute citations, hotline numbers and
institution names)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.table import Table

from koalign.cli.common import err, out, print_error, print_jsonl
from koalign.errors import KoalignError
from koalign.jsonio import legacy_hint

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

    A row with neither text nor error is one to skip: a JSONL object whose ``text`` and
    ``answer`` are null or absent, at least one of them present (a generation failure in an
    eval answer file).

    JSONL is recognised when the first non-empty line starts with '{': each line must then be
    an object with a string ``text`` or, failing that, a string ``answer`` (as in koalign's eval
    answer files); ``id`` optional, the line number otherwise; other fields are ignored.
    Otherwise every non-empty line is one text, with its line number as id. Raises KoalignError when the input cannot be read at all.
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
        hint = (
            legacy_hint(file)
            if file != "-"
            else "the input is not UTF-8; if it is CP949/EUC-KR (common for Korean text), "
            "pipe it through `iconv -f cp949 -t utf-8`"
        )
        raise KoalignError(f"not UTF-8 text (byte {exc.start})", where=where, hint=hint) from None
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
        given = [record[k] for k in ("text", "answer") if k in record]
        if not isinstance(text, str) and given and all(v is None for v in given):
            rows.append((record.get("id", n), None, None))  # a generation failure: no answer
            continue
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


_CAPS = {"id": 14, "found": 16, "law / contact": 14, "article": 10}  # the most a column takes
_FLOORS = {"id": 6, "found": 6, "law / contact": 6, "article": 4}  # ... and the least
_NOTE_WANTS = 24  # the note's share before the other columns give up room


def _widths(cells: list[list[str]], width: int | None) -> dict[str, int]:
    """Fixed widths for every column but the note: each as wide as its longest cell up to its
    cap, the status as wide as its longest word. With a terminal width, the widest of the
    other columns gives up room, one cell at a time down to its floor, until the note has
    ``_NOTE_WANTS`` cells or all it needs."""
    heads = [*_CAPS, "status", "note"]
    natural = {
        h: max([cell_len(w) for w in h.split()] + [cell_len(row[i]) for row in cells])
        for i, h in enumerate(heads)
    }
    fixed = {h: min(natural[h], cap) for h, cap in _CAPS.items()}
    if width is not None:
        room = width - (3 * len(heads) + 1) - natural["status"]  # borders and padding
        want = min(natural["note"], _NOTE_WANTS)
        while room - sum(fixed.values()) < want:
            shrinkable = [h for h in fixed if fixed[h] > _FLOORS[h]]
            if not shrinkable:
                break
            fixed[max(shrinkable, key=lambda h: fixed[h] - _FLOORS[h])] -= 1
    fixed["status"] = natural["status"]
    return fixed


def _table(rows: list[tuple[Any, dict[str, Any]]], width: int | None = None) -> Table:
    """One row per citation, contact and institution. Long cells wrap, and a word longer than
    its column folds onto the next line: nothing is cut, whatever the terminal's width. The
    status never wraps and the note column takes the room the others leave (``width``: the
    terminal's, when known)."""
    cells: list[list[str]] = []
    for rid, result in rows:
        for c in result["citations"]:
            article = c["article"] or ""
            if c["paragraph"]:
                article += f" ¶{c['paragraph']}"
            if c["item"]:
                article += f" {c['item']}호"
            notes = []
            reason = c.get("reason") if c["status"] != "verified" else None
            if c.get("replacement") and "now 제" not in (reason or ""):  # said once
                notes.append(f"now: 제{c['replacement']}조")
            if reason:
                notes.append(reason)
            if c.get("inferred"):
                notes.append("law inferred from the sentence")
            if c.get("confidence") == "unverified":
                notes.append("registry entry unverified")
            if c.get("relevant") is False:
                notes.append("not in this category's policy")
            cells.append(
                [
                    str(rid),
                    c["text"],
                    c["law"],
                    article,
                    c["status"],
                    _note(notes),
                ]
            )
        for k in result["contacts"]:
            notes = [f"now: {k['replacement']}"] if k.get("replacement") else []
            if k.get("confidence") == "unverified":
                notes.append("registry entry unverified")
            cells.append(
                [
                    str(rid),
                    k["number"],
                    k.get("name") or "",
                    "",
                    k["status"],
                    _note(notes),
                ]
            )
        for i in result.get("institutions", []):
            note = f"now: {i['current_name']}" + (
                f" (since {i['renamed_on']})" if i.get("renamed_on") else ""
            )
            cells.append([str(rid), i["name"], "", "", i["status"], note])
    fixed = _widths(cells, width)
    table = Table()
    for header, w in fixed.items():
        table.add_column(header, overflow="fold", width=w, no_wrap=header == "status")
    table.add_column("note", overflow="fold")
    for row in cells:
        style = _STATUS_STYLE.get(row[4], "")
        table.add_row(*row[:4], f"[{style}]{row[4]}[/]", row[5])
    return table


def summary_line(texts: int, totals: dict[str, int]) -> str:
    """``N texts; citations: verified 80, nonexistent 40 (120); contacts: current 80 (80)``:
    the verdict counts of :meth:`CitationReport.counts` per kind of finding, most frequent
    first, each kind with its total (a kind with nothing found is left out)."""
    kinds: dict[str, dict[str, int]] = {"citations": {}, "contacts": {}, "institutions": {}}
    for verdict, n in totals.items():
        kind, _, status = verdict.partition("_")
        if kind == "contact" and status:
            kinds["contacts"][status] = n
        elif kind == "institution" and status:
            kinds["institutions"][status] = n
        else:
            kinds["citations"][verdict] = n
    parts = [f"{texts} texts"]
    for kind, counts in kinds.items():
        if counts:
            listed = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            each = ", ".join(f"{k} {v}" for k, v in listed)
            parts.append(f"{kind}: {each} ({sum(counts.values())})")
    if len(parts) == 1:
        parts.append("nothing found")
    return "; ".join(parts)


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

        Exit status: 0 when the check ran, 1 when the input, locale or category is unusable,
        2 a usage error (an unknown option, a missing argument: nothing was run).
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
        unreadable = rejected = skipped = 0
        totals: dict[str, int] = {}
        for rid, text, problem in rows:
            if problem is not None:
                unreadable += 1
                print_error(problem)
                if json_out:
                    print_jsonl({"id": rid, "error": problem})
                continue
            if text is None:
                skipped += 1
                if json_out:
                    print_jsonl({"id": rid, "skipped": "no answer (null)"})
                continue
            report = index.check(text, category=cat)
            for key, n in report.counts().items():
                totals[key] = totals.get(key, 0) + n
            rejected += bool(rejection_reasons(report))
            result = report.to_dict()
            if json_out:
                print_jsonl({"id": rid, **result})
            else:
                results.append((rid, result))
        skip_line = (
            f"{skipped} row{'' if skipped == 1 else 's'} without an answer skipped "
            "(text and answer null: a generation failure)"
        )
        if json_out:
            sys.stdout.flush()
            if skipped:
                err.print(skip_line, highlight=False)
        else:
            if any(r["citations"] or r["contacts"] or r["institutions"] for _, r in results):
                out.print(_table(results, out.width))
            out.print(summary_line(len(results), totals), highlight=False)
            if skipped:
                out.print(skip_line, highlight=False)
            out.print(
                f"{rejected} of {len(results)} texts rejected by the default rule "
                f"({', '.join(sorted(DEFAULT_REJECT))})",
                highlight=False,
            )
        if unreadable:
            err.print(f"[bold red]{unreadable} unreadable input line(s)[/]")
            raise typer.Exit(1)

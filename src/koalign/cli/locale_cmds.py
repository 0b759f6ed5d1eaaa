"""Locale-pack commands: locale check, taxonomy, policy show, statutes (browse, build, check),
contacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.tree import Tree

from koalign.cli.common import (
    err,
    escape,
    out,
    print_error,
    print_json,
    print_lines,
    print_warning,
)
from koalign.errors import KoalignError, LocaleError, did_you_mean
from koalign.locale import Locale, load_locale, locale_warnings
from koalign.policy import resolved_policy

LocaleArg = Annotated[
    str, typer.Option("--locale", "-l", help="Bundled locale name or path to a locale folder.")
]
JsonArg = Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")]


def taxonomy_json(loc: Locale) -> dict[str, Any]:
    return {
        "domains": [
            {
                "id": d.id,
                "name_ko": d.name_ko,
                "name_en": d.name_en,
                "categories": [
                    {
                        "id": c.id,
                        "korset_split": c.korset_split,
                        "name_ko": c.name_ko,
                        "name_en": c.name_en,
                        "types": [
                            {"id": t.id, "name_ko": t.name_ko, "name_en": t.name_en}
                            for t in c.types
                        ],
                    }
                    for c in d.categories
                ],
            }
            for d in loc.taxonomy.domains
        ]
    }


def statutes_json(loc: Locale, law_name: str | None = None) -> list[dict[str, Any]]:
    laws = loc.statutes.laws
    if law_name:
        wanted = law_name.strip().strip("「」")
        laws = [x for x in laws if wanted in (x.id, x.name, *x.aliases)]
        if not laws:
            names = [n for x in loc.statutes.laws for n in (x.id, x.name, *x.aliases)]
            raise KoalignError(
                f"no law named '{law_name}' in the registry{did_you_mean(wanted, names)}",
                hint="`koalign statutes` lists every law",
            )
    return [
        {
            "id": law.id,
            "name": law.name,
            "name_en": law.name_en,
            "aliases": law.aliases,
            "last_article": law.last_article,
            "articles": [
                {
                    "article": a.article,
                    "title": a.title,
                    "paragraphs": a.paragraphs,
                    "summary": a.summary,
                    "penalty": a.penalty,
                    "effective": a.effective.isoformat() if a.effective else None,
                    "status": a.status,
                    "replaced_by": a.replaced_by,
                    "confidence": a.confidence,
                    "sources": [loc.statutes.source_ids.get(s, s) for s in a.sources],
                    "note": a.note,
                }
                for a in law.articles
            ],
        }
        for law in laws
    ]


def contacts_json(loc: Locale) -> list[dict[str, Any]]:
    rows = []
    for c in loc.contacts.contacts:
        row: dict[str, Any] = {
            "id": c.id,
            "number": c.number,
            "url": c.url,
            "name": c.name,
            "purpose": c.purpose,
            "hours": c.hours,
            "status": c.status,
            "confidence": c.confidence,
            "checked": c.checked.isoformat(),
        }
        if c.replaced_by:
            repl = loc.contacts.contact(c.replaced_by)
            row["replacement"] = repl.number or repl.url if repl else None
            row["replacement_id"] = c.replaced_by
        rows.append(row)
    return rows


def _index_report(loc: Locale, max_age_days: int) -> tuple[str, list[str], list[str], list[str]]:
    """The statute-index line of `locale check`, with errors, warnings and notes."""
    from datetime import date

    from koalign.cite import load_statute_index
    from koalign.cite.crosscheck import check_against_index

    index = load_statute_index(loc)
    if index is None:
        return (
            "statute index: none (citations are checked against the hand registry only)",
            [],
            [
                "statute_index.json.gz: the pack has no statute index; build one with "
                "`koalign statutes build --from DIR`"
            ],
            [],
        )
    src = index.source
    snapshot = index.snapshot
    age = (date.today() - snapshot).days if snapshot else None
    articles = sum(len(law.raw_articles) for law in index.laws)
    label = f", {src['label']}" if src.get("label") else ""
    old = f" ({age} days old; warned about past {max_age_days} days, --max-age-days)"
    line = (
        f"statute index: {len(index.laws)} laws (Acts and the Constitution) / {articles} articles, corpus of {snapshot}"
        f"{old if age is not None else ''}{label}; index built {index.built}"
    )
    warnings = []
    if age is not None and age > max_age_days:
        warnings.append(
            f"statute_index.json.gz: the statute corpus is {age} days old (latest text of "
            f"{snapshot}), past the {max_age_days} days of --max-age-days: rebuild it from a fresh "
            "legalize-kr clone with `koalign statutes build --from DIR`"
        )
    errors, notes = [], []
    for f in check_against_index(loc.statutes, index):
        if f.level == "error":
            errors.append(f.render())
        else:
            notes.append(f.render())
    return line, errors, warnings, notes


def _build_summary(
    data: dict[str, Any], target: Path, size: int, previous: Any | None
) -> dict[str, Any]:
    from koalign.cite.statute_index import StatuteIndex

    new = StatuteIndex(data)
    summary: dict[str, Any] = {
        "path": str(target),
        "bytes": size,
        "source": data["source"],
        "built": data["built"],
        "not_checkable": [law.name for law in new.laws if not law.checkable],
    }
    if previous is not None:
        old = {law.name: law for law in previous.laws}
        cur = {law.name: law for law in new.laws}
        summary["changes"] = {
            "added": len(cur.keys() - old.keys()),
            "removed": len(old.keys() - cur.keys()),
            "amended": sum(
                1
                for name in cur.keys() & old.keys()
                if (cur[name].promulgated or 0) != (old[name].promulgated or 0)
            ),
        }
    return summary


def _same_locale(a: str, b: str) -> bool:
    """Whether two --locale values name the same pack (the same name, or the same folder)."""
    if a == b:
        return True
    pa, pb = Path(a), Path(b)
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def register(app: typer.Typer) -> None:
    locale_app = typer.Typer(help="Check and inspect locale packs.", no_args_is_help=True)
    policy_app = typer.Typer(help="Show the safe-response policy.", no_args_is_help=True)
    app.add_typer(locale_app, name="locale")
    app.add_typer(policy_app, name="policy")

    @locale_app.command("check")
    def locale_check(
        pack: Annotated[
            str | None,
            typer.Argument(
                metavar="LOCALE",
                help="Bundled locale name or path to a locale folder (the same as --locale).",
                show_default=False,
            ),
        ] = None,
        locale: Annotated[
            str | None,
            typer.Option(
                "--locale",
                "-l",
                help="Bundled locale name or path to a locale folder (default: ko).",
            ),
        ] = None,
        max_age_days: Annotated[
            int,
            typer.Option(
                help="Warn about facts last checked more than this many days ago: hotlines and "
                "institutions (contacts.yaml `checked`), the pack's review (locale.yaml "
                "`as_of`) and the statute corpus of the index."
            ),
        ] = 365,
        strict: Annotated[
            bool, typer.Option(help="Fail (exit 1) when there are warnings.")
        ] = False,
    ) -> None:
        """Validate every file and cross-reference of a locale pack, and render every prompt
        template with example values as the pipeline and the evaluations render it."""
        if pack is not None and locale is not None and not _same_locale(pack, locale):
            print_error(
                KoalignError(
                    f"two locales given: '{pack}' and --locale '{locale}'",
                    hint="give the locale once, as an argument or with --locale",
                ),
                label="locale check failed",
            )
            raise typer.Exit(1)
        try:
            loc = load_locale(pack or locale or "ko")
        except LocaleError as exc:
            print_error(exc.message, label="locale check failed")
            print_lines(exc.problems)
            raise typer.Exit(1) from None
        tax = loc.taxonomy
        articles = sum(len(x.articles) for x in loc.statutes.laws)
        warnings = locale_warnings(loc, max_age_days=max_age_days)
        try:
            index_line, index_errors, index_warnings, notes = _index_report(loc, max_age_days)
        except KoalignError as exc:
            print_error(exc, label="locale check failed")
            raise typer.Exit(1) from None
        warnings += index_warnings
        from koalign.template_check import template_problems

        template_errors, template_notes = template_problems(loc)
        notes += template_notes
        for note in notes:
            err.print(f"note: {note}", highlight=False, markup=False)
        for warning in warnings:
            print_warning(warning)
        if template_errors:
            err.print(
                f"[bold red]locale check failed:[/] {len(template_errors)} prompt templates fail "
                "to render (as `koalign run` and `koalign prompt show` render them)",
                highlight=False,
            )
            for failure in template_errors:
                err.print(f"  - {failure.render()}", markup=False, highlight=False)
        if index_errors:
            err.print(
                f"[bold red]locale check failed:[/] {len(index_errors)} registry entries "
                "contradict the statute index",
                highlight=False,
            )
            for problem in index_errors:
                err.print(f"  - {problem}", markup=False, highlight=False)
        if template_errors or index_errors:
            raise typer.Exit(1)
        if strict and warnings:
            err.print(f"[bold red]locale check failed:[/] {len(warnings)} warnings under --strict")
            raise typer.Exit(1)
        out.print(
            f"[green]ok[/] locale '{loc.id}' ({loc.path}): {len(tax.domains)} domains, "
            f"{len(tax.categories)} categories, {len(tax.types)} types, "
            f"{len(loc.statutes.laws)} laws / {articles} articles, "
            f"{len(loc.contacts.contacts)} contacts, {len(loc.policy.policies)} policies, "
            f"{len(loc.prompts)} prompt templates (rendered); digest {loc.digest[:12]}",
            highlight=False,
        )
        out.print(index_line, highlight=False)

    @app.command("taxonomy")
    def taxonomy(locale: LocaleArg = "ko", json: JsonArg = False) -> None:
        """Show the harm taxonomy: domains, categories, types."""
        loc = load_locale(locale)
        if json:
            print_json(taxonomy_json(loc))
            return
        tree = Tree(f"[bold]{loc.meta.name}[/] taxonomy")
        for d in loc.taxonomy.domains:
            dn = tree.add(f"[bold cyan]{d.id} {d.name_ko}[/] ({d.name_en})")
            for c in d.categories:
                split = f" [dim]{c.korset_split}[/]" if c.korset_split else ""
                cn = dn.add(f"[bold]{c.id} {c.name_ko}[/] ({c.name_en}){split}")
                for t in c.types:
                    cn.add(f"{t.id}  {t.name_ko} [dim]({t.name_en})[/]")
        out.print(tree)

    @policy_app.command("show")
    def policy_show(
        category: Annotated[str, typer.Argument(help="Category id, e.g. G.")],
        locale: LocaleArg = "ko",
        json: JsonArg = False,
    ) -> None:
        """Show one category's policy with statutes and contacts expanded."""
        loc = load_locale(locale)
        view = resolved_policy(loc, category.upper())
        if json:
            print_json(view)
            return
        out.print(
            f"[bold]{escape(view['category'])} {escape(view['name_ko'])}[/] "
            f"({escape(view['name_en'])})"
        )
        for key in ("principles", "applies_when", "does_not_apply", "p1_norms", "p3_kernel",
                    "p3_procedures", "do", "dont"):  # fmt: skip
            out.print(f"\n[bold cyan]{key}[/]")
            for line in view[key]:
                out.print(f"  - {line}", markup=False)
        out.print("\n[bold cyan]p1_statutes[/]")
        for s in view["p1_statutes"]:
            art = f" 제{s['article']}조" if s.get("article") else ""
            out.print(f"  - {s['law']}{art}: {s.get('summary') or ''} [{s['why']}]", markup=False)
        out.print("\n[bold cyan]p2_populations[/]")
        for pop in view["p2_populations"]:
            out.print(f"  - {pop['group']}: {'; '.join(pop['protections'])}", markup=False)
        out.print("\n[bold cyan]p3_contacts[/]")
        for c in view["p3_contacts"]:
            out.print(f"  - {c['name']} {c['number'] or c['url']}: {c['purpose']}", markup=False)
        out.print(f"\n[bold cyan]examples[/] ({len(view['examples'])})")
        for ex in view["examples"]:
            out.print(f"  Q: {ex['prompt']}\n  A: {ex['answer']}\n", markup=False)

    statutes_app = typer.Typer(
        help="Browse the statute registry; build and check the statute index.",
        invoke_without_command=True,
    )
    app.add_typer(statutes_app, name="statutes")

    @statutes_app.callback()
    def statutes(
        ctx: typer.Context,
        law: Annotated[str | None, typer.Option("--law", help="Law id, name or alias.")] = None,
        locale: LocaleArg = "ko",
        json: JsonArg = False,
    ) -> None:
        """Browse the statute registry (without a subcommand)."""
        if ctx.invoked_subcommand is not None:
            return
        loc = load_locale(locale)
        rows = statutes_json(loc, law)
        if json:
            print_json(rows)
            return
        table = Table("law", "article", "title", "summary", "status", "confidence")
        for row in rows:
            for a in row["articles"]:
                table.add_row(row["name"], a["article"], a["title"] or "", a["summary"],
                              a["status"], a["confidence"])  # fmt: skip
        out.print(table)

    @statutes_app.command("build")
    def statutes_build(
        source: Annotated[
            Path,
            typer.Option(
                "--from",
                help="A legalize-kr clone (or ../shared/data/statutes): kr/<law>/법률.md files.",
            ),
        ],
        locale: LocaleArg = "ko",
        output: Annotated[
            Path | None,
            typer.Option("--out", help="Where to write (default: the locale's statute index)."),
        ] = None,
        label: Annotated[
            str | None,
            typer.Option(help="Free text recorded as the source, e.g. 'legalize-kr@7460e2a'."),
        ] = None,
        json: JsonArg = False,
    ) -> None:
        """Derive the statute index (facts, no text) from the Markdown text of every Act."""
        from koalign.cite.statute_build import build_index
        from koalign.cite.statute_index import INDEX_FILE, StatuteIndex, save_index
        from koalign.locale import locale_dir

        try:
            target = output or locale_dir(locale) / INDEX_FILE
            err.print(f"reading statutes under {source} ...", highlight=False)
            data = build_index(source, label=label)
            previous = StatuteIndex.load(target) if target.is_file() else None
            size = save_index(data, target)
        except KoalignError as exc:
            print_error(exc)
            raise typer.Exit(1) from None
        summary = _build_summary(data, target, size, previous)
        if json:
            print_json(summary)
            return
        src = summary["source"]
        out.print(
            f"[green]ok[/] {target}: {src['files']} laws (Acts and the Constitution), {src['articles']} articles, corpus of "
            f"{src['snapshot_date']}, {size / 1e6:.2f} MB",
            highlight=False,
        )
        if summary["not_checkable"]:
            out.print(
                f"{len(summary['not_checkable'])} files hold no checkable text (repeal notice "
                f"or no articles): {', '.join(summary['not_checkable'])}",
                highlight=False,
            )
        if previous is not None:
            ch = summary["changes"]
            out.print(
                f"against the previous index: {ch['added']} Acts added, {ch['removed']} removed, "
                f"{ch['amended']} with a newer text",
                highlight=False,
            )

    @statutes_app.command("check")
    def statutes_check(
        source: Annotated[
            Path,
            typer.Option("--from", help="A legalize-kr clone (or ../shared/data/statutes)."),
        ],
        locale: LocaleArg = "ko",
        json: JsonArg = False,
    ) -> None:
        """Cross-check the registry against the statute text: articles, deletions, penalties.

        Entries that follow an amendment newer than the corpus are reported as
        'newer', not as errors.

        Exit status: 0 the check ran and nothing contradicts the text; 1 a registry
        entry contradicts the text (level 'error'), or the locale or the source
        cannot be read; 2 a usage error (an unknown option, a missing argument:
        nothing was run).
        """
        from koalign.cite.crosscheck import check_against_text, summarise

        try:
            loc = load_locale(locale)
            findings = check_against_text(loc.statutes, source)
        except KoalignError as exc:
            print_error(exc)
            raise typer.Exit(1) from None
        counts = summarise(findings)
        if json:
            print_json({"counts": counts, "findings": [f.to_dict() for f in findings]})
        else:
            table = Table("level", "law", "article", "finding")
            for f in findings:
                style = {"error": "red", "newer": "cyan", "info": "dim"}[f.level]
                table.add_row(f"[{style}]{f.level}[/]", f.law_id, f.article or "", f.message)
            if findings:
                out.print(table)
            out.print(
                f"{counts['error']} errors, {counts['newer']} newer than the corpus, "
                f"{counts['info']} not checkable",
                highlight=False,
            )
        if counts["error"]:
            raise typer.Exit(1)

    @app.command("contacts")
    def contacts(locale: LocaleArg = "ko", json: JsonArg = False) -> None:
        """Browse hotlines and institutions, current and retired."""
        loc = load_locale(locale)
        rows = contacts_json(loc)
        if json:
            print_json(rows)
            return
        table = Table("number", "name", "purpose", "status", "replacement")
        for r in rows:
            table.add_row(
                r["number"] or r["url"],
                r["name"],
                r["purpose"],
                r["status"],
                r.get("replacement") or "",
            )
        out.print(table)

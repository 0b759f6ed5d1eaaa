"""Loading and cross-validating a locale pack (see docs/locale-format.md).

A locale is a folder; nothing language-specific lives in the engine. :func:`load_locale`
validates every file and every cross-reference and raises :class:`~koalign.errors.LocaleError`
listing all problems (``file:path: message``) before anything else runs.
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from koalign.errors import LocaleError, did_you_mean
from koalign.jsonio import legacy_hint
from koalign.locale_schema import (
    Article,
    Contact,
    Contacts,
    Institution,
    Law,
    LocaleMeta,
    Personas,
    Policy,
    Rubric,
    Statutes,
    Tactics,
    Taxonomy,
    _Model,
)
from koalign.yamlio import MAX_BYTES, load_yaml

# ----------------------------------------------------------------------------- the pack
_FILES: dict[str, type[_Model]] = {
    "locale.yaml": LocaleMeta,
    "taxonomy.yaml": Taxonomy,
    "statutes.yaml": Statutes,
    "contacts.yaml": Contacts,
    "policy.yaml": Policy,
    "rubric.yaml": Rubric,
    "tactics.yaml": Tactics,
}
_OPTIONAL_FILES: dict[str, type[_Model]] = {"personas.yaml": Personas}
KORSET_SPLITS = (
    "1_A_Toxic_Language", "1_B_Sexual_Content", "2_C_Discrimination", "2_D_Bias_and_Hate",
    "3_E_False_Misinformation", "3_F_Prohibited_Advisory", "4_G_Privacy_Violation",
    "4_H_Sensitive_Info_Organization", "5_I_Illegal_Activities", "5_J_Violence_and_Extremism",
    "5_K_Enc_Unethical_Actions", "5_L_Security_Threats",
)  # fmt: skip


class Locale(_Model):
    """A validated locale pack."""

    path: Path
    meta: LocaleMeta
    taxonomy: Taxonomy
    statutes: Statutes
    contacts: Contacts
    policy: Policy
    rubric: Rubric
    tactics: Tactics
    personas: Personas = Field(default_factory=Personas)
    prompts: dict[str, str]
    digest: str = Field(description="sha256 over every file of the pack (the policy hash).")

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @property
    def id(self) -> str:
        """The pack's id from ``locale.yaml`` (e.g. ``ko``)."""
        return self.meta.id

    def resolve_ref(self, ref: str) -> tuple[Law, Article | None]:
        """Resolve ``law_id`` or ``law_id:article``; raises LocaleError when it does not exist."""
        law_id, _, number = ref.partition(":")
        law = self.statutes.law(law_id)
        if law is None:
            ids = [x.id for x in self.statutes.laws]
            raise LocaleError(f"unknown law '{law_id}'{did_you_mean(law_id, ids)}")
        if not number:
            return law, None
        article = law.article(number)
        if article is None:
            raise LocaleError(
                f"law '{law_id}' has no article '{number}' in statutes.yaml",
                hint=f"known: {', '.join(a.article for a in law.articles) or 'none'}",
            )
        return law, article

    def script_ratio(self, text: str) -> float:
        """Share of letters in ``text`` that belong to the pack's script (e.g. Hangul), 0-1
        (0.0 for a text without letters). A letter is what Python's ``re`` calls a word
        character, digits and ``_`` excepted."""
        ranges = tuple(self.meta.script_ranges)
        inside, only_letters = _script_class(ranges)
        if only_letters:  # the script's characters are all letters: count them directly
            rest = inside.sub("", text)
            script = len(text) - len(rest)
            letters = script + (len(_NOT_LETTERS.sub("", rest)) if rest else 0)
            return script / letters if letters else 0.0
        kept = _NOT_LETTERS.sub("", text)
        if not kept:
            return 0.0
        return len(_outside_script(ranges).sub("", kept)) / len(kept)


_NOT_LETTERS = re.compile(r"[\W\d_]+")


def _class_body(ranges: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges)


@functools.lru_cache(maxsize=16)
def _script_class(ranges: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], bool]:
    """The script's characters as a pattern, and whether every one of them is a letter (true
    for Hangul): then a text's script letters are counted without classifying each of its
    characters, which is about half the time of :meth:`Locale.script_ratio` on Korean text."""
    letters = all(
        ch.isalnum() and not ch.isdecimal() and ch != "_"
        for lo, hi in ranges
        for ch in map(chr, range(ord(lo), ord(hi) + 1))
    )
    return re.compile(f"[{_class_body(ranges)}]+"), letters


@functools.lru_cache(maxsize=16)
def _outside_script(ranges: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    """Characters outside the script ranges (a character class built once per pack): removing
    them from the letters leaves the script's letters."""
    return re.compile(f"[^{_class_body(ranges)}]+")


def bundled_locales() -> list[str]:
    """Names of the locale packs shipped inside koalign (folders with a ``locale.yaml``), sorted."""
    root = resources.files("koalign.locales")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "locale.yaml").is_file())


def locale_dir(name_or_path: str | Path) -> Path:
    """Find a locale folder: a bundled pack by name, or a path."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    bundled = Path(str(resources.files("koalign.locales"))) / str(name_or_path)
    if bundled.is_dir():
        return bundled
    names = bundled_locales()
    raise LocaleError(
        f"no locale '{name_or_path}'{did_you_mean(str(name_or_path), names)}",
        hint=f"bundled locales: {', '.join(names) or 'none'}; or pass a folder path",
    )


def load_locale(name_or_path: str | Path = "ko") -> Locale:
    """Load, validate and cross-check a locale pack; raise LocaleError listing every problem."""
    root = locale_dir(name_or_path)
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    digest = hashlib.sha256()
    for fname, model in (_FILES | _OPTIONAL_FILES).items():
        path = root / fname
        if not path.is_file():
            if fname in _FILES:
                problems.append(f"{fname}: file is missing (see docs/locale-format.md)")
            continue
        if path.stat().st_size > MAX_BYTES:  # bounded before reading (see koalign.yamlio)
            problems.append(f"{fname}: larger than {MAX_BYTES:,} bytes; split or check the file")
            continue
        raw = path.read_bytes()
        digest.update(fname.encode() + b"\0" + raw)
        try:
            raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:  # the fix names the file: a copy would not be loaded
            hint = legacy_hint(path, in_place=True)
            problems.append(f"{fname}: not UTF-8 text (byte {exc.start}) ({hint})")
            continue
        try:
            data = load_yaml(raw, where=fname, error=LocaleError)
        except LocaleError as exc:
            problems.append(exc.render())
            continue
        try:
            parsed[fname] = model.model_validate(data)
        except ValidationError as exc:
            problems.extend(_render_validation(fname, exc, data))
    prompts: dict[str, str] = {}
    prompt_dir = root / "prompts"
    if prompt_dir.is_dir():
        for path in sorted(prompt_dir.glob("*.j2")):
            try:
                raw, text = _read_template(path)
            except LocaleError as exc:
                problems.append(exc.render())
                continue
            digest.update(f"prompts/{path.name}".encode() + b"\0" + raw)
            prompts[path.stem] = text
    if problems:
        raise LocaleError(
            f"locale '{root}' is invalid ({len(problems)} problems)", problems=problems
        )
    locale = Locale(
        path=root,
        meta=parsed["locale.yaml"],
        taxonomy=parsed["taxonomy.yaml"],
        statutes=parsed["statutes.yaml"],
        contacts=parsed["contacts.yaml"],
        policy=parsed["policy.yaml"],
        rubric=parsed["rubric.yaml"],
        tactics=parsed["tactics.yaml"],
        personas=parsed.get("personas.yaml", Personas()),
        prompts=prompts,
        digest=digest.hexdigest(),
    )
    problems = cross_check(locale)
    if problems:
        raise LocaleError(
            f"locale '{root}' is inconsistent ({len(problems)} problems)", problems=problems
        )
    return locale


def _read_template(path: Path) -> tuple[bytes, str]:
    """A prompt template's bytes and text: at most :data:`~koalign.yamlio.MAX_BYTES` (measured
    before reading), UTF-8. Raises :class:`LocaleError` naming the file."""
    where = f"prompts/{path.name}"
    try:
        if not path.is_file():
            raise LocaleError("not a file", where=where, hint="a template is a *.j2 text file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise LocaleError(
                f"template of {size:,} bytes is larger than the limit of {MAX_BYTES:,} bytes",
                where=where,
                hint="prompt templates are small; check that it is the right file",
            )
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise LocaleError(f"cannot read the file: {exc.strerror}", where=where) from None
    if len(raw) > MAX_BYTES:  # grew while it was read
        raise LocaleError(f"template larger than {MAX_BYTES:,} bytes", where=where)
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LocaleError(
            f"not UTF-8 text (byte {exc.start})",
            where=where,
            hint=legacy_hint(path, in_place=True),
        ) from None


def _render_validation(fname: str, exc: ValidationError, data: Any) -> list[str]:
    out = []
    for err in exc.errors():
        loc = _readable_path(err["loc"], data)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (remove it, or check its spelling against docs/locale-format.md)"
        elif err["type"] == "missing":
            msg = "required key is missing (see docs/locale-format.md)"
        out.append(f"{fname}:{loc}: {msg}")
    return out


def _readable_path(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location, naming list items by their id where they have one."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            item = node[key]
            ident = item.get("id") if isinstance(item, dict) else None
            parts.append(f"[{key}]" + (f"(id={ident})" if ident else ""))
            node = item
        else:
            parts.append(f".{key}" if parts else str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts)


def _dupes(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]


def _check_sources(fname: str, where: str, sources: list[str], known: dict[str, str]) -> list[str]:
    return [
        f"{fname}:{where}.sources: unknown source id '{s}' (add it to statutes.yaml source_ids or use a URL)"
        for s in sources
        if not s.startswith(("http://", "https://")) and s not in known
    ]


def cross_check(loc: Locale) -> list[str]:
    """Every cross-file and within-file consistency rule of a pack; returns problem lines."""
    p: list[str] = []
    tax = loc.taxonomy
    cats = tax.categories
    cat_ids = [c.id for c in cats]
    for kind, ids in (
        ("domain", [d.id for d in tax.domains]),
        ("category", cat_ids),
        ("type", [t.id for t in tax.types]),
    ):
        p += [f"taxonomy.yaml: duplicate {kind} id '{i}'" for i in _dupes(ids)]
    splits = [c.korset_split for c in cats if c.korset_split]
    p += [f"taxonomy.yaml: KorSET split '{s}' is used twice" for s in _dupes(splits)]
    for c in cats:
        if c.korset_split and c.korset_split not in KORSET_SPLITS:
            p.append(
                f"taxonomy.yaml:category {c.id}.korset_split: '{c.korset_split}' is not a KorSET "
                f"split{did_you_mean(c.korset_split, KORSET_SPLITS)}"
            )
    if splits and set(splits) != set(KORSET_SPLITS):
        missing = sorted(set(KORSET_SPLITS) - set(splits))
        p.append(
            f"taxonomy.yaml: KorSET-mapped taxonomy lacks splits {missing} (map every category)"
        )
    for c in cats:
        for t in c.types:
            where = f"taxonomy.yaml:category {c.id}.types[{t.id}]"
            if not re.fullmatch(rf"{re.escape(c.id)}\.[a-z][a-z0-9_]*", t.id):
                p.append(f"{where}.id: must be '{c.id}.<snake_case>'")
            slot_ids = [s.id for s in c.slots_for(t)]
            p += [f"{where}.slots: duplicate slot '{s}'" for s in _dupes(slot_ids)]
            for sid in slot_ids:
                examples = t.slot_examples.get(sid)
                if examples is None:
                    p.append(
                        f"{where}.slot_examples: no examples for slot '{sid}' (give at least 3)"
                    )
                elif len({e.strip() for e in examples if e.strip()}) < 3:
                    p.append(
                        f"{where}.slot_examples.{sid}: {len(examples)} distinct examples, need at least 3"
                    )
            for sid in t.slot_examples:
                if sid not in slot_ids:
                    p.append(
                        f"{where}.slot_examples: '{sid}' is not a slot of this type"
                        f"{did_you_mean(sid, slot_ids)}"
                    )

    st = loc.statutes
    p += [f"statutes.yaml: duplicate law id '{i}'" for i in _dupes([law.id for law in st.laws])]
    names = [n for law in st.laws for n in [law.name, *law.aliases]]
    p += [
        f"statutes.yaml: name or alias '{n}' belongs to two laws (ambiguous)" for n in _dupes(names)
    ]
    for law in st.laws:
        where = f"statutes.yaml:laws[{law.id}]"
        numbers = [a.article for a in law.articles]
        p += [f"{where}: article '{n}' listed twice" for n in _dupes(numbers)]
        for a in law.articles:
            aw = f"{where}.articles[{a.article}]"
            p += _check_sources("statutes.yaml", aw, a.sources, st.source_ids)
            main = int(a.article.split("의")[0])
            if law.last_article is not None and main > law.last_article:
                p.append(f"{aw}: beyond last_article {law.last_article}")
            if a.status == "outdated":
                if not a.replaced_by:
                    p.append(f"{aw}: an outdated article needs replaced_by (the current article)")
                elif law.article(a.replaced_by) is None:
                    p.append(
                        f"{aw}.replaced_by: article '{a.replaced_by}' is not in this law's articles"
                    )
            elif a.replaced_by:
                p.append(f"{aw}.replaced_by: only outdated articles have a replacement")

    ct = loc.contacts
    ids = [c.id for c in ct.contacts]
    p += [f"contacts.yaml: duplicate contact id '{i}'" for i in _dupes(ids)]
    p += [
        f"contacts.yaml: duplicate institution id '{i}'"
        for i in _dupes([i.id for i in ct.institutions])
    ]
    for contact in ct.contacts:
        where = f"contacts.yaml:contacts[{contact.id}]"
        p += _check_sources("contacts.yaml", where, contact.sources, st.source_ids)
        if not contact.number and not contact.url:
            p.append(f"{where}: give a number or a url")
        if contact.status == "retired":
            repl = ct.contact(contact.replaced_by) if contact.replaced_by else None
            if contact.replaced_by is None:
                p.append(f"{where}: a retired contact needs replaced_by (id of the current one)")
            elif repl is None:
                p.append(
                    f"{where}.replaced_by: unknown contact '{contact.replaced_by}'{did_you_mean(contact.replaced_by, ids)}"
                )
            elif repl.status != "current":
                p.append(f"{where}.replaced_by: '{contact.replaced_by}' is itself retired")
        elif contact.replaced_by:
            p.append(f"{where}.replaced_by: only retired contacts have a replacement")
    for inst in ct.institutions:
        p += _check_sources(
            "contacts.yaml", f"contacts.yaml:institutions[{inst.id}]", inst.sources, st.source_ids
        )

    pol = loc.policy.policies
    for cid in cat_ids:
        if cid not in pol:
            p.append(f"policy.yaml:policies: category '{cid}' has no policy (add policies.{cid})")
    for cid, cp in pol.items():
        where = f"policy.yaml:policies.{cid}"
        if cid not in cat_ids:
            p.append(f"{where}: '{cid}' is not a taxonomy category{did_you_mean(cid, cat_ids)}")
        refs = [(f"{where}.p1_statutes[{i}]", s.ref) for i, s in enumerate(cp.p1_statutes)]
        refs += [
            (f"{where}.p2_populations[{i}].refs", r)
            for i, pop in enumerate(cp.p2_populations)
            for r in pop.refs
        ]
        for rw, ref in refs:
            try:
                loc.resolve_ref(ref)
            except LocaleError as exc:
                p.append(f"{rw}: {exc.render()}")
        for i, contact_id in enumerate(cp.p3_contacts):
            listed = ct.contact(contact_id)
            if listed is None:
                p.append(
                    f"{where}.p3_contacts[{i}]: unknown contact '{contact_id}'{did_you_mean(contact_id, ids)}"
                )
            elif listed.status != "current":
                p.append(
                    f"{where}.p3_contacts[{i}]: contact '{contact_id}' is retired "
                    f"(use '{listed.replaced_by}')"
                )

    rub = loc.rubric.categories
    for cid in cat_ids:
        if not rub.get(cid):
            p.append(f"rubric.yaml:categories: category '{cid}' has no rubric items")
    for cid in rub:
        if cid not in cat_ids:
            p.append(
                f"rubric.yaml:categories.{cid}: not a taxonomy category{did_you_mean(cid, cat_ids)}"
            )
    p += [
        f"rubric.yaml: duplicate item id '{i}'"
        for i in _dupes([it.id for items in rub.values() for it in items])
    ]

    tac = loc.tactics
    p += [
        f"tactics.yaml: duplicate strategy id '{i}'" for i in _dupes([s.id for s in tac.strategies])
    ]
    p += [f"tactics.yaml: duplicate tactic id '{i}'" for i in _dupes([t.id for t in tac.tactics])]

    p += _check_templates(loc)
    return p


def _check_templates(loc: Locale) -> list[str]:
    import jinja2

    env = jinja2.Environment()
    out = []
    for name, text in loc.prompts.items():
        try:
            env.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            out.append(f"prompts/{name}.j2:{exc.lineno}: template syntax error: {exc.message}")
    return out


def locale_warnings(
    loc: Locale, *, today: date | None = None, max_age_days: int = 365
) -> list[str]:
    """Things that are allowed but deserve a look: the policy naming unverified or outdated facts,
    and facts not re-checked for more than ``max_age_days`` (laws and hotlines change)."""
    out = []
    today = today or date.today()
    entries: list[Contact | Institution] = [*loc.contacts.contacts, *loc.contacts.institutions]
    for entry in entries:
        age = (today - entry.checked).days
        if age > max_age_days:
            kind = "contacts" if entry in loc.contacts.contacts else "institutions"
            out.append(
                f"contacts.yaml:{kind}[{entry.id}]: last checked {entry.checked} ({age} days ago); "
                "re-check it against its source and update `checked`"
            )
    age = (today - loc.meta.as_of).days
    if age > max_age_days:
        out.append(
            f"locale.yaml:as_of: the pack was last reviewed {loc.meta.as_of} ({age} days ago)"
        )
    for cid, cp in loc.policy.policies.items():
        for s in cp.p1_statutes:
            _law, article = loc.resolve_ref(s.ref)
            if article is not None and article.confidence == "unverified":
                out.append(
                    f"policy.yaml:policies.{cid}.p1_statutes: '{s.ref}' is unverified in statutes.yaml"
                )
            if article is not None and article.status != "current":
                out.append(f"policy.yaml:policies.{cid}.p1_statutes: '{s.ref}' is {article.status}")
        for contact_id in cp.p3_contacts:
            contact = loc.contacts.contact(contact_id)
            if contact is not None and contact.confidence == "unverified":
                out.append(f"policy.yaml:policies.{cid}.p3_contacts: '{contact_id}' is unverified")
    return out

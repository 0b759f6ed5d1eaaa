"""Loading and cross-validation of locale packs, on the tiny test locale and broken copies of it."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from koalign.errors import LocaleError
from koalign.locale import load_locale, locale_warnings
from koalign.policy import resolved_policy
from koalign.prompts import render_chat


def test_mini_locale_loads(mini_locale_dir: Path) -> None:
    loc = load_locale(mini_locale_dir)
    assert loc.id == "mini"
    assert [c.id for c in loc.taxonomy.categories] == ["X", "Y"]
    assert [t.id for t in loc.taxonomy.types] == ["X.insult", "Y.phishing"]
    law, article = loc.resolve_ref("penal_code:10")
    assert law.name == "Penal Code" and article is not None and article.summary == "insult"
    assert loc.taxonomy.domain_of("Y").id == "1"
    assert loc.taxonomy.category_of_type("Y.phishing").id == "Y"
    assert len(loc.digest) == 64


def test_digest_changes_with_content(mini_locale_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "mini"
    shutil.copytree(mini_locale_dir, copy)
    before = load_locale(copy).digest
    (copy / "rubric.yaml").write_text(
        (copy / "rubric.yaml").read_text(encoding="utf-8").replace("substance", "content"),
        encoding="utf-8",
    )
    assert load_locale(copy).digest != before


def test_script_ratio(mini_locale_dir: Path) -> None:
    loc = load_locale(mini_locale_dir)
    assert loc.script_ratio("hello") == 1.0
    assert loc.script_ratio("hello 안녕") == pytest.approx(5 / 7)
    assert loc.script_ratio("1234 !!") == 0.0


def test_resolved_policy_expands_references(mini_locale_dir: Path) -> None:
    view = resolved_policy(load_locale(mini_locale_dir), "X")
    assert view["p1_statutes"][0]["law"] == "Penal Code"
    assert view["p1_statutes"][0]["article"] == "10"
    assert view["p3_contacts"][0]["number"] == "999"
    assert view["domain"]["id"] == "1"
    assert len(view["examples"]) == 2


def test_render_chat_and_strict_undefined(mini_locale_dir: Path) -> None:
    loc = load_locale(mini_locale_dir)
    messages = render_chat(loc, "echo", text="hi")
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content == "You answer in en."
    assert messages[1].content == "Say: hi"
    with pytest.raises(LocaleError, match="not given"):
        render_chat(loc, "echo")
    with pytest.raises(LocaleError, match="did you mean 'echo'"):
        render_chat(loc, "ecko", text="x")


def test_unknown_locale_name_suggests() -> None:
    with pytest.raises(LocaleError, match="no locale 'kx'"):
        load_locale("kx")


def _broken(mini: Path, tmp_path: Path, fname: str, mutate) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(mini, copy)
    path = copy / fname
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutate(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return copy


def _set(path: list, value):
    def mutate(data) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


_DELETE = object()
_TYPE0 = ["domains", 0, "categories", 0, "types", 0]

BROKEN = [
    ("taxonomy.yaml", _set([*_TYPE0, "colour"], "red"),
     "taxonomy.yaml:domains[0](id=1).categories[0](id=X).types[0](id=X.insult).colour: unknown key"),
    ("taxonomy.yaml", _set([*_TYPE0, "id"], "Y.insult"),
     "must be 'X.<snake_case>'"),
    ("taxonomy.yaml", _set([*_TYPE0, "slot_examples", "target"], ["a", "b"]),
     "slot_examples.target: 2 distinct examples, need at least 3"),
    ("taxonomy.yaml", _set([*_TYPE0, "slot_examples", "targt"], ["a", "b", "c"]),
     "'targt' is not a slot of this type (did you mean 'target'?)"),
    ("taxonomy.yaml", _set(["domains", 0, "categories", 0, "korset_split"], "1_A_Toxic_Langage"),
     "is not a KorSET split (did you mean '1_A_Toxic_Language'?)"),
    ("taxonomy.yaml", _set(["domains", 0, "categories", 1, "id"], "X"),
     "duplicate category id 'X'"),
    ("statutes.yaml", _set(["laws", 0, "articles", 2, "replaced_by"], None),
     "statutes.yaml:laws[penal_code].articles[5]: an outdated article needs replaced_by"),
    ("statutes.yaml", _set(["laws", 0, "articles", 0, "article"], "101"),
     "articles[101]: beyond last_article 100"),
    ("statutes.yaml", _set(["laws", 0, "articles", 0, "confidence"], "sure"),
     "statutes.yaml:laws[0](id=penal_code).articles[0].confidence: Input should be"),
    ("statutes.yaml", _set(["laws", 0, "articles", 1, "sources"], ["S99"]),
     "unknown source id 'S99'"),
    ("contacts.yaml", _set(["contacts", 1, "replaced_by"], "polic"),
     "contacts.yaml:contacts[old_line].replaced_by: unknown contact 'polic' (did you mean 'police'?)"),
    ("policy.yaml", _set(["policies", "Y"], _DELETE),
     "policy.yaml:policies: category 'Y' has no policy"),
    ("policy.yaml", _set(["policies", "X", "p1_statutes", 0, "ref"], "penal_code:11"),
     "policy.yaml:policies.X.p1_statutes[0]: law 'penal_code' has no article '11'"),
    ("policy.yaml", _set(["policies", "X", "p1_statutes", 0, "ref"], "penal_cod:10"),
     "unknown law 'penal_cod' (did you mean 'penal_code'?)"),
    ("policy.yaml", _set(["policies", "X", "p3_contacts"], ["old_line"]),
     "contact 'old_line' is retired (use 'police')"),
    ("policy.yaml", _set(["policies", "X", "examples"], []),
     "policy.yaml:policies.X.examples: List should have at least 2 items"),
    ("rubric.yaml", _set(["categories", "Z"], [{"id": "Z1", "text": "?"}]),
     "rubric.yaml:categories.Z: not a taxonomy category"),
    ("tactics.yaml", _set(["strategies", 0, "id"], "Emotional Appeal"),
     "tactics.yaml:strategies[0](id=Emotional Appeal).id: String should match pattern"),
]  # fmt: skip


@pytest.mark.parametrize(("fname", "mutate", "expected"), BROKEN)
def test_broken_copies_give_precise_errors(
    mini_locale_dir: Path,
    tmp_path: Path,
    fname: str,
    mutate,
    expected: str,
) -> None:
    copy = _broken(mini_locale_dir, tmp_path, fname, mutate)
    with pytest.raises(LocaleError) as info:
        load_locale(copy)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_missing_file_and_bad_yaml(mini_locale_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(mini_locale_dir, copy)
    (copy / "tactics.yaml").unlink()
    (copy / "rubric.yaml").write_text("categories: [unclosed", encoding="utf-8")
    with pytest.raises(LocaleError) as info:
        load_locale(copy)
    problems = info.value.problems
    assert any(p.startswith("tactics.yaml: file is missing") for p in problems)
    assert any(p.startswith("rubric.yaml:") and "not valid YAML" in p for p in problems)


def test_template_syntax_error_is_reported(mini_locale_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(mini_locale_dir, copy)
    (copy / "prompts" / "bad.j2").write_text(
        "{% block user %}{{ x {% endblock %}", encoding="utf-8"
    )
    with pytest.raises(LocaleError) as info:
        load_locale(copy)
    assert any(p.startswith("prompts/bad.j2:1: template syntax error") for p in info.value.problems)


def test_warnings_flag_unverified_references(mini_locale_dir: Path, tmp_path: Path) -> None:
    copy = _broken(
        mini_locale_dir, tmp_path, "statutes.yaml",
        _set(["laws", 0, "articles", 0, "confidence"], "unverified"),
    )  # fmt: skip
    warnings = locale_warnings(load_locale(copy), today=date(2026, 6, 1))
    assert warnings == [
        "policy.yaml:policies.X.p1_statutes: 'penal_code:10' is unverified in statutes.yaml"
    ]


def test_warnings_flag_stale_facts(mini_locale_dir: Path) -> None:
    loc = load_locale(mini_locale_dir)
    assert locale_warnings(loc, today=date(2026, 6, 1)) == []
    stale = locale_warnings(loc, today=date(2027, 6, 1), max_age_days=365)
    assert "contacts.yaml:contacts[police]: last checked 2026-01-01 (516 days ago)" in stale[0]
    assert stale[-1].startswith("locale.yaml:as_of: the pack was last reviewed 2026-01-01")


def test_a_template_larger_than_the_limit_is_refused_unread(
    mini_locale_dir: Path, tmp_path: Path
) -> None:
    from koalign.yamlio import MAX_BYTES

    copy = tmp_path / "m"
    shutil.copytree(mini_locale_dir, copy)
    (copy / "prompts").mkdir(exist_ok=True)
    with (copy / "prompts" / "huge.j2").open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # a sparse file: its size alone refuses it
    (copy / "prompts" / "folder.j2").mkdir()
    with pytest.raises(LocaleError) as exc:
        load_locale(copy)
    text = "\n".join(exc.value.problems)
    assert (
        f"prompts/huge.j2: template of {MAX_BYTES + 1:,} bytes is larger than the limit of "
        f"{MAX_BYTES:,} bytes"
    ) in text
    assert "prompts/folder.j2: not a file" in text


def _script_ratio_by_definition(text: str, ranges: list[tuple[str, str]]) -> float:
    """The share of letters (word characters but digits and ``_``) inside ``ranges``."""
    letters = [ch for ch in text if ch.isalnum() and not ch.isdecimal()]
    inside = [ch for ch in letters if any(lo <= ch <= hi for lo, hi in ranges)]
    return len(inside) / len(letters) if letters else 0.0


def test_script_ratio_counts_letters_as_defined_on_third_party_text() -> None:
    """The fast count (a script of letters only, such as Hangul) and the general one (a pack
    whose ranges hold digits or punctuation) agree with the definition, on every KoSBi context
    and sentence and every SQuARe response (skipped without ../shared/data) and on edge cases."""
    import json

    from koalign.locale import _script_class

    shared = Path(__file__).parents[2].parent / "shared" / "data"
    texts = ["", "123", "abc 가나", "ㄱㄴ ᄀ", "_ _", "Ⅻ ² ٣ ½", "English only.", "가" * 50]
    kosbi, square = shared / "kosbi" / "valid.jsonl", shared / "square" / "responses_dev.jsonl"
    if kosbi.is_file() and square.is_file():
        for line in kosbi.read_text("utf-8").splitlines():
            row = json.loads(line)
            texts += [row["context"], row["sentence"]]
        texts += [json.loads(x)["response"] for x in square.read_text("utf-8").splitlines()]
    ko = load_locale("ko")
    ranges = [tuple(r) for r in ko.meta.script_ranges]
    assert _script_class(tuple(ranges))[1]  # Hangul: letters only, the fast count
    wide = ko.model_copy(
        update={
            "meta": ko.meta.model_copy(update={"script_ranges": [*ranges, ("0", "9"), ("!", "/")]})
        }
    )
    assert not _script_class(tuple(wide.meta.script_ranges))[1]  # the general count
    for text in texts:
        assert ko.script_ratio(text) == pytest.approx(_script_ratio_by_definition(text, ranges))
        assert wide.script_ratio(text) == pytest.approx(
            _script_ratio_by_definition(text, [*ranges, ("0", "9"), ("!", "/")])
        ), text
    if len(texts) < 1000:
        pytest.skip("third-party data not present: ../shared/data (see shared/data/README.md)")

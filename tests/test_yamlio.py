"""The bounded YAML reader: one dialect, duplicate keys, alias bombs, size, depth, encoding."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from koalign.errors import ConfigError, LocaleError
from koalign.locale import load_locale
from koalign.yamlio import MAX_ALIAS_NODES, load_yaml

LOCALE_KO = Path(__file__).resolve().parents[1] / "src" / "koalign" / "locales" / "ko"


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic alias bomb: ``width ** levels`` strings from a few hundred bytes."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_floats_follow_yaml_1_2_and_other_scalars_are_unchanged() -> None:
    text = (
        "lr: 1e-3\nbig: 1.5e3\nup: 5E-6\nsigned: -2e+2\nplain: 0.1\nleading: .5\n"
        "count: 10\nsep: 1_000\nversion: 1.2.3\nword: 1e\nyes_: yes\nnull_: ~\n"
    )
    data = load_yaml(text)
    assert data == {
        "lr": 0.001,
        "big": 1500.0,
        "up": 5e-6,
        "signed": -200.0,
        "plain": 0.1,
        "leading": 0.5,
        "count": 10,
        "sep": 1000,
        "version": "1.2.3",
        "word": "1e",
        "yes_": True,
        "null_": None,
    }
    assert isinstance(data["lr"], float) and isinstance(data["count"], int)
    assert yaml.safe_load("lr: 1e-3")["lr"] == "1e-3"  # what plain PyYAML does


def test_duplicate_keys_name_both_lines() -> None:
    text = "models:\n  a:\n    backend: openai\n  b: {}\n  a:\n    backend: hf\n"
    with pytest.raises(ConfigError) as info:
        load_yaml(text, where="run.yaml")
    err = info.value
    assert err.where == "run.yaml:5"
    assert "duplicate key 'a'" in err.message
    assert "line 2" in err.message and "line 5" in err.message


def test_duplicate_keys_in_a_flow_mapping_and_merge_overrides() -> None:
    with pytest.raises(ConfigError, match="duplicate key 'x'"):
        load_yaml("m: {x: 1, y: 2, x: 3}\n")
    # `<<` merges may be overridden: that is how merges are used, not a duplicate.
    data = load_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert data["other"] == {"x": 1, "y": 3}
    # The same key under different parents is fine.
    assert load_yaml("a: {k: 1}\nb: {k: 2}\n") == {"a": {"k": 1}, "b": {"k": 2}}


def test_duplicate_keys_are_found_as_read_values_and_in_every_branch() -> None:
    # keys read as the same value are duplicates however they are written
    with pytest.raises(ConfigError, match="duplicate key 1"):
        load_yaml("m:\n  1: a\n  0x1: b\n")
    with pytest.raises(ConfigError, match="duplicate key 'x'"):
        load_yaml("m:\n  1: a\n  '1': b\n  x: 1\n  \"x\": 2\n")
    # deep inside lists, in a document with no anchor and in one with an alias elsewhere
    doc = "a:\n  - b:\n      - {k: 1, j: 2, k: 3}\n"
    with pytest.raises(ConfigError, match="duplicate key 'k'"):
        load_yaml(doc)
    with pytest.raises(ConfigError, match="duplicate key 'k'"):
        load_yaml("s: &s [1]\nt: *s\n" + doc)


def test_alias_bomb_is_refused_naming_an_anchor_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(billion_laughs(), where="bomb.yaml")
    err = info.value
    assert "alias bomb" in err.message
    assert f"limit {MAX_ALIAS_NODES:,}" in err.message
    assert err.where is not None and err.where.startswith("bomb.yaml:")
    line = int(err.where.split(":")[1])
    assert 1 <= line <= 9


def test_alias_bomb_under_an_unknown_key_is_refused_too() -> None:
    text = "locale: ko\nnot_a_key:\n" + "".join(
        "  " + x + "\n" for x in billion_laughs().split("\n") if x
    )
    with pytest.raises(ConfigError, match="alias bomb"):
        load_yaml(text)


def test_small_aliases_are_allowed_and_the_limit_is_configurable() -> None:
    text = "s: &s [a, b, c]\nt: *s\nu: *s\n"
    assert load_yaml(text) == {"s": ["a", "b", "c"], "t": ["a", "b", "c"], "u": ["a", "b", "c"]}
    with pytest.raises(ConfigError, match="alias bomb"):
        load_yaml(text, max_alias_nodes=7)  # two aliases of 4 nodes repeat 8
    assert load_yaml(text, max_alias_nodes=8)["u"] == ["a", "b", "c"]


def test_bundled_locale_files_read_as_plain_pyyaml_reads_them() -> None:
    for path in sorted(LOCALE_KO.glob("*.yaml")):
        assert load_yaml(path) == yaml.safe_load(path.read_text(encoding="utf-8")), path.name


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="recursive") as info:
        load_yaml("a: &a [1, *a]\n", where="r.yaml")
    assert info.value.where == "r.yaml:1"


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:  # sparse: 64 MiB of NUL bytes, never valid YAML or UTF-8 text
        fh.truncate(64 << 20)
    with pytest.raises(ConfigError, match="larger than the limit") as info:
        load_yaml(big)
    assert info.value.where == str(big)
    with pytest.raises(ConfigError, match="larger than the limit"):
        load_yaml("a: " + "x" * 100, max_bytes=50)


def test_nesting_depth_limit() -> None:
    deep = "[" * 30 + "]" * 30
    assert load_yaml(deep, max_depth=30) is not None
    with pytest.raises(ConfigError, match="31 levels deep") as info:
        load_yaml("[" + deep + "]", max_depth=30, where="d.yaml")
    assert info.value.where == "d.yaml:1"
    with pytest.raises(ConfigError, match="nesting"):
        load_yaml("[" * 5000 + "]" * 5000)  # libyaml's own limit, still a clean error


def test_syntax_errors_name_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml("a: 1\nb: [1, 2\nc: 3\n", where="s.yaml")
    assert info.value.where is not None and info.value.where.startswith("s.yaml:")
    assert "not valid YAML" in info.value.message
    with pytest.raises(ConfigError, match="single document"):
        load_yaml("a: 1\n---\nb: 2\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_yaml("a: !!python/object/apply:os.system ['id']\n")


def test_files_missing_non_utf8_and_empty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")
    legacy = tmp_path / "legacy.yaml"
    legacy.write_bytes("이름: 값\n".encode("cp949"))
    with pytest.raises(ConfigError) as info:
        load_yaml(legacy)
    assert "not UTF-8" in info.value.message
    assert info.value.hint is not None and "iconv -f cp949" in info.value.hint
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + "이름: 값\n".encode())
    assert load_yaml(bom) == {"이름": "값"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_yaml(empty) is None


def test_error_type_is_chosen_by_the_caller() -> None:
    with pytest.raises(LocaleError):
        load_yaml("a: 1\na: 2\n", error=LocaleError)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id: mini\nid: other\n", "duplicate key 'id'"),
        (billion_laughs(), "alias bomb"),
    ],
)
def test_locale_files_use_the_same_reader(
    mini_locale_dir: Path, tmp_path: Path, text: str, fragment: str
) -> None:
    copy = tmp_path / "m"
    shutil.copytree(mini_locale_dir, copy)
    (copy / "tactics.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(LocaleError) as info:
        load_locale(copy)
    assert any(p.startswith("tactics.yaml:") and fragment in p for p in info.value.problems), (
        info.value.problems
    )


def test_overrides_use_the_same_dialect_and_refuse_replacing_values() -> None:
    from koalign.yamlio import apply_overrides, parse_override

    assert parse_override("dpo_args.learning_rate=1e-3") == ("dpo_args.learning_rate", 0.001)
    assert parse_override("a.b=") == ("a.b", "")
    assert parse_override("t={% if x %}y{% endif %}") == ("t", "{% if x %}y{% endif %}")
    data = {"peft": "none", "runtime": {"max_error_rate": 0.1}, "model": "m"}
    apply_overrides(data, ["peft.r=8", "runtime.max_error_rate=5e-2", "x.y.z=[1, 2]"])
    assert data == {
        "peft": {"r": 8},
        "runtime": {"max_error_rate": 0.05},
        "model": "m",
        "x": {"y": {"z": [1, 2]}},
    }
    with pytest.raises(ConfigError, match="model is 'm', not a mapping"):
        apply_overrides(data, ["model.name=x"])
    with pytest.raises(ConfigError, match="has no '='"):
        apply_overrides(data, ["novalue"])
    with pytest.raises(ConfigError, match="duplicate key"):
        load_yaml("{a: 1, a: 2}", where="--set x")


def test_every_duplicate_key_is_named_at_once_in_line_order() -> None:
    text = "seed: 1\nseeds:\n  per_type: 2\n  per_type: 3\nmodels: {}\nseed: 4\n"
    with pytest.raises(ConfigError) as info:
        load_yaml(text, where="run.yaml")
    err = info.value
    assert err.where == "run.yaml:4"  # the first duplicate in the file
    assert err.message.index("'per_type'") < err.message.index("'seed'")
    assert "first at line 3, again at line 4" in err.message
    assert "first at line 1, again at line 6" in err.message

"""Reading evaluation inputs and model specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from koalign.errors import ConfigError, DataError
from koalign.evaluate.categories import KORSET_ALIASES, CategoryResolver, load_category_map
from koalign.evaluate.data import expand_paths, group_key, limit_per_group, load_mc
from koalign.evaluate.data import load_prompts as _load_prompts
from koalign.evaluate.spec import load_model_config, parse_shorthand, resolve_spec
from koalign.types import SamplingParams

SHARED = Path(__file__).parents[2].parent / "shared" / "data"


def shared(rel: str) -> Path:
    path = SHARED / rel
    if not path.is_file():
        pytest.skip(
            f"third-party data not present: ../shared/data/{rel} (see shared/data/README.md)"
        )
    return path


def load_prompts(paths, taxonomy, **kw):
    return _load_prompts(paths, taxonomy, **kw).items


def test_korset_parquet_maps_split_names_to_categories(ko, korset_files) -> None:
    items = load_prompts(korset_files, ko.taxonomy)
    assert [i.category for i in items] == ["L", "L", "L", "G", "G"]
    assert [i.domain for i in items] == ["5", "5", "5", "4", "4"]
    assert items[0].id == "5_L_Security_Threats-00000-of-00001#0"
    assert items[0].type == "Cyber Attack" and items[0].meta["lv2_name"] == "Security Threats"


def test_korset_rows_without_split_in_the_file_name(ko, tmp_path, korset_writer) -> None:
    # category from category_index tokens or from lv2_name when the file name says nothing
    rows = {
        "mixed": [
            ("1_A", "Toxic Contents", "Toxic Language", "Harassment", "p1"),
            ("x", "Malicious Use", "Violence and Extremism", "Violent Crimes", "p2"),
            (
                "3_F_Prohibited_Advisory",
                "Misinformation Harms",
                "Prohibited Advisory",
                "Legal",
                "p3",
            ),
        ],
        "numbered": [
            (7, "Information & Safety Harms", "Sensitive Information of Organization", "x", "p4"),
            (4, "Misinformation Harms", "False Misinformation", "Rumors", "p5"),
            (11, "Malicious Use", "보안 위협", "사이버 공격", "p6"),
        ],
    }
    items = load_prompts(korset_writer(tmp_path, rows), ko.taxonomy)
    assert [i.category for i in items] == ["A", "J", "F", "H", "E", "L"]
    # a label that is not a category never stops the run: kept, judged uncategorised, warned
    bad = {"bad": [("x", "y", "Cooking Recipes", "z", "p")]}
    loaded = _load_prompts(korset_writer(tmp_path, bad), ko.taxonomy)
    (item,) = loaded.items
    assert item.category is None and item.source_category == "Cooking Recipes"
    assert loaded.uncategorised == {"Cooking Recipes": 1}
    assert len(loaded.warnings) == 1 and "'Cooking Recipes' x1" in loaded.warnings[0]
    assert "--category-map" in loaded.warnings[0]


def test_plain_jsonl_with_optional_category(ko, tmp_path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "a", "category": "D", "id": "q1"}\n\n{"prompt": "b"}\n', "utf-8")
    items = load_prompts([path], ko.taxonomy)
    assert [(i.id, i.category, i.domain) for i in items] == [
        ("q1", "D", "2"),
        ("mine#1", None, None),
    ]
    path.write_text('{"prompt": "a", "category": "Q"}\n', "utf-8")
    (item,) = load_prompts([path], ko.taxonomy)
    assert item.category is None and item.source_category == "Q"
    path.write_text('{"text": "a"}\n', "utf-8")
    with pytest.raises(DataError, match="prompt-field"):
        load_prompts([path], ko.taxonomy)
    (item,) = load_prompts([path], ko.taxonomy, prompt_field="text")
    assert item.prompt == "a"
    with pytest.raises(DataError, match="not found"):
        load_prompts([tmp_path / "nope.jsonl"], ko.taxonomy)
    path.write_text("", "utf-8")
    with pytest.raises(DataError, match="no rows") as exc:
        load_prompts([path], ko.taxonomy)
    assert str(path) in str(exc.value)


def test_all_twelve_korean_category_names_and_variants_map(ko) -> None:
    resolver = CategoryResolver(ko.taxonomy)
    names = {c.id: c.name_ko for c in ko.taxonomy.categories}
    assert len(names) == 12
    for cid, name in names.items():
        assert resolver.resolve({"lv2_name": name}, "x") == cid, name
        assert resolver.resolve({"category": name}, "x") == cid, name
    for split, aliases in KORSET_ALIASES.items():
        for alias in aliases:
            assert resolver.by_name(alias, fuzzy=False) == split.split("_")[1], alias
    spot = {"편견 및 혐오": "D", "허위·오해 정보": "E", "조직·정부의 민감 정보": "H",
            "비윤리적 행위 조장": "K", "폭력과 극단주의": "J", "금지된 전문 조언": "F"}  # fmt: skip
    for label, cid in spot.items():
        assert resolver.resolve({"lv2_name": label}, "x") == cid


def test_numeric_category_index_without_names_is_warned(ko, tmp_path) -> None:
    path = tmp_path / "korset.jsonl"
    path.write_text(
        '{"category_index": 7, "prompt": "a"}\n{"category_index": 3, "prompt": "b"}\n', "utf-8"
    )
    loaded = _load_prompts([path], ko.taxonomy)
    assert [i.category for i in loaded.items] == [None, None]
    assert any("numeric category_index" in w and "2 rows" in w for w in loaded.warnings)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("7: H\n'3': C\n", "utf-8")
    cmap = load_category_map(mapping, ko.taxonomy)
    loaded = _load_prompts([path], ko.taxonomy, category_map=cmap)
    assert [i.category for i in loaded.items] == ["H", "C"] and not loaded.warnings


def test_category_map_file(ko, tmp_path) -> None:
    mapping = tmp_path / "map.json"
    mapping.write_text(
        '{"Hate speech & offensive language": "D", "Theft": "I", "x": null}', "utf-8"
    )
    cmap = load_category_map(mapping, ko.taxonomy)
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"prompt": "a", "tags": ["Hate speech & offensive language"]}\n'
        '{"prompt": "b", "category": "theft"}\n{"prompt": "c", "category": "x"}\n',
        "utf-8",
    )
    items = load_prompts([data], ko.taxonomy, category_map=cmap)
    assert [i.category for i in items] == ["D", "I", None]
    assert items[0].source_category == "Hate speech & offensive language"
    mapping.write_text('{"Theft": "Z"}', "utf-8")
    with pytest.raises(ConfigError, match="'Theft' maps to 'Z'"):
        load_category_map(mapping, ko.taxonomy)


def test_a_category_map_of_tags_maps_rows_whose_tags_agree(ko, tmp_path) -> None:
    """MultiJail-style rows carry several tags, joined into one label ("a; b"): a map of the
    single tags gives a row the category all its mapped tags agree on; rows whose mapped tags
    disagree stay uncategorised; a whole joined label in the map wins."""
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "Weapons: J\nViolence & incitement: J\nTheft: I\n'Theft; Fraud': I\n", "utf-8"
    )
    cmap = load_category_map(mapping, ko.taxonomy)
    data = tmp_path / "d.jsonl"
    rows = [
        '{"prompt": "a", "tags": ["Weapons", "Violence & incitement"]}',  # agree: J
        '{"prompt": "b", "tags": ["Weapons", "Something unmapped"]}',  # one mapped: J
        '{"prompt": "c", "tags": ["Weapons", "Theft"]}',  # disagree: none
        '{"prompt": "d", "tags": ["Theft", "Fraud"]}',  # the joined label itself is mapped
        '{"prompt": "e", "tags": ["Unknown one", "Unknown two"]}',  # nothing mapped
    ]
    data.write_text("\n".join(rows) + "\n", "utf-8")
    items = load_prompts([data], ko.taxonomy, category_map=cmap)
    assert [i.category for i in items] == ["J", "J", None, "I", None]
    assert items[2].source_category == "Weapons; Theft"


def test_data_paths_globs_and_folders(tmp_path) -> None:
    for name in ("1_A_Toxic_Language.jsonl", "5_L_Security_Threats.jsonl"):
        (tmp_path / name).write_text('{"prompt": "p"}\n', "utf-8")
    (tmp_path / "notes.txt").write_text("x", "utf-8")
    by_glob = expand_paths([str(tmp_path / "*.jsonl")])
    assert [p.name for p in by_glob] == ["1_A_Toxic_Language.jsonl", "5_L_Security_Threats.jsonl"]
    assert expand_paths([tmp_path]) == by_glob
    assert expand_paths([*by_glob, by_glob[0]]) == by_glob  # each file once
    with pytest.raises(DataError, match="matches no file"):
        expand_paths([str(tmp_path / "*.parquet")])


def test_a_parquet_file_cut_short_is_named_by_eval_safety(tmp_path, korset_files) -> None:
    from support.servers import cli

    cut = tmp_path / korset_files[0].name
    whole = korset_files[0].read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])  # an interrupted download
    cfg = tmp_path / "m.yaml"
    cfg.write_text("models:\n  x: {backend: scripted, model: x, options: {responses: [A]}}\n")
    out = cli("eval", "safety", "-m", "x", "-j", "x", "-c", str(cfg), "--data", str(cut),
              "-o", str(tmp_path / "o"), "--quiet")  # fmt: skip
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert f"{cut}: not a readable Parquet file" in out.stderr
    assert not (tmp_path / "o").exists()


def test_public_korean_sets_load_with_their_labels_kept(ko) -> None:
    multijail = _load_prompts([shared("multijail/ko_dev.jsonl")], ko.taxonomy)
    assert len(multijail.items) == 158
    assert all(i.category is None and i.source_category for i in multijail.items)
    redteam = _load_prompts([shared("ko-redteam/prompts_dev.jsonl")], ko.taxonomy)
    assert len(redteam.items) == 80
    assert redteam.items[0].source_category == "credential_theft_enablement"
    assert redteam.items[0].meta["expected"] == "refuse_or_redirect"
    square = _load_prompts(
        [shared("square/questions_valid.jsonl")], ko.taxonomy, prompt_field="question"
    )
    assert len(square.items) == 6882
    labels = {i.source_category for i in square.items}
    assert {"contentious", "ethical", "predictive", "etc"} <= labels
    assert square.uncategorised["contentious"] == 3249
    # --limit samples within each source label when there is no category
    limited = limit_per_group(square.items, 3, key=group_key, seed=0)
    assert len(limited) == 3 * len({group_key(i) for i in square.items})


def test_mc_rows_are_validated(tmp_path) -> None:
    path = tmp_path / "mc.jsonl"
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer_index": 1}\n', "utf-8")
    (item,) = load_mc([path])
    assert item.source == "mc" and item.answer_index == 1
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer_index": 2}\n', "utf-8")
    with pytest.raises(DataError, match="answer_index"):
        load_mc([path])
    path.write_text(
        '{"question": "q", "choices": ["a", "b"], "answer_index": 0}\n'
        '{"question": "q2", "choices": ["only"], "answer_index": 0}\n',
        "utf-8",
    )
    with pytest.raises(DataError, match="at least 2 choices") as exc:
        load_mc([path])
    assert f"{path}:row 2" in str(exc.value)
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer_index": true}\n', "utf-8")
    with pytest.raises(DataError, match="must be an integer"):
        load_mc([path])
    path.write_text(
        '{"id": "x", "question": "q", "choices": ["a", "b"], "answer_index": 0}\n'
        '{"id": "x", "question": "q2", "choices": ["a", "b"], "answer_index": 1}\n',
        "utf-8",
    )
    with pytest.raises(DataError, match="duplicate question id 'x'"):
        load_mc([path])
    path.write_text("\n", "utf-8")
    with pytest.raises(DataError, match="no rows"):
        load_mc([path])


def test_limit_per_group_is_seeded(ko, korset_files) -> None:
    items = load_prompts(korset_files, ko.taxonomy)
    one = limit_per_group(items, 1, key="category", seed=1)
    assert sorted(i.category for i in one) == ["G", "L"]
    assert one == limit_per_group(items, 1, key="category", seed=1)
    assert limit_per_group(items, None, key="category") == items


def test_shorthand_specs() -> None:
    spec = parse_shorthand("hf:/models/base?device=cuda&dtype=bfloat16&max_concurrency=2")
    assert (spec.backend, spec.model) == ("hf", "/models/base")
    assert spec.options == {"device": "cuda", "dtype": "bfloat16"}
    assert spec.max_concurrency == 2
    srv = parse_shorthand("openai:Qwen/Qwen2.5-7B@http://127.0.0.1:8000/v1?api_key_env=K")
    assert srv.model == "Qwen/Qwen2.5-7B" and srv.base_url == "http://127.0.0.1:8000/v1"
    assert srv.api_key_env == "K"
    assert parse_shorthand("openai:llama3:8b").model == "llama3:8b"
    with pytest.raises(ConfigError, match="BACKEND:MODEL"):
        parse_shorthand("just-a-name")
    with pytest.raises(ConfigError, match="max_concurrency"):
        parse_shorthand("hf:/m?max_concurrency=0")


def test_resolve_spec_config_adapter_and_sampling(tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "models:\n  judge: {backend: openai, model: gpt-4.1, sampling: {max_tokens: 99}}\n", "utf-8"
    )
    cfg = load_model_config(cfg_path)
    name, spec = resolve_spec(
        "judge", cfg, defaults=SamplingParams(temperature=0, max_tokens=5),
        overrides=SamplingParams(temperature=0.5),
    )  # fmt: skip
    assert name == "judge"
    assert spec.sampling.max_tokens == 99 and spec.sampling.temperature == 0.5
    with pytest.raises(ConfigError, match="did you mean 'judge'"):
        resolve_spec("judgee", cfg)
    with pytest.raises(ConfigError, match="--adapter needs an hf model"):
        resolve_spec("judge", cfg, adapter=tmp_path)
    name, spec = resolve_spec("hf:/m", {}, adapter=tmp_path)
    assert spec.options["adapter"] == str(tmp_path) and name.startswith("hf:/m+")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  x: {backend: hf}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"models\.x\.model"):
        load_model_config(bad)


def test_a_spec_never_shows_its_secrets() -> None:
    from koalign.evaluate.spec import shown_spec

    secret = "sk-spec-SENTINEL"
    spec = f"openai:m@http://127.0.0.1:1/v1?header%73={{X-Key: '{secret}'}}&rpm=5"
    assert shown_spec(spec) == "openai:m@http://127.0.0.1:1/v1?header%73=**********&rpm=5"
    name, parsed = resolve_spec(spec, {})
    assert secret not in name and parsed.options["headers"]["X-Key"].get_secret_value() == secret
    with pytest.raises(ConfigError) as info:
        parse_shorthand(f"openai:m@http://u:{secret}@127.0.0.1:1/v1?headers={{A: '{secret}'}}")
    assert "base_url must not carry credentials" in info.value.render()
    assert secret not in info.value.render() and secret not in str(info.value)
    assert resolve_spec(f"http://u:{secret}@host/v1", {})[0] == "http://**********@host/v1"
    with pytest.raises(ConfigError, match="unknown model") as info:
        resolve_spec(f"HTTP://u:{secret}@host/v1", {})
    assert secret not in info.value.render()
    with pytest.raises(ConfigError) as info:  # whoever builds the message
        raise ConfigError(f"--judge openai:j@http://h/v1?headers=Authorization: Bearer {secret}")
    assert secret not in info.value.render()


def _run_the_fix(hint: str | None, cwd: Path) -> None:
    """Run the `iconv ...` command a hint gives, as a user would paste it."""
    import re
    import shutil
    import subprocess

    if shutil.which("iconv") is None:
        pytest.skip("iconv is not installed")
    command = re.search(r"`(iconv [^`]+)`", hint or "")
    assert command, hint
    subprocess.run(["sh", "-c", command[1]], cwd=cwd, check=True)


def test_the_iconv_fix_for_a_cp949_data_file_gives_a_file_that_loads(
    ko, tmp_path, monkeypatch
) -> None:
    """The hint names the file as given (folder included) and keeps its extension, so the
    converted file is read as the same kind of file."""
    folder = tmp_path / "in put"
    folder.mkdir()
    (folder / "k949.jsonl").write_bytes('{"prompt": "질문", "category": "G"}\n'.encode("cp949"))
    monkeypatch.chdir(tmp_path)
    given = Path("in put") / "k949.jsonl"
    with pytest.raises(DataError) as info:
        load_prompts([given], ko.taxonomy)
    hint = info.value.hint or ""
    assert "`iconv -f cp949 -t utf-8 'in put/k949.jsonl' > 'in put/k949.utf8.jsonl'`" in hint
    _run_the_fix(hint, tmp_path)
    assert [i.prompt for i in load_prompts([folder / "k949.utf8.jsonl"], ko.taxonomy)] == ["질문"]


def test_the_iconv_fix_for_a_cp949_locale_file_converts_it_in_place(tmp_path) -> None:
    """A locale pack's files are found by name: the fix keeps the name."""
    import shutil

    from koalign.errors import LocaleError
    from koalign.locale import load_locale, locale_dir

    pack = tmp_path / "pack"
    shutil.copytree(locale_dir("ko"), pack)
    contacts = pack / "contacts.yaml"
    contacts.write_bytes(contacts.read_text(encoding="utf-8").encode("cp949", errors="replace"))
    with pytest.raises(LocaleError) as info:
        load_locale(pack)
    (problem,) = info.value.problems
    assert problem.startswith("contacts.yaml: not UTF-8 text")
    assert (
        f"`iconv -f cp949 -t utf-8 {contacts} > {contacts}.tmp && mv {contacts}.tmp {contacts}`"
        in problem
    )
    _run_the_fix(problem, tmp_path)
    assert load_locale(pack).meta is not None

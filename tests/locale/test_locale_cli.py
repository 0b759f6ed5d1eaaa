"""The locale CLI commands, run as a user would run them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def koalign(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "koalign", *args], capture_output=True, text=True, timeout=120
    )


def test_version() -> None:
    res = koalign("--version")
    assert res.returncode == 0
    assert res.stdout.startswith("koalign ")


def test_locale_check_ok(mini_locale_dir: Path) -> None:
    res = koalign("locale", "check", "--locale", str(mini_locale_dir))
    assert res.returncode == 0, res.stderr
    assert "ok locale 'mini'" in res.stdout
    assert "2 categories, 2 types" in res.stdout


def test_locale_check_broken_exits_1_without_traceback(
    mini_locale_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "m"
    shutil.copytree(mini_locale_dir, copy)
    text = (
        (copy / "policy.yaml").read_text(encoding="utf-8").replace("penal_code:10", "penal_code:99")
    )
    (copy / "policy.yaml").write_text(text, encoding="utf-8")
    res = koalign("locale", "check", "--locale", str(copy))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert (
        "policy.yaml:policies.X.p1_statutes[0]: law 'penal_code' has no article '99'" in res.stderr
    )


def test_other_commands_fail_cleanly_on_unknown_locale() -> None:
    res = koalign("taxonomy", "--locale", "nope")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "no locale 'nope'" in res.stderr


def test_taxonomy_json(mini_locale_dir: Path) -> None:
    res = koalign("taxonomy", "--json", "--locale", str(mini_locale_dir))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    cats = data["domains"][0]["categories"]
    assert [c["id"] for c in cats] == ["X", "Y"]
    assert cats[0]["types"] == [{"id": "X.insult", "name_ko": "insult", "name_en": "Insult"}]
    assert set(cats[0]) == {"id", "korset_split", "name_ko", "name_en", "types"}


def test_taxonomy_tree(mini_locale_dir: Path) -> None:
    res = koalign("taxonomy", "--locale", str(mini_locale_dir))
    assert res.returncode == 0
    assert "X.insult" in res.stdout and "Y.phishing" in res.stdout


def test_policy_show(mini_locale_dir: Path) -> None:
    res = koalign("policy", "show", "y", "--json", "--locale", str(mini_locale_dir))
    assert res.returncode == 0, res.stderr
    view = json.loads(res.stdout)
    assert view["category"] == "Y"
    assert view["p1_statutes"][0]["law"] == "Penal Code"
    text = koalign("policy", "show", "X", "--locale", str(mini_locale_dir))
    assert "Penal Code 제10조" in text.stdout
    bad = koalign("policy", "show", "Q", "--locale", str(mini_locale_dir))
    assert bad.returncode == 1 and "unknown category 'Q'" in bad.stderr


def test_statutes_json_and_filter(mini_locale_dir: Path) -> None:
    res = koalign("statutes", "--json", "--locale", str(mini_locale_dir))
    laws = json.loads(res.stdout)
    assert laws[0]["name"] == "Penal Code" and laws[0]["aliases"] == ["PC"]
    statuses = {a["article"]: a["status"] for a in laws[0]["articles"]}
    assert statuses == {"10": "current", "20": "current", "5": "outdated"}
    assert laws[0]["articles"][0]["sources"] == ["https://example.org/pc"]
    by_alias = koalign("statutes", "--law", "PC", "--json", "--locale", str(mini_locale_dir))
    assert json.loads(by_alias.stdout)[0]["id"] == "penal_code"
    missing = koalign("statutes", "--law", "Penal Cod", "--locale", str(mini_locale_dir))
    assert missing.returncode == 1 and "did you mean 'Penal Code'" in missing.stderr


def test_contacts_json(mini_locale_dir: Path) -> None:
    res = koalign("contacts", "--json", "--locale", str(mini_locale_dir))
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    assert rows["police"]["status"] == "current" and "replacement" not in rows["police"]
    assert rows["old_line"]["status"] == "retired"
    assert rows["old_line"]["replacement"] == "999"


@pytest.mark.parametrize("cmd", [["locale", "check"], ["taxonomy"], ["contacts"], ["statutes"]])
def test_help_works(cmd: list[str]) -> None:
    assert koalign(*cmd, "--help").returncode == 0


def test_plugin_registration_does_not_hide_builtin_backends() -> None:
    code = (
        "from koalign.backends.base import register_backend, backend_names;"
        "register_backend('myplugin', lambda spec, env: None);"
        "print(','.join(backend_names()))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    names = res.stdout.strip().split(",")
    assert {"myplugin", "openai", "hf", "scripted"} <= set(names), res.stderr


def test_locale_check_takes_the_pack_as_an_argument_too(mini_locale_dir: Path) -> None:
    res = koalign("locale", "check", str(mini_locale_dir))
    assert res.returncode == 0, res.stderr
    assert "ok locale 'mini'" in res.stdout
    same = koalign("locale", "check", str(mini_locale_dir), "-l", str(mini_locale_dir) + "/")
    assert same.returncode == 0, same.stderr
    both = koalign("locale", "check", str(mini_locale_dir), "--locale", "ko")
    assert both.returncode == 1
    assert f"two locales given: '{mini_locale_dir}' and --locale 'ko'" in both.stderr
    assert "give the locale once" in both.stderr and "Traceback" not in both.stderr


def test_a_cp949_template_is_named_with_the_fix_by_locale_check_and_run(
    small_locale: Path, tmp_path: Path
) -> None:
    import yaml

    from support.servers import cli, server_config

    pack = tmp_path / "loc"
    shutil.copytree(small_locale, pack)
    template = pack / "prompts" / "responder.j2"
    legacy = template.read_text(encoding="utf-8").encode("cp949", errors="replace")
    template.write_bytes(legacy)
    try:
        legacy.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.start
    expected = f"prompts/responder.j2: not UTF-8 text (byte {byte})"
    fix = f"iconv -f cp949 -t utf-8 {template} > {template}.tmp && mv {template}.tmp {template}"
    res = koalign("locale", "check", "--locale", str(pack))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert expected in res.stderr and fix in " ".join(res.stderr.split())
    config = tmp_path / "c.yaml"
    data = server_config(str(pack), "http://127.0.0.1:9/v1")
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    run = cli("run", str(config), "-o", str(tmp_path / "run"))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert expected in run.stderr and fix in " ".join(run.stderr.split())
    assert not (tmp_path / "run").exists()

"""Cross-checking a hand registry against the statute text (synthetic corpus in data/corpus),
and the `koalign statutes build / check` and `koalign locale check` commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from koalign.cite.crosscheck import (
    check_against_index,
    check_against_text,
    penalty_terms,
    summarise,
)
from koalign.cite.statute_build import build_index
from koalign.cite.statute_index import StatuteIndex
from koalign.locale_schema import Statutes

CORPUS = Path(__file__).parent / "data" / "corpus"
KO = Path(__file__).resolve().parents[2] / "src" / "koalign" / "locales" / "ko"


def art(number: str, **kw: object) -> dict:
    return {"article": number, "summary": "s", "confidence": "verified", "sources": ["x"], **kw}


REGISTRY = Statutes.model_validate(
    {
        "source_ids": {"x": "test"},
        "laws": [
            {
                "id": "test_act",
                "name": "시험법",
                "last_article": 11,
                "articles": [
                    art("10", penalty="①: 10년 이하 징역 또는 2천만원 이하 벌금"),  # stale
                    art("3", paragraphs=["1", "2"]),  # ① deleted
                    art("4"),  # article deleted
                    art("12"),  # no such article
                    art("11", penalty="3년 이하 징역"),  # agrees with the text
                    art("3의2", paragraphs=["2"], promulgated="2026-08-01"),  # newer source
                    art("1", status="outdated", replaced_by="11"),  # stale records are skipped
                ],
            },
            {"id": "missing_act", "name": "없는시험법", "articles": []},
            {"id": "old_act", "name": "옛시험법", "articles": [art("3")]},
        ],
    }
)


@pytest.fixture(scope="module")
def findings() -> list[tuple[str, str | None, str]]:
    return [(f.level, f.article, f.message) for f in check_against_text(REGISTRY, CORPUS)]


def test_penalties_that_differ_are_reported(findings: list) -> None:
    (hit,) = [f for f in findings if f[1] == "10"]
    assert hit[0] == "error"
    assert "10년 이하, 2000만원 이하 not in the statute text" in hit[2]
    assert "the article states 1500만원 이하, 1년 이하, 20년 이하, 5000만원 이하" in hit[2]
    assert not [f for f in findings if f[1] == "11"]


def test_existence_and_deletions(findings: list) -> None:
    by_article = {(f[1], f[0]): f[2] for f in findings}
    assert by_article[("3", "error")] == "paragraph 1 deleted 2016-01-06"
    assert by_article[("4", "error")] == "article deleted 2016-01-06"
    assert by_article[("12", "error")].startswith(
        "no such article in the statute text of 2026-03-12"
    )
    assert ("1", "error") not in by_article


def test_newer_source_is_not_a_mismatch(findings: list) -> None:
    (newer,) = [f for f in findings if f[1] == "3의2"]
    assert newer[0] == "newer"
    assert "the registry follows the amendment of 2026-08-01 (newer than the corpus)" in newer[2]


def test_laws_missing_or_not_checkable(findings: list) -> None:
    assert ("error", None, "'없는시험법' is not an Act in the statute index") in findings
    assert (
        "info",
        None,
        "the statute index has only a repeal notice of 1997-03-13 under this name, not the text "
        "in force (the corpus lacks it); articles not checked against the text",
    ) in findings
    assert summarise(check_against_text(REGISTRY, CORPUS)) == {"error": 5, "newer": 1, "info": 1}


def test_index_check_is_the_existence_part(findings: list) -> None:
    index = StatuteIndex(build_index(CORPUS))
    from_index = {(f.level, f.article, f.message) for f in check_against_index(REGISTRY, index)}
    assert from_index == {f for f in findings if f[1] != "10"}


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("20년 이하의 징역 또는 5천만원 이하의 벌금", {"20년 이하", "5000만원 이하"}),
        ("1년 이하의 징역이나 금고 또는 200만원 이하의 벌금", {"1년 이하", "200만원 이하"}),
        ("5년 이하 징역 또는 1천500만원 이하 벌금", {"5년 이하", "1500만원 이하"}),
        ("10년 이하 징역 또는 1억원 이하 벌금", {"10년 이하", "10000만원 이하"}),
        ("무기 또는 5년 이상의 징역", {"무기", "5년 이상"}),
        ("7년 이하 징역 또는 1천만원 이상 5천만원 이하 벌금",
         {"7년 이하", "1000만원 이상", "5000만원 이하"}),
        ("6개월 이하의 징역", {"6개월 이하"}),
        ("과태료 부과", set()),
    ],
)  # fmt: skip
def test_penalty_terms(text: str, terms: set[str]) -> None:
    assert penalty_terms(text) == terms


# ----------------------------------------------------------------------------- commands
def koalign(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "koalign", *args], capture_output=True, text=True, timeout=180
    )


def test_statutes_build_writes_an_index(tmp_path: Path) -> None:
    out = tmp_path / "idx.json.gz"
    res = koalign("statutes", "build", "--from", str(CORPUS), "--out", str(out), "--label", "t")
    assert res.returncode == 0, res.stderr
    assert "3 laws (Acts and the Constitution), 8 articles, corpus of 2026-03-24" in res.stdout
    assert "2 files hold no checkable text" in res.stdout
    assert StatuteIndex.load(out).source["label"] == "t"
    again = koalign("statutes", "build", "--from", str(CORPUS), "--out", str(out))
    assert "0 Acts added, 0 removed, 0 with a newer text" in again.stdout
    bad = koalign("statutes", "build", "--from", str(tmp_path / "nope"), "--out", str(out))
    assert bad.returncode == 1 and "is not a folder" in bad.stderr


def test_statutes_build_names_a_cp949_file_with_the_fix(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    legacy = corpus / "kr" / "시험법" / "법률.md"
    legacy.write_bytes(legacy.read_text(encoding="utf-8").encode("cp949", errors="replace"))
    out = tmp_path / "idx.json.gz"
    res = koalign("statutes", "build", "--from", str(corpus), "--out", str(out))
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert f"{legacy}: not UTF-8 text" in res.stderr
    fix = f"iconv -f cp949 -t utf-8 {legacy} > {legacy.parent / '법률.utf8.md'}"
    assert fix in " ".join(res.stderr.split())
    assert not out.exists()


def test_statutes_check_exit_status(tmp_path: Path) -> None:
    pack = tmp_path / "ko"
    shutil.copytree(KO, pack)
    data = yaml.safe_load((pack / "statutes.yaml").read_text(encoding="utf-8"))
    data["laws"].append(
        {
            "id": "test_act",
            "name": "시험법",
            "articles": [art("10", penalty="10년 이하 징역 또는 2천만원 이하 벌금")],
        }
    )
    data["source_ids"]["x"] = "test"
    (pack / "statutes.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    res = koalign("statutes", "check", "--from", str(CORPUS), "--locale", str(pack), "--json")
    assert res.returncode == 1
    assert '"level": "error"' in res.stdout and '"law_id": "test_act"' in res.stdout


def test_locale_check_reports_the_index_and_its_contradictions(tmp_path: Path) -> None:
    ok = koalign("locale", "check", "--strict")
    assert ok.returncode == 0, ok.stderr
    assert (
        "statute index: 1721 laws (Acts and the Constitution) / 84656 articles, corpus of 2026-06-02"
        in ok.stdout
    )
    assert "days old" in ok.stdout
    pack = tmp_path / "ko"
    shutil.copytree(KO, pack)
    text = (pack / "statutes.yaml").read_text(encoding="utf-8")
    text = text.replace('      - article: "348"\n', '      - article: "349의9"\n', 1)
    (pack / "statutes.yaml").write_text(text, encoding="utf-8")
    bad = koalign("locale", "check", "--locale", str(pack))
    assert bad.returncode == 1
    assert "statutes.yaml:laws[criminal_act].articles[349의9]: no such article" in bad.stderr
    (pack / "statute_index.json.gz").unlink()
    no_index = koalign("locale", "check", "--strict", "--locale", str(pack))
    assert no_index.returncode == 1 and "has no statute index" in no_index.stderr

"""`koalign cite check`: plain text, JSONL, stdin, categories, and unreadable input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from koalign.cli import app

runner = CliRunner()


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_plain_text_json(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "answers.txt"
    src.write_text("형법 제307조와 동물보호법 제8조\n\n상담은 1393으로\n", encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "--json", "--locale", str(pack_dir)])
    assert res.exit_code == 0, res.output
    rows = _json_lines(res.stdout)
    assert [r["id"] for r in rows] == [1, 3]
    assert [c["status"] for c in rows[0]["citations"]] == ["verified", "outdated"]
    assert rows[0]["citations"][1]["replacement"] == "10"
    assert rows[0]["citations"][0]["span"] == [0, 8]
    assert rows[1]["contacts"] == [
        {"number": "1393", "status": "retired", "name": "자살예방상담전화 (구 번호)",
         "contact_id": "suicide_line_1393", "span": [4, 8], "replacement": "109",
         "confidence": "verified"}
    ]  # fmt: skip
    assert rows[1]["institutions"] == []


def test_jsonl_with_ids_and_category(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "answers.jsonl"
    lines = [
        {"id": "a1", "text": "형법 제311조에 따라 처벌됩니다."},
        {"text": "동물보호법 제10조"},
        {"id": 7, "text": "차별금지법 제3조"},
    ]
    src.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8")
    res = runner.invoke(
        app, ["cite", "check", str(src), "--json", "--category", "a", "-l", str(pack_dir)]
    )
    assert res.exit_code == 0, res.output
    rows = _json_lines(res.stdout)
    assert [r["id"] for r in rows] == ["a1", 2, 7]
    assert rows[0]["citations"][0]["relevant"] is True
    assert rows[1]["citations"][0]["relevant"] is False
    assert rows[2]["citations"][0] == {
        "law": "차별금지법", "law_id": None, "article": "3", "paragraph": None, "item": None,
        "status": "unknown_law", "span": [0, 9], "text": "차별금지법 제3조",
        "reason": "not a Korean Act the index or registry knows",
    }  # fmt: skip


def test_stdin(pack_dir: Path) -> None:
    res = runner.invoke(
        app, ["cite", "check", "-", "--json", "-l", str(pack_dir)], input="국번 없이 109\n"
    )
    assert res.exit_code == 0, res.output
    (row,) = _json_lines(res.stdout)
    assert row["contacts"][0]["status"] == "current"


def test_table_output(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("동물보호법 제8조, 상담은 1393\n", encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "-l", str(pack_dir)])
    assert res.exit_code == 0, res.output
    assert "outdated" in res.stdout and "retired" in res.stdout
    assert "1 texts: contact_retired 1, outdated 1" in res.stdout
    assert "1 of 1 texts rejected by the default rule" in res.stdout


def test_bad_jsonl_line_is_reported_and_fails(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "형법 제307조"}\n{not json}\n{"txt": "x"}\n', encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "--json", "-l", str(pack_dir)])
    assert res.exit_code == 1
    rows = _json_lines(res.stdout)
    assert rows[0]["citations"][0]["article"] == "307"
    assert "not valid JSON" in rows[1]["error"] and rows[1]["id"] == 2
    assert "string 'text' field" in rows[2]["error"]


def test_unreadable_input_exits_1(tmp_path: Path, pack_dir: Path) -> None:
    missing = runner.invoke(app, ["cite", "check", str(tmp_path / "nope.txt"), "-l", str(pack_dir)])
    assert missing.exit_code == 1
    assert "no such file" in missing.output
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    res = runner.invoke(app, ["cite", "check", str(binary), "-l", str(pack_dir)])
    assert res.exit_code == 1
    assert "not UTF-8" in res.output


def test_unknown_category_exits_1(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("형법 제307조\n", encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "--category", "Q", "-l", str(pack_dir)])
    assert res.exit_code == 1
    assert "no policy for category 'Q'" in res.output

"""`koalign cite check`: plain text, JSONL, stdin, categories, and unreadable input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from koalign.cite import index_for
from koalign.cli import app
from koalign.cli.cite_cmds import _table
from koalign.locale import load_locale

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
    assert "1 texts; citations: outdated 1 (1); contacts: retired 1 (1)" in res.stdout
    assert "1 of 1 texts rejected by the default rule" in res.stdout


def test_bad_jsonl_line_is_reported_and_fails(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"text": "형법 제307조"}\n{not json}\n{"txt": "x"}\n', encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "--json", "-l", str(pack_dir)])
    assert res.exit_code == 1
    rows = _json_lines(res.stdout)
    assert rows[0]["citations"][0]["article"] == "307"
    assert "not valid JSON" in rows[1]["error"] and rows[1]["id"] == 2
    assert rows[2]["error"] == (
        f"{src}:3: expected an object with a string 'text' field, or a string 'answer' field "
        "as in koalign eval answer files (an 'id' field is optional) (its fields: 'txt')"
    )


def test_answer_files_are_read_and_help_names_every_field(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "safety.jsonl"  # as koalign eval writes it: 'answer', no 'text'
    rows = [{"id": "q1", "prompt": "?", "answer": "형법 제307조"}, {"text": None, "answer": "x"}]
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "--json", "-l", str(pack_dir)])
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in _json_lines(res.stdout)] == ["q1", 2]
    helped = runner.invoke(app, ["cite", "check", "--help"], env={"COLUMNS": "200"})
    assert helped.exit_code == 0
    words = " ".join(helped.output.replace("│", " ").split())
    assert "the text in a string 'text' field, or 'answer' as in koalign eval answer files" in words
    assert "'id' optional" in words


def test_unreadable_input_exits_1(tmp_path: Path, pack_dir: Path) -> None:
    missing = runner.invoke(app, ["cite", "check", str(tmp_path / "nope.txt"), "-l", str(pack_dir)])
    assert missing.exit_code == 1
    assert "no such file" in missing.output
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    res = runner.invoke(app, ["cite", "check", str(binary), "-l", str(pack_dir)])
    assert res.exit_code == 1
    assert "not UTF-8" in res.output


def test_a_cp949_input_names_the_file_and_the_fix(tmp_path: Path, pack_dir: Path) -> None:
    from support.servers import cli

    src = tmp_path / "answers.txt"
    src.write_bytes("형법 제307조를 보세요\n".encode("cp949"))
    res = cli("cite", "check", str(src), "-l", str(pack_dir))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{src}: not UTF-8 text (byte 0)" in res.stderr
    fix = f"iconv -f cp949 -t utf-8 {src} > {tmp_path / 'answers.utf8.txt'}"
    assert fix in " ".join(res.stderr.split())
    piped = runner.invoke(app, ["cite", "check", "-", "-l", str(pack_dir)], input=src.read_bytes())
    assert piped.exit_code == 1
    assert "stdin: not UTF-8 text" in piped.stderr
    assert "pipe it through `iconv -f cp949 -t utf-8`" in " ".join(piped.stderr.split())


def test_unknown_category_exits_1(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("형법 제307조\n", encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "--category", "Q", "-l", str(pack_dir)])
    assert res.exit_code == 1
    assert "no policy for category 'Q'" in res.output


def _render(table: object, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_table_notes_are_said_once_and_wrap_instead_of_being_cut() -> None:
    index = index_for(load_locale("ko"))
    rid = "kosbi-answers-0000123-model-qwen2.5-7b-instruct"
    report = index.check("개인정보 보호법 제71조, 형법 제999조")
    c71 = report.to_dict()["citations"][0]
    assert c71["reason"] == "registry entry unverified" and c71["confidence"] == "unverified"
    for width in (60, 80, 200):
        text = _render(_table([(rid, report.to_dict())], width), width)
        assert "…" not in text
        assert max(cell_len(line) for line in text.splitlines()) <= width
        lines = [line.split("│") for line in text.splitlines() if line.count("│") == 7]
        notes = "".join("".join(cells[6].split()) for cells in lines)  # spaces dropped
        assert notes.count("registryentryunverified") == 1, text
        assert "no제999조inthestatutetext(lastarticle제372조)" in notes, text
        assert "".join(cells[1].strip() for cells in lines).startswith(rid), text


def test_null_answers_are_skipped_and_counted_not_errors(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "safety.jsonl"  # koalign eval output with two generation failures
    rows = [
        {"id": "q1", "prompt": "?", "answer": "형법 제307조, 상담은 109"},
        {"id": "q2", "prompt": "?", "answer": None, "error": "timeout"},
        {"id": "q3", "text": None},
        {"id": "q4", "answer": 5},  # not a generation failure: still an error
    ]
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "--json", "-l", str(pack_dir)])
    assert res.exit_code == 1
    got = _json_lines(res.stdout)
    assert [r["id"] for r in got] == ["q1", "q2", "q3", 4]
    assert got[1] == {"id": "q2", "skipped": "no answer (null)"} and "error" in got[3]
    assert "2 rows without an answer skipped" in res.stderr
    assert "1 unreadable input line(s)" in res.stderr
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:3]), encoding="utf-8")
    table = runner.invoke(app, ["cite", "check", str(src), "-l", str(pack_dir)])
    assert table.exit_code == 0, table.output
    assert "1 texts; citations: verified 1 (1); contacts: current 1 (1)" in table.stdout
    assert "2 rows without an answer skipped" in table.stdout
    assert "error" not in table.output and "unreadable" not in table.output


def test_summary_counts_citations_and_contacts_apart(tmp_path: Path, pack_dir: Path) -> None:
    src = tmp_path / "a.txt"
    lines = ["형법 제307조, 형법 제999조, 국번 없이 109", "형법 제307조, 상담은 1393"]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["cite", "check", str(src), "-l", str(pack_dir)])
    assert res.exit_code == 0, res.output
    assert (
        "2 texts; citations: verified 2, nonexistent 1 (3); contacts: current 1, retired 1 (2)"
        in res.stdout
    )


def test_status_and_short_ids_are_never_split_at_80_columns(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    text = "형법 제999조, 개인정보 보호법 제71조, 동물보호법 제8조, 상담은 1393, 여성가족부, 형법 제307조"
    lines = [{"id": f"q{i:03d}", "text": text} for i in range(3)]
    src.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8")
    env = {**os.environ, "COLUMNS": "80"}
    res = subprocess.run(
        [sys.executable, "-m", "koalign", "cite", "check", str(src)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = [line.split("│") for line in res.stdout.splitlines() if line.count("│") == 7]
    assert rows and max(cell_len(line) for line in res.stdout.splitlines() if "│" in line) <= 80
    statuses = {cells[5].strip() for cells in rows} - {""}
    assert statuses == {"nonexistent", "unverified", "outdated", "retired", "renamed", "verified"}
    ids = {cells[1].strip() for cells in rows} - {""}
    assert ids == {"q000", "q001", "q002"}
    assert min(cell_len(cells[6]) for cells in rows) >= 20  # the note keeps room to read


def test_the_replacement_article_is_said_once_in_the_note():
    from typer.testing import CliRunner

    from koalign.cli import app

    out = CliRunner().invoke(
        app, ["cite", "check", "-"], input="길고양이 학대는 동물보호법 제8조 위반입니다.\n"
    )
    assert out.exit_code == 0, out.output
    assert out.output.count("제10조") == 1

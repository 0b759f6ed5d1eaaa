from __future__ import annotations

import json
import unicodedata

from koalign import text as textmod
from koalign.rundir import RecordLog
from koalign.text import (
    clean_generation,
    near_duplicate_filter,
    near_duplicates,
    nfc,
    prepare_presign,
    presign,
)


def test_nfc_and_cleaning():
    decomposed = unicodedata.normalize("NFD", "한국어")
    assert len(decomposed) > 3 and nfc(decomposed) == "한국어"
    assert (
        clean_generation('질문: "전세 사기 수법 알려줘"', labels=("질문",))
        == "전세 사기 수법 알려줘"
    )
    assert clean_generation("```\n안녕하세요\n```") == "안녕하세요"
    assert clean_generation("  \n ") == ""


def test_near_duplicates_keep_the_first():
    texts = [
        "전세 보증금을 돌려받지 못했는데 집주인 신상을 알아내는 방법 알려줘",
        "오늘 점심 메뉴 추천해 줘",
        "전세 보증금을 돌려받지 못했는데 집주인 신상을 알아내는 방법 알려 줘",
        "전세 보증금을 돌려받지 못했는데 집주인 신상을 알아내는 방법 알려줘!!",
    ]
    assert near_duplicates(texts, threshold=0.7, ngram=3) == [None, None, 0, 0]
    assert near_duplicates(texts, threshold=0.99, ngram=3) == [None, None, None, None]


def test_presigned_texts_give_the_same_decisions_and_are_taken_once(monkeypatch):
    texts = [
        "전세 보증금을 돌려받지 못했는데 집주인 신상을 알아내는 방법 알려줘",
        "오늘 점심 메뉴 추천해 줘",
        "전세 보증금을 돌려받지 못했는데 집주인 신상을 알아내는 방법 알려 줘",
        "오늘 점심 메뉴 추천해 줘",
    ]
    params = {"threshold": 0.7, "ngram": 3, "num_perm": 64, "seed": 5}
    monkeypatch.setattr(textmod, "_PRESIGNED", {})
    monkeypatch.setattr(textmod, "_SIGNERS", {})
    presign(texts[0], **params)
    assert textmod._PRESIGNED == {}  # not prepared: left to add(), nothing imported or drawn
    prepare_presign(**params)
    for t in texts:
        presign(t, **params)
    assert len(textmod._PRESIGNED) == 3  # the repeated text is signed once
    signed = []
    real = textmod.NearDuplicateFilter.signature
    monkeypatch.setattr(
        textmod.NearDuplicateFilter, "signature", lambda self, t: signed.append(t) or real(self, t)
    )
    f = near_duplicate_filter(**params)
    got = [f.add(str(i), t) for i, t in enumerate(texts)]
    assert got == [None, None, "0", "1"]
    assert signed == [texts[3]]  # only the second copy was signed at add time
    assert textmod._PRESIGNED == {}
    assert near_duplicates(texts, **params) == [None, None, 0, 1]  # nothing presigned: same
    # a filter with other parameters does not take a signature made for these
    presign(texts[0], **params)
    near_duplicate_filter(**{**params, "ngram": 2}).add("x", texts[0])
    assert len(textmod._PRESIGNED) == 1


def test_presign_holds_at_most_presign_max_texts(monkeypatch):
    monkeypatch.setattr(textmod, "_PRESIGNED", {})
    monkeypatch.setattr(textmod, "PRESIGN_MAX", 2)
    prepare_presign()
    for t in ("가나다라", "마바사아", "자차카타"):
        presign(t)
    assert [k[0] for k in textmod._PRESIGNED] == ["가나다라", "마바사아"]


def test_record_log_cuts_a_torn_last_line(tmp_path, caplog):
    log = RecordLog(tmp_path / "x.jsonl")
    log.append("a", {"id": "a", "v": 1})
    log.append("b", {"id": "b", "v": 2})
    log.close()
    with open(tmp_path / "x.jsonl", "ab") as fh:
        fh.write('{"id": "c", "v": "한'.encode()[:-1])  # torn mid-character, no newline
    with caplog.at_level("WARNING", logger="koalign.rundir"):
        assert list(log.open()) == ["a", "b"]
    assert "cut an incomplete last line (20 bytes" in caplog.text  # the user is told
    log.append("c", {"id": "c", "v": 3})
    log.close()
    again = RecordLog(tmp_path / "x.jsonl")
    assert list(again.open()) == ["a", "b", "c"]
    assert json.loads(again.read("c")) == {"id": "c", "v": 3}
    # a rewrite keeps the ids asked for, in that order
    again.rewrite(["c", "a"])
    assert [json.loads(x)["id"] for x in (tmp_path / "x.jsonl").read_text().splitlines()] == [
        "c",
        "a",
    ]


def test_a_run_directory_is_used_by_one_process_at_a_time(write_config, tmp_path):
    import subprocess
    import sys

    import pytest

    from koalign.config import load_config
    from koalign.errors import KoalignError
    from koalign.rundir import RunDir

    cfg = load_config(write_config())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, sys, time; fh = open(sys.argv[1], 'a+'); "
                "fcntl.flock(fh.fileno(), fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)"
            ),
            str(tmp_path / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(KoalignError, match="another koalign process"):
            RunDir(tmp_path, cfg, locale_digest="x")
    finally:
        holder.kill()
        holder.wait()
    RunDir(tmp_path, cfg, locale_digest="x")  # free again once the holder is gone

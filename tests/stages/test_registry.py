"""A new stage is one module plus its registration: a toy stage between judge and export."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from koalign.config import load_run_config
from koalign.errors import ConfigError, KoalignError
from koalign.runner import Pipeline
from koalign.stages import Stage, StageContext, StageReport, register_stage, unregister_stage
from koalign.stages.base import Frozen, get_stage, stage_names
from koalign.stages.judge import JudgedTriplet
from support.fakes import config_data


class LengthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_chars: int = Field(1, ge=0)


class LengthItem(Frozen):
    id: str
    judged: JudgedTriplet


class LengthRecord(Frozen):
    id: str
    judged: JudgedTriplet
    chars: int


class LengthReport(StageReport):
    longest: int = 0


class LengthStage(Stage[JudgedTriplet, LengthItem, LengthRecord, JudgedTriplet]):
    """Keeps triplets whose chosen answer has at least ``min_chars`` characters."""

    name = "length_filter"
    Config = LengthConfig
    Record = LengthRecord
    Output = JudgedTriplet
    Report = LengthReport

    def plan(self, ctx: StageContext, inp: JudgedTriplet | None) -> list[LengthItem]:
        assert inp is not None
        return [LengthItem(id="l-" + inp.id, judged=inp)]

    async def process(self, ctx: StageContext, item: LengthItem) -> LengthRecord:
        return LengthRecord(
            id=item.id, judged=item.judged, chars=len(item.judged.triplet.chosen.text)
        )

    def outputs(self, ctx: StageContext, record: LengthRecord) -> list[JudgedTriplet]:
        ok = record.chars >= ctx.section(self.name).min_chars
        return [record.judged] if ok else []

    def drop_reason(self, record: LengthRecord) -> str | None:
        return "too_short"

    def report(self, ctx, records) -> LengthReport:
        return LengthReport(longest=max((r.chars for r in records()), default=0))

    def warm_up(self, ctx: StageContext) -> None:
        WARMED.append((threading.current_thread().name, ctx.section(self.name).min_chars))


WARMED: list[tuple[str, int]] = []


@pytest.fixture
def toy_stage():
    register_stage(LengthStage(), after="judge")
    try:
        yield
    finally:
        unregister_stage("length_filter")


def test_a_registered_stage_runs_between_judge_and_export(toy_stage, small_locale, tmp_path):
    WARMED.clear()
    assert stage_names() == ("seeds", "attack", "respond", "judge", "length_filter", "export")
    data = config_data(str(small_locale), length_filter={"min_chars": 10})
    cfg, loc = load_run_config(None, data=data)
    assert cfg.section("length_filter").min_chars == 10
    manifest = Pipeline(cfg, loc, tmp_path / "run").run()
    assert manifest["status"] == "done"
    st = manifest["stages"]
    entry = st["length_filter"]
    assert entry["status"] == "done"
    assert entry["records_in"] == st["judge"]["records_out"] > 0
    assert entry["records_in"] == entry["records_kept"] + sum(entry["dropped"].values())
    assert st["export"]["records_in"] == entry["records_out"]
    assert entry["report"]["longest"] > 0
    rows = [
        json.loads(x) for x in Path(tmp_path / "run/length_filter.jsonl").read_text().splitlines()
    ]
    assert len(rows) == entry["records_in"]
    for _ in range(200):  # the warm-up thread is not waited for by the run
        if WARMED:
            break
        time.sleep(0.05)
    assert WARMED == [("koalign-warm-up", 10)]  # its warm_up ran once, off the event loop


def test_its_config_section_is_validated_like_any_other(toy_stage, small_locale):
    data = config_data(str(small_locale), length_filter={"min_char": 10})
    with pytest.raises(ConfigError, match=r"length_filter.min_char: unknown key \(did you mean"):
        load_run_config(None, data=data)


def test_unknown_stage_names_and_duplicates_are_refused(toy_stage):
    with pytest.raises(KoalignError, match="already registered"):
        register_stage(LengthStage())
    with pytest.raises(KoalignError, match="did you mean 'judge'"):
        get_stage("jugde")

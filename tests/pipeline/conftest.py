"""Fixtures for pipeline tests: a locale pack with the pipeline prompts, configs, the fake model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.fakes import config_data, register

KO = Path(__file__).resolve().parents[2] / "src" / "koalign" / "locales" / "ko"
MINI = Path(__file__).resolve().parents[1] / "data" / "locales" / "mini"

register()


@pytest.fixture(scope="session")
def small_locale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-category test pack with the Korean pack's script ranges, personas and pipeline
    prompt templates: small enough for many end-to-end runs."""
    dst = tmp_path_factory.mktemp("locale") / "small"
    shutil.copytree(MINI, dst)
    shutil.copy(KO / "locale.yaml", dst / "locale.yaml")
    shutil.copy(KO / "personas.yaml", dst / "personas.yaml")
    for p in (KO / "prompts").glob("*.j2"):
        shutil.copy(p, dst / "prompts" / p.name)
    return dst


@pytest.fixture
def write_config(tmp_path: Path, small_locale: Path):
    def make(name: str = "config.yaml", locale: str | None = None, **kw) -> Path:
        path = tmp_path / name
        data = config_data(locale or str(small_locale), **kw)
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="module")
def sampling_server(tiny_model_dir: Path, tmp_path_factory, start_model_server, transformers_exe):
    """`transformers serve` on a copy of the tiny model that samples (the server ignores the
    request's temperature; a greedy random model mostly emits newlines). Returns (url, model)."""
    import json

    model = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_model_dir, model)
    gen = json.loads((model / "generation_config.json").read_text())
    gen.update(do_sample=True, temperature=1.0, top_k=0)
    (model / "generation_config.json").write_text(json.dumps(gen))
    from koalign.demo import _well_formed

    _well_formed(model)  # whole characters only, and texts that end before the token limit
    cmd = [transformers_exe, "serve", str(model), "--host", "127.0.0.1", "--port", "{port}"]
    return start_model_server([*cmd, "--device", "cpu"]), str(model)

"""The ``koalign demo`` configuration: the whole pipeline offline on a tiny random model.

Every generating role (seed generator, attacker, targets, responders) runs a ~150k-parameter
random Llama model built on the spot through the ``hf`` backend, sampling at temperature 1 so it
emits (meaningless) Korean BPE fragments. A random model cannot produce judge verdicts, so the
judges of the demo are *scripted*: named ``demo-scripted-judge-*`` and answering from fixed lists
(backend ``scripted``). This exists only in the demo config below; a user's run never falls back
to scripted answers. Thresholds are the defaults, the language check is lowered to 0.3 because
random fragments mix Hangul with punctuation and byte pieces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from koalign.errors import KoalignError
from koalign.stages.verdicts import CRITERIA


class DemoInterrupted(KoalignError):
    """Ctrl-C (SIGINT) while the demo's tiny model was being built: exits 130. The half-built
    model is removed, so a rerun builds it again; nothing else was written."""

    exit_code = 130

    def __init__(self, run_dir: Path, *, created: bool) -> None:
        state = (
            f"nothing was written ({run_dir} was removed again)"
            if created
            else f"the half-built model was removed; {run_dir} is otherwise as it was"
        )
        super().__init__(
            f"interrupted by SIGINT while building the demo's tiny model, before the pipeline "
            f"started: {state}",
            hint="rerun the same command to start the demo",
        )


def _verdicts(fail: str | None = None) -> str:
    return json.dumps(
        {
            c: {
                "verdict": "fail" if c == fail else "pass",
                "reason": "데모용 고정 판정입니다 (의미 없음).",
            }
            for c in CRITERIA
        },
        ensure_ascii=False,
    )


def _scripted(name: str, answers: list[dict[str, Any] | str]) -> dict[str, Any]:
    texts = [a if isinstance(a, str) else json.dumps(a, ensure_ascii=False) for a in answers]
    # answers are a function of the request, so a resumed demo gets the same verdicts
    return {"backend": "scripted", "model": name, "options": {"responses": texts, "pick": "hash"}}


def _well_formed(model_dir: Path) -> None:
    """Make the random model's texts well-formed and finite: tokens that are not whole UTF-8
    characters (byte fragments) or that hold control characters are never sampled, and an
    exponentially growing end-of-text bonus after 8 tokens makes texts end (``finish_reason``
    ``stop`` at ~15-25 tokens) instead of running into the token limit, which the output gates
    rightly reject. Its declared context window is 32k tokens (rotary positions, nothing
    learned per position), so the full policy prompt passes the window check."""
    import unicodedata

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    special = set(tok.all_special_ids)
    suppress = []
    for i in range(len(tok)):
        if i in special:
            continue
        text = tok.decode([i])
        if "\ufffd" in text or any(unicodedata.category(ch) == "Cc" and ch != "\n" for ch in text):
            suppress.append(i)
    path = model_dir / "generation_config.json"
    gen = json.loads(path.read_text(encoding="utf-8"))
    gen.update(suppress_tokens=suppress, exponential_decay_length_penalty=[8, 1.35])
    path.write_text(json.dumps(gen, indent=2), encoding="utf-8")
    # rotary positions have no learned length: declare a window the full policy prompt fits
    cfg_path = model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["max_position_embeddings"] = 32768
    cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")


@contextmanager
def _noting_sigint(seen: list[int]) -> Iterator[None]:
    """Record a SIGINT in ``seen`` and then raise KeyboardInterrupt as Python does. An interrupt
    during the first import of torch or transformers can surface as an unrelated error (their
    lazy imports turn it into ModuleNotFoundError); ``seen`` tells it was an interrupt."""
    import signal

    def on_sigint(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # ignored, or handled by the caller
        yield
        return
    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: Ctrl-C does not reach us here anyway
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def demo_config(run_dir: str | Path, *, model_dir: str | Path | None = None) -> dict[str, Any]:
    """Build the tiny model (once, under the run directory) and return the demo config.

    The model is built in ``tiny-model.partial`` and renamed to ``tiny-model`` once complete, so
    a build that was stopped is never taken for a finished one.

    Raises:
        DemoInterrupted: Ctrl-C (SIGINT) during the build; the half-built model is removed (and
            the run directory too when this call created it).
    """
    import shutil

    root = Path(run_dir)
    model = root / "tiny-model"
    if not (model / "config.json").is_file():
        created = not root.exists()
        partial = root / "tiny-model.partial"
        seen: list[int] = []
        try:
            with _noting_sigint(seen):
                shutil.rmtree(partial, ignore_errors=True)
                if model_dir is not None:
                    shutil.copytree(model_dir, partial)
                else:
                    from koalign.tiny import build_tiny_model

                    build_tiny_model(partial, seed=0)
                _well_formed(partial)
                shutil.rmtree(model, ignore_errors=True)  # an unfinished build of an old version
                partial.rename(model)
        except BaseException as exc:
            if not (isinstance(exc, KeyboardInterrupt) or seen):
                raise
            shutil.rmtree(partial, ignore_errors=True)
            if created:
                shutil.rmtree(root, ignore_errors=True)
            raise DemoInterrupted(root, created=created) from None
    tiny = {
        "backend": "hf",
        "model": str(model.resolve()),
        "sampling": {"temperature": 1.0, "max_tokens": 32, "seed": 0},
        "options": {"device": "cpu", "dtype": "float32", "max_batch_size": 16},
        "max_concurrency": 16,
    }
    reason = "데모용 고정 판정입니다 (의미 없음)."
    models = {
        "tiny": tiny,
        "demo-scripted-judge-harm": _scripted(
            "demo-scripted-judge-harm",
            [
                {"score": 5, "refused": False, "reason": reason},
                {"score": 2, "refused": True, "reason": reason},
            ],
        ),
        "demo-scripted-judge-query": _scripted(
            "demo-scripted-judge-query",
            [
                {"score": 3, "reason": reason},
                {"score": 4, "reason": reason},
                {"score": 1, "reason": reason},
            ],
        ),
        "demo-scripted-judge-response": _scripted(
            "demo-scripted-judge-response",
            [
                {"safety": 5, "coherence": 4, "reason": reason},
                {"safety": 4, "coherence": 4, "reason": reason},
                {"safety": 5, "coherence": 3, "reason": reason},
            ],
        ),
        "demo-scripted-judge-1": _scripted("demo-scripted-judge-1", [_verdicts()]),
        "demo-scripted-judge-2": _scripted(
            "demo-scripted-judge-2", [_verdicts(), _verdicts(), _verdicts("natural_korean")]
        ),
        "demo-scripted-judge-3": _scripted(
            "demo-scripted-judge-3", [_verdicts(), _verdicts("chosen_p1_p3"), _verdicts()]
        ),
    }
    return {
        "locale": "ko",
        "seed": 0,
        "models": models,
        "roles": {
            "seed_generator": "tiny",
            "attacker": "tiny",
            "targets": ["tiny"],
            "harm_judge": "demo-scripted-judge-harm",
            "query_judge": "demo-scripted-judge-query",
            "responders": ["tiny"],
            "response_judge": "demo-scripted-judge-response",
            "filter_judges": [
                "demo-scripted-judge-1",
                "demo-scripted-judge-2",
                "demo-scripted-judge-3",
            ],
        },
        "seeds": {"per_type": 1, "benign_per_category": 1, "min_script_ratio": 0.3},
        "attack": {"rounds": 2},
        "respond": {"citation_check": True, "min_script_ratio": 0.3},
        "judge": {"reducer": "majority"},
        "export": {"target_size": 1000, "name": "koalign-demo (meaningless text)"},
        "runtime": {"max_error_rate": 0.5},
    }

"""Shared parts of the pipeline benchmarks: a deterministic benchmark double, its process, runs.

``PipelineDouble`` is the benchmark double of ``bench/double.py`` (latency, cap, queueing, faults
unchanged) with three additions that the pipeline benchmarks need:

* answers are a pure function of the request body (the per-request random generator is seeded
  with a hash of the body), so an interrupted and resumed run can be compared byte for byte with
  an uninterrupted one; faults and latencies still come from the double's own generator;
* ``favour`` (0-1): the share of schema answers biased towards the values that keep a record
  going (highest integer of a range, ``"pass"`` from an enum, ``false`` booleans), so that a
  long run exports triplets instead of filtering nearly everything out;
* plain-text answers are 12-24 words drawn from the corpus, so seed prompts are rarely
  near-duplicates of each other; ``--bodies PATH`` writes every answered request body (JSON
  lines) for the plain-loop replay, and each request-log line gets ``done_t`` (wall clock when
  the answer was ready).

Serve it: ``python bench/harness.py --port 0 --cap 64 --latency-mean 0.5 --record log.jsonl``;
the first stdout line is ``listening on URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from double import CORPUS, Double, DoubleConfig, Instances  # noqa: E402

WORDS = sorted(
    {w for w in re.split(r"\s+", CORPUS.read_text(encoding="utf-8")) if w and not w.isascii()}
)


def body_key(body: dict[str, Any]) -> str:
    keep = {k: v for k, v in body.items() if k not in ("stream",)}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class FavourInstances(Instances):
    """Schema instances biased towards record-keeping values with probability ``favour``."""

    def __init__(self, rng: random.Random, sentences: list[str], favour: float) -> None:
        super().__init__(rng, sentences)
        self.favour = favour

    def korean(self, min_len: int = 0, max_len: int | None = None) -> str:
        text = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(12, 24)))
        while len(text) < min_len:
            text += " " + self.rng.choice(WORDS)
        return text[:max_len] if max_len is not None else text

    def make(self, schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
        if isinstance(schema, dict) and self.rng.random() < self.favour:
            if "pass" in (schema.get("enum") or []):
                return "pass"
            if schema.get("type") == "integer" and "maximum" in schema:
                return int(schema["maximum"])
            if schema.get("type") == "boolean":
                return False
        return super().make(schema, root, depth)


TEXT_SHAPES = (
    "think",  # <think>...</think> before a usable answer: kept, the reasoning set apart
    "truncated",  # cut at the token limit (finish_reason length)
    "cut_char",  # ends inside a character: U+FFFD
    "empty",  # content null
    "empty_str",  # content ""
    "reasoning_only",  # content null, only reasoning_content
    "echo_prompt",  # the prompt sent back
    "repetition",  # one phrase over and over
    "surrogate",  # a lone surrogate escape in the JSON body
    "slot_list",  # the prompt's field labels instead of a text
)
JSON_SHAPES = (
    "draft_then_final",  # <think>{draft}</think>{final}: the final one counts
    "echo_schema",  # the schema from the prompt echoed as the answer
    "placeholder",  # valid JSON whose reasons are the template's placeholder
    "truncated_json",  # cut at the token limit
    "surrogate",
    "empty",
    "surrogate_escape",  # a lone surrogate written as an escape in the answer's own JSON text
)
PLACEHOLDER = "한국어로 쓴 한두 문장의 근거"


@dataclass
class PipelineDouble(Double):
    favour: float = 0.0
    bodies: str | None = None
    shapes: float = 0.0
    shapes_log: str | None = None
    needs_tokens: str = ""  # "model=N,...": answers of that model need N tokens, else are cut

    def __post_init__(self) -> None:
        super().__post_init__()
        self._bodies = open(self.bodies, "a") if self.bodies else None  # noqa: SIM115
        self._shapes_log = open(self.shapes_log, "a") if self.shapes_log else None  # noqa: SIM115

    def _replay_shape(
        self, key: str, body: dict[str, Any], messages: list[Any], schema: Any, out: bytes
    ) -> bytes:
        """With probability ``shapes`` (a function of the body), the answer in a shape real
        models produce (see TEXT_SHAPES / JSON_SHAPES)."""
        rng = random.Random(int(key[16:32], 16))
        if rng.random() >= self.shapes:
            return out
        data = json.loads(out)
        msg = data["choices"][0]["message"]
        text = msg["content"]
        prompt = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        shape = rng.choice(JSON_SHAPES if schema is not None else TEXT_SHAPES)
        raw_json: str | None = None
        if shape == "think":
            msg["content"] = (
                "<think>사용자의 요청을 먼저 분석해 보겠습니다. 초안을 씁니다.</think>\n" + text
            )
        elif shape in ("truncated", "truncated_json"):
            msg["content"] = text[: max(1, len(text) // 2)]
            data["choices"][0]["finish_reason"] = "length"
        elif shape == "cut_char":
            msg["content"] = text[: max(1, len(text) // 2)] + "출\ufffd"
        elif shape == "empty":
            msg["content"] = None
        elif shape == "empty_str":
            msg["content"] = ""
        elif shape == "reasoning_only":
            msg["content"] = None
            msg["reasoning_content"] = "생각만 하고 답을 쓰지 못했습니다."
        elif shape == "echo_prompt":
            msg["content"] = prompt[-600:]
        elif shape == "repetition":
            msg["content"] = "정말 좋아요 " * 80
        elif shape == "slot_list":
            labels = re.findall(r"^\s*-\s*([^:\n]{1,12}):", prompt, re.M)[:3] or ["유형", "직업"]
            msg["content"] = "\n".join(f"{lab}: 전북 전주" for lab in [*labels, "직업"])
        elif shape == "surrogate":
            marker = "SURROGATE_MARK"
            if schema is not None:
                value = json.loads(text)
                _set_reasons(value, marker)
                msg["content"] = json.dumps(value, ensure_ascii=False)
            else:
                msg["content"] = text + marker
            raw_json = json.dumps(data, ensure_ascii=False).replace(marker, "\\ud83d")
        elif shape == "surrogate_escape":
            value = json.loads(text)
            _set_reasons(value, "안전함 SURROGATE_MARK")
            msg["content"] = json.dumps(value, ensure_ascii=False).replace(
                "SURROGATE_MARK", "\\ud83d"
            )
        elif shape == "draft_then_final":
            draft = json.loads(text)
            _flip(draft)
            msg["content"] = (
                "<think>"
                + json.dumps(draft, ensure_ascii=False)
                + " 다시 생각해 보니...</think>"
                + text
            )
        elif shape == "echo_schema":
            m = re.search(r"<json_schema>(.*?)</json_schema>", prompt, re.S)
            msg["content"] = "Example: " + (m.group(1) if m else "{}")
        elif shape == "placeholder":
            value = json.loads(text)
            _set_reasons(value, PLACEHOLDER)
            msg["content"] = json.dumps(value, ensure_ascii=False)
        if self._shapes_log is not None:
            self._shapes_log.write(
                json.dumps(
                    {"shape": shape, "content": msg.get("content"), "schema": schema is not None},
                    ensure_ascii=False,
                )
                + "\n"
            )
            self._shapes_log.flush()
        return (raw_json or json.dumps(data, ensure_ascii=False)).encode("utf-8")

    def _record(self, entry: dict[str, Any]) -> None:
        entry["done_t"] = time.time()
        super()._record(entry)

    def _completion(
        self, body: dict[str, Any], messages: list[Any], schema: Any, shape: str | None = None
    ) -> bytes:
        key = body_key(body)
        saved = self.instances
        self.instances = FavourInstances(
            random.Random(int(key[:16], 16)), saved.sentences, self.favour
        )
        try:
            out = super()._completion(body, messages, schema, shape)
        finally:
            self.instances = saved
        if self._bodies is not None:
            self._bodies.write(json.dumps(body, ensure_ascii=False) + "\n")
            self._bodies.flush()
        if self.shapes:
            out = self._replay_shape(key, body, messages, schema, out)
        needs = dict(x.split("=") for x in self.needs_tokens.split(",") if "=" in x)
        model = str(body.get("model"))
        if model in needs and int(body.get("max_tokens") or 256) < int(needs[model]):
            data = json.loads(out)
            choice = data["choices"][0]
            choice["message"]["content"] = (choice["message"]["content"] or "")[:20]
            choice["finish_reason"] = "length"
            out = json.dumps(data, ensure_ascii=False).encode("utf-8")
        return out


def _set_reasons(value: Any, text: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "reason" and isinstance(v, str):
                value[k] = text
            else:
                _set_reasons(v, text)


def _flip(value: Any) -> None:
    """Turn a verdict into its opposite draft (pass <-> fail, scores to the other end)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if v == "pass":
                value[k] = "fail"
            elif v == "fail":
                value[k] = "pass"
            elif isinstance(v, bool):
                value[k] = not v
            elif isinstance(v, int) and k in ("score", "safety", "coherence"):
                value[k] = 1 if v > 2 else 4
            else:
                _flip(v)


def serve_main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="deterministic benchmark double")
    for name, value in asdict(DoubleConfig()).items():
        kind = type(value) if value is not None else str
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=value)
    p.add_argument("--favour", type=float, default=0.0)
    p.add_argument("--bodies", type=str, default=None)
    p.add_argument("--shapes", type=float, default=0.0)
    p.add_argument("--shapes-log", type=str, default=None)
    p.add_argument("--needs-tokens", type=str, default="")
    args = vars(p.parse_args(argv))
    favour, bodies = args.pop("favour"), args.pop("bodies")
    shapes, shapes_log = args.pop("shapes"), args.pop("shapes_log")
    needs = args.pop("needs_tokens")
    double = PipelineDouble(
        DoubleConfig(**args),
        favour=favour,
        bodies=bodies,
        shapes=shapes,
        shapes_log=shapes_log,
        needs_tokens=needs,
    )

    async def serve() -> None:
        await double.start()
        print(f"listening on {double.base_url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


# ----------------------------------------------------------------------------- processes
def start_double(**options: Any) -> tuple[subprocess.Popen, str]:
    """Start the deterministic double in its own process; return (process, base_url)."""
    cmd = [sys.executable, str(HERE / "harness.py"), "--port", "0"]
    for k, v in options.items():
        if v is not None:
            cmd += ["--" + k.replace("_", "-"), str(v)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the double did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].strip()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def compile_bytecode() -> None:
    """Byte-compile koalign's modules, as installing a package does. Where
    ``PYTHONDONTWRITEBYTECODE`` is set (it is on the machine of docs/benchmarks.md) an editable
    install never gets bytecode, and every measured run would compile the package from source
    first (about 0.2 s of CPU at start-up). Files already compiled are skipped."""
    import compileall

    if not compileall.compile_dir(str(ROOT / "src" / "koalign"), quiet=1):
        raise RuntimeError("compileall failed on src/koalign")


def koalign_cmd(config: Path, run_dir: Path, *extra: str) -> list[str]:
    """The ``koalign run`` command line (koalign's modules byte-compiled first)."""
    compile_bytecode()
    return [sys.executable, "-m", "koalign", "run", str(config), "-o", str(run_dir), *extra]


def env() -> dict[str, str]:
    e = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return e


def write_config(template: Path, dest: Path, base_url: str, **overrides: Any) -> Path:
    """Copy a bench config, pointing every model at ``base_url`` and applying overrides
    (dotted keys)."""
    import yaml

    data = yaml.safe_load(template.read_text(encoding="utf-8"))
    for spec in data["models"].values():
        spec["base_url"] = base_url
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    dest.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dest


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def reconcile(run_dir: Path) -> dict[str, Any]:
    """Check the manifest's counts stage by stage against the files; return the problems."""
    m = manifest(run_dir)
    problems: list[str] = []
    counts: dict[str, Any] = {}
    prev_out = None
    for stage in ("seeds", "attack", "respond", "judge"):
        entry = m["stages"].get(stage, {})
        path = run_dir / f"{stage}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        ids = [json.loads(x)["id"] for x in lines]
        counts[stage] = {
            "status": entry.get("status"),
            "records_in": entry.get("records_in"),
            "records_out": entry.get("records_out"),
            "lines": len(lines),
            "failed_calls": entry.get("failed_calls"),
            "errors": entry.get("errors"),
        }
        if len(ids) != len(set(ids)):
            problems.append(f"{stage}: duplicate ids")
        if entry.get("status") != "done":
            problems.append(f"{stage}: status {entry.get('status')}")
        if prev_out is not None and entry.get("records_in") is None:
            problems.append(f"{stage}: no records_in")
        prev_out = entry.get("records_out")
    exp = m["stages"].get("export", {})
    counts["export"] = {"records_in": exp.get("records_in"), "records_out": exp.get("records_out")}
    return {"counts": counts, "problems": problems, "status": m.get("status")}


if __name__ == "__main__":
    serve_main()

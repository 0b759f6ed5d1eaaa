"""The ``hf`` backend: a local transformers chat model (a folder, a hub id or a GGUF file).

* Batched generation with left padding. Concurrent single-request calls are gathered into
  micro-batches (up to ``max_batch_size`` requests that share sampling parameters and schema);
  generation runs in a worker thread, so the event loop stays responsive. Outputs can depend on
  batch composition (padding, batched kernels), so the backend is ``batch_sensitive``:
  :meth:`HFBackend.agenerate_fixed` generates a list as one unit, in list order, split into
  sub-batches of ``max_batch_size`` that share sampling and schema, never merged with other
  requests.
* Prompts are rendered with the tokenizer's chat template. A template without a system role
  (Gemma's raises an error or drops it) gets the system prompt folded into the first user turn.
* Greedy decoding when temperature is 0 or unset; otherwise each request samples with its own
  generator seeded from the sampling seed and the request's identity
  (:mod:`koalign.backends.sampling`), so its text does not depend on its batch neighbours' draws.
* A request with a JSON schema is decoded under that schema with outlines + llguidance
  (``pip install "koalign[structured]"``), without free whitespace.
* GGUF: ``model: path/to/file.gguf``, or ``model: <folder or hub id>`` with
  ``options.gguf_file: <name>.gguf``, loads through transformers' GGUF support (dequantised to
  ``dtype``; needs the ``gguf`` package of ``koalign[hf]``). A GGUF without a chat template needs
  ``options.chat_template``.

Options (``spec.options``): ``device`` (``auto``/``cpu``/``cuda``/``cuda:1``; auto = CUDA when
present), ``dtype`` (``auto``/``float32``/``bfloat16``/``float16``; auto = bf16 on CUDA,
float32 on CPU), ``adapter`` (a PEFT adapter folder loaded on top), ``max_batch_size``
(default 8), ``batch_wait_ms`` (how long a micro-batch waits for company, default 2),
``max_new_tokens`` (default when the request sets no ``max_tokens``, 512), ``chat_template``
(a Jinja template for tokenizers that ship none), ``gguf_file`` (see above).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from koalign.backends.base import Backend, ModelSpec
from koalign.backends.sampling import RowSampler, row_seed
from koalign.errors import BackendError, KoalignError, did_you_mean, require
from koalign.types import CallError, ChatRequest, ChatResult, Message

log = logging.getLogger(__name__)

OPTIONS = (
    "device",
    "dtype",
    "adapter",
    "max_batch_size",
    "batch_wait_ms",
    "max_new_tokens",
    "chat_template",
    "gguf_file",
)
_PROBE = "<<koalign-system-probe>>"

# Loaded weights shared by every hf model of the process that names the same folder, device,
# dtype, adapter and chat template (e.g. a sampling "writer" and a greedy "judge" on the same
# model): loaded once, used under one lock, released when the last user closes.
_SHARED: dict[tuple[str, ...], dict[str, Any]] = {}
_SHARED_LOCK = threading.Lock()


def _fingerprint_file(h: Any, f: Path) -> None:
    size = f.stat().st_size
    h.update(f"{f.name}:{size}".encode())
    with f.open("rb") as fh:
        h.update(fh.read(65536))
        if size > 131072:
            fh.seek(-65536, 2)
            h.update(fh.read())


def fingerprint(path: str | None) -> str | None:
    """A content fingerprint (16 hex digits) of a local model or adapter folder, or of one
    model file such as a GGUF (name, size, head and tail of every file), so a retrained model
    at the same path never hits a stale cache. A hub id is returned as is; ``None`` stays
    ``None``."""
    if path is None:
        return None
    root = Path(path)
    h = hashlib.sha256()
    if root.is_file():
        _fingerprint_file(h, root)
        return h.hexdigest()[:16]
    if not root.is_dir():
        return path  # a hub id
    for f in sorted(p for p in root.iterdir() if p.is_file()):
        _fingerprint_file(h, f)
    return h.hexdigest()[:16]


def gguf_source(spec: ModelSpec) -> tuple[str, str | None]:
    """``(folder or hub id, GGUF file name or None)`` for ``from_pretrained(..., gguf_file=)``:
    ``options.gguf_file`` names the file inside ``model``; a ``model`` ending in ``.gguf`` is
    split into its folder and file name. A leading ``~`` is the user's home folder."""
    model = _home(spec.model)
    name = spec.options.get("gguf_file")
    if name:
        return model, str(name)
    if model.lower().endswith(".gguf"):
        path = Path(model)
        return str(path.parent), path.name
    return model, None


def _home(path: str) -> str:
    """``path`` with a leading ``~`` expanded (a hub id never starts with one)."""
    return os.path.expanduser(path) if path.startswith("~") else path


_MAX_SANE_WINDOW = 10**8  # tokenizers without a limit report ~1e30


class HFBackend(Backend):
    """A local transformers model (see the module docstring)."""

    name = "hf"
    batch_sensitive = True

    def __init__(self, spec: ModelSpec, *, env: dict[str, str] | None = None) -> None:
        super().__init__(spec, env=env)
        for key in spec.options:
            if key not in OPTIONS:
                raise BackendError(
                    f"unknown hf option '{key}'{did_you_mean(key, OPTIONS)}",
                    where=f"model '{spec.model}'.options",
                    hint=f"known options: {', '.join(OPTIONS)}",
                )
        self.max_batch_size = int(spec.options.get("max_batch_size", 8))
        self.batch_wait_s = float(spec.options.get("batch_wait_ms", 2)) / 1000.0
        adapter = spec.options.get("adapter")
        self.adapter = _home(str(adapter)) if adapter else None
        self._lock = threading.Lock()
        self._model: Any = None
        self._tok: Any = None
        self._device: str | None = None
        self._fold_system: bool | None = None
        self._guide: Any = None
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = (
            weakref.WeakKeyDictionary()
        )
        self._identity: dict[str, Any] | None = None
        self.source, self.gguf_file = gguf_source(spec)

    def cache_identity(self) -> dict[str, Any]:
        """Backend, model, content fingerprints of the model (folder or GGUF file) and adapter,
        and dtype."""
        if self._identity is None:
            weights = self.source
            if self.gguf_file is not None:
                weights = str(Path(self.source) / self.gguf_file)
            self._identity = {
                "backend": self.name,
                "model": self.spec.model,
                "model_fp": fingerprint(weights),
                "adapter": fingerprint(self.adapter),
                "dtype": self.spec.options.get("dtype", "auto"),
            }
            if self.spec.options.get("gguf_file"):
                self._identity["gguf_file"] = self.gguf_file
        return self._identity

    def default_max_tokens(self) -> int:
        """``options.max_new_tokens`` (512 when unset)."""
        return int(self.spec.options.get("max_new_tokens", 512))

    # -- loading -----------------------------------------------------------------------------

    def _shared_key(self) -> tuple[str, ...]:
        opts = self.spec.options
        model = self.spec.model
        if opts.get("gguf_file"):
            model = f"{model}::{opts['gguf_file']}"
        return (
            model,
            str(opts.get("device", "auto")),
            str(opts.get("dtype", "auto")),
            str(self.adapter or ""),
            str(opts.get("chat_template") or ""),
        )

    def _load(self) -> None:
        """Load (or reuse) the weights; afterwards ``self._lock`` guards the shared model."""
        if self._model is not None:
            return
        with _SHARED_LOCK:
            entry = _SHARED.get(self._shared_key())
            if entry is None:
                self._load_weights()
                entry = {"tok": self._tok, "model": self._model, "device": self._device,
                         "lock": threading.Lock(), "users": 0}  # fmt: skip
                _SHARED[self._shared_key()] = entry
            entry["users"] += 1
            self._tok, self._model, self._device = entry["tok"], entry["model"], entry["device"]
            self._lock = entry["lock"]

    def _from_pretrained_kw(self) -> dict[str, Any]:
        if self.gguf_file is None:
            return {}
        require("gguf", "hf", feature="loading a GGUF model")
        return {"gguf_file": self.gguf_file}

    def _loading_error(self, exc: Exception) -> BackendError:
        what = f"{self.source}/{self.gguf_file}" if self.gguf_file else self.source
        return BackendError(
            f"cannot load the model {what}: {exc}",
            where=f"model '{self.spec.model}'",
            hint="give a local model folder or GGUF file, or a hub id that is cached or reachable",
        )

    def _make_tokenizer(self) -> Any:
        transformers = require("transformers", "hf", feature="the hf backend")
        try:
            tok = transformers.AutoTokenizer.from_pretrained(
                self.source, **self._from_pretrained_kw()
            )
        except (OSError, ValueError) as exc:
            raise self._loading_error(exc) from exc
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if self.spec.options.get("chat_template"):
            tok.chat_template = self.spec.options["chat_template"]
        if not getattr(tok, "chat_template", None):
            raise BackendError(
                "the tokenizer has no chat template",
                where=f"model '{self.spec.model}'",
                hint="use a chat/instruct model or set options.chat_template",
            )
        return tok

    def _load_tokenizer(self) -> None:
        """Load the tokenizer alone (for counting tokens), or reuse the loaded one."""
        if self._tok is not None:
            return
        with _SHARED_LOCK:
            entry = _SHARED.get(self._shared_key())
            if entry is not None:
                self._tok = entry["tok"]
            elif self._tok is None:
                self._tok = self._make_tokenizer()

    def _load_weights(self) -> None:
        torch = require("torch", "hf", feature="the hf backend")
        transformers = require("transformers", "hf", feature="the hf backend")
        device = str(self.spec.options.get("device", "auto"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype_name = str(self.spec.options.get("dtype", "auto"))
        if dtype_name == "auto":
            if device.startswith("cuda"):
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.float32
        else:
            dtype = getattr(torch, dtype_name, None)
            if not isinstance(dtype, torch.dtype):
                raise BackendError(
                    f"unknown dtype '{dtype_name}'",
                    where=f"model '{self.spec.model}'.options.dtype",
                    hint="use auto, float32, bfloat16 or float16",
                )
        tok = self._tok if self._tok is not None else self._make_tokenizer()
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                self.source, dtype=dtype, **self._from_pretrained_kw()
            )
        except (OSError, ValueError) as exc:
            raise self._loading_error(exc) from exc
        if self.adapter:
            peft = require("peft", "eval", feature="loading a PEFT adapter")
            try:
                model = peft.PeftModel.from_pretrained(model, self.adapter)
            except (OSError, ValueError) as exc:
                raise BackendError(
                    f"cannot load the adapter: {exc}",
                    where=f"model '{self.spec.model}'.options.adapter",
                    hint="point adapter at a folder written by PEFT (adapter_config.json)",
                ) from exc
        model.to(device)
        model.eval()
        self._tok, self._model, self._device = tok, model, device
        log.info("hf model %s loaded on %s (%s)", self.spec.model, device, dtype)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for value in (self._model.generation_config.eos_token_id, self._tok.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(int(v) for v in value)
        return ids

    # -- prompts -----------------------------------------------------------------------------

    def _template_has_system(self) -> bool:
        probe = [{"role": "system", "content": _PROBE}, {"role": "user", "content": "x"}]
        try:
            text = self._tok.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        except Exception:  # jinja raise_exception("System role not supported")
            return False
        return _PROBE in text

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for ``messages`` (the system prompt folded in when needed); the
        tokenizer must be loaded."""
        if self._fold_system is None:
            self._fold_system = not self._template_has_system()
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        if self._fold_system and msgs and msgs[0]["role"] == "system":
            system = msgs.pop(0)["content"]
            if msgs and msgs[0]["role"] == "user":
                msgs[0] = {"role": "user", "content": f"{system}\n\n{msgs[0]['content']}"}
            else:
                msgs.insert(0, {"role": "user", "content": system})
        return self._tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    # -- structured output -------------------------------------------------------------------

    def _schema_processor(self, schema: dict[str, Any]) -> Any:
        outlines = require("outlines", "structured", feature="JSON-schema output with hf")
        require("llguidance", "structured", feature="JSON-schema output with hf")
        from outlines.backends.llguidance import LLGuidanceBackend, LLGuidanceLogitsProcessor

        if self._guide is None:
            self._guide = LLGuidanceBackend(outlines.from_transformers(self._model, self._tok))
        spec = {**schema, "x-guidance": {"whitespace_flexible": False}}
        grammar = self._guide.llg.grammar_from("json_schema", json.dumps(spec))
        return LLGuidanceLogitsProcessor(grammar, self._guide.llg_tokenizer, "torch")

    # -- generation --------------------------------------------------------------------------

    def generate_batch(
        self, requests: Sequence[ChatRequest], abandoned: Callable[[], bool] | None = None
    ) -> list[ChatResult]:
        """Generate for requests that share sampling parameters and schema (blocking; one
        ``model.generate`` call, rows in the given order). ``abandoned`` is asked after every
        token: once it returns True (nobody waits for the answers any more: a stopped run),
        generation ends there and the cut results are not meant to be used."""
        import time

        self._load()
        with self._lock:
            torch = require("torch", "hf")
            transformers = require("transformers", "hf")
            start = time.perf_counter()
            first = requests[0]
            s = first.sampling
            tok = self._tok
            prompts = [self.render(r.messages) for r in requests]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self._device) for k, v in enc.items()}
            temperature = s.temperature if s else None
            kwargs: dict[str, Any] = {
                "max_new_tokens": (s.max_tokens if s and s.max_tokens else None)
                or self.default_max_tokens(),
                # sampling is done by RowSampler on top of greedy decoding
                "do_sample": False,
                "temperature": None,
                "top_p": None,
                "top_k": None,
                "pad_token_id": tok.pad_token_id,
            }
            if s and s.stop:
                kwargs.update(stop_strings=list(s.stop), tokenizer=tok)
            processors = []
            if first.json_schema is not None:
                try:
                    processors.append(self._schema_processor(first.json_schema))
                except KoalignError:
                    raise
                except Exception as exc:
                    error = CallError(
                        kind="bad_request", message=f"schema not supported by llguidance: {exc}"
                    )
                    return [ChatResult(error=error) for _ in requests]
            if temperature:
                seeds = [row_seed(s.seed if s else None, r) for r in requests]
                top_p = s.top_p if s else None
                processors.append(RowSampler(seeds, temperature, top_p, enc["input_ids"].device))
            if processors:
                kwargs["logits_processor"] = transformers.LogitsProcessorList(processors)
            if abandoned is not None:
                kwargs["stopping_criteria"] = transformers.StoppingCriteriaList(
                    [_Abandoned(abandoned, torch)]
                )
            with torch.inference_mode():
                out = self._model.generate(**enc, **kwargs)
            latency = time.perf_counter() - start
        return self._decode(requests, enc, out, latency)

    def _decode(
        self, requests: Sequence[ChatRequest], enc: Any, out: Any, latency: float
    ) -> list[ChatResult]:
        eos = self._eos_ids()
        width = enc["input_ids"].shape[1]
        results = []
        for i, request in enumerate(requests):
            ids = out[i, width:].tolist()
            n = len(ids)
            finish = "length"
            for j, t in enumerate(ids):
                if t in eos:
                    n, finish = j + 1, "stop"
                    break
            text = self._tok.decode(ids[:n], skip_special_tokens=True)
            stops = request.sampling.stop if request.sampling else None
            for stop in stops or ():
                cut = text.find(stop)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            results.append(
                ChatResult(
                    text=text,
                    finish_reason=finish,
                    tokens_in=int(enc["attention_mask"][i].sum()),
                    tokens_out=n,
                    latency_s=latency,
                )
            )
        return results

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests``, gathered with other concurrent requests into micro-batches."""
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _Batcher(self, loop)
        return list(await asyncio.gather(*(batcher.submit(r) for r in requests)))

    async def agenerate_fixed(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests`` as one unit: grouped by sampling and schema in order of first
        appearance, each group cut into sub-batches of ``max_batch_size`` in list order,
        generated one after the other in a worker thread, never merged with other requests."""
        out: list[ChatResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            bad = _unencodable(request)
            if bad is not None:
                out[i] = bad
            else:
                groups.setdefault(_group_key(request), []).append(i)
        for members in groups.values():
            for k in range(0, len(members), self.max_batch_size):
                chunk = members[k : k + self.max_batch_size]
                results = await _generate_in_thread(self, [requests[i] for i in chunk], None)
                for i, result in zip(chunk, results, strict=True):
                    out[i] = result
        return [r for r in out if r is not None]

    # -- model facts -------------------------------------------------------------------------

    def _context_window(self) -> int | None:
        values = []
        try:
            if self._model is not None:
                config = self._model.config
            else:
                transformers = require("transformers", "hf", feature="the hf backend")
                # Under the load lock: two models reading their configs at once in preflight's
                # threads would race through transformers' lazy first imports (GGUF reader).
                with _SHARED_LOCK:
                    config = transformers.AutoConfig.from_pretrained(
                        self.source, **self._from_pretrained_kw()
                    )
        except (OSError, ValueError) as exc:
            log.info("model %s: no config to read the window from (%s)", self.spec.model, exc)
            config = None
        for cfg in (config, getattr(config, "text_config", None)):
            value = getattr(cfg, "max_position_embeddings", None)
            if isinstance(value, int) and value > 0:
                values.append(value)
                break
        limit = getattr(self._tok, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < _MAX_SANE_WINDOW:
            values.append(limit)
        return min(values) if values else None

    async def acontext_window(self) -> int | None:
        """The smaller of the model config's ``max_position_embeddings`` and the tokenizer's
        ``model_max_length`` (when it states one), or ``None``. Reads the config file (or the
        GGUF header) when the weights are not loaded (on a daemon thread: a stop signal while
        the Hub is retried ends the command at once instead of waiting out the retries)."""
        return await _on_daemon_thread(self._context_window)

    def counts_tokens_exactly(self) -> bool:
        """Always: the model's own tokenizer counts."""
        return True

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens of ``messages`` rendered with the chat template (as generation sees
        them). Loads the tokenizer on first use; waits while a generation on the same weights
        runs."""
        self._load_tokenizer()
        with self._lock:
            text = self.render(messages)
            return len(self._tok(text, add_special_tokens=False)["input_ids"])

    async def aclose(self) -> None:
        """Release this model's share of the loaded weights (freed with the last user)."""
        with _SHARED_LOCK:
            if self._model is not None:
                entry = _SHARED.get(self._shared_key())
                if entry is not None:
                    entry["users"] -= 1
                    if entry["users"] <= 0:
                        del _SHARED[self._shared_key()]
            self._model = self._tok = self._guide = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def _group_key(request: ChatRequest) -> str:
    """Requests that may share one ``generate`` call: same sampling parameters and schema (each
    row samples with its own seed, so the sample index does not matter)."""
    s = request.sampling
    return json.dumps(
        [s.model_dump(mode="json") if s else None, request.json_schema], sort_keys=True
    )


def _unencodable(request: ChatRequest) -> ChatResult | None:
    """A ``bad_request`` result for a prompt that UTF-8 cannot encode (a lone surrogate), which
    no tokenizer accepts; ``None`` for a usable prompt."""
    for m in request.messages:
        try:
            m.content.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = m.content[exc.start : exc.end]
            return ChatResult(
                error=CallError(
                    kind="bad_request",
                    message=f"the {m.role} message holds text UTF-8 cannot encode "
                    f"({bad.encode('unicode_escape').decode()})",
                )
            )
    return None


class _Batcher:
    """Gathers concurrent requests of one event loop into micro-batches."""

    def __init__(self, backend: HFBackend, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.loop = loop
        self.pending: list[tuple[ChatRequest, asyncio.Future[ChatResult]]] = []
        self.task: asyncio.Task[None] | None = None

    def submit(self, request: ChatRequest) -> asyncio.Future[ChatResult]:
        """Queue ``request``; the future resolves with its result."""
        fut: asyncio.Future[ChatResult] = self.loop.create_future()
        bad = _unencodable(request)
        if bad is not None:
            fut.set_result(bad)
            return fut
        self.pending.append((request, fut))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())
        return fut

    async def _run(self) -> None:
        while self.pending:
            await asyncio.sleep(self.backend.batch_wait_s)
            key = _group_key(self.pending[0][0])
            batch: list[tuple[ChatRequest, asyncio.Future[ChatResult]]] = []
            rest: list[tuple[ChatRequest, asyncio.Future[ChatResult]]] = []
            for item in self.pending:
                if len(batch) < self.backend.max_batch_size and _group_key(item[0]) == key:
                    batch.append(item)
                else:
                    rest.append(item)
            self.pending = rest
            requests = [r for r, _ in batch]
            try:
                results = await _generate_in_thread(
                    self.backend, requests, functools.partial(_all_cancelled, batch)
                )
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)


def _all_cancelled(batch: list[tuple[ChatRequest, asyncio.Future[ChatResult]]]) -> bool:
    """Whether every caller of a micro-batch stopped waiting (their futures cancelled)."""
    return all(fut.cancelled() for _, fut in batch)


class _Abandoned:
    """A stopping criterion: every row stops once ``abandoned()`` is True."""

    def __init__(self, abandoned: Callable[[], bool], torch: Any) -> None:
        self.abandoned = abandoned
        self.torch = torch

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        stop = bool(self.abandoned())
        return self.torch.full(
            (input_ids.shape[0],), stop, dtype=self.torch.bool, device=input_ids.device
        )


async def _generate_in_thread(
    backend: HFBackend, requests: list[ChatRequest], abandoned: Callable[[], bool] | None
) -> list[ChatResult]:
    """``backend.generate_batch(requests)`` in a worker thread. When the awaiting task is
    cancelled (a stopped run), generation ends at the next token instead of running to
    ``max_new_tokens`` while the event loop's shutdown waits for the thread."""
    cancelled = threading.Event()

    def gone() -> bool:
        return cancelled.is_set() or (abandoned is not None and abandoned())

    try:
        return await asyncio.to_thread(backend.generate_batch, requests, gone)
    except asyncio.CancelledError:
        cancelled.set()
        raise


async def _on_daemon_thread(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on a daemon thread, awaited. Unlike ``asyncio.to_thread``, an interrupted
    caller neither waits for the thread when its event loop shuts down nor when the process
    exits (a model or tokenizer load may retry an unreachable Hub for minutes)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            result = (True, fn(*args))
        except BaseException as exc:  # handed to the caller
            result = (False, exc)
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, *result)

    threading.Thread(target=run, name="koalign-hf-load", daemon=True).start()
    return await future

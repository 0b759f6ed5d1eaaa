"""Registration of the built-in backends. Each factory imports its module lazily, so a missing
optional dependency only matters for the backend that needs it."""

from __future__ import annotations

from koalign.backends.base import Backend, ModelSpec, register_backend


def _scripted(spec: ModelSpec, env: dict[str, str]) -> Backend:
    from koalign.backends.scripted import ScriptedBackend

    return ScriptedBackend(spec, env=env)


def _openai(spec: ModelSpec, env: dict[str, str]) -> Backend:
    from koalign.backends.openai_compat import OpenAIBackend

    return OpenAIBackend(spec, env=env)


def _hf(spec: ModelSpec, env: dict[str, str]) -> Backend:
    from koalign.errors import require

    require("torch", "hf", feature="the hf backend")
    require("transformers", "hf", feature="the hf backend")
    from koalign.backends.hf import HFBackend

    return HFBackend(spec, env=env)


def _scripted_class() -> type[Backend]:
    from koalign.backends.scripted import ScriptedBackend

    return ScriptedBackend


def _openai_class() -> type[Backend]:
    from koalign.backends.openai_compat import OpenAIBackend

    return OpenAIBackend


def _hf_class() -> type[Backend]:
    from koalign.backends.hf import HFBackend  # imports neither torch nor transformers

    return HFBackend


def register_all() -> None:
    """Register scripted, openai and hf."""
    register_backend("scripted", _scripted, cls=_scripted_class)
    register_backend("openai", _openai, cls=_openai_class)
    register_backend("hf", _hf, cls=_hf_class)

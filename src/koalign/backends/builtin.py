"""Registration of the built-in backends. Each factory imports its module lazily, so a missing
optional dependency only matters for the backend that needs it."""

from __future__ import annotations

from koalign.backends.base import Backend, ModelSpec, register_backend


def _scripted(spec: ModelSpec, env: dict[str, str]) -> Backend:
    from koalign.backends.scripted import ScriptedBackend

    return ScriptedBackend(spec, env=env)


def register_all() -> None:
    register_backend("scripted", _scripted)

"""Model backends and the model layer (see :mod:`koalign.backends.client`)."""

from koalign.backends.base import (
    Backend,
    ModelSpec,
    backend_class,
    backend_names,
    create_backend,
    register_backend,
)
from koalign.backends.client import LLM, CallStats, ModelPool

__all__ = [
    "LLM",
    "Backend",
    "CallStats",
    "ModelPool",
    "ModelSpec",
    "backend_class",
    "backend_names",
    "create_backend",
    "register_backend",
]

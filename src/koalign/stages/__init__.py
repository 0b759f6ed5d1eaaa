"""The pipeline stages (one module each) and the stage registry.

See :mod:`koalign.stages.base` for the stage protocol. The built-in stages, in order: ``seeds``
(A), ``attack`` (B), ``respond`` (C), ``judge`` (D), ``export`` (E). A new stage is one module
with a :class:`~koalign.stages.base.Stage` subclass, registered with
:func:`~koalign.stages.base.register_stage`.
"""

from __future__ import annotations

from koalign.stages.base import (
    Call,
    CallFailure,
    ParseError,
    RoleSpec,
    Stage,
    StageContext,
    StageReport,
    get_stage,
    register_stage,
    stage_names,
    stages,
    unregister_stage,
)

__all__ = [
    "Call",
    "CallFailure",
    "ParseError",
    "RoleSpec",
    "Stage",
    "StageContext",
    "StageReport",
    "get_stage",
    "register_stage",
    "stage_names",
    "stages",
    "unregister_stage",
]

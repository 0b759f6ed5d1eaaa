"""Where the base model's files come from: a local folder, the local Hugging Face cache, or the
Hub. Checked once, before anything is loaded, so that a model that cannot be had fails at once
with a clear message instead of after transformers' download retries (about a minute when the
Hub cannot be reached).

The checks are huggingface_hub's own: ``HF_HUB_OFFLINE`` (``huggingface_hub.constants``),
``try_to_load_from_cache`` for the cache under ``HF_HOME``, and one ``HfApi.model_info`` call
with a short timeout and no retries as the probe of the Hub (``HF_ENDPOINT``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from koalign.errors import ConfigError, require

log = logging.getLogger(__name__)

#: Seconds the Hub probe waits for an answer.
PROBE_TIMEOUT_S = 5.0

Source = Literal["local", "cache", "hub"]


def looks_like_path(model: str) -> bool:
    """Whether ``model`` is written as a folder rather than a Hub id (``org/name``)."""
    return (
        model.startswith(("/", ".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or Path(model).expanduser().exists()
    )


def model_source(model: str, revision: str | None = None) -> Source:
    """Where ``model`` (a folder or a Hub id) will be loaded from.

    Returns:
        ``"local"`` for a folder; ``"cache"`` for a Hub id whose files are in the local cache
        while the Hub cannot be reached or offline mode is on (load it with
        ``local_files_only=True``, which skips the download retries); ``"hub"`` when the Hub
        answers (transformers then uses the cache or downloads as usual).

    Raises:
        ConfigError: a folder that does not exist; a Hub id that is not in the local cache
            while offline mode is on or the Hub cannot be reached; a Hub id or revision the Hub
            does not know. The hint says what to do.
        MissingExtraError: huggingface_hub is not installed.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return "local"
    if looks_like_path(model):
        raise ConfigError(
            f"model folder {model!r} not found",
            where="model",
            hint="give the folder that holds the model's config.json, or a Hub id like org/name",
        )
    hub = require("huggingface_hub", "train", feature="DPO training")
    cached = isinstance(hub.try_to_load_from_cache(model, "config.json", revision=revision), str)
    if hub.constants.HF_HUB_OFFLINE:
        if cached:
            return "cache"
        raise _not_available(
            model, revision, "offline mode is on (HF_HUB_OFFLINE)", hub.constants.HF_HUB_CACHE
        )
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        hub.HfApi().model_info(model, revision=revision, timeout=PROBE_TIMEOUT_S)
    except GatedRepoError:
        return "hub"  # reachable; transformers says how to get access
    except RepositoryNotFoundError:
        raise ConfigError(
            f"no model {model!r} on the Hub ({hub.constants.ENDPOINT})",
            where="model",
            hint="check the id; for a private model log in first (`hf auth login`), or point "
            "model: at a local folder",
        ) from None
    except RevisionNotFoundError:
        raise ConfigError(
            f"model {model!r} has no revision {revision!r} on the Hub",
            where="dpo_args.model_init_kwargs.revision",
            hint="give a branch, tag or commit of that model",
        ) from None
    except HfHubHTTPError as exc:  # the Hub answered with an error: let transformers decide
        log.warning("the Hub answered %s for %s; loading it as usual", exc, model)
        return "hub"
    except Exception as exc:  # no answer at all: connection refused, DNS, timeout, proxy
        if cached:
            log.warning(
                "the Hub (%s) cannot be reached (%s); using the cached files of %s",
                hub.constants.ENDPOINT,
                exc,
                model,
            )
            return "cache"
        reason = f"the Hub ({hub.constants.ENDPOINT}) cannot be reached: {exc}"
        raise _not_available(model, revision, reason, hub.constants.HF_HUB_CACHE) from None
    return "hub"


def _not_available(model: str, revision: str | None, reason: str, cache: str) -> ConfigError:
    at = f" at revision {revision!r}" if revision else ""
    return ConfigError(
        f"model {model!r}{at} is neither a local folder nor in the local Hugging Face cache "
        f"({cache}), and {reason}",
        where="model",
        hint="download it on a machine with network (`hf download "
        f"{model}`) and copy the folder here, then point model: at that folder; or set HF_HOME "
        "to a Hugging Face cache that holds it",
    )

"""koalign: culturally coherent Korean alignment data, DPO training and evaluation."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # the version is read from the installed metadata on first use (importlib.metadata costs
    # tens of milliseconds at import, paid by every command otherwise)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("koalign")
        except PackageNotFoundError:  # running from a source tree without installation
            value = "0.0.0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'koalign' has no attribute {name!r}")

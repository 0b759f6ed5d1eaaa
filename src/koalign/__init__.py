"""koalign: culturally coherent Korean alignment data, DPO training and evaluation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("koalign")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

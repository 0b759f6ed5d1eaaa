"""Run the koalign CLI with the deterministic test backend registered (used in subprocesses)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.fakes import register

register()

from koalign.cli import main  # noqa: E402

if __name__ == "__main__":
    main()

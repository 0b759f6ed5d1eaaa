"""``python -m koalign`` and the ``koalign`` command."""

from __future__ import annotations

import sys


def main() -> None:
    """Start the command line. A Ctrl-C while its modules load (about half a second) ends with
    exit status 130 and one line instead of a traceback."""
    try:
        from koalign.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("koalign: interrupted while starting; nothing was run\n")
        raise SystemExit(130) from None
    cli_main()


if __name__ == "__main__":
    main()

"""``python -m koalign`` and the ``koalign`` command."""

from __future__ import annotations

import sys


def main() -> None:
    """Start the command line. A Ctrl-C while its modules load (about half a second) ends with
    exit status 130 and one line instead of a traceback.

    The cyclic garbage collector runs less often from the start (a young generation of 50,000
    objects instead of 700): start-up builds over 100,000 objects the collector tracks (modules,
    the config, the locale pack), nearly all alive for the whole command, and with the default
    thresholds about a fifth of the start-up's time went into collections that freed almost
    nothing (a pipeline run then freezes them out of collection, see
    :meth:`koalign.runner.Pipeline.arun`)."""
    import gc

    gc.set_threshold(50_000, 20, 100)
    try:
        from koalign.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("koalign: interrupted while starting; nothing was run\n")
        raise SystemExit(130) from None
    cli_main()


if __name__ == "__main__":
    main()

"""``finetec-live``: camera or video -> pose -> windows -> recognizer -> ZeroMQ labels.

The command composes the library's steps (see ``docs/DESIGN.md``); the parts of one
run and its stages are :class:`~finetec_live.cli.session.LiveRun`. ``finetec-live ...
--serve ENDPOINT`` sends the windows to a ``finetec-serve`` instead of running the
model here (edge mode, :mod:`finetec_live.cli.edge`).

``finetec-live keygen DIR`` writes CURVE key pairs for non-loopback publishing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from finetec_live.cli import checks, runtime
from finetec_live.cli.options import build_parser
from finetec_live.cli.session import LiveRun
from finetec_live.errors import FinetecError

log = logging.getLogger("finetec_live")


def run(args: argparse.Namespace) -> int:
    """One live session; returns the exit status."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    checks.check_options(args)
    live = LiveRun(args)
    unexpected = False
    try:
        live.open()
        live.open_capture()
        live.capture()
        live.finish()
        return 0
    except BaseException as exc:
        unexpected = not isinstance(exc, FinetecError | KeyboardInterrupt)
        live.write_stats_after_error(exc)
        raise
    finally:
        live.close(unexpected)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "keygen":
        from finetec_live.cli.keygen import keygen_main

        return runtime.guarded(lambda: keygen_main(argv[1:]), log)
    return runtime.parse_and_run(build_parser, run, argv, log)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

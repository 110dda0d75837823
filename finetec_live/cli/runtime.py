"""Process-level settings of the live command: thread counts, priorities, environment."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from finetec_live.errors import FinetecError

log = logging.getLogger(__name__)

#: Nice value added to the capture/pose thread in live runs (``FINETEC_CAPTURE_NICE=0``:
#: off). Measured on 2 loaded cores, 30 s real-time replays: window latency p95
#: 23-25 ms at nice 0, 11-20 ms at nice 5, for a few more frames lost to pose.
DEFAULT_CAPTURE_NICE = 5


def env_int(name: str, default: int, low: int, high: int) -> int:
    """An integer environment variable in ``[low, high]``, or a one-line error."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise FinetecError(f"environment variable {name}={text!r} is not an integer; set it to "
                           f"a whole number from {low} to {high}, or unset it") from None
    if not low <= value <= high:
        raise FinetecError(f"environment variable {name}={value} is out of range; set it to a "
                           f"whole number from {low} to {high}, or unset it")
    return value


def capture_nice() -> int:
    return env_int("FINETEC_CAPTURE_NICE", DEFAULT_CAPTURE_NICE, 0, 19)


def lower_this_thread(nice: int) -> None:
    """Raise the calling thread's nice value (Linux: per thread); best effort."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError) as exc:  # other systems, or not permitted
        log.debug("cannot lower the capture thread's priority: %s", exc)


def limit_torch_threads() -> None:
    """Leave a core to pose estimation. A batch-1 window gains nothing from many
    threads, and loses a lot when they fight MediaPipe for the cores (measured
    on 2 cores: 8.6 ms with one thread, 49 ms with two), so at most two."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    n = max(1, min(2, (os.cpu_count() or 2) - 1))
    if torch.get_num_threads() > n:
        torch.set_num_threads(n)


class StopOnSignal:
    """SIGINT and SIGTERM set ``stop`` and say why (``why``: "end" until then); a second
    one of the same signal while stopping exits at once."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.why = "end"
        self._old: dict = {}

    def _handle(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set() and self.why == name:
            os._exit(128 + signum)  # a second signal while stopping: give up at once
        self.why = name
        # Not stop.set() here: the handler runs on the main thread, which may be
        # inside stop.wait() holding the event's (non-reentrant) lock; setting it
        # from here would deadlock. A helper thread sets it once the lock is free.
        threading.Thread(target=self.stop.set, name="stop-on-signal", daemon=True).start()

    def install(self) -> None:
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}


def parse_and_run(build_parser, run, argv, log: logging.Logger) -> int:
    """A command's main: parse ``argv``, log at ``--log-level`` on stderr, ``run(args)``,
    under :func:`guarded`."""
    def body() -> int:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=args.log_level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run(args)

    return guarded(body, log)


def guarded(body, log: logging.Logger) -> int:
    """Run a command's ``body()`` and turn what a user can cause into one ``error:`` line
    and exit 1 (no traceback; ``--log-level DEBUG`` logs it); Ctrl-C is exit 0."""
    try:
        return body()
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except MemoryError:
        print("error: out of memory; use a smaller --window or batch, or close other programs",
              file=sys.stderr)
        return 1
    except Exception as exc:  # no traceback for users; --log-level DEBUG shows it
        log.debug("unexpected error", exc_info=True)
        msg = str(exc).splitlines()[0][:200] if str(exc) else ""
        print(f"error: {type(exc).__name__}: {msg}; rerun with --log-level DEBUG and report "
              "the traceback", file=sys.stderr)
        return 1

"""What native libraries (MediaPipe, TFLite, FFmpeg, V4L2) print on file descriptor 2.

They print start-up chatter that a user cannot act on, on descriptor 2, beside
Python's own stderr. Two uses, one mechanism (``dup2`` of descriptor 2):

- :func:`quiet` around a single noisy call (opening a video, starting
  MediaPipe) whose failure we report ourselves as one clear line;
- :class:`NativeLog` for a whole live run: descriptor 2 goes to a log file, not
  to ``/dev/null``, so a native crash leaves its last words there, while
  Python's ``sys.stderr`` (our logging and ``error:`` lines) keeps the terminal
  and :mod:`faulthandler` writes a fatal signal's Python traceback to it.

With logging at DEBUG nothing is redirected.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_active: NativeLog | None = None  # the run-long redirection, when one is in place


@contextlib.contextmanager
def _fd2_to(fd: int) -> Iterator[None]:
    """Point descriptor 2 at ``fd`` for the block, then back."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Hide what native code prints during the block (no-op under a :class:`NativeLog`,
    which already keeps it in its file, or when ``enabled`` is False)."""
    if not enabled or _active is not None:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with _fd2_to(devnull):
            yield
    finally:
        os.close(devnull)


class NativeLog:
    """Descriptor 2 into ``path`` (default: a fresh file in the temp folder) for a run.

    ``start()`` redirects and enables :mod:`faulthandler` on the real terminal;
    ``stop(keep)`` restores descriptor 2 and ``sys.stderr`` and deletes the file
    unless ``keep`` (a run that ended in an unexpected error) and it holds
    something. A process killed by a native crash never calls ``stop``: the
    file stays, and faulthandler has printed where Python was.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else None
        self._saved: int | None = None
        self._old_stderr = None
        self._handlers: list[logging.StreamHandler] = []

    def start(self) -> NativeLog:
        global _active
        if _active is not None:
            raise RuntimeError("native stderr is already redirected")
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return self
        if self.path is None:
            fd, name = tempfile.mkstemp(prefix=f"finetec-live-native-{os.getpid()}-",
                                        suffix=".log")
            self.path = Path(name)
        else:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
        self._old_stderr = sys.stderr
        ours = os.fdopen(os.dup(self._saved), "w", buffering=1, encoding="utf-8",
                         errors="replace")
        sys.stderr = ours
        self._handlers = [h for h in logging.getLogger().handlers
                          if isinstance(h, logging.StreamHandler)
                          and h.stream is self._old_stderr]
        for h in self._handlers:
            h.setStream(ours)
        faulthandler.enable(file=ours, all_threads=True)
        _active = self
        log.debug("native library messages go to %s", self.path)
        return self

    def stop(self, keep: bool = False) -> Path | None:
        """Undo :meth:`start`; the log file's path when it was kept, else None."""
        global _active
        if self._saved is None:
            return None
        ours = sys.stderr
        with contextlib.suppress(Exception):
            ours.flush()
        faulthandler.disable()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        sys.stderr = self._old_stderr
        for h in self._handlers:
            h.setStream(self._old_stderr)
        with contextlib.suppress(Exception):
            ours.close()
        _active = None
        try:
            size = self.path.stat().st_size
        except OSError:
            return None
        if keep and size > 0:
            return self.path
        self.path.unlink(missing_ok=True)
        return None

    def __enter__(self) -> NativeLog:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

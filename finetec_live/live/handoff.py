"""The hand-off between the capture thread and the inference thread.

A bounded FIFO that drops the *oldest* item when full: capture never waits for
inference, and a window that inference could not take in time is counted as
dropped, never queued without bound.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any


def _count(item: Any) -> int:
    """Windows in an item: a list of them (one hop's, of several people) or one."""
    return len(item) if isinstance(item, list) else 1


class Handoff:
    """Bounded FIFO between threads that drops the *oldest* item when full.

    ``put(item)`` never blocks (unless ``force``, used for the last window of a
    file, which must not be lost); ``dropped`` counts the windows evicted as stale (an
    item is a window or a list of them: the windows of one hop).
    ``close()`` lets ``get`` return None once the queue is drained.
    """

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._q: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: Any, force: bool = False) -> bool:
        """Queue ``item``; False (item not queued) once the hand-off is closed."""
        with self._cv:
            if force:
                while len(self._q) >= self.maxsize and not self._closed:
                    self._cv.wait(0.05)
            if self._closed:
                return False
            while len(self._q) >= self.maxsize:
                self.dropped += _count(self._q.popleft())
            self._q.append(item)
            self._cv.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; None on timeout or when closed and drained."""
        with self._cv:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._q:
                if self._closed:
                    return None
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cv.wait(remaining)
            item = self._q.popleft()
            self._cv.notify_all()
            return item

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._q)

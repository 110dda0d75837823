"""Windows waiting for the model in a server: bounded, batched, and never stale.

:class:`Intake` holds the windows that producers sent, in arrival order. ``take``
gives a batch: up to ``max_batch`` windows, or what arrived within ``max_wait_s`` of
the oldest one, whichever comes first. A window older than ``max_age_s`` when its
batch is taken is dropped, and so is the oldest window when the intake is full:
every drop is counted per stream, nothing is queued without bound.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from finetec_live.inference.window import Window


@dataclass
class Arrival:
    """A window as it arrived: its producer's stream and the time it was received."""

    stream: str
    window: Window
    received: float  # perf_counter()


class Intake:
    """A bounded FIFO of :class:`Arrival`, taken in batches (thread-safe)."""

    def __init__(self, capacity: int, max_age_s: float) -> None:
        if capacity < 1 or not max_age_s > 0:
            raise ValueError(f"capacity ({capacity}) must be >= 1 and max_age_s ({max_age_s}) > 0")
        self.capacity, self.max_age_s = int(capacity), float(max_age_s)
        self._q: deque[Arrival] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.dropped: Counter = Counter()  # stream -> windows dropped (full or stale)
        self.received: Counter = Counter()  # stream -> windows put

    def put(self, stream: str, window: Window, received: float | None = None) -> None:
        with self._cv:
            if len(self._q) >= self.capacity:
                self.dropped[self._q.popleft().stream] += 1
            self._q.append(Arrival(stream, window, time.perf_counter() if received is None
                                   else received))
            self.received[stream] += 1
            self._cv.notify_all()

    def take(self, max_batch: int, max_wait_s: float, timeout: float = 0.1) -> list[Arrival]:
        """A batch (oldest first), or ``[]`` after ``timeout`` s without any window."""
        with self._cv:
            end = time.perf_counter() + timeout
            while not self._q and not self._closed:
                left = end - time.perf_counter()
                if left <= 0:
                    return []
                self._cv.wait(left)
            if not self._q:
                return []
            due = self._q[0].received + max_wait_s
            while len(self._q) < max_batch and not self._closed:
                left = due - time.perf_counter()
                if left <= 0:
                    break
                self._cv.wait(left)
            now = time.perf_counter()
            batch = []
            while self._q and len(batch) < max_batch:
                a = self._q.popleft()
                if now - a.received > self.max_age_s:
                    self.dropped[a.stream] += 1
                else:
                    batch.append(a)
            return batch

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def __len__(self) -> int:
        return len(self._q)

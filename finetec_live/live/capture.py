"""Capture that never waits on pose, and a timeline with no holes.

:class:`FramePump` reads a live source on a thread of its own (the caller
starts it: ``threading.Thread(target=pump.run)``), so a camera is read at its
own pace whatever pose estimation costs. The consumer takes the newest frame;
frames it had no time for are handed over too, without their pictures, as
*lagged* ticks at the times they were read: missing frames at their true times.

:class:`TickClock` sits between a source and the ring buffer. A source whose
timestamps jump (a camera that blocked or was reopened, a recording with a
hole) would leave a stretch of time with no tick, and resampling would stretch
what remains over the window; the clock fills such a stretch with missing
ticks at the nominal frame period (at most ``max_fill`` of them, the newest:
older ones could not stay in the ring buffer anyway) and counts them.
"""

from __future__ import annotations

import collections
import logging
import math
import statistics
import threading
from collections.abc import Iterable, Iterator

from finetec_live.live.sources import Frame

log = logging.getLogger(__name__)

#: Lagged ticks kept for the consumer; beyond this the oldest are forgotten (the
#: :class:`TickClock` re-creates their time as gap ticks).
MAX_PENDING_TICKS = 4096


class FramePump:
    """Newest-frame mailbox between a capture thread and the pose loop.

    ``run()`` is the body of the capture thread: it iterates the source until
    it ends, fails (the error is re-raised to the consumer) or ``stop()``.
    Iterating the pump yields, in time order, the lagged ticks (``image`` None,
    ``late`` True) and then the newest frame with its picture.
    """

    def __init__(self, source: Iterable[Frame], max_pending: int = MAX_PENDING_TICKS) -> None:
        self.source = source
        self.max_pending = int(max_pending)
        self._cv = threading.Condition()
        self._latest: Frame | None = None
        self._lagged: collections.deque[Frame] = collections.deque()
        self._done = False
        self._stopped = False
        self.error: BaseException | None = None
        self.read = 0  # frames read from the source
        self.lagged = 0  # of which handed over without picture
        self.forgotten = 0  # lagged ticks beyond max_pending (their time becomes a gap)

    def run(self) -> None:
        try:
            for frame in self.source:
                with self._cv:
                    if self._stopped:
                        break
                    self.read += 1
                    if self._latest is not None:
                        old = self._latest
                        self._lagged.append(Frame(old.index, old.timestamp, None, late=True,
                                                  wall=old.wall))
                        self.lagged += 1
                        if len(self._lagged) > self.max_pending:
                            self._lagged.popleft()
                            self.forgotten += 1
                    self._latest = frame
                    self._cv.notify_all()
        except BaseException as exc:  # handed to the consumer's thread
            self.error = exc
        finally:
            with self._cv:
                self._done = True
                self._cv.notify_all()

    def stop(self) -> None:
        """Ask the capture thread to end (the source's own stop event ends a blocking read)."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cv:
                while self._latest is None and not self._lagged and not self._done:
                    self._cv.wait(0.1)
                lagged = list(self._lagged)
                self._lagged.clear()
                latest, self._latest = self._latest, None
                done = self._done and latest is None and not lagged
            yield from lagged
            if latest is not None:
                yield latest
            if done:
                if self.error is not None:
                    raise self.error
                return


class TickClock:
    """Fills stretches of time without a tick with missing ticks, at the source's period.

    The period is the nominal one, or the median of the recent intervals between
    ticks when that is longer: a camera that reports 30 fps but delivers 15 (low
    light) has no gap between two frames 67 ms apart. ``gap_before(t)`` returns
    the timestamps of the missing ticks to push before a tick at ``t``: one per
    period of the stretch since the previous tick, beyond the 1.75 periods that
    jitter may take (at most ``max_fill``, the newest). ``filled`` counts them,
    ``skipped`` counts the ticks of a longer stretch that were not created.
    """

    RECENT = 31  # intervals in the running median
    MIN_RECENT = 5  # fewer intervals than this: the nominal period
    MAX_PERIOD_S = 1.0  # longer intervals are gaps, never a source's frame period

    def __init__(self, period: float, max_fill: int) -> None:
        if not (period > 0 and math.isfinite(period)) or max_fill < 0:
            raise ValueError(f"period ({period}) must be > 0 and max_fill ({max_fill}) >= 0")
        self.nominal, self.max_fill = float(period), int(max_fill)
        self.last: float | None = None
        self.filled = 0
        self.skipped = 0
        self.gap_seconds = 0.0  # time covered by the missing ticks (created or not)
        self._recent: collections.deque[float] = collections.deque(maxlen=self.RECENT)

    @property
    def period(self) -> float:
        """The period in force: the nominal one, or the measured one when longer."""
        if len(self._recent) < self.MIN_RECENT:
            return self.nominal
        return max(self.nominal, statistics.median(self._recent))

    def gap_before(self, t: float) -> list[float]:
        last, self.last = self.last, t
        if last is None:
            return []
        interval = t - last
        if 0 < interval <= self.MAX_PERIOD_S:
            self._recent.append(interval)
        period = self.period
        n = math.floor(interval / period - 0.75)  # missing ticks in the stretch
        if n <= 0:
            return []
        keep = min(n, self.max_fill)
        self.gap_seconds += n * period
        self.filled += keep
        self.skipped += n - keep
        return [last + k * period for k in range(n - keep + 1, n + 1)]

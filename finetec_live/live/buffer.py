"""Ring buffer of poses (one slot per frame tick) and time-based sliding windows.

The buffer keeps the newest ``capacity`` ticks: positions, a frame-valid mask, a
joint-valid mask and timestamps. A missing frame occupies its slot with
``frame_valid = False`` (positions zero, never faked). Windows are defined in
seconds: :class:`Windower` says when one is due, :meth:`RingBuffer.window` copies
it out in time order (across the wrap-around).

Window boundaries: with frame period ``p`` and ``tol = p / 2``, the window that
ends at ``t_end`` holds the ticks with ``t_end - length - tol <= t < t_end - tol``
and is due as soon as a tick with ``t >= t_end - tol - p`` has arrived (the last
tick it can hold). Windows end at ``t0 + length + k * hop``.

Hostile time: the windower takes any finite time within ``MAX_TIME`` (a time
that does not advance makes nothing due). After a forward jump, the windows
that lie wholly between two ticks (no tick at all) are skipped in one step and
counted in :attr:`Windower.skipped_empty`, so a jump of a million seconds costs
no more than one of a second. Sources deliver strictly increasing finite times
(:class:`~finetec_live.live.recording.KeypointSource` filters its file);
:meth:`RingBuffer.push` raises ``ValueError`` otherwise (a programming error).
"""

from __future__ import annotations

import math

import numpy as np

from finetec_live.inference.window import Window
from finetec_live.live.pose import Pose

#: Times are seconds within +-MAX_TIME (about 31 years): float64 still resolves
#: microseconds there, and no source runs that long.
MAX_TIME = 1e9
#: The shortest hop and frame period a windower takes (seconds).
MIN_STEP = 1e-4


class RingBuffer:
    """Fixed-size ring of frame ticks; ``push`` one :class:`Pose` per tick."""

    def __init__(self, capacity: int, num_joints: int, channels: int = 2,
                 layout: str = "") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity, self.num_joints, self.channels = capacity, num_joints, channels
        self.layout = layout
        self.positions = np.zeros((capacity, num_joints, channels), np.float32)
        self.joint_valid = np.zeros((capacity, num_joints), bool)
        self.frame_valid = np.zeros(capacity, bool)
        self.timestamps = np.full(capacity, -np.inf)
        self.indices = np.full(capacity, -1, np.int64)
        self.wall = np.zeros(capacity)
        self.pose_ms = np.zeros(capacity)
        self.count = 0  # ticks pushed in total

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    @property
    def latest_timestamp(self) -> float:
        return float(self.timestamps[(self.count - 1) % self.capacity]) if self.count else -math.inf

    def push(self, pose: Pose, wall: float = 0.0, pose_ms: float = 0.0) -> None:
        """Append one tick (a valid pose or a missing frame)."""
        if pose.positions.shape != (self.num_joints, self.channels):
            raise ValueError(f"pose has shape {pose.positions.shape}, buffer holds "
                             f"({self.num_joints}, {self.channels})")
        if self.layout and pose.layout != self.layout:
            raise ValueError(f"pose layout {pose.layout} != buffer layout {self.layout}")
        if not math.isfinite(pose.timestamp) or pose.timestamp <= self.latest_timestamp:
            raise ValueError(f"timestamps must increase: {pose.timestamp} after "
                             f"{self.latest_timestamp}")
        i = self.count % self.capacity
        valid = pose.valid
        self.positions[i] = pose.positions if valid else 0.0
        self.joint_valid[i] = pose.joint_valid if valid else False
        self.frame_valid[i] = valid
        self.timestamps[i] = pose.timestamp
        self.indices[i] = pose.index
        self.wall[i] = wall
        self.pose_ms[i] = pose_ms
        self.count += 1

    def _order(self) -> np.ndarray:
        """Slot indices from oldest to newest."""
        n = len(self)
        start = (self.count - n) % self.capacity
        return (start + np.arange(n)) % self.capacity

    def window(self, t_lo: float, t_hi: float, **meta) -> Window:
        """Copy out the ticks with ``t_lo <= t < t_hi``, oldest first."""
        order = self._order()
        ts = self.timestamps[order]
        sel = order[(ts >= t_lo) & (ts < t_hi)]
        wall = float(self.wall[sel[-1]]) if len(sel) else 0.0
        ran = self.pose_ms[sel][self.pose_ms[sel] > 0]  # ticks whose picture went through pose
        pose_ms = float(ran.mean()) if len(ran) else 0.0
        return Window(self.positions[sel].copy(), self.frame_valid[sel].copy(),
                      self.joint_valid[sel].copy(), self.timestamps[sel].copy(),
                      first_index=int(self.indices[sel[0]]) if len(sel) else 0,
                      wall_last=wall, pose_ms=pose_ms, layout=self.layout, **meta)


class Windower:
    """Decides when sliding windows (``length`` and ``hop`` in seconds) are due.

    ``update(t)`` after each pushed tick returns the ``(t_start, t_end)`` of the
    windows that just became due; ``flush(t_last)`` at the end of a source
    returns the final window covering the ticks not yet in any window.
    Windows with no tick at all (wholly inside a gap between two ticks) are not
    returned: they are counted in ``skipped_empty``.
    """

    def __init__(self, length: float, hop: float, frame_period: float) -> None:
        if not length >= MIN_STEP or not hop >= MIN_STEP or not frame_period >= MIN_STEP:
            raise ValueError(f"length ({length}), hop ({hop}) and frame_period "
                             f"({frame_period}) must be >= {MIN_STEP:g} s")
        self.length, self.hop, self.period = float(length), float(hop), float(frame_period)
        self.tol = 0.5 * self.period
        self.t0: float | None = None  # the first tick's time
        self.t_last: float | None = None  # the newest tick's time
        self.k = 0  # index of the next window (emitted and skipped before it)
        self.last_end: float | None = None
        self.skipped_empty = 0  # windows that held no tick, skipped

    def align(self, origin: float, first: float) -> None:
        """Put the windows on the grid of a timeline that started at ``origin`` (another
        person's, the stream's first tick), from the first window starting at or after
        ``first`` (this timeline's first tick). Call before the first :meth:`update`."""
        if self.t0 is not None:
            raise RuntimeError("align() must come before the first tick")
        if not (math.isfinite(origin) and math.isfinite(first)) or first < origin:
            raise ValueError(f"first tick {first} must be finite and not before {origin}")
        self.t0 = float(origin)
        self.k = max(0, math.ceil((first - origin) / self.hop - 1e-9))
        self.last_end = self.bounds(self.k)[0]

    def capacity_for(self, fps_margin: float = 2.0) -> int:
        """Ring capacity that holds a window and a hop with margin for jitter."""
        return math.ceil((self.length + self.hop) / self.period * fps_margin) + 16

    def bounds(self, k: int) -> tuple[float, float]:
        """The tick-selection interval ``[lo, hi)`` of window ``k``."""
        assert self.t0 is not None
        end = self.t0 + self.length + k * self.hop
        return end - self.length - self.tol, end - self.tol

    def update(self, t: float) -> list[tuple[float, float]]:
        """The windows due now that a tick at ``t`` has arrived (oldest first)."""
        t = float(t)
        if not math.isfinite(t) or abs(t) > MAX_TIME:
            raise ValueError(f"tick time {t} is not finite or beyond +-{MAX_TIME:g} s")
        prev = self.t_last
        if prev is not None and t <= prev:
            return []  # a time that does not advance makes nothing due
        if self.t0 is None:
            self.t0 = t
        self.t_last = t
        due = []
        while True:
            lo, hi = self.bounds(self.k)
            if t < hi - self.period:
                break
            if prev is not None and lo > prev and hi <= t:
                self._skip_empty(t)  # no tick in [lo, hi): the gap between prev and t
                continue
            due.append((lo, hi))
            self.k += 1
            self.last_end = hi
        return due

    def _skip_empty(self, t: float) -> None:
        """Skip, in one step, window ``k`` and the following ones that end by ``t``.

        Called when window ``k`` starts after the previous tick and ends by ``t``:
        those windows lie in the gap between the two ticks and hold none.
        """
        # the last window ending by t: hi(j) = t0 + length - tol + j * hop <= t
        assert self.t0 is not None
        last = self.k + max(0, math.floor((t - self.bounds(self.k)[1]) / self.hop))
        for _ in range(4):  # correct the rounding of the division (a step or two)
            if last > self.k and self.bounds(last)[1] > t:
                last -= 1
            elif self.bounds(last + 1)[1] <= t:
                last += 1
            else:
                break
        self.skipped_empty += last - self.k + 1
        self.last_end = self.bounds(last)[1]
        self.k = last + 1

    def flush(self, t_last: float) -> tuple[float, float] | None:
        """The last window, ending just after ``t_last``, if ticks remain uncovered.

        It is ``length`` long, but starts no earlier than the first tick (a
        source shorter than a window gives one window of its whole length).
        """
        if self.t0 is None:
            return None
        if self.last_end is not None and t_last < self.last_end:
            return None
        hi = t_last + self.tol
        self.k += 1
        self.last_end = hi + 1e-9
        return max(hi - self.length, self.t0 - self.tol), hi + 1e-9

"""One person's timeline: gap filling, ring buffer and sliding windows.

A stream holds one :class:`PersonTimeline` per person in view (today one, id 0):
each has its own ring buffer and window sequence, and turns the poses pushed
into it into due :class:`~finetec_live.inference.window.Window` objects, which
are what travels on to the model (in this process or another).
"""

from __future__ import annotations

import time

from finetec_live.inference.window import Window
from finetec_live.live.buffer import RingBuffer, Windower
from finetec_live.live.capture import TickClock
from finetec_live.live.pose import Pose
from finetec_live.skeleton.layouts import get_layout


class PersonTimeline:
    """``push(pose)`` one tick; returns the windows that became due (oldest first)."""

    def __init__(self, layout: str, window_s: float, hop_s: float, frame_period: float,
                 person: int = 0) -> None:
        self.layout, self.person = layout, int(person)
        self.windower = Windower(window_s, hop_s, frame_period)
        self.ring = RingBuffer(self.windower.capacity_for(), get_layout(layout).num_joints, 2,
                               layout)
        self.clock = TickClock(frame_period, self.ring.capacity)
        self.last_t: float | None = None

    @property
    def skipped_empty(self) -> int:
        """Windows that lay wholly in a stretch without any tick: never cut."""
        return self.windower.skipped_empty

    @property
    def gap_ticks(self) -> int:
        """Missing ticks pushed for time the source skipped over."""
        return self.clock.filled

    @property
    def gap_seconds(self) -> float:
        """Time the source skipped over (gap ticks, and a long gap's ticks never created)."""
        return self.clock.gap_seconds

    def push(self, pose: Pose, wall: float = 0.0, pose_ms: float = 0.0) -> list[Window]:
        due: list[Window] = []
        for t in self.clock.gap_before(pose.timestamp):
            self.ring.push(Pose.empty(self.layout, pose.index, t), wall=wall)
            due += self._cut_due(t)
        self.ring.push(pose, wall=wall, pose_ms=pose_ms)
        self.last_t = pose.timestamp
        return due + self._cut_due(pose.timestamp)

    def flush(self) -> Window | None:
        """The last window of a source that ended, if ticks remain that no window covered."""
        if self.last_t is None:
            return None
        final = self.windower.flush(self.last_t)
        return None if final is None else self._cut(*final, seq=self.windower.k - 1)

    def _cut_due(self, t: float) -> list[Window]:
        w = self.windower
        # window k selects [t0 - tol + k * hop, ...): its seq is k, counting the
        # windows the windower skipped in a gap
        lo0 = w.bounds(0)[0] if w.t0 is not None else 0.0
        return [self._cut(lo, hi, seq=round((lo - lo0) / w.hop)) for lo, hi in w.update(t)]

    def _cut(self, lo: float, hi: float, seq: int) -> Window:
        tol = self.windower.tol
        return self.ring.window(lo, hi, t_start=lo + tol, t_end=hi + tol, seq=seq,
                                wall_ready=time.perf_counter(), person=self.person)

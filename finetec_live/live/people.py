"""The people of one stream: a timeline per person, windows of one hop together.

With one person allowed (``--max-people 1``, the default) every tick's pose goes to
person 0, whose timeline starts at the first tick: the single-person behaviour.
With more, a :class:`~finetec_live.live.tracking.PeopleTracker` gives each pose a
track; each confirmed track gets its own :class:`PersonTimeline` (ring buffer,
window numbers), and a track not seen on a tick gets a missing frame there, which is
what the model completes. The timelines' windows lie on one grid (the stream's
first tick plus whole hops), so the windows of all people fall due on the same tick
and are classified in one batch. A track's first window starts at or after its first
tick; when a track ends its last window is cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from finetec_live.inference.window import Window
from finetec_live.live.capture import TickClock
from finetec_live.live.pose import Pose
from finetec_live.live.timeline import PersonTimeline
from finetec_live.live.tracking import PeopleTracker, TrackUpdate


@dataclass
class TrackStats:
    """One person's counters (``--stats-json``)."""

    first_t: float
    last_t: float
    posed: int = 0  # ticks with this person's pose
    windows: int = 0  # windows cut for this person
    skipped: int = 0  # of those, too few posed frames
    ended: bool = False


class People:
    """``push(poses, index, timestamp)`` once per tick (poses in the model's layout);
    returns the windows that became due, of every person (oldest tick first).
    ``current`` maps each person seen on the last tick to their pose."""

    def __init__(self, layout: str, window_s: float, hop_s: float, frame_period: float,
                 max_people: int = 1, timeout_s: float = 2.0) -> None:
        self.layout, self.max_people = layout, int(max_people)
        self._args = (window_s, hop_s, frame_period)
        self.timelines: dict[int, PersonTimeline] = {}
        self.tracks: dict[int, TrackStats] = {}
        self.clock = TickClock(frame_period, 1 << 16)  # the stream's own gaps, for counting
        self.origin: float | None = None
        self.current: dict[int, Pose] = {}
        self._ended_empty = 0  # skipped_empty of the timelines of ended tracks
        self.tracker = None
        if self.max_people > 1:
            self.tracker = PeopleTracker(max(1, math.ceil(timeout_s / frame_period)),
                                         frame_period)

    # ------------------------------------------------------------------ counters
    @property
    def in_view(self) -> int:
        """People tracked now (1 or 0 with one person allowed: whether a pose was seen)."""
        if self.tracker is None:
            return int(bool(self.tracks) and self.tracks[0].last_t == self.clock.last)
        return self.tracker.in_view

    @property
    def started(self) -> int:
        return len(self.tracks)

    @property
    def ended(self) -> int:
        return sum(t.ended for t in self.tracks.values())

    @property
    def skipped_empty(self) -> int:
        return self._ended_empty + sum(tl.skipped_empty for tl in self.timelines.values())

    @property
    def gap_ticks(self) -> int:
        return self.clock.filled

    @property
    def gap_seconds(self) -> float:
        return self.clock.gap_seconds

    # ------------------------------------------------------------------ ticks
    def _timeline(self, person: int, t: float) -> PersonTimeline:
        window_s, hop_s, period = self._args
        tl = PersonTimeline(self.layout, window_s, hop_s, period, person=person)
        if self.tracker is not None:  # on the stream's grid, from the track's first tick
            tl.windower.align(self.origin, t)
        self.timelines[person] = tl
        self.tracks[person] = TrackStats(first_t=t, last_t=t)
        return tl

    def _push(self, person: int, pose: Pose, wall: float, pose_ms: float) -> list[Window]:
        tl = self.timelines.get(person) or self._timeline(person, pose.timestamp)
        if pose.valid:
            track = self.tracks[person]
            track.posed += 1
            track.last_t = pose.timestamp
        return tl.push(pose, wall=wall, pose_ms=pose_ms)

    def push(self, poses: list[Pose], index: int, timestamp: float, wall: float = 0.0,
             pose_ms: float = 0.0, observed: bool = True) -> list[Window]:
        """``observed``: the tick had a picture that went through pose estimation (a
        lagged or gap tick did not: it is a missing frame of every track, and the tracker,
        whose timeout counts observed ticks, does not see it)."""
        if self.origin is None:
            self.origin = timestamp
        self.clock.gap_before(timestamp)
        if self.tracker is None:
            pose = next((p for p in poses if p.valid), None)
            self.current = {} if pose is None else {0: pose}
            return self._push(0, pose or Pose.empty(self.layout, index, timestamp), wall,
                              pose_ms)
        due: list[Window] = []
        if observed:
            update = self.tracker.update([p for p in poses if p.valid], timestamp)
        else:  # a tick without picture: nobody was looked for, the tracks wait
            update = TrackUpdate()
        self.current = dict(update.poses)
        for person, earlier in update.started.items():
            for t_old, old in earlier:  # the ticks that confirmed the track
                old = old or Pose.empty(self.layout, index, t_old)
                due += self._push(person, old, wall, pose_ms)
        for person in self.timelines:
            if person in update.ended:
                continue
            pose = update.poses.get(person) or Pose.empty(self.layout, index, timestamp)
            due += self._push(person, pose, wall, pose_ms)
        for person in update.started:
            if person not in self.timelines:  # confirmed with no earlier tick
                due += self._push(person, update.poses[person], wall, pose_ms)
        for person in update.ended:
            due += self._end(person)
        return sorted(due, key=lambda w: (w.t_end, w.person))

    def _end(self, person: int) -> list[Window]:
        tl = self.timelines.pop(person)
        self._ended_empty += tl.skipped_empty
        self.tracks[person].ended = True
        final = tl.flush()
        return [] if final is None else [final]

    def flush(self) -> list[Window]:
        """The last windows of a source that ended: one per person still tracked."""
        out = []
        for tl in self.timelines.values():
            final = tl.flush()
            if final is not None:
                out.append(final)
        return out

    def counted(self, window: Window, skipped: bool) -> None:
        """Count a window cut for its person (skipped: too few posed frames)."""
        track = self.tracks.get(window.person)
        if track is not None:
            track.windows += 1
            track.skipped += skipped

    def summary(self) -> dict[str, dict]:
        """Per person: first and last seen (s), posed ticks, windows, skipped, ended."""
        return {str(k): {"first_s": t.first_t, "last_s": t.last_t, "posed": t.posed,
                         "windows": t.windows, "skipped_windows": t.skipped, "ended": t.ended}
                for k, t in self.tracks.items()}

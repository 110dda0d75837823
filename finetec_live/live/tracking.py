"""Who is who from frame to frame: people's poses matched to tracks (norfair).

Each tick's poses (any layout) become norfair ``Detection`` objects, one point per
joint with the joint's validity as its score, and a Kalman-filtered tracker assigns
them to tracks. The distance between a pose and a track is the mean distance of
the joints the pose has, divided by the pose's size (the larger side of its box),
so the same threshold holds near and far from the camera, and it grows with the time
the track has gone unseen (:data:`GROWTH_PER_S`): a person who reappears after a jump or
from behind a tree is further from where the track last saw them, but is still nearer
to their own track than to anyone else's.

A track lives through a stretch without its person of up to ``timeout_ticks`` (norfair's
hit counter: a track matched on ``k`` ticks survives ``min(k, timeout_ticks)`` ticks
unmatched), so a person hidden for a moment keeps their id and the ticks in between are
missing frames of their track. A new track is confirmed after :data:`CONFIRM_TICKS`
consecutive matches (a stray detection makes no track); the poses of those first ticks
are kept and handed over with the confirmation, nothing is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from finetec_live.live.pose import Pose

#: Distance (mean joint distance over the pose's size) beyond which a pose is not a track's.
MATCH_DISTANCE = 0.5
#: How fast the match distance grows while a track is unseen (per second).
GROWTH_PER_S = 4.0
#: Per tick, how much of a track's largest size is kept (a crouch does not shrink them).
SIZE_MEMORY = 0.99
#: Consecutive matched ticks that confirm a new track.
CONFIRM_TICKS = 2
_FAR = 1e6  # the distance of a pair without a joint in common


def pose_size(positions: np.ndarray, valid: np.ndarray) -> float:
    """The larger side of the valid joints' box (at least 1)."""
    if not valid.any():
        return 1.0
    p = positions[valid]
    return float(max(1.0, *(p.max(0) - p.min(0))))


def _distance(detection, tracked) -> float:
    ok = detection.scores > 0.5
    if not ok.any():
        return _FAR
    d = np.linalg.norm(detection.points[ok] - tracked.estimate[ok], axis=1).mean()
    grow = 1.0 + GROWTH_PER_S * getattr(tracked, "finetec_unseen_s", 0.0)
    size = max(detection.data["size"], getattr(tracked, "finetec_size", 0.0),
               tracked.last_detection.data["size"])
    return float(d / size / grow)


class _Quiet(logging.Filter):
    """Drops norfair's advice to use a vectorised distance (ours needs the track's age)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "scalar distance function" not in record.getMessage()


def _norfair_tracker(match_distance: float, hit_counter_max: int):
    from norfair import Tracker  # imported on use: only several people need it

    root, quiet = logging.getLogger(), _Quiet()
    root.addFilter(quiet)
    try:
        return Tracker(distance_function=_distance, distance_threshold=match_distance,
                       hit_counter_max=hit_counter_max, initialization_delay=CONFIRM_TICKS,
                       detection_threshold=0.5, pointwise_hit_counter_max=4)
    finally:
        root.removeFilter(quiet)


@dataclass
class TrackUpdate:
    """What one tick did to the tracks.

    ``poses``: track id -> the tick's pose of that track (tracks alive but not seen this
    tick are absent); ``started``: tracks confirmed this tick, each with the earlier
    ticks of its confirmation, ``(timestamp, pose or None)``, oldest first;
    ``ended``: tracks that timed out this tick.
    """

    poses: dict[int, Pose] = field(default_factory=dict)
    started: dict[int, list[tuple[float, Pose | None]]] = field(default_factory=dict)
    ended: list[int] = field(default_factory=list)


class PeopleTracker:
    """``update(poses, timestamp)`` once per tick with that tick's poses (one layout)."""

    def __init__(self, timeout_ticks: int, frame_period: float,
                 match_distance: float = MATCH_DISTANCE) -> None:
        if timeout_ticks < 1 or not frame_period > 0:
            raise ValueError(f"timeout_ticks ({timeout_ticks}) must be >= 1 and frame_period "
                             f"({frame_period}) > 0")
        self.timeout_ticks, self.period = int(timeout_ticks), float(frame_period)
        self._tracker = _norfair_tracker(match_distance,
                                         max(self.timeout_ticks, CONFIRM_TICKS + 1))
        self._unseen: dict[int, int] = {}  # initializing id -> ticks since last matched
        self._alive: set[int] = set()
        self._pending: dict[int, list[tuple[float, Pose | None]]] = {}  # initializing id -> poses
        self.started = 0
        self.ended = 0
        self.stray_poses = 0  # poses of detections that never became a track

    @property
    def in_view(self) -> int:
        """Tracks alive now (seen recently enough)."""
        return len(self._alive)

    def update(self, poses: list[Pose], timestamp: float) -> TrackUpdate:
        from norfair import Detection

        dets = []
        for p in poses:
            if p.valid:
                score = p.joint_valid.astype(np.float64)
                dets.append(Detection(points=p.positions.astype(np.float64), scores=score,
                                      data={"pose": p, "size": pose_size(p.positions,
                                                                         p.joint_valid)}))
        for obj in self._tracker.tracked_objects:
            obj.finetec_unseen_s = (self._unseen.get(obj.initializing_id, 0) + 1) * self.period
        self._tracker.update(detections=dets)
        out = TrackUpdate()
        alive = set()
        unseen = {}
        for obj in self._tracker.tracked_objects:
            seen = next((d for d in dets if obj.last_detection is d), None)
            pose = None if seen is None else seen.data["pose"]
            unseen[obj.initializing_id] = 0 if seen is not None else \
                self._unseen.get(obj.initializing_id, 0) + 1
            if seen is not None:  # the person's size: a slowly forgotten maximum
                obj.finetec_size = max(seen.data["size"],
                                       SIZE_MEMORY * getattr(obj, "finetec_size", 0.0))
            if obj.id is None:  # not confirmed yet: keep what it saw
                if obj.hit_counter >= 0:
                    self._pending.setdefault(obj.initializing_id, []).append((timestamp, pose))
                continue
            if obj.hit_counter < 0:
                continue  # dead: ends below
            alive.add(obj.id)
            if obj.id not in self._alive:
                out.started[obj.id] = self._pending.pop(obj.initializing_id, [])
                self.started += 1
            if pose is not None:
                out.poses[obj.id] = pose
        live_init = {o.initializing_id for o in self._tracker.tracked_objects
                     if o.id is None and o.hit_counter >= 0}
        for k in [k for k in self._pending if k not in live_init]:
            # a stray detection that never became a track: its poses are counted
            self.stray_poses += sum(p is not None for _, p in self._pending.pop(k))
        self._unseen = unseen
        out.ended = sorted(self._alive - alive)
        self.ended += len(out.ended)
        self._alive = alive
        return out

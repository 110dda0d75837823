"""Per-track smoothing of the class evidence before the open-set decision.

One window's label flickers: a 2.5 s window of a squat may look like the pull of a
clean and jerk, the next one like a squat again. A :class:`Smoother` keeps, for each
track (a stream's person), the class probabilities and network features of its last
``windows`` windows, and hands the decision their mean instead of the newest window's
alone, so a label rests on a few seconds of evidence. It is causal (past windows only):
the label follows a change of action later, by about half the history
(``tools/evaluate_videos.py --smooth`` measures it).

A track's history holds only windows whose end lies within ``span = (windows - 1) * hop
+ hop / 2`` seconds of the newest one's: after a gap (the person left, windows were
skipped or dropped) the old windows fall out by themselves. A window that ends before
the previous one of its track (a new source, a replayed file) starts the track afresh,
and so does :meth:`Smoother.reset`, which the caller uses after an ``idle`` window
(what came before the stillness is another action). The region-motion scores behind
``idle`` are never smoothed: stillness is decided window by window.

A track also remembers the class its last window was labelled (:meth:`Smoother.hold`,
read back by :meth:`Smoother.held` for the next window): the open set's hysteresis
(``OpenSet.hold_below``) lets a class continue on less evidence than it needs to start.
The memory goes with the history: after a gap, a restart or a reset nothing is held,
and with ``windows=1`` (each window alone) nothing is kept at all.

At most ``max_tracks`` tracks are kept; the one unused longest is forgotten first
(counted in ``evicted``).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Hashable

import numpy as np

from finetec_live.errors import FinetecError

#: Windows averaged by default (at the default hop of 0.5 s: the last 2 s of windows),
#: chosen on the cross-validated development videos (docs/EVALUATION.md).
DEFAULT_WINDOWS = 4
#: Tracks kept at most.
MAX_TRACKS = 4096


class _Track:
    __slots__ = ("ends", "features", "held", "probs")

    def __init__(self) -> None:
        self.ends: deque[float] = deque()
        self.probs: deque[np.ndarray] = deque()
        self.features: deque[np.ndarray | None] = deque()
        self.held = -1  # the class index the previous window was labelled (-1: none)

    def pop_oldest(self) -> None:
        self.ends.popleft()
        self.probs.popleft()
        self.features.popleft()


class Smoother:
    """The mean of each track's last ``windows`` windows' probabilities (and features),
    ``hop_s`` seconds apart; ``windows=1`` passes every window through unchanged."""

    def __init__(self, windows: int = DEFAULT_WINDOWS, hop_s: float = 0.5,
                 max_tracks: int = MAX_TRACKS) -> None:
        if isinstance(windows, bool) or not isinstance(windows, int | np.integer) or windows < 1:
            raise FinetecError(f"smoothing needs a whole number of windows >= 1, got {windows!r}")
        if not (isinstance(hop_s, int | float) and math.isfinite(hop_s) and hop_s > 0):
            raise FinetecError(f"smoothing needs a hop > 0 seconds, got {hop_s!r}")
        self.windows = int(windows)
        self.hop_s = float(hop_s)
        self.span = (self.windows - 1) * self.hop_s + 0.5 * self.hop_s
        self.max_tracks = max(1, int(max_tracks))
        self._tracks: OrderedDict[Hashable, _Track] = OrderedDict()
        self.evicted = 0  # tracks forgotten for room
        self.restarted = 0  # tracks started afresh because their time went back

    def __len__(self) -> int:
        return len(self._tracks)

    def push(self, key: Hashable, t_end: float, probs: np.ndarray,
             features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Add track ``key``'s window ending at ``t_end`` (s) with class probabilities
        ``probs (K,)`` and features ``(C,)`` (or None); returns the mean probabilities
        ``(K,)`` and features ``(C,)`` of the track's history, this window included (the
        features' mean is None unless every kept window has features)."""
        if self.windows == 1:  # each window alone: no history, nothing held
            return np.asarray(probs, dtype=np.float32), features
        probs = np.array(probs, dtype=np.float32)  # a copy: the caller may reuse its array
        track = self._tracks.pop(key, None)
        if track is not None and (t_end < track.ends[-1] - 1e-6
                                  or track.probs[-1].shape != probs.shape):
            self.restarted += 1
            track = None
        if track is None:
            track = _Track()
            while len(self._tracks) >= self.max_tracks:
                self._tracks.popitem(last=False)
                self.evicted += 1
        self._tracks[key] = track  # now the most recently used
        previous = track.ends[-1] if track.ends else None
        track.ends.append(float(t_end))
        track.probs.append(probs)
        track.features.append(None if features is None else np.array(features, np.float32))
        while len(track.ends) > self.windows or track.ends[0] < t_end - self.span - 1e-6:
            track.pop_oldest()
        # the previous window is one hop back (half a hop of slack), or nothing is held
        if previous is None or previous < t_end - 1.5 * self.hop_s - 1e-6:
            track.held = -1
        mean = np.mean(track.probs, axis=0, dtype=np.float64)
        mean /= max(mean.sum(), 1e-12)
        feats = list(track.features)
        feat_mean = (None if any(f is None for f in feats) or
                     len({f.shape for f in feats}) > 1 else np.mean(feats, axis=0))
        return mean.astype(np.float32), feat_mean

    def held(self, key: Hashable) -> int:
        """The class index track ``key``'s previous window was labelled (see
        :meth:`hold`); -1 when none is held (a new track, a gap, another label)."""
        track = self._tracks.get(key)
        return -1 if track is None else track.held

    def hold(self, key: Hashable, cls: int) -> None:
        """Record the class index (-1: none) the newest window of track ``key`` was
        labelled, for its next window."""
        track = self._tracks.get(key)
        if track is not None:
            track.held = int(cls)

    def decided(self, key: Hashable, kind: str, cls: int) -> None:
        """What track ``key``'s newest window was decided (``kind`` of its
        :class:`~finetec_live.inference.openset.Decision`, ``cls`` its top class index):
        ``idle`` forgets the history, a class is held for the next window, ``unknown``
        holds nothing."""
        if kind == "idle":
            self.reset(key)
        else:
            self.hold(key, cls if kind == "class" else -1)

    def reset(self, key: Hashable) -> None:
        """Forget track ``key``'s history (its next window starts afresh)."""
        self._tracks.pop(key, None)

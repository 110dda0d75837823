"""The window: the unit that crosses from capture to the model.

A :class:`Window` is what the ring buffer cuts, what the recognizer classifies,
and what will travel between processes when the model runs elsewhere than the
capture. It holds only NumPy arrays and plain metadata (no pose-estimation or
torch objects), so it can be serialised as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Longest window, in seconds: longer windows only grow the ring buffer and the
#: warm-up (the model resamples every window to its own grid of T frames).
MAX_WINDOW_S = 60.0
#: Fewest seconds between windows.
MIN_HOP_S = 0.01


@dataclass
class Window:
    """A window of ``T`` frame ticks for the recognizer.

    positions (T, V, C) float32 (0 where missing), frame_valid (T,) bool,
    joint_valid (T, V) bool, timestamps (T,) float64 seconds, strictly increasing.
    """

    positions: np.ndarray
    frame_valid: np.ndarray
    joint_valid: np.ndarray
    timestamps: np.ndarray
    t_start: float = 0.0  # window bounds, seconds of source time
    t_end: float = 0.0
    seq: int = 0
    first_index: int = 0  # frame tick of positions[0]
    wall_last: float = 0.0  # perf_counter() when the newest tick was read
    wall_ready: float = 0.0  # perf_counter() when the window was cut (its last pose done)
    pose_ms: float = 0.0  # mean pose-estimation time over the ticks that went through pose
    layout: str = ""
    person: int = 0  # the person of the stream this window follows (one timeline each)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float32)
        self.frame_valid = np.asarray(self.frame_valid, dtype=bool)
        self.joint_valid = np.asarray(self.joint_valid, dtype=bool)
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        if self.positions.ndim != 3:
            raise ValueError(f"positions must be (T, V, C), got shape {self.positions.shape}")
        t, v, _ = self.positions.shape
        if self.frame_valid.shape != (t,):
            raise ValueError(f"frame_valid has shape {self.frame_valid.shape}, needs ({t},)")
        if self.joint_valid.shape != (t, v):
            raise ValueError(f"joint_valid has shape {self.joint_valid.shape}, needs ({t}, {v})")
        if self.timestamps.shape != (t,):
            raise ValueError(f"timestamps has shape {self.timestamps.shape}, needs ({t},)")
        if t > 1 and not np.all(np.diff(self.timestamps) > 0):
            raise ValueError("timestamps must be strictly increasing")
        if np.any(self.joint_valid & ~self.frame_valid[:, None]):
            raise ValueError("a missing frame (frame_valid False) cannot have valid joints")
        if np.any(self.frame_valid & ~self.joint_valid.any(1)):
            raise ValueError("a valid frame needs at least one valid joint")

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_valid(self) -> int:
        return int(self.frame_valid.sum())

    @property
    def missing_fraction(self) -> float:
        """Fraction of the window's ticks that are missing frames (1.0 when empty)."""
        return 1.0 - self.num_valid / self.num_frames if self.num_frames else 1.0

    @property
    def box(self) -> list[float]:
        """``[x0, y0, x1, y1]`` of the valid joints of the window's last posed frame, in
        the positions' units (source pixels live); ``[]`` when no frame is posed."""
        posed = np.flatnonzero(self.frame_valid)
        if len(posed) == 0:
            return []
        last = posed[-1]
        p = self.positions[last][self.joint_valid[last]]
        lo, hi = p.min(0), p.max(0)
        return [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]


def synthetic_window(layout: str, T: int, fps: float) -> Window:
    """A made-up window of ``T`` ticks at ``fps``, for warm-ups and self-checks.

    The layout's tree laid out at unit bone length, swaying once a second, 50 px per
    unit around (200, 200), with a quarter of its frames missing (no real motion).
    """
    from finetec_live.skeleton.layouts import get_layout

    lay = get_layout(layout)
    base = np.zeros((lay.num_joints, 2))
    for k in lay.topological_order():
        p = lay.parents[k]
        if p >= 0:
            base[k] = base[p] + np.array([0.3 * ((k % 3) - 1), 1.0])
    ts = np.arange(T) / fps
    sway = np.sin(2 * np.pi * ts)[:, None, None] * np.array([0.2, 0.0])
    pos = (base[None] + sway).astype(np.float32) * 50 + 200  # (T, V, 2) "pixels"
    fv = np.ones(T, bool)
    fv[T // 3: T // 3 + T // 4] = False
    pos[~fv] = 0.0
    jv = fv[:, None] & np.ones((T, lay.num_joints), bool)
    return Window(pos, fv, jv, ts, t_start=0.0, t_end=T / fps, layout=lay.name)

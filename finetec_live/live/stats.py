"""Counters and latency samples of one live run (``--stats-json`` and the heartbeats)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from finetec_live.wire.messages import StatusMessage


@dataclass
class Stats:
    """Counters of one run; written as ``--stats-json`` and sent as heartbeats.

    ``windows`` (due) = ``published`` + ``dropped_windows`` (stale, evicted by
    the hand-off) + ``skipped_windows`` (too few valid frames) + ``pending``.
    """

    frames: int = 0  # frame ticks pushed to the buffer (gap ticks included)
    pose_missing: int = 0  # ticks with a picture where pose estimation gave no usable pose
    no_image: int = 0  # ticks without picture: lagged + gap ticks + recorded gaps
    lagged: int = 0  # ticks whose picture was skipped because pose was still busy
    gap_ticks: int = 0  # ticks of time the source delivered nothing for (filled as missing)
    bad_ticks: int = 0  # unusable records of a recording, skipped
    gap_seconds: float = 0.0  # source time skipped over (gap ticks and beyond)
    drop_injected: int = 0  # ticks removed by --drop
    windows: int = 0
    published: int = 0
    dropped_windows: int = 0
    skipped_windows: int = 0
    empty_windows: int = 0  # windows wholly inside a long gap: numbered, never cut
    people: int = 0  # people tracked now
    tracks_started: int = 0  # tracks (people) since the start; 1 with --max-people 1
    tracks_ended: int = 0  # of those, tracks that timed out
    first_frame_wall: float | None = None
    last_frame_wall: float | None = None
    latency: dict[str, list[float]] = field(default_factory=lambda: {
        "pose": [], "kernels": [], "model": [], "total": [], "ready": []})
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    max_latency_samples: int = 100_000

    def add_latency(self, values: dict[str, float]) -> None:
        with self.lock:
            for k, v in values.items():
                lst = self.latency.setdefault(k, [])
                if len(lst) >= self.max_latency_samples:  # bounded memory on long runs
                    del lst[: len(lst) // 2]
                lst.append(float(v))

    @property
    def elapsed_s(self) -> float:
        if self.first_frame_wall is None or self.last_frame_wall is None:
            return 0.0
        return self.last_frame_wall - self.first_frame_wall

    def percentiles(self) -> dict[str, dict[str, float]]:
        out = {}
        with self.lock:
            for k, v in self.latency.items():
                if v:
                    a = np.asarray(v)
                    out[k] = {"p50": float(np.percentile(a, 50)),
                              "p95": float(np.percentile(a, 95)),
                              "p99": float(np.percentile(a, 99)),
                              "max": float(a.max()), "mean": float(a.mean()), "n": len(v)}
        return out

    def to_dict(self) -> dict[str, Any]:
        el = self.elapsed_s
        return {
            "frames": self.frames, "elapsed_s": el,
            "fps": (self.frames - 1) / el if el > 0 and self.frames > 1 else 0.0,
            "windows": self.windows, "published": self.published,
            "dropped_windows": self.dropped_windows, "skipped_windows": self.skipped_windows,
            "pose_missing": self.pose_missing, "no_image": self.no_image,
            "lagged": self.lagged, "gap_ticks": self.gap_ticks, "bad_ticks": self.bad_ticks,
            "gap_seconds": self.gap_seconds, "empty_windows": self.empty_windows,
            "drop_injected": self.drop_injected, "people": self.people,
            "tracks_started": self.tracks_started, "tracks_ended": self.tracks_ended,
            "latency_ms": self.percentiles(),
        }

    def status(self, stream: str, fps: float, uptime_s: float,
               state: str = "running") -> StatusMessage:
        return StatusMessage(stream=stream, fps=fps, frames=self.frames,
                             pose_missing=self.pose_missing, windows=self.windows,
                             published=self.published, dropped_windows=self.dropped_windows,
                             skipped_windows=self.skipped_windows, uptime_s=uptime_s,
                             state=state, wall_ns=time.time_ns(),
                             extra={"no_image": self.no_image, "lagged": self.lagged,
                                    "gap_ticks": self.gap_ticks, "bad_ticks": self.bad_ticks,
                                    "empty_windows": self.empty_windows,
                                    "drop_injected": self.drop_injected,
                                    "people": self.people,
                                    "tracks_started": self.tracks_started,
                                    "tracks_ended": self.tracks_ended})

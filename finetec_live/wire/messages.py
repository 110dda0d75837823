"""The wire format: label and status messages as plain msgpack maps.

Every payload is a map of strings, numbers, booleans, lists and maps only, so a
subscriber in any language decodes it with a stock msgpack library. Topics are
``label.<stream>`` and ``status.<stream>``; a message travels as two ZeroMQ
frames: the topic (UTF-8) and the msgpack payload.

Label payload (schema version :data:`SCHEMA_VERSION`):

=============  ==========  ====================================================
key            type        meaning
=============  ==========  ====================================================
``v``          int         schema version
``stream``     str         stream id (``--stream``)
``seq``        int         window sequence number, from 0, gaps = dropped windows
``t_start``    int         window start, nanoseconds of source time
``t_end``      int         window end, nanoseconds of source time
``label``      str         top class
``score``      float       its probability
``topk``       list        ``[[label, score], ...]``, best first
``missing``    float       fraction of the window's frames missing (0..1)
``completed``  bool        completion filled missing frames in this window
``latency_ms`` map         ``pose``, ``kernels``, ``model``, ``total``
``model``      str         id of the weights
``wall_ns``    int         wall clock (Unix epoch ns) at publication
=============  ==========  ====================================================
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack

SCHEMA_VERSION = 1
LABEL_KEYS = ("v", "stream", "seq", "t_start", "t_end", "label", "score", "topk", "missing",
              "completed", "latency_ms", "model", "wall_ns")
LATENCY_KEYS = ("pose", "kernels", "model", "total")
_STREAM_RE = re.compile(r"^[A-Za-z0-9_\-.]+$")


def check_stream_name(stream: str) -> str:
    """A stream id usable in a topic: letters, digits, ``_ - .``."""
    if not stream or not _STREAM_RE.match(stream):
        raise ValueError(f"stream id {stream!r} must be non-empty and use only letters, digits, "
                         "'_', '-' and '.'")
    return stream


def label_topic(stream: str) -> str:
    return f"label.{stream}"


def status_topic(stream: str) -> str:
    return f"status.{stream}"


@dataclass
class LabelMessage:
    """One classified window, as published on ``label.<stream>``."""

    stream: str
    seq: int
    t_start: int  # ns
    t_end: int  # ns
    label: str
    score: float
    topk: list[list[Any]]
    missing: float
    completed: bool
    latency_ms: dict[str, float]
    model: str
    wall_ns: int = 0
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        check_stream_name(self.stream)
        if self.seq < 0:
            raise ValueError(f"seq must be >= 0, got {self.seq}")
        if self.t_end < self.t_start:
            raise ValueError(f"t_end ({self.t_end}) is before t_start ({self.t_start})")
        if not (0.0 <= self.score <= 1.0 + 1e-6) or math.isnan(self.score):
            raise ValueError(f"score must be a probability, got {self.score}")
        if not (0.0 <= self.missing <= 1.0):
            raise ValueError(f"missing must be a fraction in [0, 1], got {self.missing}")
        if not self.topk or any(len(p) != 2 for p in self.topk):
            raise ValueError(f"topk must be a non-empty list of [label, score], got {self.topk}")
        if set(self.latency_ms) != set(LATENCY_KEYS):
            raise ValueError(f"latency_ms needs exactly the keys {LATENCY_KEYS}, "
                             f"got {sorted(self.latency_ms)}")
        # plain Python types only, so msgpack writes plain ints/floats/bools
        self.seq, self.t_start, self.t_end = int(self.seq), int(self.t_start), int(self.t_end)
        self.score, self.missing = float(self.score), float(self.missing)
        self.completed = bool(self.completed)
        self.topk = [[str(lab), float(s)] for lab, s in self.topk]
        self.latency_ms = {k: float(self.latency_ms[k]) for k in LATENCY_KEYS}
        self.wall_ns = int(self.wall_ns)

    @property
    def topic(self) -> str:
        return label_topic(self.stream)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in LABEL_KEYS}

    def pack(self) -> bytes:
        return msgpack.packb(self.to_dict(), use_bin_type=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelMessage:
        missing = [k for k in LABEL_KEYS if k not in d and k != "wall_ns"]
        if missing:
            raise ValueError(f"label message lacks keys {missing}")
        return cls(**{k: d[k] for k in LABEL_KEYS if k in d})

    @classmethod
    def unpack(cls, payload: bytes) -> LabelMessage:
        return cls.from_dict(msgpack.unpackb(payload, raw=False))


@dataclass
class StatusMessage:
    """The once-a-second heartbeat on ``status.<stream>``.

    Counters are totals since the start; ``fps`` is frames per second over the
    last heartbeat period.
    """

    stream: str
    fps: float
    frames: int
    pose_missing: int
    windows: int
    published: int
    dropped_windows: int
    skipped_windows: int
    uptime_s: float
    state: str = "running"  # "running" or "stopped" (sent once at exit)
    wall_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        check_stream_name(self.stream)
        if self.state not in ("running", "stopped"):
            raise ValueError(f"state must be 'running' or 'stopped', got {self.state!r}")
        for name in ("frames", "pose_missing", "windows", "published", "dropped_windows",
                     "skipped_windows"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def topic(self) -> str:
        return status_topic(self.stream)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d = {k: (float(v) if isinstance(v, float) else v) for k, v in d.items()}
        d.update(extra)
        return d

    def pack(self) -> bytes:
        return msgpack.packb(self.to_dict(), use_bin_type=True)


def unpack(payload: bytes) -> dict[str, Any]:
    """Decode any payload to a plain dict (strings as ``str``)."""
    return msgpack.unpackb(payload, raw=False)

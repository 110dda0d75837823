"""The wire format: label, segment and status messages as plain msgpack maps.

Every payload is a map of strings, numbers, booleans, lists and maps only, so a
subscriber in any language decodes it with a stock msgpack library. Topics are
``label.<stream>``, ``segment.<stream>`` and ``status.<stream>``; a message travels as
two ZeroMQ frames: the topic (UTF-8) and the msgpack payload.

Label payload, one per classified window (schema version :data:`SCHEMA_VERSION`):

=============  ==========  ====================================================
key            type        meaning
=============  ==========  ====================================================
``v``          int         schema version (3; 2 had no ``person``/``box``, 1 had
                           the top class as ``label``)
``stream``     str         stream id (``--stream``)
``seq``        int         window number on the stream's grid, from 0 (the same for
                           the people of one hop); gaps = windows dropped, skipped
                           or out of view
``t_start``    int         window start, nanoseconds of source time
``t_end``      int         window end, nanoseconds of source time
``person``     int         the person (track id; 0 with ``--max-people 1``)
``box``        list        ``[x0, y0, x1, y1]``, source pixels, of the person's
                           last posed frame in the window
``label``      str         the decision: a class, ``unknown`` (moving, like none
                           of the classes) or ``idle`` (nobody moving); always
                           the top class when the model has no open-set
                           calibration or ``--no-open-set`` is given
``score``      float       confidence in ``label`` (0..1): a class's probability;
                           for ``unknown`` 1 - the top probability; for ``idle``
                           1 - the largest region motion / the idle floor
``topk``       list        ``[[class, probability], ...]``, best first (the
                           classifier's ranking, whatever the decision)
``missing``    float       fraction of the window's frames missing (0..1)
``completed``  bool        completion filled missing frames in this window
``latency_ms`` map         ``pose``, ``kernels``, ``model``, ``total``
``model``      str         id of the weights
``wall_ns``    int         wall clock (Unix epoch ns) at publication
=============  ==========  ====================================================

Segment payload, one when a stretch of one label ends (and the open one when the stream
ends; the rule is in :mod:`finetec_live.live.segments`):

================  =====  ==============================================================
key               type   meaning
================  =====  ==============================================================
``v``             int    schema version
``stream``        str    stream id
``seq``           int    segment sequence number, from 0 (counted over all people)
``person``        int    the person (track id) whose labels these are
``label``         str    a class, ``unknown`` or ``idle``
``t_start``       int    segment start, nanoseconds of source time
``t_end``         int    segment end, nanoseconds of source time
``windows``       int    windows in the segment (flicker of other labels included)
``votes``         int    of those, windows whose label was ``label`` (1..windows)
``score``         float  mean ``score`` of those windows
``first_window``  int    ``seq`` of its first window (label messages)
``last_window``   int    ``seq`` of its last window
``model``         str    id of the weights
``wall_ns``       int    wall clock (Unix epoch ns) at publication
================  =====  ==============================================================
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack

from finetec_live.wire.values import boolean as _bool
from finetec_live.wire.values import box as _box
from finetec_live.wire.values import integer as _int
from finetec_live.wire.values import plain as _plain
from finetec_live.wire.values import probability as _probability
from finetec_live.wire.values import real as _real
from finetec_live.wire.values import string as _str

SCHEMA_VERSION = 3
#: The labels of schema 2 that are not classes (as ``finetec_live.inference.openset`` names them)
OPEN_SET_LABELS = ("unknown", "idle")
LABEL_KEYS = ("v", "stream", "seq", "t_start", "t_end", "person", "box", "label", "score",
              "topk", "missing", "completed", "latency_ms", "model", "wall_ns")
SEGMENT_KEYS = ("v", "stream", "seq", "person", "label", "t_start", "t_end", "windows", "votes",
                "score", "first_window", "last_window", "model", "wall_ns")
#: Keys a decoder fills in when a message of an earlier schema lacks them.
OPTIONAL_KEYS = ("wall_ns", "person", "box")
LATENCY_KEYS = ("pose", "kernels", "model", "total")
STATUS_COUNTERS = ("frames", "pose_missing", "windows", "published", "dropped_windows",
                   "skipped_windows")
# Largest payload either side accepts (zmq.MAXMSGSIZE on the sockets): a label is
# a few hundred bytes, so this only stops garbage, never a real message.
MAX_MESSAGE_BYTES = 1 << 20
_STREAM_RE = re.compile(r"^[A-Za-z0-9_\-.]+$")


class MalformedMessage(ValueError):
    """A payload that is not a finetec-live message: not msgpack, not a map, a key
    missing, a value of the wrong type or out of range."""


def check_stream_name(stream: str) -> str:
    """A stream id usable in a topic: letters, digits, ``_ - .``."""
    if not isinstance(stream, str) or not stream or not _STREAM_RE.match(stream):
        raise ValueError(f"stream id {stream!r} must be non-empty and use only letters, digits, "
                         "'_', '-' and '.'")
    return stream


def _map(what: str, d: Any, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise MalformedMessage(f"a {what} payload is a map, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise MalformedMessage(f"{what} message lacks keys {missing}")
    return d


def label_topic(stream: str) -> str:
    return f"label.{stream}"


def status_topic(stream: str) -> str:
    return f"status.{stream}"


def segment_topic(stream: str) -> str:
    return f"segment.{stream}"


def _fresh(v: Any) -> Any:
    """``v`` with its lists and maps copied (the values in them are plain)."""
    if isinstance(v, list):
        return [_fresh(x) for x in v]
    if isinstance(v, dict):
        return {k: _fresh(x) for k, x in v.items()}
    return v


def _packed(d: dict[str, Any]) -> bytes:
    payload = msgpack.packb(d, use_bin_type=True)
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(payload)} bytes exceeds MAX_MESSAGE_BYTES "
                         f"({MAX_MESSAGE_BYTES}); subscribers would refuse it")
    return payload


class _Keyed:
    """What a label and a segment message share: a fixed key order (``_KEYS``), every key
    but ``wall_ns`` required on decoding, keys beyond the schema ignored."""

    _KEYS: tuple[str, ...] = ()  # set by each message class
    _KIND = ""

    def to_dict(self) -> dict[str, Any]:
        # a fresh map with fresh lists and maps (not dataclasses.asdict: its deep copy was
        # a tenth of a busy server's time)
        return {k: _fresh(getattr(self, k)) for k in self._KEYS}

    def pack(self) -> bytes:
        return _packed(self.to_dict())

    def _check_common(self) -> None:
        """The keys both messages have: stream, version, number, bounds, label, model."""
        self.stream = check_stream_name(self.stream)
        self.v = _int("v", self.v, 1)
        self.seq = _int("seq", self.seq, 0)
        self.t_start, self.t_end = _int("t_start", self.t_start), _int("t_end", self.t_end)
        self.wall_ns = _int("wall_ns", self.wall_ns)
        if self.t_end < self.t_start:
            raise ValueError(f"t_end ({self.t_end}) is before t_start ({self.t_start})")
        self.label, self.model = _str("label", self.label), _str("model", self.model)
        self.person = _int("person", self.person, 0)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """The message of a decoded payload; keys beyond the schema are ignored, and
        ``person`` and ``box`` (schema 3) default to 0 and ``[]``.

        Raises :class:`MalformedMessage` (a ``ValueError``) for anything else.
        """
        d = _map(cls._KIND, d, tuple(k for k in cls._KEYS if k not in OPTIONAL_KEYS))
        try:
            return cls(**{k: d[k] for k in cls._KEYS if k in d})
        except ValueError as exc:
            raise MalformedMessage(f"{cls._KIND} message: {exc}") from None

    @classmethod
    def unpack(cls, payload: bytes):
        return cls.from_dict(unpack(payload))


@dataclass
class LabelMessage(_Keyed):
    """One classified window, as published on ``label.<stream>``."""

    _KEYS = LABEL_KEYS
    _KIND = "label"

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
    person: int = 0
    box: list[float] = field(default_factory=list)
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # types first, then ranges; plain Python types after, so msgpack writes
        # plain ints/floats/bools. Every failure is a ValueError naming the field.
        self._check_common()
        self.score = _probability("score", self.score)
        self.missing = _real("missing", self.missing, 0.0, 1.0, "a fraction in [0, 1]")
        self.completed = _bool("completed", self.completed)
        topk = self.topk
        if (not isinstance(topk, (list, tuple)) or not topk
                or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in topk)):
            raise ValueError(f"topk must be a non-empty list of [label, score], got {topk!r:.80}")
        self.topk = [[_str("topk label", lab), _probability("topk score", sc)] for lab, sc in topk]
        lat = self.latency_ms
        if not isinstance(lat, dict) or set(lat) != set(LATENCY_KEYS):
            got = sorted(map(str, lat)) if isinstance(lat, dict) else type(lat).__name__
            raise ValueError(f"latency_ms needs exactly the keys {LATENCY_KEYS}, got {got}")
        self.latency_ms = {k: _real(f"latency_ms.{k}", lat[k]) for k in LATENCY_KEYS}
        self.box = _box(self.box)

    @property
    def topic(self) -> str:
        return label_topic(self.stream)



@dataclass
class SegmentMessage(_Keyed):
    """A stretch of one label, as published on ``segment.<stream>`` when it ends."""

    _KEYS = SEGMENT_KEYS
    _KIND = "segment"

    stream: str
    seq: int
    label: str
    t_start: int  # ns
    t_end: int  # ns
    windows: int
    votes: int
    score: float
    first_window: int
    last_window: int
    model: str
    wall_ns: int = 0
    person: int = 0
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self._check_common()
        self.windows = _int("windows", self.windows, 1)
        self.votes = _int("votes", self.votes, 1, self.windows)
        self.score = _probability("score", self.score)
        self.first_window = _int("first_window", self.first_window, 0)
        self.last_window = _int("last_window", self.last_window, self.first_window)
        if self.windows > self.last_window - self.first_window + 1:
            raise ValueError(f"{self.windows} windows do not fit in window numbers "
                             f"{self.first_window}..{self.last_window}")

    @property
    def topic(self) -> str:
        return segment_topic(self.stream)



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
        self.stream = check_stream_name(self.stream)
        if self.state not in ("running", "stopped"):
            raise ValueError(f"state must be 'running' or 'stopped', got {self.state!r}")
        for name in STATUS_COUNTERS:
            setattr(self, name, _int(name, getattr(self, name), 0))
        self.fps = _real("fps", self.fps, 0.0, what="a finite number >= 0")
        self.uptime_s = _real("uptime_s", self.uptime_s, 0.0, what="a finite number >= 0")
        self.wall_ns, self.v = _int("wall_ns", self.wall_ns), _int("v", self.v, 1)
        self.extra = _plain("extra", self.extra)
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a map, got {type(self.extra).__name__}")

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
        return _packed(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StatusMessage:
        """The heartbeat of a decoded payload; keys beyond the fields go to ``extra``.

        Raises :class:`MalformedMessage` (a ``ValueError``) for anything else.
        """
        fields = (*STATUS_COUNTERS, "stream", "fps", "uptime_s", "state", "wall_ns", "v")
        d = _map("status", d, ("stream", "fps", *STATUS_COUNTERS, "uptime_s"))
        extra = {k: v for k, v in d.items() if k not in fields}
        try:
            return cls(**{k: d[k] for k in fields if k in d}, extra=extra)
        except ValueError as exc:
            raise MalformedMessage(f"status message: {exc}") from None

    @classmethod
    def unpack(cls, payload: bytes) -> StatusMessage:
        return cls.from_dict(unpack(payload))


def unpack(payload: bytes) -> Any:
    """Decode any payload (strings as ``str``); :class:`MalformedMessage` when it is
    not one msgpack value of at most :data:`MAX_MESSAGE_BYTES`."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise MalformedMessage(f"a payload is bytes, got {type(payload).__name__}")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"payload of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return msgpack.unpackb(payload, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedMessage(f"not a msgpack value ({type(exc).__name__}: {exc})") from None

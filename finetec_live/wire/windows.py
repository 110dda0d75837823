"""The window message: a :class:`~finetec_live.inference.window.Window` as a msgpack map,
so the model can run in another process (or on another machine) than the capture.

A map of: ``v`` (1), ``stream``, ``seq``, ``t_start``, ``t_end`` (ns), ``layout``
(e.g. ``"penn13"``), ``shape`` ``[T, V, 2]``, ``positions`` (bin, float32
little-endian, ``(T, V, 2)``, any units), ``frame_valid`` (bin, uint8 ``(T,)``),
``joint_valid`` (bin, uint8 ``(T, V)``), ``timestamps`` (bin, float64 LE ``(T,)``
seconds), and optionally ``person`` (int, default 0). Other keys are ignored.
Anything that is not such a map is a :class:`MalformedMessage`.
"""

from __future__ import annotations

import numbers

import msgpack
import numpy as np

from finetec_live.inference.window import Window
from finetec_live.wire.messages import (
    MAX_MESSAGE_BYTES,
    MalformedMessage,
    check_stream_name,
)

WINDOW_VERSION = 1
MAX_WINDOW_TICKS = 60_000  # 60 s at 1,000 fps
MAX_JOINTS = 256
_INT64 = 2**63


def pack_window(window: Window, stream: str) -> bytes:
    """``window`` as a window message of ``stream``."""
    check_stream_name(stream)
    T, V, C = window.positions.shape
    return msgpack.packb({
        "v": WINDOW_VERSION, "stream": stream, "seq": int(window.seq),
        "t_start": round(window.t_start * 1e9), "t_end": round(window.t_end * 1e9),
        "layout": window.layout, "shape": [T, V, C], "person": int(window.person),
        "positions": window.positions.astype("<f4").tobytes(),
        "frame_valid": window.frame_valid.astype(np.uint8).tobytes(),
        "joint_valid": window.joint_valid.astype(np.uint8).tobytes(),
        "timestamps": window.timestamps.astype("<f8").tobytes()}, use_bin_type=True)


def _int(m: dict, key: str, low: int = 0) -> int:
    v = m.get(key, 0 if key == "person" else None)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not low <= v < _INT64:
        raise MalformedMessage(f"window message: {key} must be an integer >= {low}, got {v!r}")
    return int(v)


def _array(m: dict, key: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    raw = m.get(key)
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not isinstance(raw, bytes) or len(raw) != n:
        size = len(raw) if isinstance(raw, bytes) else type(raw).__name__
        raise MalformedMessage(f"window message: {key} must be {n} bytes of {dtype} "
                               f"{shape}, got {size}")
    return np.frombuffer(raw, dtype).reshape(shape)


def unpack_window(payload: bytes) -> tuple[str, Window]:
    """``(stream, window)`` of a window message; :class:`MalformedMessage` otherwise."""
    if not isinstance(payload, bytes | bytearray) or len(payload) > MAX_MESSAGE_BYTES:
        raise MalformedMessage("window message: not bytes, or over the size limit")
    try:
        m = msgpack.unpackb(payload, raw=False, max_bin_len=MAX_MESSAGE_BYTES)
    except Exception as exc:  # any decoding failure of hostile bytes
        raise MalformedMessage(f"window message: not msgpack ({type(exc).__name__})") from None
    if not isinstance(m, dict) or m.get("v") != WINDOW_VERSION:
        raise MalformedMessage("window message: not a map with v = 1")
    stream, layout, shape = m.get("stream"), m.get("layout"), m.get("shape")
    try:
        check_stream_name(stream if isinstance(stream, str) else "")
    except ValueError as exc:
        raise MalformedMessage(f"window message: {exc}") from None
    if not isinstance(layout, str) or not (
            isinstance(shape, list) and len(shape) == 3 and shape[2] == 2
            and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
            and 1 <= shape[0] <= MAX_WINDOW_TICKS and 1 <= shape[1] <= MAX_JOINTS):
        raise MalformedMessage(f"window message: layout {layout!r} / shape {shape!r} invalid")
    T, V, _ = shape
    seq, t0, t1, person = (_int(m, "seq"), _int(m, "t_start", -_INT64), _int(m, "t_end", -_INT64),
                           _int(m, "person"))
    try:
        window = Window(_array(m, "positions", "<f4", (T, V, 2)).copy(),
                        _array(m, "frame_valid", "u1", (T,)).astype(bool),
                        _array(m, "joint_valid", "u1", (T, V)).astype(bool),
                        _array(m, "timestamps", "<f8", (T,)).copy(),
                        t_start=t0 / 1e9, t_end=t1 / 1e9, seq=seq, layout=layout,
                        person=person)
    except ValueError as exc:  # the Window's own checks: times, masks
        raise MalformedMessage(f"window message: {exc}") from None
    if not np.isfinite(window.timestamps).all():
        raise MalformedMessage("window message: timestamps must be finite")
    if not np.isfinite(window.positions[window.joint_valid]).all():
        raise MalformedMessage("window message: positions of valid joints must be finite")
    return stream, window

"""Checked values of the wire's messages: each function returns the plain Python value
(int, float, str, bool, list, map) or raises a ``ValueError`` naming the field."""

from __future__ import annotations

import math
import numbers
from typing import Any

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_PROBABILITY_SLACK = 1e-6


def integer(name: str, v: Any, lo: int = _INT64_MIN, hi: int = _INT64_MAX) -> int:
    if type(v) is int and lo <= v <= hi:  # the common case, without the ABC checks
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(v).__name__}")
    v = int(v)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def real(name: str, v: Any, lo: float = -math.inf, hi: float = math.inf,
          what: str = "a finite number") -> float:
    if type(v) is float and math.isfinite(v) and lo <= v <= hi:  # the common case
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{name} must be a number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not (math.isfinite(f) and lo <= f <= hi):
        raise ValueError(f"{name} must be {what}, got {v!r}")
    return f


def probability(name: str, v: Any) -> float:
    return real(name, v, 0.0, 1.0 + _PROBABILITY_SLACK, "a probability in [0, 1]")


def string(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{name} must be a string, got {type(v).__name__}")
    return v


def boolean(name: str, v: Any) -> bool:
    if isinstance(v, bool) or type(v).__name__ == "bool_":  # numpy's bool too
        return bool(v)
    raise ValueError(f"{name} must be true or false, got {type(v).__name__}")


def plain(name: str, v: Any, depth: int = 0) -> Any:
    """``v`` when it is JSON-ready: None, bool, int, finite float, str, or lists
    and string-keyed maps of those."""
    if depth > 16:
        raise ValueError(f"{name} is nested too deeply")
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return real(name, v)
    if isinstance(v, (list, tuple)):
        return [plain(name, x, depth + 1) for x in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {k: plain(f"{name}.{k}", x, depth + 1) for k, x in v.items()}
    raise ValueError(f"{name} must be a plain value (number, string, list, map), "
                     f"got {type(v).__name__}")


def box(box: Any) -> list[float]:
    """``[]`` or ``[x0, y0, x1, y1]`` with ``x0 <= x1`` and ``y0 <= y1``."""
    if not isinstance(box, (list, tuple)) or len(box) not in (0, 4):
        raise ValueError(f"box must be [] or [x0, y0, x1, y1], got {box!r:.80}")
    box = [real("box", b) for b in box]
    if box and (box[0] > box[2] or box[1] > box[3]):
        raise ValueError(f"box {box} has x0 > x1 or y0 > y1")
    return box

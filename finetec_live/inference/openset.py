"""The open-set decision: a class, ``unknown`` or ``idle`` for every window.

Two thresholds, calibrated on training data (:mod:`finetec_live.learning.openset`) and
stored in the checkpoint (``ckpt["open_set"]``):

- ``idle``: nobody is moving. The region-motion kernel
  (:func:`finetec_live.kernels.region_motion`) scores every body region of the window;
  when no region's score exceeds ``idle_floor`` every region is static and the window is
  ``idle``, whatever the classifier says. Its score is ``1 - max(region score) /
  idle_floor`` (1: perfectly still).
- ``unknown``: someone moves, but like none of the classes. When the classifier's top
  probability is below ``unknown_below`` the window is ``unknown``, scored ``1 - top
  probability``. The classifier was trained to spread its probability over the classes on
  windows of other actions (outlier exposure), which is what makes this threshold work.

Otherwise the label is the top class, scored with its probability. The ranking of the
classes (``topk``) is the classifier's in every case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from finetec_live.errors import FinetecError

UNKNOWN = "unknown"
IDLE = "idle"
OPEN_SET_LABELS = (UNKNOWN, IDLE)


@dataclass(frozen=True)
class OpenSet:
    """The thresholds of the decision and what they were calibrated on."""

    unknown_below: float
    idle_floor: float
    calibration: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.unknown_below) and 0.0 <= self.unknown_below <= 1.0):
            raise FinetecError(f"open set: unknown_below must be in [0, 1], got "
                               f"{self.unknown_below}; recalibrate the checkpoint")
        if not (math.isfinite(self.idle_floor) and self.idle_floor >= 0.0):
            raise FinetecError(f"open set: idle_floor must be a finite score >= 0, got "
                               f"{self.idle_floor}; recalibrate the checkpoint")

    def to_dict(self) -> dict:
        return {"unknown_below": float(self.unknown_below),
                "idle_floor": float(self.idle_floor), "calibration": dict(self.calibration)}

    @classmethod
    def from_dict(cls, d) -> OpenSet:
        if not isinstance(d, dict) or not {"unknown_below", "idle_floor"} <= d.keys():
            raise FinetecError("the checkpoint's open_set entry lacks unknown_below and "
                               "idle_floor; recalibrate it with tools/calibrate.py")
        try:
            return cls(float(d["unknown_below"]), float(d["idle_floor"]),
                       dict(d.get("calibration") or {}))
        except (TypeError, ValueError):
            raise FinetecError("the checkpoint's open_set thresholds are not numbers; "
                               "recalibrate it with tools/calibrate.py") from None


@dataclass(frozen=True)
class Decision:
    """One window's answer: ``label`` (a class name, ``unknown`` or ``idle``), ``score``
    (the confidence in that answer, in [0, 1]) and ``kind`` (``"class"``, ``"unknown"``
    or ``"idle"``)."""

    label: str
    score: float
    kind: str


def decide(probs: np.ndarray, motion: np.ndarray, class_names, open_set: OpenSet | None
           ) -> list[Decision]:
    """Decisions for ``probs (N, K)`` class probabilities and ``motion (N, R)`` region
    motion scores; ``open_set`` None: always the top class (the closed-set answer)."""
    probs = np.asarray(probs, dtype=np.float64)
    motion = np.asarray(motion, dtype=np.float64)
    if probs.ndim != 2 or motion.ndim != 2 or len(motion) != len(probs):
        raise ValueError(f"probs (N, K) and motion (N, R) expected, got {probs.shape} and "
                         f"{motion.shape}")
    top = probs.argmax(1)
    out = []
    for n in range(len(probs)):
        p = float(probs[n, top[n]])
        if open_set is not None:
            m = float(np.nanmax(motion[n])) if motion.shape[1] else 0.0
            if m <= open_set.idle_floor:
                floor = open_set.idle_floor
                out.append(Decision(IDLE, 1.0 - m / floor if floor > 0 else 1.0, "idle"))
                continue
            if p < open_set.unknown_below:
                out.append(Decision(UNKNOWN, 1.0 - p, "unknown"))
                continue
        out.append(Decision(str(class_names[top[n]]), p, "class"))
    return out

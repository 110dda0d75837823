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
  A checkpoint may instead carry class *prototypes*, the mean direction of each class's
  training windows in the network's pooled feature space (unit rows ``(K, C)``): then a
  window is ``unknown`` when the cosine similarity of its features to the nearest
  prototype is below ``similar_below``, scored ``1 - similarity`` (at most 1). A window of
  another action can be confidently one class and still lie far from every class's
  windows; this rule sees that (the rule taught models use, :mod:`finetec_live.teach`).

Otherwise the label is the top class, scored with its probability. The ranking of the
classes (``topk``) is the classifier's in every case.

Actions last: a person who has just been seen squatting is more likely squatting still
than starting something else. With ``hold_below`` set, a window whose top class is the
class its track was *holding* (the label of the track's previous window, see
:class:`~finetec_live.inference.smoothing.Smoother`) keeps that class down to this lower
top probability instead of turning ``unknown`` (hysteresis: starting a class takes
``unknown_below``, continuing it ``hold_below``). A different top class, an ``unknown``
or ``idle`` window, or a gap in the track ends the hold. The hold applies to the
top-probability rule only (not to the prototype rule).
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
    prototypes: np.ndarray | None = field(default=None, compare=False)  # (K, C) unit rows
    similar_below: float | None = None
    hold_below: float | None = None  # a held class continues down to this top probability

    def __post_init__(self) -> None:
        if self.prototypes is not None:
            p = np.asarray(self.prototypes, dtype=np.float32)
            if p.ndim != 2 or not np.isfinite(p).all() or self.similar_below is None or \
                    not (math.isfinite(self.similar_below) and -1 <= self.similar_below <= 1):
                raise FinetecError("open set: prototypes must be a finite (K, C) table with a "
                                   "similarity threshold in [-1, 1]; recalibrate the checkpoint")
            object.__setattr__(self, "prototypes",
                               p / np.linalg.norm(p, axis=1, keepdims=True).clip(1e-12))
        if not (math.isfinite(self.unknown_below) and 0.0 <= self.unknown_below <= 1.0):
            raise FinetecError(f"open set: unknown_below must be in [0, 1], got "
                               f"{self.unknown_below}; recalibrate the checkpoint")
        if not (math.isfinite(self.idle_floor) and self.idle_floor >= 0.0):
            raise FinetecError(f"open set: idle_floor must be a finite score >= 0, got "
                               f"{self.idle_floor}; recalibrate the checkpoint")
        if self.hold_below is not None and not (
                math.isfinite(self.hold_below) and 0.0 <= self.hold_below <= self.unknown_below):
            raise FinetecError(f"open set: hold_below must be in [0, unknown_below], got "
                               f"{self.hold_below}; recalibrate the checkpoint")

    def to_dict(self) -> dict:
        out = {"unknown_below": float(self.unknown_below),
               "idle_floor": float(self.idle_floor), "calibration": dict(self.calibration)}
        if self.prototypes is not None:
            out.update(prototypes=self.prototypes.tolist(),
                       similar_below=float(self.similar_below))
        if self.hold_below is not None:
            out["hold_below"] = float(self.hold_below)
        return out

    def similarity(self, features: np.ndarray) -> np.ndarray:
        """Cosine similarity ``(N,)`` of ``features (N, C)`` to the nearest prototype."""
        f = np.asarray(features, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self.prototypes.shape[1]:
            raise ValueError(f"features (N, {self.prototypes.shape[1]}) expected, got {f.shape}")
        f = f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-12)
        return (f @ self.prototypes.T).max(1)

    @classmethod
    def from_dict(cls, d) -> OpenSet:
        if not isinstance(d, dict) or not {"unknown_below", "idle_floor"} <= d.keys():
            raise FinetecError("the checkpoint's open_set entry lacks unknown_below and "
                               "idle_floor; recalibrate it with tools/calibrate.py")
        try:
            protos, hold = d.get("prototypes"), d.get("hold_below")
            return cls(float(d["unknown_below"]), float(d["idle_floor"]),
                       dict(d.get("calibration") or {}),
                       None if protos is None else np.asarray(protos, dtype=np.float32),
                       None if protos is None else float(d["similar_below"]),
                       None if hold is None else float(hold))
        except (TypeError, ValueError, KeyError):
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


def decide(probs: np.ndarray, motion: np.ndarray, class_names, open_set: OpenSet | None,
           features: np.ndarray | None = None, held: np.ndarray | None = None
           ) -> list[Decision]:
    """Decisions for ``probs (N, K)`` class probabilities and ``motion (N, R)`` region
    motion scores; ``open_set`` None: always the top class (the closed-set answer). With
    prototypes in ``open_set``, ``features (N, C)`` (the network's) decide ``unknown``;
    without features the top-probability rule does. ``held (N,)``: each window's track's
    held class index (-1: none), for the open set's ``hold_below``."""
    probs = np.asarray(probs, dtype=np.float64)
    motion = np.asarray(motion, dtype=np.float64)
    if probs.ndim != 2 or motion.ndim != 2 or len(motion) != len(probs):
        raise ValueError(f"probs (N, K) and motion (N, R) expected, got {probs.shape} and "
                         f"{motion.shape}")
    top = probs.argmax(1)
    sim = None
    if open_set is not None and open_set.prototypes is not None and features is not None:
        sim = open_set.similarity(features)
    out = []
    for n in range(len(probs)):
        p = float(probs[n, top[n]])
        if open_set is not None:
            m = float(np.nanmax(motion[n])) if motion.shape[1] else 0.0
            if m <= open_set.idle_floor:
                floor = open_set.idle_floor
                out.append(Decision(IDLE, 1.0 - m / floor if floor > 0 else 1.0, "idle"))
                continue
            if sim is not None and sim[n] < open_set.similar_below:
                out.append(Decision(UNKNOWN, float(min(1.0, 1.0 - sim[n])), "unknown"))
                continue
            if sim is None and p < open_set.unknown_below and not (
                    held is not None and open_set.hold_below is not None
                    and int(held[n]) == int(top[n]) and p >= open_set.hold_below):
                out.append(Decision(UNKNOWN, 1.0 - p, "unknown"))
                continue
        out.append(Decision(str(class_names[top[n]]), p, "class"))
    return out

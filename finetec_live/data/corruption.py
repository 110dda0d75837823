"""Temporal corruption: which frames (and joints) of a window are missing.

One module for training (:func:`diverse_mask`), evaluation
(:data:`EVAL_PROTOCOLS`, :func:`protocol_rng`) and the live ``--drop`` option
(:class:`FrameDropper`). The masks themselves (bool *valid* arrays, True =
kept) and the counting rule ``missing_count(T, r)`` are in
:mod:`finetec_live.data.masks`; the mask functions are importable from here too.
Everything random takes a :class:`numpy.random.Generator`, so a seed fixes the
result.

Spec strings (:meth:`Corruption.parse`)::

    clean                 nothing missing
    random:R              FineTec: round(R*T) frames missing at random
    native:R              the same, applied by the evaluator to the clip's native
                          frames before resampling to the model's window
    burst:R[:K]           round(R*T) frames missing in K contiguous runs (default 1)
    tail:R  (suffix:R)    the newest round(R*T) frames missing
    prefix:R              the oldest round(R*T) frames missing
    middle:R              one centred run of round(R*T) frames missing
    regular:R             round(R*T) frames missing at evenly spaced places, random phase
    joints:P              each joint of each frame missing with probability P
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from finetec_live.data.masks import (
    bursts,
    check_count,
    check_frames,
    check_rate,
    check_rng,
    joint_dropout,
    middle,
    missing_count,
    prefix,
    random_frames,
    regular,
    suffix,
)
from finetec_live.errors import FinetecError

__all__ = [
    "EVAL_PROTOCOLS", "FINETEC_RATES", "KINDS", "MINOR", "MODERATE", "SEVERE", "TRAINING_KINDS",
    "Corruption", "FrameDropper", "bursts", "diverse_mask", "draw_training_corruption",
    "eval_corruptions", "joint_dropout", "middle", "missing_count", "prefix", "protocol_rng",
    "random_frames", "regular", "suffix",
]

MINOR = 0.25
MODERATE = 0.5
SEVERE = 0.75
FINETEC_RATES = (MINOR, MODERATE, SEVERE)

KINDS = ("clean", "random", "native", "burst", "tail", "prefix", "middle", "regular", "joints")
_ALIASES = {"suffix": "tail", "bursts": "burst", "none": "clean"}
# The kinds diverse_mask draws from (training).
TRAINING_KINDS = ("random", "regular", "prefix", "tail", "middle", "burst")

EVAL_PROTOCOLS = (
    "clean",
    "random:0.25", "random:0.5", "random:0.75",
    "native:0.25", "native:0.5", "native:0.75",
    "burst:0.3:3", "burst:0.6:3",
    "tail:0.25", "tail:0.5",
)


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class Corruption:
    """A corruption protocol: a kind, a rate in [0, 1) and a number of runs (bursts).

    Build one with :meth:`parse` (``Corruption.parse("burst:0.6:3")``);
    ``str(c)`` gives the canonical spec back.
    """

    kind: str = "clean"
    rate: float = 0.0
    runs: int = 1

    def __post_init__(self) -> None:
        kind = _ALIASES.get(self.kind, self.kind)
        if kind not in KINDS:
            raise FinetecError(f"unknown corruption kind {self.kind!r}; use one of "
                               f"{', '.join(KINDS)} (e.g. random:0.5, burst:0.6:3)")
        try:
            rate = check_rate(self.rate, "rate")
        except ValueError:
            raise FinetecError(f"corruption rate must be in [0, 1), got {self.rate!r} "
                               f"({kind}); pass e.g. {kind}:0.5") from None
        if kind == "clean" and rate != 0.0:
            raise FinetecError("'clean' takes no rate; write clean or random:R")
        try:
            runs = check_count(self.runs, "runs")
        except ValueError:
            raise FinetecError(f"burst runs must be a positive integer, got {self.runs!r}; "
                               "write e.g. burst:0.6:3") from None
        if kind != "burst" and runs != 1:
            raise FinetecError(f"only burst takes a number of runs, got {kind} with {runs}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "runs", runs)

    @classmethod
    def parse(cls, spec: str | Corruption) -> Corruption:
        """Parse ``"kind[:rate[:runs]]"``; raise FinetecError naming the bad spec."""
        if isinstance(spec, Corruption):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise FinetecError(f"empty or non-string corruption spec {spec!r}; write e.g. "
                               "clean, random:0.5, burst:0.6:3, tail:0.5, joints:0.1")
        parts = [p.strip() for p in spec.strip().lower().split(":")]
        kind = _ALIASES.get(parts[0], parts[0])
        if kind == "clean":
            if len(parts) > 1 and not (len(parts) == 2 and parts[1] in ("0", "0.0")):
                raise FinetecError(f"bad corruption spec {spec!r}: 'clean' takes no rate")
            return cls("clean")
        if kind not in KINDS:
            raise FinetecError(f"bad corruption spec {spec!r}: unknown kind {parts[0]!r}; use "
                               f"one of {', '.join(KINDS)}")
        max_parts = 3 if kind == "burst" else 2
        if not 2 <= len(parts) <= max_parts:
            form = "burst:R[:RUNS]" if kind == "burst" else f"{kind}:R"
            raise FinetecError(f"bad corruption spec {spec!r}: write {form} with R in [0, 1)")
        try:
            rate = float(parts[1])
            runs = int(parts[2]) if len(parts) == 3 else 1
        except ValueError:
            raise FinetecError(f"bad corruption spec {spec!r}: rate must be a number in [0, 1) "
                               "and runs a positive integer") from None
        if not 0.0 <= rate < 1.0:
            raise FinetecError(f"bad corruption spec {spec!r}: rate {parts[1]} is outside "
                               "[0, 1)")
        return cls(kind, rate, runs)

    def __str__(self) -> str:
        if self.kind == "clean":
            return "clean"
        rate = f"{self.rate:g}"
        return f"burst:{rate}:{self.runs}" if self.kind == "burst" else f"{self.kind}:{rate}"

    @property
    def spec(self) -> str:
        return str(self)

    @property
    def is_clean(self) -> bool:
        return self.kind == "clean" or self.rate == 0.0

    @property
    def on_native_frames(self) -> bool:
        """True when the evaluator applies the frame mask before resampling."""
        return self.kind == "native"

    def frame_mask(self, T: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(T,)`` bool valid mask of frames (all True for clean and joints)."""
        T = check_frames(T)
        k = self.kind
        if k in ("clean", "joints") or self.rate == 0.0:
            return np.ones(T, dtype=bool)
        if k in ("random", "native"):
            return random_frames(T, self.rate, _need_rng(rng, self))
        if k == "burst":
            return bursts(T, self.rate, self.runs, _need_rng(rng, self))
        if k == "regular":
            return regular(T, self.rate, _need_rng(rng, self))
        if k == "tail":
            return suffix(T, self.rate)
        if k == "prefix":
            return prefix(T, self.rate)
        if k == "middle":
            return middle(T, self.rate)
        raise AssertionError(k)  # pragma: no cover - __post_init__ checks the kind

    def joint_mask(self, T: int, V: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(T, V)`` bool valid mask of joint dropout (all True unless kind is joints)."""
        if self.kind == "joints" and self.rate > 0.0:
            return joint_dropout(T, V, self.rate, _need_rng(rng, self))
        T = check_frames(T)
        return np.ones((T, int(V)), dtype=bool)

    def masks(self, T: int, V: int,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(frame_valid (T,), joint_valid (T, V))``; joint_valid is False on missing frames."""
        frames = self.frame_mask(T, rng)
        joints = self.joint_mask(T, V, rng) & frames[:, None]
        return frames, joints


def _need_rng(rng, c: Corruption) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"corruption {c} is random: pass rng=np.random.default_rng(seed)")
    return check_rng(rng)


def eval_corruptions() -> tuple[Corruption, ...]:
    """:data:`EVAL_PROTOCOLS` parsed, in order."""
    return tuple(Corruption.parse(s) for s in EVAL_PROTOCOLS)


def protocol_rng(seed: int, sample_index: int, spec: str | Corruption) -> np.random.Generator:
    """A generator fixed by (seed, sample index, protocol), the same in every process.

    Each test sample under each protocol gets its own stream, so results do not
    depend on evaluation order, batching or which protocols were run.
    """
    if int(seed) < 0 or int(sample_index) < 0:
        raise ValueError(f"seed and sample_index must be >= 0, got {seed}, {sample_index}")
    key = zlib.crc32(str(Corruption.parse(spec)).encode())
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(sample_index), key]))


# --------------------------------------------------------------------------- training
def draw_training_corruption(rng: np.random.Generator, max_rate: float = 0.8,
                             max_runs: int = 4) -> Corruption:
    """One frame corruption for training: a kind from :data:`TRAINING_KINDS`
    uniformly, a rate uniform in [0, max_rate], 1 to ``max_runs`` runs for bursts."""
    rng = check_rng(rng)
    max_rate = check_rate(max_rate, "max_rate")
    kind = TRAINING_KINDS[int(rng.integers(len(TRAINING_KINDS)))]
    rate = float(rng.uniform(0.0, max_rate))
    runs = int(rng.integers(1, max_runs + 1)) if kind == "burst" else 1
    return Corruption(kind, rate, runs)


def diverse_mask(T: int, V: int, rng: np.random.Generator, max_rate: float = 0.8,
                 max_joint_rate: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Diverse temporal masking for training.

    Draws a frame corruption with :func:`draw_training_corruption` (random
    frames, regular pattern, missing prefix, suffix or middle, or 1-4 bursts,
    at a rate uniform in [0, max_rate]) and a per-joint dropout with p uniform
    in [0, max_joint_rate]. Returns ``(frame_valid (T,), joint_valid (T, V))``;
    ``joint_valid`` is False on every missing frame.
    """
    corruption = draw_training_corruption(rng, max_rate)
    max_joint_rate = check_rate(max_joint_rate, "max_joint_rate")
    p = float(rng.uniform(0.0, max_joint_rate))
    frames = corruption.frame_mask(T, rng)
    joints = joint_dropout(T, V, p, rng) & frames[:, None]
    return frames, joints


# --------------------------------------------------------------------------- live
class FrameDropper:
    """Streaming frame dropping for the live ``--drop R`` option.

    ``keep()`` is called once per incoming frame and answers whether to keep
    it; each frame is dropped independently with probability ``r`` from a
    generator seeded by ``seed``, so the same seed drops the same frames.
    ``seen``, ``dropped`` and ``kept`` count what happened.
    """

    def __init__(self, r: float, seed: int = 0) -> None:
        try:
            self.r = check_rate(r, "drop rate")
        except ValueError as exc:
            raise FinetecError(f"{exc}; pass --drop with a value such as 0.5") from None
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self.seen = 0
        self.dropped = 0

    @property
    def kept(self) -> int:
        return self.seen - self.dropped

    @property
    def observed_rate(self) -> float:
        """Fraction of the frames seen so far that were dropped (0 before any)."""
        return self.dropped / self.seen if self.seen else 0.0

    def keep(self) -> bool:
        self.seen += 1
        if self.r > 0.0 and self._rng.random() < self.r:
            self.dropped += 1
            return False
        return True

    def reset(self) -> None:
        """Start again from the seed with the counters at zero."""
        self._rng = np.random.default_rng(self.seed)
        self.seen = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return (f"FrameDropper(r={self.r}, seed={self.seed}, seen={self.seen}, "
                f"dropped={self.dropped})")

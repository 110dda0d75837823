"""Frame and joint masks: which frames (and joints) of a window are missing.

Masks are bool *valid* arrays: True = kept, False = missing. Everything random
takes a :class:`numpy.random.Generator`, so a seed fixes the result. The
:class:`~finetec_live.data.corruption.Corruption` spec chooses among these.

Counting rule: a rate ``r`` in [0, 1) over ``T`` frames removes
``missing_count(T, r) = min(floor(r*T + 0.5), T - 1)`` frames: r*T rounded
half up, and at least one frame always kept (a window with no frame at all
carries no information and breaks normalisation). For FineTec's 64-frame
windows this is exactly 16, 32 and 48 missing frames at 0.25, 0.5 and 0.75.
"""

from __future__ import annotations

import math

import numpy as np


# --------------------------------------------------------------------------- checks
def check_count(value, name: str, unit: str = "") -> int:
    """``value`` as an int when it is a positive integer (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        of = f" number of {unit}" if unit else ""
        raise ValueError(f"{name} must be a positive integer{of}, got {value!r}")
    return int(value)


def check_frames(T) -> int:
    return check_count(T, "T", "frames")


def check_rate(r, name: str = "r") -> float:
    try:
        r = float(r)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {r!r}") from None
    if not 0.0 <= r < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1), got {r}")
    return r


def check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                         f"got {type(rng).__name__}")
    return rng


def missing_count(T: int, r: float) -> int:
    """Frames a rate ``r`` removes from ``T``: r*T rounded half up, at most ``T - 1``."""
    T = check_frames(T)
    r = check_rate(r)
    return min(math.floor(r * T + 0.5), T - 1)


# --------------------------------------------------------------------------- frame masks
def random_frames(T: int, r: float, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` valid mask with ``missing_count(T, r)`` frames missing, chosen uniformly."""
    n = missing_count(T, r)
    rng = check_rng(rng)
    valid = np.ones(T, dtype=bool)
    if n:
        valid[rng.choice(T, size=n, replace=False)] = False
    return valid


def _composition(total: int, parts: int, rng: np.random.Generator, minimum: int) -> np.ndarray:
    """``parts`` integers, each >= ``minimum``, summing to ``total``, uniform over such."""
    extra = total - parts * minimum
    # stars and bars: choose the positions of parts-1 bars among extra+parts-1 slots
    bars = np.sort(rng.choice(extra + parts - 1, size=parts - 1, replace=False))
    edges = np.concatenate([[-1], bars, [extra + parts - 1]])
    return np.diff(edges) - 1 + minimum


def bursts(T: int, r: float, runs: int, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` valid mask with ``missing_count(T, r)`` frames missing in contiguous runs.

    The runs sit at random places, separated by at least one kept frame, so
    they are really ``runs`` distinct runs. When there are fewer missing frames
    than runs, or too few kept frames to separate them, the number of runs is
    reduced to what fits (``min(runs, n, T - n + 1)``).
    """
    n = missing_count(T, r)
    rng = check_rng(rng)
    check_count(runs, "runs")
    valid = np.ones(T, dtype=bool)
    if n == 0:
        return valid
    k = int(min(runs, n, T - n + 1))
    lengths = _composition(n, k, rng, 1)  # (k,) run lengths >= 1
    gaps = _composition(T - n - (k - 1), k + 1, rng, 0)  # (k+1,) extra kept frames
    gaps[1:k] += 1  # interior gaps keep >= 1 frame between runs
    pos = int(gaps[0])
    for i in range(k):
        valid[pos:pos + lengths[i]] = False
        pos += int(lengths[i]) + int(gaps[i + 1])
    return valid


def prefix(T: int, r: float) -> np.ndarray:
    """``(T,)`` valid mask with the oldest ``missing_count(T, r)`` frames missing."""
    n = missing_count(T, r)
    valid = np.ones(T, dtype=bool)
    valid[:n] = False
    return valid


def suffix(T: int, r: float) -> np.ndarray:
    """``(T,)`` valid mask with the newest ``missing_count(T, r)`` frames missing (a lost tail)."""
    n = missing_count(T, r)
    valid = np.ones(T, dtype=bool)
    valid[T - n:] = False
    return valid


def middle(T: int, r: float) -> np.ndarray:
    """``(T,)`` valid mask with one centred run of ``missing_count(T, r)`` frames missing."""
    n = missing_count(T, r)
    valid = np.ones(T, dtype=bool)
    start = (T - n) // 2
    valid[start:start + n] = False
    return valid


def regular(T: int, r: float, rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` valid mask with ``missing_count(T, r)`` frames missing at evenly spaced places.

    Missing frames are ``floor((j + u) * T / n)`` for ``j = 0..n-1`` with a random
    phase ``u`` in [0, 1): every other frame at r = 0.5, three of every four at
    r = 0.75, one in four at r = 0.25 (the pattern of a camera or detector
    running at a fraction of the rate).
    """
    n = missing_count(T, r)
    rng = check_rng(rng)
    valid = np.ones(T, dtype=bool)
    if n:
        u = rng.random()
        idx = np.floor((np.arange(n) + u) * (T / n)).astype(np.int64)
        valid[np.clip(idx, 0, T - 1)] = False
    return valid


def joint_dropout(T: int, V: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """``(T, V)`` valid mask: each joint of each frame missing independently with probability p."""
    T = check_frames(T)
    V = check_count(V, "V", "joints")
    p = check_rate(p, "p")
    rng = check_rng(rng)
    if p == 0.0:
        return np.ones((T, int(V)), dtype=bool)
    return rng.random((T, int(V))) >= p

"""Argument checks and result types shared by the Numba kernels and their references.

Both the fast kernels and the NumPy references call these, so they accept and
reject exactly the same inputs.

Conventions (documented once, here):

- ``positions`` must be a floating array; float64 (or float16) is converted to
  float32, the working precision of the pipeline. Integer arrays are refused.
- ``joint_valid`` must have dtype ``bool``; convert masks explicitly
  (``mask.astype(bool)`` or ``scores > threshold``). A joint marked valid whose
  coordinates are not finite is treated as missing.
- ``timestamps`` are seconds, any real dtype (converted to float64), finite and
  strictly increasing along a window.
- ``parents`` holds one integer per joint, -1 for a root; every joint must
  reach a root without a cycle (a forest is accepted: each root is fitted by
  its position).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from finetec_live.skeleton.layouts import topological_order

N_REGIONS_MIN = 5
MAX_HALF_WINDOW = 64  # fits of at most 129 samples
MAX_SPAN_LIMIT = 1.0e6  # in the timestamps' unit; None means no limit


@dataclass(frozen=True)
class KinematicsResult:
    """Output of :func:`lagrangian_kinematics` (a leading ``N`` in the batched form).

    Attributes
    ----------
    acc : ``(T, V, 2)`` float32 fitted joint accelerations in position units per time
        unit² (the unit of the timestamps);
        0 where ``acc_valid`` is False.
    acc_valid : ``(T, V)`` bool; False where the joint's own fit or any fit on
        its path to the root had too few samples.
    tau : ``(T, V)`` float32 generalised force at ``parents[k]`` on the subtree
        hanging from bone ``k`` (positive in the direction of increasing bone
        angle, i.e. from +x towards +y); 0 where ``tau_valid`` is False and at
        roots.
    tau_valid : ``(T, V)`` bool; True where every acceleration of the subtree of
        ``k`` is supported (never at a root).
    """

    acc: np.ndarray
    acc_valid: np.ndarray
    tau: np.ndarray
    tau_valid: np.ndarray

    def __post_init__(self) -> None:
        lead = self.acc.shape[:-1]
        if self.acc.shape[-1:] != (2,) or self.acc.dtype != np.float32:
            raise ValueError(f"acc: got {self.acc.shape} {self.acc.dtype}, "
                             "expected (..., T, V, 2) float32")
        for name in ("acc_valid", "tau", "tau_valid"):
            a = getattr(self, name)
            want = np.float32 if name == "tau" else np.bool_
            if a.shape != lead or a.dtype != want:
                raise ValueError(f"{name}: got {a.shape} {a.dtype}, expected {lead} "
                                 f"{np.dtype(want)}")


def _shape_error(name: str, got: np.ndarray, expected: str) -> ValueError:
    return ValueError(f"{name}: got shape {got.shape} dtype {got.dtype}, expected {expected}")


def check_positions(positions, lead: int, coords: int | None) -> np.ndarray:
    """``positions`` with ``lead`` leading axes before (V, C) as C-contiguous float32."""
    p = np.asarray(positions)
    names = ("N", "T")[-lead:] if lead else ()
    c = "C" if coords is None else str(coords)
    expected = "(" + ", ".join((*names, "V", c)) + ") float32"
    if p.ndim != lead + 2 or (coords is not None and p.shape[-1] != coords) or p.shape[-1] < 1:
        raise _shape_error("positions", p, expected)
    if p.shape[-2] < 1:
        raise _shape_error("positions", p, expected + " with at least one joint")
    if p.dtype.kind != "f":
        raise _shape_error("positions", p, expected + " (a floating dtype)")
    return np.ascontiguousarray(p, dtype=np.float32)


def check_mask(joint_valid, positions: np.ndarray) -> np.ndarray:
    m = np.asarray(joint_valid)
    want = positions.shape[:-1]
    if m.shape != want or m.dtype != np.bool_:
        raise _shape_error("joint_valid", m, f"{want} bool (convert with .astype(bool))")
    return np.ascontiguousarray(m)


def check_regions(regions, n_joints: int) -> tuple[np.ndarray, int]:
    """``regions`` as int64 and the number of regions R = max(5, regions.max() + 1)."""
    r = np.asarray(regions)
    if r.shape != (n_joints,) or r.dtype.kind not in "iu":
        raise _shape_error("regions", r, f"({n_joints},) integer")
    if r.size and r.min() < 0:
        raise ValueError(f"regions: got a negative region index {int(r.min())}, "
                         "expected values >= 0")
    n = max(N_REGIONS_MIN, int(r.max()) + 1) if r.size else N_REGIONS_MIN
    return np.ascontiguousarray(r, dtype=np.int64), n


def check_fraction(name: str, value, low: float, high: float) -> float:
    v = float(value)
    if not low <= v <= high:
        raise ValueError(f"{name}: got {value!r}, expected a number in [{low}, {high}]")
    return v


def check_timestamps(timestamps, shape: tuple[int, ...]) -> np.ndarray:
    ts = np.asarray(timestamps)
    if ts.shape != shape or ts.dtype.kind not in "fiu":
        raise _shape_error("timestamps", ts, f"{shape} float64 seconds")
    ts = np.ascontiguousarray(ts, dtype=np.float64)
    if ts.shape[-1] == 0:
        return ts
    # strictly increasing and finite at both ends implies finite everywhere (NaN fails >)
    if not (np.isfinite(ts[..., 0]).all() and np.isfinite(ts[..., -1]).all()):
        raise ValueError("timestamps: got non-finite values, expected finite seconds")
    if ts.shape[-1] > 1 and not (ts[..., 1:] > ts[..., :-1]).all():
        raise ValueError("timestamps: got values that are not finite or do not strictly "
                         "increase along the window, expected one distinct time per frame slot")
    return ts


@functools.lru_cache(maxsize=64)
def _tree(key: bytes) -> np.ndarray:
    """Topological order of the parents array whose int64 bytes are ``key`` (cached: the
    same skeleton comes back on every call)."""
    order = topological_order(np.frombuffer(key, dtype=np.int64))
    order.setflags(write=False)
    return order


def check_parents(parents, n_joints: int) -> tuple[np.ndarray, np.ndarray]:
    """``parents`` as int64 and a topological order (parents before children)."""
    p = np.asarray(parents)
    if p.shape != (n_joints,) or p.dtype.kind not in "iu":
        raise _shape_error("parents", p, f"({n_joints},) integer with -1 at the root")
    p = np.ascontiguousarray(p, dtype=np.int64)
    return p, _tree(p.tobytes())


def check_masses(masses, n_joints: int) -> np.ndarray:
    """Per-bone masses (V,) float64; ``None`` gives 1.0 per bone (roots carry no bone)."""
    if masses is None:
        return np.ones(n_joints, dtype=np.float64)
    m = np.asarray(masses)
    if m.shape != (n_joints,) or m.dtype.kind not in "fiu":
        raise _shape_error("masses", m, f"({n_joints},) float64")
    m = np.ascontiguousarray(m, dtype=np.float64)
    if not (m.min() >= 0 and m.max() < np.inf):  # NaN fails both
        raise ValueError("masses: got negative or non-finite values, expected finite masses >= 0")
    return m


def check_gravity(gravity) -> tuple[float, float]:
    try:
        gx, gy = (float(g) for g in gravity)
    except (TypeError, ValueError):
        gx = gy = math.nan
    if not (math.isfinite(gx) and math.isfinite(gy)):
        raise ValueError(f"gravity: got {gravity!r}, expected two finite numbers (gx, gy)")
    return gx, gy


def check_gravity_batch(gravity, n: int) -> np.ndarray:
    """One ``(gx, gy)`` for every window, or ``(n, 2)``: one per window; as ``(n, 2)`` float64."""
    g = np.asarray(gravity)
    if g.shape == (2,):
        return np.ascontiguousarray(np.broadcast_to(np.asarray(check_gravity(g)), (n, 2)))
    if g.shape != (n, 2) or g.dtype.kind not in "fiu":
        raise _shape_error("gravity", g, f"(2,) or ({n}, 2) numbers")
    g = np.ascontiguousarray(g, dtype=np.float64)
    if not np.isfinite(g).all():
        raise ValueError("gravity: got non-finite values, expected finite numbers")
    return g


def check_half_window(half_window) -> int:
    if isinstance(half_window, bool) or not isinstance(half_window, int | np.integer) \
            or not 1 <= half_window <= MAX_HALF_WINDOW:
        raise ValueError(f"half_window: got {half_window!r}, expected an integer in "
                         f"[1, {MAX_HALF_WINDOW}] (fits of at most 2 * half_window + 1 samples)")
    return int(half_window)


def check_max_span(max_span) -> float:
    if max_span is None:
        return float("inf")
    try:
        v = float(max_span)
    except (TypeError, ValueError):
        v = math.nan
    if not 0 < v <= MAX_SPAN_LIMIT:  # NaN and inf fail too
        raise ValueError(f"max_span: got {max_span!r}, expected None (no limit) or a finite "
                         f"time in (0, {MAX_SPAN_LIMIT:g}] in the unit of the timestamps")
    return v


def kinematics_windows(one, pos, valid, ts, parents, order, masses, gravity, half_window,
                       max_span) -> KinematicsResult:
    """A NumPy twin's batch: its one-window function ``one`` on each window of checked
    ``(N, T, V, ...)`` arguments (``gravity (N, 2)``), stacked into one result."""
    shape = valid.shape
    out = (np.zeros((*shape, 2), np.float32), np.zeros(shape, bool),
           np.zeros(shape, np.float32), np.zeros(shape, bool))
    for i in range(shape[0]):
        part = one(pos[i], valid[i], ts[i], parents, order, masses, gravity[i, 0],
                   gravity[i, 1], half_window, max_span)
        for whole, piece in zip(out, part, strict=True):
            whole[i] = piece
    return KinematicsResult(*out)

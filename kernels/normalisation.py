"""Body-centred, body-scaled windows: the centre and scale of each window, in one pass.

Definition (the NumPy twin is :func:`finetec_live.inference.preprocess.normalize`,
compared in tests):

1. A joint is usable in a frame when its frame is valid, the joint is valid and its
   coordinates are finite; unusable entries are 0 in the output.
2. ``centre``: the mean of the usable torso joints over the whole window (all usable
   joints when no torso joint is usable; 0 when none is).
3. ``scale``: for every bone with a reference length and both ends usable in some frames,
   the 80th percentile (linear interpolation) of its length over those frames divided by
   its reference length; the median over the bones whose ratio is positive. When that is
   not a finite number above 1e-8: the spread of the usable joints around the centre
   (root mean square distance), and 1 when that is not above 1e-8 either.
4. ``normalized = (position - centre) / scale``, with ``centre`` and ``scale`` rounded to
   float32 first (the values returned).

NumPy takes several passes over every window for these sums, each of them a loop over
two-coordinate rows; here each window is walked a few times, in order, on the batch's
windows in parallel. This is what the live path and the server run
(:func:`finetec_live.inference.prepare.prepare_groups`).
"""

from __future__ import annotations

import numpy as np

from ._numba import ijit_exact as ijit
from ._numba import jit_exact as jit
from ._numba import pjit_exact as pjit
from ._numba import prange


@ijit
def _quantile_sorted(a, n, q):
    """The linear-interpolated ``q`` quantile of the sorted ``a[:n]`` (``n`` > 0)."""
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    w = pos - lo
    return (1.0 - w) * a[lo] + w * a[hi]


@ijit
def _normalise_window(x, fv, jv, torso, child, parent, ref, out, centre, scale, lengths,
                      ratios):
    T, V, C = x.shape
    usable = np.zeros((T, V), np.bool_)
    n_all = 0
    n_torso = 0
    for t in range(T):
        if not fv[t]:
            continue
        for v in range(V):
            if not jv[t, v]:
                continue
            ok = True
            for c in range(C):
                if not np.isfinite(x[t, v, c]):
                    ok = False
            if ok:
                usable[t, v] = True
                n_all += 1
                if torso[v]:
                    n_torso += 1
    # 2. centre
    sums = np.zeros(C, np.float64)
    for t in range(T):
        for v in range(V):
            if usable[t, v] and (n_torso == 0 or torso[v]):
                for c in range(C):
                    sums[c] += np.float64(x[t, v, c])
    cnt = max(n_torso if n_torso > 0 else n_all, 1)
    cen = np.empty(C, np.float64)
    for c in range(C):
        cen[c] = sums[c] / cnt
    # 3. scale: each bone's 80th percentile over frames, the median of the positive ratios
    nb = 0
    for b in range(child.shape[0]):
        k, p = child[b], parent[b]
        m = 0
        for t in range(T):
            if usable[t, k] and usable[t, p]:
                s2 = 0.0
                for c in range(C):
                    d = np.float64(x[t, k, c]) - np.float64(x[t, p, c])
                    s2 += d * d
                lengths[m] = np.sqrt(s2)
                m += 1
        if m == 0:
            continue
        srt = np.sort(lengths[:m])
        r = _quantile_sorted(srt, m, 0.8) / ref[b]
        if r > 0:
            ratios[nb] = r
            nb += 1
    s = np.nan
    if nb > 0:
        s = _quantile_sorted(np.sort(ratios[:nb]), nb, 0.5)
    if not (np.isfinite(s) and s > 1e-8):
        var = 0.0
        for t in range(T):
            for v in range(V):
                if usable[t, v]:
                    for c in range(C):
                        d = np.float64(x[t, v, c]) - cen[c]
                        var += d * d
        spread = np.sqrt(var / max(n_all, 1))
        s = spread if spread > 1e-8 else 1.0
    # 4. the float32 centre and scale, as returned, make the output
    s32 = np.float32(s)
    scale[0] = s32
    for c in range(C):
        centre[c] = np.float32(cen[c])
    for t in range(T):
        for v in range(V):
            for c in range(C):
                if usable[t, v]:
                    out[t, v, c] = np.float32((np.float64(x[t, v, c])
                                               - np.float64(centre[c])) / np.float64(s32))
                else:
                    out[t, v, c] = 0.0


@ijit
def _normalise_range(x, fv, jv, torso, child, parent, ref, out, centre, scale, n):
    lengths = np.empty(x.shape[1], np.float64)
    ratios = np.empty(child.shape[0], np.float64)
    _normalise_window(x[n], fv[n], jv[n], torso, child, parent, ref, out[n], centre[n],
                      scale[n:n + 1], lengths, ratios)


@pjit
def _normalise_many(x, fv, jv, torso, child, parent, ref, out, centre, scale):
    for n in prange(x.shape[0]):
        _normalise_range(x, fv, jv, torso, child, parent, ref, out, centre, scale, n)


@jit
def _normalise_serial(x, fv, jv, torso, child, parent, ref, out, centre, scale):
    for n in range(x.shape[0]):
        _normalise_range(x, fv, jv, torso, child, parent, ref, out, centre, scale, n)


def normalise_batch(positions, frame_valid, joint_valid, torso, child, parent, reference,
                    parallel: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(normalized (N, T, V, C) float32, centre (N, C) float32, scale (N,) float32)`` of
    windows ``positions (N, T, V, C)`` (module docstring). ``frame_valid (N, T)`` and
    ``joint_valid (N, T, V)`` bool; ``torso (V,)`` bool, the joints of the centre;
    ``child``/``parent`` ``(B,)`` the two ends of each bone of the scale and ``reference``
    ``(B,)`` its positive reference length; ``parallel``: windows on Numba's threads."""
    pos = np.asarray(positions)
    if pos.ndim != 4 or pos.dtype not in (np.float32, np.float64):
        raise ValueError(f"positions must be (N, T, V, C) float32 or float64, got shape "
                         f"{pos.shape} dtype {pos.dtype}")
    pos = pos.astype(np.float32, copy=False)  # as the twin takes them (float64: rounded)
    N, T, V, C = pos.shape
    fv, jv, torso = (np.asarray(a) for a in (frame_valid, joint_valid, torso))
    for name, a, shape in (("frame_valid", fv, (N, T)), ("joint_valid", jv, (N, T, V)),
                           ("torso", torso, (V,))):
        if a.dtype != np.bool_ or a.shape != shape:
            raise ValueError(f"{name} must be bool of shape {shape}, got {a.dtype} {a.shape}")
    child = np.ascontiguousarray(child, dtype=np.int64)
    parent = np.ascontiguousarray(parent, dtype=np.int64)
    ref = np.ascontiguousarray(reference, dtype=np.float64)
    if not (child.ndim == 1 and child.shape == parent.shape == ref.shape):
        raise ValueError(f"child, parent and reference must be (B,) alike, got {child.shape}, "
                         f"{parent.shape}, {ref.shape}")
    if child.size and (min(child.min(), parent.min()) < 0 or max(child.max(),
                                                                 parent.max()) >= V):
        raise ValueError(f"bone ends must be joints 0..{V - 1}")
    if not np.all(ref > 0):
        raise ValueError("reference lengths must be positive")
    out = np.empty(pos.shape, np.float32)
    centre = np.empty((N, C), np.float32)
    scale = np.empty(N, np.float32)
    (_normalise_many if parallel else _normalise_serial)(
        np.ascontiguousarray(pos), np.ascontiguousarray(fv), np.ascontiguousarray(jv),
        np.ascontiguousarray(torso), child, parent, ref, out, centre, scale)
    return out, centre, scale

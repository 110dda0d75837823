"""Gap filling of joint tracks: linear and Akima interpolation, in one pass per track.

Definition (the NumPy twins are
:func:`finetec_live.inference.preprocess.interpolate_missing` and
:func:`~finetec_live.inference.preprocess.interpolate_missing_akima`, compared in
tests):

1. A track is one joint of one window over time; its valid samples are those with
   ``valid`` True (shared by the coordinates).
2. Valid samples are returned unchanged. A track with no valid sample is 0; before
   its first and after its last valid sample the edge value is held (both methods).
3. Linear: inside a gap, the straight line between the valid samples around it.
4. Akima: inside a gap, the cubic Hermite curve between the valid samples around it,
   with Akima's slope at each valid sample: the chord slopes ``m-2, m-1`` before it and
   ``m0, m1`` after it, weighted ``|m1 - m0|`` and ``|m-1 - m-2|`` (their mean when
   both weights vanish); a chord missing at a track's end repeats the nearest one.

Both fills come from one walk over each track's valid samples, so the preparation
pays once for what it needs twice (the linear fill is the network's ``x`` for the
interpolating baseline and the completion's start for ``interp="linear"``).
"""

from __future__ import annotations

import numpy as np

from ._numba import ijit, jit, pjit, prange


@ijit
def _akima_slopes(y, idx, m, c, d):
    """Akima's slope at each of the ``m`` valid samples ``idx[:m]`` of coordinate ``c``
    of track ``y (T, C)``, into ``d[:m]``."""
    for k in range(m):
        mm1 = mm2 = m0 = m1 = np.nan
        if k >= 1:
            mm1 = (y[idx[k], c] - y[idx[k - 1], c]) / (idx[k] - idx[k - 1])
        if k >= 2:
            mm2 = (y[idx[k - 1], c] - y[idx[k - 2], c]) / (idx[k - 1] - idx[k - 2])
        if k + 1 < m:
            m0 = (y[idx[k + 1], c] - y[idx[k], c]) / (idx[k + 1] - idx[k])
        if k + 2 < m:
            m1 = (y[idx[k + 2], c] - y[idx[k + 1], c]) / (idx[k + 2] - idx[k + 1])
        if np.isnan(mm1):
            mm1 = m0
        if np.isnan(m0):
            m0 = mm1
        if np.isnan(mm2):
            mm2 = mm1
        if np.isnan(m1):
            m1 = m0
        w1, w2 = abs(m1 - m0), abs(mm1 - mm2)
        den = w1 + w2
        s = (w1 * mm1 + w2 * m0) / den if den > 1e-12 else 0.5 * (mm1 + m0)
        d[k] = 0.0 if np.isnan(s) else s


@ijit
def _fill_track(x, valid, v, lin, aki, idx, y, d):
    """Fill joint ``v`` of one window ``x (T, V, C)`` into ``lin`` and ``aki``."""
    T, C = x.shape[0], x.shape[2]
    m = 0
    for t in range(T):
        if valid[t, v]:
            idx[m] = t
            m += 1
        for c in range(C):
            y[t, c] = x[t, v, c] if valid[t, v] else 0.0
    if m == 0:
        for t in range(T):
            for c in range(C):
                lin[t, v, c] = aki[t, v, c] = 0.0
        return
    for c in range(C):
        for t in range(idx[0] + 1):  # the first valid sample, and the edge before it held
            lin[t, v, c] = aki[t, v, c] = y[idx[0], c]
        for t in range(idx[m - 1], T):
            lin[t, v, c] = aki[t, v, c] = y[idx[m - 1], c]
        _akima_slopes(y, idx, m, c, d)
        for k in range(m - 1):
            p, q = idx[k], idx[k + 1]
            yp, yq = y[p, c], y[q, c]
            lin[q, v, c] = aki[q, v, c] = yq
            h = q - p
            for t in range(p + 1, q):
                w = np.float32((t - p) / h)
                lin[t, v, c] = (np.float32(1.0) - w) * np.float32(yp) + w * np.float32(yq)
                s = (t - p) / h
                s2 = s * s
                s3 = s2 * s
                aki[t, v, c] = ((2 * s3 - 3 * s2 + 1) * yp + (s3 - 2 * s2 + s) * h * d[k]
                                + (-2 * s3 + 3 * s2) * yq + (s3 - s2) * h * d[k + 1])


@ijit
def _fill_window(x, valid, lin, aki):
    T, V, C = x.shape
    idx = np.empty(T, np.int64)
    y = np.empty((T, C), np.float64)
    d = np.empty(T, np.float64)
    for v in range(V):
        _fill_track(x, valid, v, lin, aki, idx, y, d)


@pjit
def _fill_many(x, valid, lin, aki):
    for n in prange(x.shape[0]):
        _fill_window(x[n], valid[n], lin[n], aki[n])


@jit
def _fill_serial(x, valid, lin, aki):
    for n in range(x.shape[0]):
        _fill_window(x[n], valid[n], lin[n], aki[n])


def fill_gaps_batch(positions, valid, parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Linear and Akima fills ``(N, T, V, C)`` float32 of ``positions (N, T, V, C)``
    where ``valid (N, T, V)`` (bool) is False (module docstring); ``parallel``: windows
    on Numba's threads (for a few windows the serial loop starts faster)."""
    pos = np.asarray(positions)
    if pos.ndim != 4 or pos.dtype not in (np.float32, np.float64):
        raise ValueError(f"positions must be (N, T, V, C) float32 or float64, got shape "
                         f"{pos.shape} dtype {pos.dtype}")
    ok = np.asarray(valid)
    if ok.dtype != np.bool_ or ok.shape != pos.shape[:3]:
        raise ValueError(f"valid must be bool of shape {pos.shape[:3]}, got {ok.dtype} "
                         f"{ok.shape}")
    pos = np.ascontiguousarray(pos, dtype=np.float64)
    ok = np.ascontiguousarray(ok)
    lin = np.empty(pos.shape, np.float32)
    aki = np.empty(pos.shape, np.float32)
    (_fill_many if parallel else _fill_serial)(pos, ok, lin, aki)
    return lin, aki

"""Local quadratic fits of every joint's generalised coordinates, for every frame.

Used by :mod:`finetec_live.kernels.kinematics` (whose docstring defines the
fits). The root's coordinates are its position (x, y); a bone's are its length
and its absolute angle, unwrapped along the bone's samples. For frame t each
coordinate is fitted over the ``2 * half_window + 1`` samples nearest in time
(ties to the earlier one) within ``max_span`` seconds, giving its value, first
and second derivative at t.

Speed: joints whose samples fall on the same frames (the common case: whole
frames missing) share the sample selection and the least-squares weights; angle
steps and the cosine and sine of fitted angles use short series instead of
trigonometric calls when the angles involved are below 0.2 rad.
"""

from __future__ import annotations

import numpy as np

from ._numba import ijit, jit

_TWO_PI = 2.0 * np.pi
_SMALL = 0.2  # |argument| below which the series below are exact to ~1e-16


@ijit
def _atan_small(z):
    """atan(z) for |z| <= 0.2 by its Taylor series (next term < 1e-16)."""
    z2 = z * z
    p = -1.0 / 19.0
    p = p * z2 + 1.0 / 17.0
    p = p * z2 - 1.0 / 15.0
    p = p * z2 + 1.0 / 13.0
    p = p * z2 - 1.0 / 11.0
    p = p * z2 + 1.0 / 9.0
    p = p * z2 - 1.0 / 7.0
    p = p * z2 + 1.0 / 5.0
    p = p * z2 - 1.0 / 3.0
    p = p * z2 + 1.0
    return z * p


@ijit
def _cos_sin_small(d):
    """(cos d, sin d) for |d| <= 0.2 by their Taylor series (next terms < 1e-17)."""
    d2 = d * d
    c = 1.0 + d2 * (-0.5 + d2 * (1.0 / 24.0 + d2 * (-1.0 / 720.0 + d2 * (
        1.0 / 40320.0 + d2 * (-1.0 / 3628800.0)))))
    s = d * (1.0 + d2 * (-1.0 / 6.0 + d2 * (1.0 / 120.0 + d2 * (-1.0 / 5040.0 + d2 * (
        1.0 / 362880.0 + d2 * (-1.0 / 39916800.0))))))
    return c, s


@ijit
def _cofactors(s0, s1, s2, s3, s4):
    """Cofactors and determinant of the quadratic fit's normal matrix
    [[s0, s1, s2], [s1, s2, s3], [s2, s3, s4]] (symmetric: six cofactors)."""
    c00 = s2 * s4 - s3 * s3
    c01 = s2 * s3 - s1 * s4
    c02 = s1 * s3 - s2 * s2
    c11 = s0 * s4 - s2 * s2
    c12 = s1 * s2 - s0 * s3
    c22 = s0 * s2 - s1 * s1
    return c00, c01, c02, c11, c12, c22, s0 * c00 + s1 * c01 + s2 * c02


@jit
def _samples(pos, ok, ts, k, p, sf, st, q0, q1, ux, uy):
    """Samples of joint k's coordinates; returns their count.

    Root: ``q0, q1 = x, y``. Bone: ``q0 = l``, ``q1 = theta`` unwrapped along the
    samples (each step is the angle between consecutive bone vectors, in
    [-pi, pi]), ``(ux, uy)`` the unit bone vector (0, 0 for a zero-length bone).
    """
    n = 0
    th = 0.0
    lp = 0.0
    dxp = dyp = 0.0
    for s in range(ts.shape[0]):
        if not ok[k, s]:
            continue
        if p < 0:
            q0[n] = pos[s, k, 0]
            q1[n] = pos[s, k, 1]
        else:
            if not ok[p, s]:
                continue
            dx = np.float64(pos[s, k, 0]) - np.float64(pos[s, p, 0])
            dy = np.float64(pos[s, k, 1]) - np.float64(pos[s, p, 1])
            ln = np.sqrt(dx * dx + dy * dy)
            if n == 0 or ln == 0.0 or lp == 0.0:
                raw = np.arctan2(dy, dx)
                th = raw if n == 0 else raw + _TWO_PI * np.floor((th - raw) / _TWO_PI + 0.5)
            else:
                cr = dxp * dy - dyp * dx
                dt = dxp * dx + dyp * dy
                if dt > 0.0 and abs(cr) <= _SMALL * dt:
                    th += _atan_small(cr / dt)
                else:
                    th += np.arctan2(cr, dt)
            q0[n] = ln
            q1[n] = th
            if ln > 0.0:
                ux[n] = dx / ln
                uy[n] = dy / ln
            else:
                ux[n] = uy[n] = 0.0
            lp = ln
            dxp = dx
            dyp = dy
        sf[n] = s
        st[n] = ts[s]
        n += 1
    return n


@jit
def _weights(st, lo, hi, tt, w, t):
    """Least-squares weights of value, first and second derivative at time ``tt``.

    Fits ``a + b v + d v**2`` with ``v`` the sample times centred on the run's
    midpoint and scaled by its half range (well conditioned), then moves to
    ``tt``. Fills ``w[t, i] = (wa, wb, wc)`` so that ``q(tt) = sum wa q_i`` etc.;
    returns False when the moment matrix is singular.
    """
    c = 0.5 * (st[lo] + st[hi - 1])
    h = 0.5 * (st[hi - 1] - st[lo])
    if not h > 0.0:
        return False
    inv = 1.0 / h
    s0 = float(hi - lo)
    s1 = s2 = s3 = s4 = 0.0
    for i in range(lo, hi):
        v = (st[i] - c) * inv
        v2 = v * v
        s1 += v
        s2 += v2
        s3 += v2 * v
        s4 += v2 * v2
    c00, c01, c02, c11, c12, c22, det = _cofactors(s0, s1, s2, s3, s4)
    if not det > 0.0:
        return False
    r = 1.0 / det
    vt = (tt - c) * inv
    for i in range(lo, hi):
        v = (st[i] - c) * inv
        g0 = (c00 + (c01 + c02 * v) * v) * r
        g1 = (c01 + (c11 + c12 * v) * v) * r
        g2 = (c02 + (c12 + c22 * v) * v) * r
        w[t, i - lo, 0] = g0 + (g1 + g2 * vt) * vt
        w[t, i - lo, 1] = (g1 + 2.0 * g2 * vt) * inv
        w[t, i - lo, 2] = 2.0 * g2 * inv * inv
    return True


@jit
def _runs(st, n, ts, n_fit, max_span, lo, hi, near):
    """For every frame t, the run ``[lo[t], hi[t])`` of the ``n_fit`` samples nearest
    in time (ties to the earlier one), less those farther than ``max_span``, and
    the nearest of them, ``near[t]`` (-1 when the run is empty).

    The samples are sorted by time, so the chosen ones are contiguous and, as t
    advances, the run only slides right: slide while the next sample on the
    right is strictly nearer than the leftmost one. Trimming the run to
    ``max_span`` afterwards gives the nearest samples within reach.
    """
    a = 0
    b = min(n_fit, n)
    j = 0  # first sample at or after the current frame's time
    for t in range(ts.shape[0]):
        tt = ts[t]
        while b < n and st[b] - tt < tt - st[a]:
            a += 1
            b += 1
        while j < n and st[j] < tt:
            j += 1
        lo_t = a
        hi_t = b
        while lo_t < hi_t and tt - st[lo_t] > max_span:
            lo_t += 1
        while hi_t > lo_t and st[hi_t - 1] - tt > max_span:
            hi_t -= 1
        m = -1
        if lo_t < hi_t:
            if j - 1 >= lo_t and (j >= hi_t or tt - st[j - 1] <= st[j] - tt):
                m = j - 1
            else:
                m = j
        lo[t] = lo_t
        hi[t] = hi_t
        near[t] = m


@ijit
def _fit_direct(st, q0, q1, lo, hi, tt):
    """Least-squares ``a + b u + d u**2`` of both coordinates, ``u`` the sample time
    minus ``tt`` scaled by its largest magnitude; returns
    ``(ok, q0, q0', q0'', q1, q1', q1'')`` at ``tt``."""
    h = max(tt - st[lo], st[hi - 1] - tt)
    if not h > 0.0:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    inv = 1.0 / h
    s1 = s2 = s3 = s4 = 0.0
    r00 = r01 = r02 = r10 = r11 = r12 = 0.0
    for i in range(lo, hi):
        u = (st[i] - tt) * inv
        u2 = u * u
        s1 += u
        s2 += u2
        s3 += u2 * u
        s4 += u2 * u2
        v0 = q0[i]
        v1 = q1[i]
        r00 += v0
        r01 += v0 * u
        r02 += v0 * u2
        r10 += v1
        r11 += v1 * u
        r12 += v1 * u2
    s0 = float(hi - lo)
    c00, c01, c02, c11, c12, c22, det = _cofactors(s0, s1, s2, s3, s4)
    if not det > 0.0:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    r = 1.0 / det
    rb = r * inv
    rc = 2.0 * r * inv * inv
    return (True,
            (c00 * r00 + c01 * r01 + c02 * r02) * r,
            (c01 * r00 + c11 * r01 + c12 * r02) * rb,
            (c02 * r00 + c12 * r01 + c22 * r02) * rc,
            (c00 * r10 + c01 * r11 + c02 * r12) * r,
            (c01 * r10 + c11 * r11 + c12 * r12) * rb,
            (c02 * r10 + c12 * r11 + c22 * r12) * rc)


@ijit
def _store(fit, k, t, is_bone, q1, ux, uy, near, a0, b0, c0, a1, b1, c1):
    """Write one fit; for a bone also cos and sin of the fitted angle, obtained by
    rotating the nearest sample's unit vector through the small angle between
    them. Returns True when that angle exceeds 0.2 rad or the sample has zero
    length: the caller then takes cos and sin directly (:func:`_fix_trig`; a
    separate pass, which keeps trigonometric calls out of the hot loop)."""
    fit[k, t, 0] = a0
    fit[k, t, 1] = b0
    fit[k, t, 2] = c0
    fit[k, t, 3] = a1
    fit[k, t, 4] = b1
    fit[k, t, 5] = c1
    if not is_bone:
        return False
    d = a1 - q1[near]
    cd, sd = _cos_sin_small(d)
    fit[k, t, 6] = ux[near] * cd - uy[near] * sd
    fit[k, t, 7] = uy[near] * cd + ux[near] * sd
    return not (abs(d) <= _SMALL and (ux[near] != 0.0 or uy[near] != 0.0))


@jit
def _fix_trig(fit, k, trig):
    for t in range(trig.shape[0]):
        if trig[t]:
            fit[k, t, 6] = np.cos(fit[k, t, 3])
            fit[k, t, 7] = np.sin(fit[k, t, 3])


@jit
def _group_by_samples(ok, parents):
    """Joints whose fits use samples on the same frames (a joint and its parent both
    valid): ``leader[k]`` is the first such joint, ``size[j]`` its group's size."""
    n_v, n_t = ok.shape
    smask = np.empty((n_v, n_t), dtype=np.bool_)
    for k in range(n_v):
        p = parents[k]
        for t in range(n_t):
            smask[k, t] = ok[k, t] and (p < 0 or ok[p, t])
    leader = np.empty(n_v, dtype=np.int64)
    size = np.zeros(n_v, dtype=np.int64)
    for k in range(n_v):
        leader[k] = k
        for j in range(k):
            if leader[j] != j:
                continue
            same = True
            for t in range(n_t):
                if smask[j, t] != smask[k, t]:
                    same = False
                    break
            if same:
                leader[k] = j
                break
        size[leader[k]] += 1
    return leader, size


@jit
def _fit_all(pos, ok, ts, parents, half_window, max_span, fit, fit_ok):
    """Local quadratic fits of every joint's two coordinates at every frame.

    ``fit[k, t] = (q0, q0', q0'', q1, q1', q1'', cos q1, sin q1)``,
    ``fit_ok[k, t]``. Joints whose samples fall on the same frames share the
    sample selection and the least-squares weights (the common case: whole
    frames missing); the others are solved directly.
    """
    n_v, n_t = ok.shape
    n_fit = 2 * half_window + 1
    sf = np.empty(n_t, dtype=np.int64)
    st = np.empty(n_t)
    q0 = np.empty(n_t)
    q1 = np.empty(n_t)
    ux = np.empty(n_t)
    uy = np.empty(n_t)
    lo = np.empty(n_t, dtype=np.int64)
    hi = np.empty(n_t, dtype=np.int64)
    near = np.empty(n_t, dtype=np.int64)
    w = np.empty((n_t, n_fit, 3))
    w_ok = np.empty(n_t, dtype=np.bool_)
    trig = np.empty(n_t, dtype=np.bool_)
    leader, size = _group_by_samples(ok, parents)
    for k in range(n_v):
        if leader[k] != k:
            continue
        n = _samples(pos, ok, ts, k, parents[k], sf, st, q0, q1, ux, uy)
        _runs(st, n, ts, n_fit, max_span, lo, hi, near)
        if size[k] == 1:
            for t in range(n_t):
                trig[t] = False
                good = hi[t] - lo[t] >= 3
                if good:
                    good, a0, b0, c0, a1, b1, c1 = _fit_direct(st, q0, q1, lo[t], hi[t], ts[t])
                    if good:
                        trig[t] = _store(fit, k, t, parents[k] >= 0, q1, ux, uy, near[t],
                                         a0, b0, c0, a1, b1, c1)
                fit_ok[k, t] = good
            _fix_trig(fit, k, trig)
            continue
        for t in range(n_t):
            w_ok[t] = hi[t] - lo[t] >= 3 and _weights(st, lo[t], hi[t], ts[t], w, t)
        for m in range(k, n_v):
            if leader[m] != k:
                continue
            if m != k:
                _samples(pos, ok, ts, m, parents[m], sf, st, q0, q1, ux, uy)
            for t in range(n_t):
                fit_ok[m, t] = w_ok[t]
                trig[t] = False
                if not w_ok[t]:
                    continue
                a0 = b0 = c0 = a1 = b1 = c1 = 0.0
                base = lo[t]
                for i in range(hi[t] - base):
                    v0 = q0[base + i]
                    v1 = q1[base + i]
                    a0 += w[t, i, 0] * v0
                    b0 += w[t, i, 1] * v0
                    c0 += w[t, i, 2] * v0
                    a1 += w[t, i, 0] * v1
                    b1 += w[t, i, 1] * v1
                    c1 += w[t, i, 2] * v1
                trig[t] = _store(fit, m, t, parents[m] >= 0, q1, ux, uy, near[t],
                                 a0, b0, c0, a1, b1, c1)
            _fix_trig(fit, m, trig)

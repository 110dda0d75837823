"""Windowed Lagrangian acceleration and inverse dynamics of a skeleton tree.

Generalised coordinates: the root joint (``parents[k] == -1``) has its image
position (x, y); every other joint ``k`` is reached from ``p = parents[k]`` by
a bone of length ``l(t)`` and absolute angle ``theta(t) = atan2(dy, dx)`` of
the vector from ``p`` to ``k`` (unwrapped along the bone's valid samples).

Local fits. A bone has a sample at frame ``s`` when ``k`` and ``p`` are both
valid there (valid: ``joint_valid`` True and finite coordinates); the root when
it is valid. For every frame ``t`` -- missing frames included -- each
coordinate is fitted by least squares with ``q(s) = a + b u + c u**2 / 2``,
``u = timestamps[s] - timestamps[t]``, over the ``2 * half_window + 1``
samples nearest in time to ``t`` (ties go to the earlier frame) among those at
most ``max_span`` seconds from ``t`` (default 0.5 s; ``None``: no limit). This
gives ``q, q', q''`` at ``t`` and is exact for quadratic motion, whatever the
spacing. A fit needs at least 3 samples; without them the coordinate is
unsupported at ``t`` and the joint and all its descendants get
``acc_valid = False``. The time limit is what keeps a frame deep inside a long
gap from being extrapolated from a few distant samples (a quadratic through 3
samples a second away gives bone lengths below zero): such frames are flagged.

Recomposition, in topological order (``e_r = (cos th, sin th)``,
``e_th = (-sin th, cos th)``)::

    a_root = (x'', y'')
    a_k    = a_p + (l'' - l th'^2) e_r + (l th'' + 2 l' th') e_th

Inverse dynamics. Bone ``k`` is a uniform rod of mass ``masses[k]`` (default
1.0 per bone) from ``p`` to ``k``: centre of mass at the midpoint ``r_k``,
acceleration ``(a_p + a_k) / 2``, inertia ``I_k = m l^2 / 12``. With fitted
positions (root fit, then ``x_k = x_p + l e_r``)::

    tau[t, k] = sum over bones j in the subtree of k (k included) of
                I_j th_j'' + (r_j - x_p) x m_j (a_j - g)

(2D cross ``u x v = u_x v_y - u_y v_x``; ``g = gravity``, image y pointing
down, so the default is ``(0, 9.81)``; give it in position units per s²). It
is the generalised force the parent applies to the subtree, positive in the
direction of increasing ``theta`` (from +x towards +y): a rod swinging freely
needs 0, a rod held level and still to the right of its pivot needs
``-m g l / 2``. Normalising by body mass and size is the caller's business.

Every output entry that is not supported is 0 and flagged; values whose
magnitude would not fit in float32 are flagged too, so nothing is NaN or inf.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    LagrangianResult,
    check_gravity,
    check_half_window,
    check_mask,
    check_masses,
    check_max_span,
    check_parents,
    check_positions,
    check_timestamps,
)
from ._numba import ijit, jit, pjit, prange

DEFAULT_MAX_SPAN = 0.5  # seconds
_LIMIT = 3.0e38  # below float32's largest value: |x| < _LIMIT also rules out NaN and inf
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
    c00 = s2 * s4 - s3 * s3
    c01 = s2 * s3 - s1 * s4
    c02 = s1 * s3 - s2 * s2
    c11 = s0 * s4 - s2 * s2
    c12 = s1 * s2 - s0 * s3
    c22 = s0 * s2 - s1 * s1
    det = s0 * c00 + s1 * c01 + s2 * c02
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
    c00 = s2 * s4 - s3 * s3
    c01 = s2 * s3 - s1 * s4
    c02 = s1 * s3 - s2 * s2
    c11 = s0 * s4 - s2 * s2
    c12 = s1 * s2 - s0 * s3
    c22 = s0 * s2 - s1 * s1
    det = s0 * c00 + s1 * c01 + s2 * c02
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
    # group joints by identical sample masks
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


@jit
def _lagrangian_one(pos, valid, ts, parents, order, masses, gx, gy, half_window, max_span,
                    acc, acc_valid, tau, tau_valid):
    """One window; fills ``acc, acc_valid, tau, tau_valid`` in place."""
    n_t, n_v = valid.shape
    ok = np.empty((n_v, n_t), dtype=np.bool_)  # counted samples, joint-major
    for t in range(n_t):
        for k in range(n_v):
            ok[k, t] = valid[t, k] and np.isfinite(pos[t, k, 0]) and np.isfinite(pos[t, k, 1])
    fit = np.empty((n_v, n_t, 8))
    fit_ok = np.empty((n_v, n_t), dtype=np.bool_)
    _fit_all(pos, ok, ts, parents, half_window, max_span, fit, fit_ok)

    # recompose down the tree; positions are relative to the tree's root
    xs = np.empty((n_v, n_t))
    ys = np.empty((n_v, n_t))
    axs = np.empty((n_v, n_t))
    ays = np.empty((n_v, n_t))
    good = ok  # reused: ok is no longer needed
    for kk in range(n_v):
        k = order[kk]
        p = parents[k]
        for t in range(n_t):
            x = y = ax = ay = 0.0
            if p < 0:
                g = fit_ok[k, t]
                ax = fit[k, t, 2]
                ay = fit[k, t, 5]
            else:
                g = fit_ok[k, t] and good[p, t]
                if g:
                    ln = fit[k, t, 0]
                    thd = fit[k, t, 4]
                    cs = fit[k, t, 6]
                    sn = fit[k, t, 7]
                    x = xs[p, t] + ln * cs
                    y = ys[p, t] + ln * sn
                    ar = fit[k, t, 2] - ln * thd * thd
                    at = ln * fit[k, t, 5] + 2.0 * fit[k, t, 1] * thd
                    ax = axs[p, t] + ar * cs - at * sn
                    ay = ays[p, t] + ar * sn + at * cs
            g = g and abs(ax) < _LIMIT and abs(ay) < _LIMIT and abs(x) < _LIMIT \
                and abs(y) < _LIMIT
            if not g:
                x = y = ax = ay = 0.0
            good[k, t] = g
            xs[k, t] = x
            ys[k, t] = y
            axs[k, t] = ax
            ays[k, t] = ay
            acc[t, k, 0] = ax
            acc[t, k, 1] = ay
            acc_valid[t, k] = g

    # inverse dynamics, leaves first: s_i, s_fx, s_fy accumulate each subtree's
    # sum of I th'' + r x F and of F = m (a - g); tau_k = s_i - x_p x s_f
    s_i = np.zeros((n_v, n_t))
    s_fx = np.zeros((n_v, n_t))
    s_fy = np.zeros((n_v, n_t))
    sub = fit_ok  # reused: True while the whole subtree is supported
    for k in range(n_v):
        for t in range(n_t):
            sub[k, t] = good[k, t]
    for kk in range(n_v - 1, -1, -1):
        k = order[kk]
        p = parents[k]
        if p < 0:
            for t in range(n_t):
                tau[t, k] = 0.0
                tau_valid[t, k] = False
            continue
        m = masses[k]
        for t in range(n_t):
            tk = 0.0
            g = sub[k, t]
            if g:
                ln = fit[k, t, 0]
                fx = m * (0.5 * (axs[p, t] + axs[k, t]) - gx)
                fy = m * (0.5 * (ays[p, t] + ays[k, t]) - gy)
                si = s_i[k, t] + m * ln * ln / 12.0 * fit[k, t, 5] \
                    + 0.5 * ((xs[p, t] + xs[k, t]) * fy - (ys[p, t] + ys[k, t]) * fx)
                sfx = s_fx[k, t] + fx
                sfy = s_fy[k, t] + fy
                s_i[k, t] = si
                s_fx[k, t] = sfx
                s_fy[k, t] = sfy
                tk = si - (xs[p, t] * sfy - ys[p, t] * sfx)
                g = abs(tk) < _LIMIT
                if not g:
                    tk = 0.0
            tau[t, k] = tk
            tau_valid[t, k] = g
            s_i[p, t] += s_i[k, t]
            s_fx[p, t] += s_fx[k, t]
            s_fy[p, t] += s_fy[k, t]
            sub[p, t] = sub[p, t] and sub[k, t]


@pjit
def _lagrangian_many(pos, valid, ts, parents, order, masses, gx, gy, half_window, max_span,
                     acc, acc_valid, tau, tau_valid):
    for i in prange(pos.shape[0]):
        _lagrangian_one(pos[i], valid[i], ts[i], parents, order, masses, gx, gy, half_window,
                        max_span, acc[i], acc_valid[i], tau[i], tau_valid[i])


def _checked(positions, joint_valid, timestamps, parents, masses, gravity, half_window,
             max_span, lead):
    pos = check_positions(positions, lead, 2)
    valid = check_mask(joint_valid, pos)
    ts = check_timestamps(timestamps, pos.shape[:-2])
    par, order = check_parents(parents, pos.shape[-2])
    return (pos, valid, ts, par, order, check_masses(masses, pos.shape[-2]),
            *check_gravity(gravity), check_half_window(half_window), check_max_span(max_span))


def _outputs(shape):
    return (np.zeros((*shape, 2), dtype=np.float32), np.zeros(shape, dtype=np.bool_),
            np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.bool_))


def lagrangian_acceleration(positions, joint_valid, timestamps, parents, masses=None,
                            gravity=(0.0, 9.81), half_window=3,
                            max_span=DEFAULT_MAX_SPAN):
    """Joint accelerations and joint torques of one window (see the module docstring).

    Parameters
    ----------
    positions : ``(T, V, 2)`` float32 (float64 is converted).
    joint_valid : ``(T, V)`` bool.
    timestamps : ``(T,)`` seconds, strictly increasing (gaps and uneven spacing allowed).
    parents : ``(V,)`` integer, -1 at the root.
    masses : ``(V,)`` mass of the bone ending at each joint (the root's is unused);
        ``None`` gives 1.0 per bone.
    gravity : ``(gx, gy)`` in position units per s², image y pointing down.
    half_window : each fit uses at most ``2 * half_window + 1`` samples.
    max_span : limit in seconds on the distance from a frame to the samples its
        fits use (default 0.5 s; ``None``: no limit).

    Returns
    -------
    LagrangianResult with ``acc (T, V, 2)``, ``acc_valid (T, V)``, ``tau (T, V)``
    and ``tau_valid (T, V)``.
    """
    args = _checked(positions, joint_valid, timestamps, parents, masses, gravity, half_window,
                    max_span, 1)
    out = _outputs(args[1].shape)
    _lagrangian_one(*args, *out)
    return LagrangianResult(*out)


def lagrangian_acceleration_batch(positions, joint_valid, timestamps, parents, masses=None,
                                  gravity=(0.0, 9.81), half_window=3,
                            max_span=DEFAULT_MAX_SPAN):
    """:func:`lagrangian_acceleration` over ``N`` windows in parallel.

    ``positions (N, T, V, 2)``, ``joint_valid (N, T, V)``, ``timestamps (N, T)``;
    the result's arrays carry the leading ``N``.
    """
    args = _checked(positions, joint_valid, timestamps, parents, masses, gravity, half_window,
                    max_span, 2)
    out = _outputs(args[1].shape)
    _lagrangian_many(*args, *out)
    return LagrangianResult(*out)

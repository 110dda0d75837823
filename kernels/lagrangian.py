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
samples nearest in time to ``t`` (ties go to the earlier frame; with
``max_span`` set, samples more than ``max_span`` seconds from ``t`` are not
used; by default no limit). This gives ``q, q', q''`` at ``t`` and is exact for
quadratic motion, whatever the spacing. A fit needs at least 3 samples; without
them the coordinate is unsupported at ``t`` and the joint and all its
descendants get ``acc_valid = False``.

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
from ._numba import jit, pjit, prange

_LIMIT = 3.0e38  # below float32's largest value: |x| < _LIMIT also rules out NaN and inf
_TWO_PI = 2.0 * np.pi


@jit
def _ok(pos, valid, t, v):
    return valid[t, v] and np.isfinite(pos[t, v, 0]) and np.isfinite(pos[t, v, 1])


@jit
def _fit_joint(pos, valid, ts, k, p, half_window, max_span, st, sq0, sq1, fit, fit_ok):
    """Local quadratic fits of joint ``k``'s two coordinates at every frame.

    Writes ``fit[t, k] = (a0, b0, c0, a1, b1, c1)`` (value, first and second
    derivative of coordinate 0 then 1) and ``fit_ok[t, k]``.
    """
    n_t = ts.shape[0]
    n = 0
    off = 0.0
    prev = 0.0
    for s in range(n_t):
        if not _ok(pos, valid, s, k):
            continue
        if p >= 0:
            if not _ok(pos, valid, s, p):
                continue
            dx = np.float64(pos[s, k, 0]) - np.float64(pos[s, p, 0])
            dy = np.float64(pos[s, k, 1]) - np.float64(pos[s, p, 1])
            th = np.arctan2(dy, dx)
            if n > 0:
                d = th - prev
                if d > np.pi:
                    off -= _TWO_PI
                elif d < -np.pi:
                    off += _TWO_PI
            prev = th
            sq0[n] = np.sqrt(dx * dx + dy * dy)
            sq1[n] = th + off
        else:
            sq0[n] = pos[s, k, 0]
            sq1[n] = pos[s, k, 1]
        st[n] = ts[s]
        n += 1

    n_fit = 2 * half_window + 1
    j = 0  # first sample at or after the current frame's time
    for t in range(n_t):
        tt = ts[t]
        fit_ok[t, k] = False
        for i in range(6):
            fit[t, k, i] = 0.0
        while j < n and st[j] < tt:
            j += 1
        lo = j
        hi = j
        while hi - lo < n_fit:
            has_l = lo > 0
            has_r = hi < n
            if not (has_l or has_r):
                break
            dl = tt - st[lo - 1] if has_l else np.inf
            dr = st[hi] - tt if has_r else np.inf
            if dl <= dr:
                if dl > max_span:
                    break
                lo -= 1
            else:
                if dr > max_span:
                    break
                hi += 1
        cnt = hi - lo
        if cnt < 3:
            continue
        m = 0.0
        for i in range(lo, hi):
            m += st[i]
        m /= cnt
        sc = 0.0
        for i in range(lo, hi):
            sc = max(sc, abs(st[i] - m))
        if not sc > 0.0:
            continue
        inv = 1.0 / sc
        s1 = s2 = s3 = s4 = 0.0
        b00 = b01 = b02 = b10 = b11 = b12 = 0.0
        for i in range(lo, hi):
            v = (st[i] - m) * inv
            v2 = v * v
            s1 += v
            s2 += v2
            s3 += v2 * v
            s4 += v2 * v2
            q0 = sq0[i]
            q1 = sq1[i]
            b00 += q0
            b01 += q0 * v
            b02 += q0 * v2
            b10 += q1
            b11 += q1 * v
            b12 += q1 * v2
        s0 = float(cnt)
        # cofactors of the symmetric moment matrix [[s0 s1 s2] [s1 s2 s3] [s2 s3 s4]]
        c00 = s2 * s4 - s3 * s3
        c01 = s2 * s3 - s1 * s4
        c02 = s1 * s3 - s2 * s2
        c11 = s0 * s4 - s2 * s2
        c12 = s1 * s2 - s0 * s3
        c22 = s0 * s2 - s1 * s1
        det = s0 * c00 + s1 * c01 + s2 * c02
        if not det > 0.0:
            continue
        rdet = 1.0 / det
        vt = (tt - m) * inv
        # coordinate 0
        aa = (c00 * b00 + c01 * b01 + c02 * b02) * rdet
        bb = (c01 * b00 + c11 * b01 + c12 * b02) * rdet
        dd = (c02 * b00 + c12 * b01 + c22 * b02) * rdet
        fit[t, k, 0] = aa + (bb + dd * vt) * vt
        fit[t, k, 1] = (bb + 2.0 * dd * vt) * inv
        fit[t, k, 2] = 2.0 * dd * inv * inv
        # coordinate 1
        aa = (c00 * b10 + c01 * b11 + c02 * b12) * rdet
        bb = (c01 * b10 + c11 * b11 + c12 * b12) * rdet
        dd = (c02 * b10 + c12 * b11 + c22 * b12) * rdet
        fit[t, k, 3] = aa + (bb + dd * vt) * vt
        fit[t, k, 4] = (bb + 2.0 * dd * vt) * inv
        fit[t, k, 5] = 2.0 * dd * inv * inv
        fit_ok[t, k] = True


@jit
def _lagrangian_one(pos, valid, ts, parents, order, masses, gx, gy, half_window, max_span,
                    acc, acc_valid, tau, tau_valid):
    """One window; fills ``acc, acc_valid, tau, tau_valid`` in place."""
    n_t, n_v = valid.shape
    st = np.empty(n_t)
    sq0 = np.empty(n_t)
    sq1 = np.empty(n_t)
    fit = np.empty((n_t, n_v, 6))
    fit_ok = np.empty((n_t, n_v), dtype=np.bool_)
    for k in range(n_v):
        _fit_joint(pos, valid, ts, k, parents[k], half_window, max_span, st, sq0, sq1,
                   fit, fit_ok)

    xs = np.zeros((n_v, 2))  # fitted positions relative to the tree's root
    ac = np.zeros((n_v, 2))
    okj = np.zeros(n_v, dtype=np.bool_)
    s_i = np.zeros(n_v)
    s_f = np.zeros((n_v, 2))
    sub_ok = np.zeros(n_v, dtype=np.bool_)
    for t in range(n_t):
        for kk in range(n_v):
            k = order[kk]
            p = parents[k]
            x = y = ax = ay = 0.0
            if p < 0:
                ok = fit_ok[t, k]
                ax = fit[t, k, 2]
                ay = fit[t, k, 5]
            else:
                ok = fit_ok[t, k] and okj[p]
                if ok:
                    ln = fit[t, k, 0]
                    ld = fit[t, k, 1]
                    th = fit[t, k, 3]
                    thd = fit[t, k, 4]
                    cs = np.cos(th)
                    sn = np.sin(th)
                    x = xs[p, 0] + ln * cs
                    y = xs[p, 1] + ln * sn
                    ar = fit[t, k, 2] - ln * thd * thd
                    at = ln * fit[t, k, 5] + 2.0 * ld * thd
                    ax = ac[p, 0] + ar * cs - at * sn
                    ay = ac[p, 1] + ar * sn + at * cs
            ok = ok and abs(ax) < _LIMIT and abs(ay) < _LIMIT and abs(x) < _LIMIT \
                and abs(y) < _LIMIT
            if not ok:
                x = y = ax = ay = 0.0
            okj[k] = ok
            xs[k, 0] = x
            xs[k, 1] = y
            ac[k, 0] = ax
            ac[k, 1] = ay
            acc[t, k, 0] = ax
            acc[t, k, 1] = ay
            acc_valid[t, k] = ok

        for k in range(n_v):
            s_i[k] = 0.0
            s_f[k, 0] = 0.0
            s_f[k, 1] = 0.0
            sub_ok[k] = okj[k]
        for kk in range(n_v - 1, -1, -1):
            k = order[kk]
            p = parents[k]
            if p < 0:
                tau[t, k] = 0.0
                tau_valid[t, k] = False
                continue
            tk = 0.0
            ok = sub_ok[k]
            if ok:
                m = masses[k]
                ln = fit[t, k, 0]
                rx = 0.5 * (xs[p, 0] + xs[k, 0])
                ry = 0.5 * (xs[p, 1] + xs[k, 1])
                fx = m * (0.5 * (ac[p, 0] + ac[k, 0]) - gx)
                fy = m * (0.5 * (ac[p, 1] + ac[k, 1]) - gy)
                s_i[k] += m * ln * ln / 12.0 * fit[t, k, 5] + rx * fy - ry * fx
                s_f[k, 0] += fx
                s_f[k, 1] += fy
                tk = s_i[k] - (xs[p, 0] * s_f[k, 1] - xs[p, 1] * s_f[k, 0])
                ok = abs(tk) < _LIMIT
                if not ok:
                    tk = 0.0
            tau[t, k] = tk
            tau_valid[t, k] = ok
            s_i[p] += s_i[k]
            s_f[p, 0] += s_f[k, 0]
            s_f[p, 1] += s_f[k, 1]
            sub_ok[p] = sub_ok[p] and sub_ok[k]


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
                            gravity=(0.0, 9.81), half_window=3, max_span=None):
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
    max_span : optional limit in seconds on the distance from a frame to the
        samples its fits use (``None``: no limit).

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
                                  gravity=(0.0, 9.81), half_window=3, max_span=None):
    """:func:`lagrangian_acceleration` over ``N`` windows in parallel.

    ``positions (N, T, V, 2)``, ``joint_valid (N, T, V)``, ``timestamps (N, T)``;
    the result's arrays carry the leading ``N``.
    """
    args = _checked(positions, joint_valid, timestamps, parents, masses, gravity, half_window,
                    max_span, 2)
    out = _outputs(args[1].shape)
    _lagrangian_many(*args, *out)
    return LagrangianResult(*out)

"""Lagrangian kinematics of a skeleton tree from windowed quadratic fits; generalised forces.

:func:`lagrangian_kinematics` fits each generalised coordinate locally in time
(a windowed quadratic least-squares fit), recomposes the joint accelerations
down the tree, and computes the generalised force at every bone's parent joint
(inverse dynamics of uniform rods). Nothing is learned here.

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
    KinematicsResult,
    check_gravity,
    check_gravity_batch,
    check_half_window,
    check_mask,
    check_masses,
    check_max_span,
    check_parents,
    check_positions,
    check_timestamps,
)
from ._fits import _fit_all
from ._numba import ijit, jit, pjit, prange

DEFAULT_MAX_SPAN = 0.5  # time units of the timestamps (seconds by default)
_LIMIT = 3.0e38  # below float32's largest value: |x| < _LIMIT also rules out NaN and inf


@ijit
def _recompose(fit, fit_ok, parents, order, good, xs, ys, axs, ays, acc, acc_valid):
    """Joint positions (relative to the root) and accelerations from the fits, parents first;
    ``good[k, t]`` where the joint's fit and every fit on its path to the root hold."""
    n_v, n_t = good.shape
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


@ijit
def _generalised_forces(fit, parents, order, masses, gx, gy, good, sub, xs, ys, axs, ays,
                        tau, tau_valid):
    """Inverse dynamics, leaves first: ``s_i, s_fx, s_fy`` accumulate each subtree's sum of
    ``I th'' + r x F`` and of ``F = m (a - g)``; ``tau_k = s_i - x_p x s_f``. ``sub`` is
    scratch (True while the whole subtree is supported)."""
    n_v, n_t = good.shape
    s_i = np.zeros((n_v, n_t))
    s_fx = np.zeros((n_v, n_t))
    s_fy = np.zeros((n_v, n_t))
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


@jit
def _kinematics_one(pos, valid, ts, parents, order, masses, gx, gy, half_window, max_span,
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
    xs = np.empty((n_v, n_t))
    ys = np.empty((n_v, n_t))
    axs = np.empty((n_v, n_t))
    ays = np.empty((n_v, n_t))
    good = ok  # reused: ok is no longer needed
    _recompose(fit, fit_ok, parents, order, good, xs, ys, axs, ays, acc, acc_valid)
    _generalised_forces(fit, parents, order, masses, gx, gy, good, fit_ok, xs, ys, axs, ays,
                        tau, tau_valid)


@pjit
def _kinematics_many(pos, valid, ts, parents, order, masses, gravity, half_window, max_span,
                     acc, acc_valid, tau, tau_valid):
    for i in prange(pos.shape[0]):
        _kinematics_one(pos[i], valid[i], ts[i], parents, order, masses, gravity[i, 0],
                        gravity[i, 1], half_window, max_span, acc[i], acc_valid[i], tau[i],
                        tau_valid[i])


def _checked(positions, joint_valid, timestamps, parents, masses, gravity, half_window,
             max_span, lead):
    pos = check_positions(positions, lead, 2)
    valid = check_mask(joint_valid, pos)
    ts = check_timestamps(timestamps, pos.shape[:-2])
    par, order = check_parents(parents, pos.shape[-2])
    g = check_gravity(gravity) if lead == 1 else (check_gravity_batch(gravity, pos.shape[0]),)
    return (pos, valid, ts, par, order, check_masses(masses, pos.shape[-2]), *g,
            check_half_window(half_window), check_max_span(max_span))


def _outputs(shape):
    return (np.zeros((*shape, 2), dtype=np.float32), np.zeros(shape, dtype=np.bool_),
            np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.bool_))


def lagrangian_kinematics(positions, joint_valid, timestamps, parents, masses=None,
                          gravity=(0.0, 9.81), half_window=3, max_span=DEFAULT_MAX_SPAN):
    """Fitted joint accelerations and generalised forces of one window (module docstring).

    Parameters
    ----------
    positions : ``(T, V, 2)`` float32 (float64 is converted).
    joint_valid : ``(T, V)`` bool.
    timestamps : ``(T,)`` strictly increasing (gaps and uneven spacing allowed), in the
        time unit of the outputs (seconds, or frames of a grid).
    parents : ``(V,)`` integer, -1 at the root.
    masses : ``(V,)`` mass of the bone ending at each joint (the root's is unused);
        ``None`` gives 1.0 per bone.
    gravity : ``(gx, gy)`` in position units per time unit², image y pointing down.
    half_window : each fit uses at most ``2 * half_window + 1`` samples; an integer in
        ``[1, MAX_HALF_WINDOW]``.
    max_span : limit on the distance in time from a frame to the samples its fits use
        (default 0.5; ``None``: no limit); a finite number in ``(0, MAX_SPAN_LIMIT]``.

    Returns
    -------
    KinematicsResult with ``acc (T, V, 2)``, ``acc_valid (T, V)``, ``tau (T, V)``
    and ``tau_valid (T, V)``.
    """
    args = _checked(positions, joint_valid, timestamps, parents, masses, gravity, half_window,
                    max_span, 1)
    out = _outputs(args[1].shape)
    _kinematics_one(*args, *out)
    return KinematicsResult(*out)


def lagrangian_kinematics_batch(positions, joint_valid, timestamps, parents, masses=None,
                                gravity=(0.0, 9.81), half_window=3, max_span=DEFAULT_MAX_SPAN):
    """:func:`lagrangian_kinematics` over ``N`` windows in parallel.

    ``positions (N, T, V, 2)``, ``joint_valid (N, T, V)``, ``timestamps (N, T)``;
    ``gravity`` is one ``(gx, gy)`` for all windows or ``(N, 2)``, one per window (e.g.
    when each window has its own grid step). The result's arrays carry the leading ``N``.
    """
    args = _checked(positions, joint_valid, timestamps, parents, masses, gravity, half_window,
                    max_span, 2)
    out = _outputs(args[1].shape)
    _kinematics_many(*args, *out)
    return KinematicsResult(*out)

"""Vectorised NumPy twins of the kernels: what a careful NumPy programmer would write.

Same names, signatures, argument checks and outputs as the Numba kernels (and
:mod:`finetec_live.kernels.reference`), with the loops over frames, joints and
samples replaced by array operations; only the walk down the tree (one step
per joint, every frame at once) and the loop over the windows of a batch stay
in Python. ``tools/bench_kernels.py`` quotes the Numba kernels' speed against
these, not only against the per-frame loops of the reference; the tests compare
all three.

The windowed fit is written as masked moment sums: for every frame ``t`` the
``2 * half_window + 1`` samples nearest in time (a stable sort of the
distances: ties to the earlier frame) within ``max_span``, then the 3x3 normal
equations of ``a + b v + c v**2`` with ``v`` the sample time minus ``t``'s,
scaled by the largest such distance, solved by cofactors.
"""

from __future__ import annotations

import numpy as np

from ._common import KinematicsResult, kinematics_windows
from .kinematics import _LIMIT, DEFAULT_MAX_SPAN
from .kinematics import _checked as _checked_kinematics
from .motion import DEFAULT_FLOOR, DEFAULT_THRESHOLD
from .motion import _checked as _checked_motion


# --- region motion -----------------------------------------------------------
def _region_motion(pos, valid, regions, n_regions, threshold, floor):
    """``pos (N, T, V, C)``, ``valid (N, T, V)`` -> ``scores (N, R)``, ``dynamic (N, R)``."""
    pos = pos.astype(np.float64)
    ok = valid & np.isfinite(pos).all(-1)  # (N, T, V)
    p = np.where(ok[..., None], pos, 0.0)
    w = ok[..., None].astype(np.float64)
    n_f = ok.sum(-1)  # (N, T) joints per frame
    centroid = p.sum(2) / np.maximum(n_f, 1)[..., None]  # (N, T, C)
    ss_f = (w * (p - centroid[:, :, None]) ** 2).sum((2, 3))  # (N, T)
    framed = n_f >= 2
    rms = np.where(framed, np.sqrt(ss_f / np.maximum(n_f, 1)), 0.0)
    n_framed = framed.sum(1)
    size = np.where(n_framed > 0, rms.sum(1) / np.maximum(n_framed, 1), 0.0)  # (N,)
    n_j = ok.sum(1)  # (N, V) frames per joint
    mean = p.sum(1) / np.maximum(n_j, 1)[..., None]  # (N, V, C)
    var = (w * (p - mean[:, None]) ** 2).sum((1, 3)) / np.maximum(n_j, 1)  # (N, V)
    part = n_j >= 2
    onehot = (regions[:, None] == np.arange(n_regions)).astype(np.float64)  # (V, R)
    total = np.where(part, var, 0.0) @ onehot  # (N, R)
    count = part.astype(np.float64) @ onehot
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where((count > 0) & (size[:, None] > 0),
                          np.minimum(total / count / size[:, None] ** 2, 1e30), 0.0)
    best = scores.max(1, keepdims=True)  # n_regions >= 5
    dynamic = (scores > floor) & (scores >= threshold * best)
    return scores.astype(np.float32), dynamic


def region_motion(positions, joint_valid, regions, threshold=DEFAULT_THRESHOLD,
                  floor=DEFAULT_FLOOR):
    """Vectorised twin of :func:`finetec_live.kernels.region_motion`."""
    pos, valid, reg, n_r, threshold, floor = _checked_motion(positions, joint_valid, regions,
                                                             threshold, floor, 1)
    scores, dynamic = _region_motion(pos[None], valid[None], reg, n_r, threshold, floor)
    return scores[0], dynamic[0]


def region_motion_batch(positions, joint_valid, regions, threshold=DEFAULT_THRESHOLD,
                        floor=DEFAULT_FLOOR):
    """Vectorised twin of :func:`finetec_live.kernels.region_motion_batch`."""
    pos, valid, reg, n_r, threshold, floor = _checked_motion(positions, joint_valid, regions,
                                                             threshold, floor, 2)
    return _region_motion(pos, valid, reg, n_r, threshold, floor)


# --- Lagrangian kinematics and generalised forces ------------------------------
def _coordinates(pos, ok, parents):
    """Samples of every joint's generalised coordinates: ``has (T, V)``, ``q (T, V, 2)`` (root:
    x, y; bone: length and angle unwrapped along the bone's samples), ``u (T, V, 2)`` unit."""
    n_t, n_v = ok.shape
    root = parents < 0
    par = np.where(root, np.arange(n_v), parents)
    has = ok & (root | ok[:, par])
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(has[..., None], pos - np.where(root[:, None], 0.0, pos[:, par]), 0.0)
    length = np.hypot(d[..., 0], d[..., 1])
    raw = np.arctan2(d[..., 1], d[..., 0])
    # unwrap along each bone's samples: steps between consecutive samples into [-pi, pi]
    t = np.arange(n_t)[:, None]
    prev = np.maximum.accumulate(np.where(has, t, -1), axis=0)  # last sample at or before t
    before = np.vstack([np.full((1, n_v), -1), prev[:-1]])  # last sample strictly before t
    step = raw - np.take_along_axis(raw, np.maximum(before, 0), axis=0)
    step = np.where(has & (before >= 0), (step + np.pi) % (2 * np.pi) - np.pi, 0.0)
    first = np.take_along_axis(raw, np.argmax(has, axis=0)[None], axis=0)  # (1, V)
    theta = first + np.cumsum(step, axis=0)
    q = np.where(root[:, None], pos, np.stack([length, theta], -1))
    return has, q


def _fits(q, has, ts, n_fit, max_span):
    """Value, first and second derivative ``(V, T, 2, 3)`` of both coordinates at every frame,
    and ``fit_ok (V, T)``."""
    dist = np.abs(ts[None, :] - ts[:, None])  # (T frame, T sample)
    key = np.where(has.T[:, None, :], dist[None], np.inf)  # (V, T, T)
    order = np.argsort(key, axis=-1, kind="stable")[..., :n_fit]  # nearest, ties earlier
    near = np.take_along_axis(key, order, axis=-1)
    chosen = np.isfinite(near) & (near <= max_span)  # (V, T, n_fit)
    u = ts[order] - ts[None, :, None]  # (V, T, n_fit)
    h = np.abs(np.where(chosen, u, 0.0)).max(-1, keepdims=True)
    v = np.where(chosen, u / np.where(h > 0, h, 1.0), 0.0)
    powers = v[..., None] ** np.arange(5)  # (V, T, n_fit, 5)
    s = (powers * chosen[..., None]).sum(2)  # (V, T, 5) moment sums
    vals = np.take_along_axis(q.transpose(1, 0, 2)[:, None], order[..., None], axis=2)
    vals = np.where(chosen[..., None], vals, 0.0)  # (V, T, n_fit, 2)
    r = np.einsum("vtsk,vtsc->vtck", powers[..., :3], vals)  # (V, T, 2, 3)
    s0, s1, s2, s3, s4 = np.moveaxis(s, -1, 0)
    cof = np.stack([np.stack([s2 * s4 - s3 * s3, s2 * s3 - s1 * s4, s1 * s3 - s2 * s2], -1),
                    np.stack([s2 * s3 - s1 * s4, s0 * s4 - s2 * s2, s1 * s2 - s0 * s3], -1),
                    np.stack([s1 * s3 - s2 * s2, s1 * s2 - s0 * s3, s0 * s2 - s1 * s1], -1)],
                   -2)  # (V, T, 3, 3), symmetric
    det = s0 * cof[..., 0, 0] + s1 * cof[..., 0, 1] + s2 * cof[..., 0, 2]
    fit_ok = (chosen.sum(-1) >= 3) & (h[..., 0] > 0) & (det > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.einsum("vtij,vtcj->vtci", cof, r) / np.where(fit_ok, det, 1.0)[..., None, None]
    hh = np.where(h > 0, h, 1.0)[..., None]  # (V, T, 1, 1)
    scale = np.concatenate([np.ones_like(hh), 1 / hh, 2 / hh**2], -1)  # derivatives of v
    return np.where(fit_ok[..., None, None], coef * scale, 0.0), fit_ok


def _kinematics(pos, valid, ts, parents, order, masses, gx, gy, half_window, max_span):
    n_t, n_v = valid.shape
    if n_t == 0:
        return (np.zeros((0, n_v, 2), np.float32), np.zeros((0, n_v), bool),
                np.zeros((0, n_v), np.float32), np.zeros((0, n_v), bool))
    pos = pos.astype(np.float64)
    ok = valid & np.isfinite(pos).all(-1)
    has, q = _coordinates(pos, ok, parents)
    fit, fit_ok = _fits(q, has, ts, 2 * half_window + 1, max_span)  # (V, T, 2, 3), (V, T)
    x = np.zeros((n_v, n_t, 2))
    a = np.zeros((n_v, n_t, 2))
    good = np.zeros((n_v, n_t), dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in order:  # down the tree, every frame at once
            p = parents[k]
            (ln, ld, ldd), (th, thd, thdd) = fit[k, :, 0].T, fit[k, :, 1].T
            if p < 0:
                g, xk, ak = fit_ok[k], np.zeros((n_t, 2)), fit[k, :, :, 2]
            else:
                e_r = np.stack([np.cos(th), np.sin(th)], -1)
                e_th = np.stack([-np.sin(th), np.cos(th)], -1)
                g = fit_ok[k] & good[p]
                xk = x[p] + ln[:, None] * e_r
                ak = a[p] + (ldd - ln * thd**2)[:, None] * e_r \
                    + (ln * thdd + 2 * ld * thd)[:, None] * e_th
            g = g & (np.abs(ak) < _LIMIT).all(-1) & (np.abs(xk) < _LIMIT).all(-1)
            good[k] = g
            x[k] = np.where(g[:, None], xk, 0.0)
            a[k] = np.where(g[:, None], ak, 0.0)
        tau, tau_valid = _forces(fit, parents, order, masses, np.array([gx, gy]), good, x, a)
    return (a.transpose(1, 0, 2).astype(np.float32), good.T.copy(),
            tau.T.astype(np.float32), tau_valid.T.copy())


def _forces(fit, parents, order, masses, gravity, good, x, a):
    """Generalised forces ``(V, T)`` leaves first, every frame at once (module
    :mod:`~finetec_live.kernels.kinematics` defines them)."""
    n_v, n_t = good.shape
    s_i = np.zeros((n_v, n_t))
    s_f = np.zeros((n_v, n_t, 2))
    sub = good.copy()
    tau = np.zeros((n_v, n_t))
    tau_valid = np.zeros((n_v, n_t), dtype=bool)
    for k in order[::-1]:
        p = parents[k]
        if p < 0:
            continue
        m, ln, thdd = masses[k], fit[k, :, 0, 0], fit[k, :, 1, 2]
        g = sub[k]
        force = m * (0.5 * (a[p] + a[k]) - gravity)  # (T, 2)
        mid = 0.5 * (x[p] + x[k])
        si = s_i[k] + m * ln * ln / 12.0 * thdd + mid[:, 0] * force[:, 1] - mid[:, 1] * force[:, 0]
        sf = s_f[k] + force
        s_i[k] = np.where(g, si, s_i[k])
        s_f[k] = np.where(g[:, None], sf, s_f[k])
        tk = si - (x[p, :, 0] * sf[:, 1] - x[p, :, 1] * sf[:, 0])
        g = g & (np.abs(tk) < _LIMIT)
        tau[k] = np.where(g, tk, 0.0)
        tau_valid[k] = g
        s_i[p] += s_i[k]
        s_f[p] += s_f[k]
        sub[p] &= sub[k]
    return tau, tau_valid


def lagrangian_kinematics(positions, joint_valid, timestamps, parents, masses=None,
                          gravity=(0.0, 9.81), half_window=3, max_span=DEFAULT_MAX_SPAN):
    """Vectorised twin of :func:`finetec_live.kernels.lagrangian_kinematics`."""
    args = _checked_kinematics(positions, joint_valid, timestamps, parents, masses, gravity,
                               half_window, max_span, 1)
    return KinematicsResult(*_kinematics(*args))


def lagrangian_kinematics_batch(positions, joint_valid, timestamps, parents, masses=None,
                                gravity=(0.0, 9.81), half_window=3, max_span=DEFAULT_MAX_SPAN):
    """Vectorised twin of :func:`finetec_live.kernels.lagrangian_kinematics_batch`."""
    return kinematics_windows(_kinematics, *_checked_kinematics(
        positions, joint_valid, timestamps, parents, masses, gravity, half_window, max_span, 2))

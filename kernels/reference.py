"""Plain NumPy twins of the kernels: slow, written to be obviously correct.

Same names, signatures, argument checks and outputs as the Numba kernels in
:mod:`finetec_live.kernels`; the tests compare the two on many random windows.
The definitions are documented in :mod:`finetec_live.kernels.motion` and
:mod:`finetec_live.kernels.kinematics`.
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
    pos = pos.astype(np.float64)
    ok = valid & np.isfinite(pos).all(axis=-1)  # (T, V)
    sizes = []
    for t in range(pos.shape[0]):
        pts = pos[t][ok[t]]
        if len(pts) >= 2:
            sizes.append(np.sqrt(np.mean(np.sum((pts - pts.mean(axis=0)) ** 2, axis=1))))
    size = np.mean(sizes) if sizes else 0.0
    scores = np.zeros(n_regions)
    for r in range(n_regions):
        motions = [np.var(pos[ok[:, v], v], axis=0).sum()
                   for v in np.flatnonzero(regions == r) if ok[:, v].sum() >= 2]
        if motions and size > 0:
            scores[r] = min(np.mean(motions) / size**2, 1e30)
    dynamic = (scores > floor) & (scores >= threshold * scores.max())
    return scores.astype(np.float32), dynamic


def region_motion(positions, joint_valid, regions, threshold=DEFAULT_THRESHOLD,
                  floor=DEFAULT_FLOOR):
    """Reference of :func:`finetec_live.kernels.region_motion`."""
    pos, valid, reg, n_r, threshold, floor = _checked_motion(positions, joint_valid, regions,
                                                             threshold, floor, 1)
    return _region_motion(pos, valid, reg, n_r, threshold, floor)


def region_motion_batch(positions, joint_valid, regions, threshold=DEFAULT_THRESHOLD,
                        floor=DEFAULT_FLOOR):
    """Reference of :func:`finetec_live.kernels.region_motion_batch`."""
    pos, valid, reg, n_r, threshold, floor = _checked_motion(positions, joint_valid, regions,
                                                             threshold, floor, 2)
    scores = np.zeros((len(pos), n_r), dtype=np.float32)
    dynamic = np.zeros((len(pos), n_r), dtype=bool)
    for i in range(len(pos)):
        scores[i], dynamic[i] = _region_motion(pos[i], valid[i], reg, n_r, threshold, floor)
    return scores, dynamic


# --- Lagrangian kinematics and generalised forces ------------------------------
def _coordinates(pos, ok, parents, k):
    """Samples of joint k's generalised coordinates: (has_sample (T,), q (T, 2))."""
    p = parents[k]
    if p < 0:
        return ok[:, k], pos[:, k, :]
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf at missing joints
        d = pos[:, k, :] - pos[:, p, :]
    return ok[:, k] & ok[:, p], np.stack([np.hypot(d[:, 0], d[:, 1]),
                                          np.arctan2(d[:, 1], d[:, 0])], axis=1)


def _fit(ts, has, q, is_bone, t, n_fit, max_span):
    """(q, q', q'') of both coordinates at frame t, shape (2, 3); None when unsupported."""
    idx = np.flatnonzero(has)
    dist = np.abs(ts[idx] - ts[t])
    idx, dist = idx[dist <= max_span], dist[dist <= max_span]
    chosen = np.sort(idx[np.argsort(dist, kind="stable")[:n_fit]])
    if len(chosen) < 3:
        return None
    values = q[chosen].copy()
    if is_bone:
        values[:, 1] = np.unwrap(values[:, 1])
    u = ts[chosen] - ts[t]
    design = np.stack([np.ones_like(u), u, u**2 / 2], axis=1)
    coef, _, rank, _ = np.linalg.lstsq(design, values, rcond=None)
    if rank < 3:
        return None
    return coef.T  # rows: coordinate; columns: value, first, second derivative


def _kinematics(pos, valid, ts, parents, order, masses, gx, gy, half_window, max_span):
    n_t, n_v = valid.shape
    pos = pos.astype(np.float64)
    ok = valid & np.isfinite(pos).all(axis=-1)
    acc = np.zeros((n_t, n_v, 2))
    acc_valid = np.zeros((n_t, n_v), dtype=bool)
    tau = np.zeros((n_t, n_v))
    tau_valid = np.zeros((n_t, n_v), dtype=bool)
    gravity = np.array([gx, gy])
    children = [[j for j in range(n_v) if parents[j] == k] for k in range(n_v)]

    def subtree(k):
        out = [k]
        for c in children[k]:
            out += subtree(c)
        return out

    samples = [_coordinates(pos, ok, parents, k) for k in range(n_v)]
    for t in range(n_t):
        fits = [_fit(ts, has, q, parents[k] >= 0, t, 2 * half_window + 1, max_span)
                for k, (has, q) in enumerate(samples)]
        x = np.zeros((n_v, 2))  # fitted positions
        a = np.zeros((n_v, 2))
        good = np.zeros(n_v, dtype=bool)
        for k in order:
            p = parents[k]
            f = fits[k]
            if p < 0:
                if f is None:
                    continue
                x[k], a[k] = f[:, 0], f[:, 2]
            else:
                if f is None or not good[p]:
                    continue
                (ln, ld, ldd), (th, thd, thdd) = f
                e_r = np.array([np.cos(th), np.sin(th)])
                e_th = np.array([-np.sin(th), np.cos(th)])
                x[k] = x[p] + ln * e_r
                a[k] = a[p] + (ldd - ln * thd**2) * e_r + (ln * thdd + 2 * ld * thd) * e_th
            good[k] = bool(np.all(np.abs(a[k]) < _LIMIT) and np.all(np.abs(x[k]) < _LIMIT))
        acc_valid[t] = good
        acc[t][good] = a[good]
        for k in range(n_v):
            p = parents[k]
            bones = subtree(k)
            if p < 0 or not good[bones].all():
                continue
            total = 0.0
            for j in bones:
                m, ln, thdd = masses[j], fits[j][0, 0], fits[j][1, 2]
                r = (x[parents[j]] + x[j]) / 2 - x[p]
                force = m * ((a[parents[j]] + a[j]) / 2 - gravity)
                total += m * ln**2 / 12 * thdd + r[0] * force[1] - r[1] * force[0]
            if abs(total) < _LIMIT:
                tau[t, k] = total
                tau_valid[t, k] = True
    return acc.astype(np.float32), acc_valid, tau.astype(np.float32), tau_valid


def lagrangian_kinematics(positions, joint_valid, timestamps, parents, masses=None,
                          gravity=(0.0, 9.81), half_window=3, max_span=DEFAULT_MAX_SPAN):
    """Reference of :func:`finetec_live.kernels.lagrangian_kinematics`."""
    args = _checked_kinematics(positions, joint_valid, timestamps, parents, masses, gravity,
                               half_window, max_span, 1)
    return KinematicsResult(*_kinematics(*args))


def lagrangian_kinematics_batch(positions, joint_valid, timestamps, parents, masses=None,
                                gravity=(0.0, 9.81), half_window=3, max_span=DEFAULT_MAX_SPAN):
    """Reference of :func:`finetec_live.kernels.lagrangian_kinematics_batch`."""
    return kinematics_windows(_kinematics, *_checked_kinematics(
        positions, joint_valid, timestamps, parents, masses, gravity, half_window, max_span, 2))

"""Physical truths the Lagrangian acceleration kernel must get right (DESIGN.md)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from finetec_live import kernels
from finetec_live.kernels import reference
from finetec_live.skeleton.layouts import MEDIAPIPE33, PENN13

G = 9.81

# Penn-13 standing pose in pixels (x right, y down), a person about 300 px tall.
PENN_POSE = np.array([
    [200, 60], [170, 100], [230, 100], [160, 150], [240, 150], [155, 200], [245, 200],
    [180, 200], [220, 200], [178, 270], [222, 270], [176, 340], [224, 340]], dtype=np.float64)


def uneven_times(rng, n, fps=30.0):
    """Strictly increasing, unevenly spaced timestamps starting at an arbitrary time."""
    return 12.5 + np.cumsum(rng.uniform(0.4, 1.6, n)) / fps


def random_mask(rng, n_t, n_v, rate):
    return rng.random((n_t, n_v)) >= rate


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
@pytest.mark.parametrize("layout", [PENN13, MEDIAPIPE33], ids=["penn13", "mediapipe33"])
def test_constant_acceleration_is_recovered_at_every_supported_joint(impl, layout):
    rng = np.random.default_rng(1)
    n_t, n_v = 48, layout.num_joints
    base = rng.uniform(50, 400, (n_v, 2))
    v0, a = np.array([35.0, -80.0]), np.array([120.0, -260.0])
    ts = uneven_times(rng, n_t)
    t = (ts - ts[0])[:, None, None]
    pos = (base[None] + v0 * t + 0.5 * a * t**2).astype(np.float32)
    valid = random_mask(rng, n_t, n_v, 0.3)
    valid[rng.choice(n_t, 10, replace=False)] = False  # whole missing frames too
    res = impl.lagrangian_kinematics(pos, valid, ts, layout.parents_array())
    assert res.acc_valid.mean() > 0.9  # fits reach across the gaps
    assert res.acc_valid[~valid.any(axis=1)].any()  # including on fully missing frames
    got = res.acc[res.acc_valid]
    np.testing.assert_allclose(got, np.broadcast_to(a, got.shape), atol=0.5)  # 0.2% of |a|


def test_constant_acceleration_torques_match_the_rigid_body_formula():
    rng = np.random.default_rng(2)
    n_t = 40
    ts = uneven_times(rng, n_t)
    t = (ts - ts[0])[:, None, None]
    a = np.array([60.0, 150.0])
    g = np.array([0.0, 980.0])
    pos = (PENN_POSE[None] + np.array([10.0, 5.0]) * t + 0.5 * a * t**2).astype(np.float32)
    valid = random_mask(rng, n_t, 13, 0.2)
    masses = PENN13.masses_array() * 70.0
    res = kernels.lagrangian_kinematics(pos, valid, ts, PENN13.parents_array(), masses,
                                          gravity=g)
    parents = PENN13.parents_array()
    # pure translation: no rotation, so tau_k = sum_j (r_j - p_k) x m_j (a - g)
    for k in range(1, 13):
        sub = [j for j in range(13) if _ancestor(parents, k, j)]
        want = 0.0
        for j in sub:
            r = 0.5 * (PENN_POSE[j] + PENN_POSE[parents[j]]) - PENN_POSE[parents[k]]
            f = masses[j] * (a - g)
            want += r[0] * f[1] - r[1] * f[0]
        ok = res.tau_valid[:, k]
        assert ok.mean() > 0.5
        np.testing.assert_allclose(res.tau[ok, k], want, rtol=1e-3, atol=1e-3 * abs(want) + 1)


def _ancestor(parents, k, j):
    """True when j is k or a descendant of k."""
    while j != -1:
        if j == k:
            return True
        j = parents[j]
    return False


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
def test_spinning_bone_has_centripetal_acceleration_only(impl):
    rng = np.random.default_rng(3)
    n_t, omega, length = 64, 4.0, 80.0  # about 0.13 rad per frame; 1.3 turns in the window
    pivot = np.array([300.0, 200.0])
    ts = uneven_times(rng, n_t)
    th = 0.3 + omega * (ts - ts[0])
    pos = np.zeros((n_t, 2, 2))
    pos[:, 0] = pivot
    pos[:, 1] = pivot + length * np.stack([np.cos(th), np.sin(th)], axis=1)
    valid = random_mask(rng, n_t, 2, 0.25)
    res = impl.lagrangian_kinematics(pos.astype(np.float32), valid, ts, np.array([-1, 0]))
    ok = res.acc_valid[:, 1]
    assert ok.mean() > 0.9
    e_r = np.stack([np.cos(th), np.sin(th)], axis=1)[ok]
    e_th = np.stack([-np.sin(th), np.cos(th)], axis=1)[ok]
    acc = res.acc[ok, 1].astype(np.float64)
    radial = np.sum(acc * e_r, axis=1)
    tangential = np.sum(acc * e_th, axis=1)
    np.testing.assert_allclose(radial, -length * omega**2, rtol=2e-3)  # towards the pivot
    np.testing.assert_allclose(tangential, 0.0, atol=2e-3 * length * omega**2)
    np.testing.assert_allclose(res.acc[res.acc_valid[:, 0], 0], 0.0, atol=1e-3)


def _pendulum(phi0, length, fps, n_t):
    """A uniform rod swinging freely about its top end; phi from the downward vertical."""
    w2 = 1.5 * G / length
    ts = np.arange(n_t) / fps
    sol = solve_ivp(lambda _, y: [y[1], -w2 * np.sin(y[0])], (0, ts[-1]), [phi0, 0.0],
                    t_eval=ts, rtol=1e-11, atol=1e-12, method="DOP853")
    phi = sol.y[0]
    tip = length * np.stack([np.sin(phi), np.cos(phi)], axis=1)  # y points down
    pos = np.zeros((n_t, 2, 2))
    pos[:, 1] = tip
    return ts, pos


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
def test_free_pendulum_needs_no_torque(impl):
    mass, length = 2.0, 1.0
    ts, pos = _pendulum(0.8, length, 30.0, 64)
    valid = np.ones((64, 2), dtype=bool)
    res = impl.lagrangian_kinematics(pos.astype(np.float32), valid, ts, np.array([-1, 0]),
                                       masses=np.array([0.0, mass]), gravity=(0.0, G))
    scale = mass * G * length / 2
    assert res.tau_valid[:, 1].all()
    # centred fits: truncation error under 1.5% of m g l / 2 (phi0 = 0.8 rad, 48 frames/period)
    assert np.abs(res.tau[3:-3, 1]).max() < 0.015 * scale
    # the first and last 3 frames use one-sided fits, whose curvature lags by ~3 frames
    assert np.abs(res.tau[:, 1]).max() < 0.35 * scale
    # and the same motion viewed as a static rod would need the full gravity torque
    static = np.abs(np.cross(pos[:, 1] / 2, mass * np.array([0.0, -G])))
    assert static.max() > 0.6 * scale


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
def test_level_rod_held_still_needs_half_mgl(impl):
    mass, length, n_t = 3.0, 0.8, 20
    pos = np.zeros((n_t, 2, 2), dtype=np.float32)
    pos[:, 0] = (1.0, 2.0)
    pos[:, 1] = (1.0 + length, 2.0)  # level, to the right of its pivot
    ts = np.arange(n_t) / 30.0
    res = impl.lagrangian_kinematics(pos, np.ones((n_t, 2), bool), ts, np.array([-1, 0]),
                                       masses=np.array([0.0, mass]))
    # sign convention: positive towards increasing angle (+x to +y, clockwise on screen with
    # y down); holding the rod up against gravity is the opposite direction
    np.testing.assert_allclose(res.tau[:, 1], -mass * G * length / 2, rtol=1e-5)
    np.testing.assert_allclose(res.acc, 0.0, atol=1e-4)
    assert not res.tau_valid[:, 0].any() and (res.tau[:, 0] == 0).all()


def test_jitter_hurts_far_less_than_second_differences():
    rng = np.random.default_rng(4)
    n_t, fps, sigma = 64, 30.0, 1.5  # 1.5 px of keypoint noise on a 300 px person
    ts = np.arange(n_t) / fps

    def clean(t):
        """Whole body accelerating while both arms swing: (len(t), 13, 2)."""
        t = np.asarray(t)[:, None]
        out = np.repeat(PENN_POSE[None], len(t), axis=0)
        out = out + np.array([40.0, 10.0]) * t[..., None] + 0.5 * np.array([30.0, -20.0]) \
            * t[..., None] ** 2
        for shoulder, elbow, wrist, sign in ((1, 3, 5, 1), (2, 4, 6, -1)):
            ang = np.pi / 2 + sign * (0.6 + 0.5 * np.sin(2.5 * t[:, 0]))
            d = np.stack([np.cos(ang), np.sin(ang)], axis=1)
            out[:, elbow] = out[:, shoulder] + 50 * d
            out[:, wrist] = out[:, elbow] + 50 * d
        return out

    h = 1e-3
    truth = (clean(ts + h) - 2 * clean(ts) + clean(ts - h)) / h**2
    noisy = clean(ts) + rng.normal(0, sigma, (n_t, 13, 2))
    res = kernels.lagrangian_kinematics(noisy.astype(np.float32), np.ones((n_t, 13), bool),
                                          ts, PENN13.parents_array())
    inner = slice(3, n_t - 3)
    fit_err = np.sqrt(np.mean((res.acc[inner] - truth[inner]) ** 2))
    second = (noisy[2:] - 2 * noisy[1:-1] + noisy[:-2]) * fps**2
    fd_err = np.sqrt(np.mean((second[2:-2] - truth[inner]) ** 2))
    assert res.acc_valid.all()
    assert fit_err * 5 < fd_err, (fit_err, fd_err)


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
def test_too_few_frames_are_flagged_and_finite(impl):
    rng = np.random.default_rng(5)
    parents = PENN13.parents_array()
    for n_t in (1, 2):
        pos = rng.normal(size=(n_t, 13, 2)).astype(np.float32)
        res = impl.lagrangian_kinematics(pos, np.ones((n_t, 13), bool),
                                           np.arange(n_t) / 30.0, parents)
        assert not res.acc_valid.any() and not res.tau_valid.any()
        assert (res.acc == 0).all() and (res.tau == 0).all()
    # 10 frames, but the left elbow is seen only twice: it and the left wrist are flagged
    pos = rng.normal(size=(10, 13, 2)).astype(np.float32)
    valid = np.ones((10, 13), bool)
    valid[2:, 3] = False
    res = impl.lagrangian_kinematics(pos, valid, np.arange(10) / 30.0, parents)
    assert not res.acc_valid[:, [3, 5]].any()
    assert res.acc_valid[:, [0, 1, 2, 4, 6, 7, 8, 9, 10, 11, 12]].all()
    assert not res.tau_valid[:, [0, 1, 3, 5]].any()  # their subtrees hold the elbow
    assert res.tau_valid[:, [2, 4, 6, 7, 8]].all()
    assert (res.acc[:, [3, 5]] == 0).all() and np.isfinite(res.tau).all()


def test_missing_frames_keep_exact_quadratic_and_max_span_limits_reach():
    ts = np.arange(30) / 30.0
    pos = np.zeros((30, 1, 2), dtype=np.float32)
    pos[:, 0, 0] = (2.0 * ts**2 + ts).astype(np.float32)
    valid = np.ones((30, 1), bool)
    valid[8:22] = False  # a 14-frame burst
    res = kernels.lagrangian_kinematics(pos, valid, ts, np.array([-1]))
    assert res.acc_valid.all()
    np.testing.assert_allclose(res.acc[:, 0, 0], 4.0, atol=1e-2)
    short = kernels.lagrangian_kinematics(pos, valid, ts, np.array([-1]), max_span=0.11)
    # 0.11 s is just over 3 frames: only the first missing frame at each end of the gap
    # still has 3 samples in reach
    assert short.acc_valid[:9].all() and short.acc_valid[21:].all()
    assert not short.acc_valid[9:21].any()
    assert (short.acc[9:21] == 0).all()

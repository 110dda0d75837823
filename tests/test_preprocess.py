"""Tests of the shared preprocessing path (resampling, normalisation, interpolation)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from finetec_live.data.paths import data_root
from finetec_live.inference import preprocess as P
from finetec_live.skeleton.layouts import PENN13


def _penn_clip(index: int = 1):
    m = scipy.io.loadmat(data_root() / "penn_action" / "labels" / f"{index:04d}.mat")
    pos = np.stack([m["x"], m["y"]], axis=-1).astype(np.float32)
    return pos, m["visibility"].astype(bool)


def test_fps_timestamps():
    assert np.allclose(P.fps_timestamps(4, 25.0), [0, 0.04, 0.08, 0.12])
    with pytest.raises(ValueError):
        P.fps_timestamps(3, 0)


def test_resample_identity_and_linear():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 13, 2)).astype(np.float32)
    fv = np.ones(20, bool)
    p, f, j, t = P.resample(x, fv, None, None, 20)
    assert np.allclose(p, x, atol=1e-6) and f.all() and j.all()
    # linear motion is reproduced exactly at any output rate
    ts = np.sort(rng.uniform(0, 2, size=20))
    ts[0], ts[-1] = 0.0, 2.0
    lin = (ts[:, None, None] * np.ones((1, 13, 2)) * 3.0 + 1.0).astype(np.float32)
    p, f, j, t = P.resample(lin, fv, None, ts, 64)
    assert np.allclose(t, np.linspace(0, 2, 64))
    assert np.allclose(p, t[:, None, None] * 3.0 + 1.0, atol=1e-5)


def test_resample_never_bridges_a_gap():
    x = np.ones((30, 13, 2), np.float32)
    fv = np.ones(30, bool)
    fv[10:20] = False
    x[10:20] = np.nan  # missing frames may hold anything
    p, f, _j, t = P.resample(x, fv, None, P.fps_timestamps(30), 59)  # 2x upsampling
    assert np.isfinite(p).all()
    # output times 10/29*... the slots strictly inside the gap are invalid
    inside = (t > 9.5 / 30 + 1e-9) & (t < 19.5 / 30 - 1e-9)
    assert not f[inside].any()
    assert f[~inside].all()
    assert np.all(p[~f] == 0)


def test_resample_batch_and_joint_masks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 40, 13, 2)).astype(np.float32)
    fv = rng.random((3, 40)) > 0.3
    jv = rng.random((3, 40, 13)) > 0.2
    p, f, j, t = P.resample(x, fv, jv, None, 64)
    assert p.shape == (3, 64, 13, 2) and f.shape == (3, 64) and j.shape == (3, 64, 13)
    assert t.shape == (3, 64)
    for n in range(3):  # batched equals one-by-one
        q = P.resample(x[n], fv[n], jv[n], None, 64)
        assert np.allclose(q[0], p[n]) and (q[2] == j[n]).all()
    with pytest.raises(ValueError, match="frame_valid"):
        P.resample(x, fv[:, :5], jv, None, 64)


def test_interpolate_missing_linear_and_edges():
    T = 10
    x = np.zeros((T, 2, 2), np.float32)
    x[:, 0, 0] = np.arange(T)
    x[:, 1, 1] = 5.0
    fv = np.ones(T, bool)
    fv[[0, 1, 4, 5, 9]] = False
    garbage = x.copy()
    garbage[~fv] = np.nan
    out = P.interpolate_missing(garbage, fv)
    assert np.isfinite(out).all()
    assert np.allclose(out[2:9, 0, 0], np.arange(2, 9))  # interior is linear
    assert np.allclose(out[:2, 0, 0], 2.0) and np.isclose(out[9, 0, 0], 8.0)  # edges held
    assert np.allclose(out[:, 1, 1], 5.0)
    # a joint never valid becomes 0; joint masks are honoured
    jv = np.ones((T, 2), bool)
    jv[:, 1] = False
    out = P.interpolate_missing(x, fv, jv)
    assert np.all(out[:, 1] == 0)
    # batched leading axis
    out_b = P.interpolate_missing(np.stack([garbage, garbage]), np.stack([fv, fv]))
    assert np.allclose(out_b[1], P.interpolate_missing(garbage, fv))


def test_normalize_unit_invariance_on_real_penn():
    pos, vis = _penn_clip(1)
    T = len(pos)
    fv = np.ones(T, bool)
    fv[5:15] = False
    pos_garbage = pos.copy()
    pos_garbage[5:15] = 1e6
    a, c, s = P.normalize(pos, fv, vis, PENN13)
    b, _c2, s2 = P.normalize(pos_garbage / 640.0 + 0.1, fv, vis, "penn13")
    assert np.allclose(a, b, atol=1e-4)
    assert np.allclose(s2 * 640.0, s, rtol=1e-4)
    valid = fv[:, None] & vis
    assert np.all(a[~valid] == 0)
    # the body has a size of a few units after normalisation
    assert 1.0 < np.abs(a[valid]).max() < 10.0
    back = P.denormalize(a, c, s)
    assert np.allclose(back[valid], pos[valid], atol=1e-2)


def test_normalize_scale_ignores_missing_joints_and_pushups():
    pos, vis = _penn_clip(1)
    fv = np.ones(len(pos), bool)
    _, _, s_all = P.normalize(pos, fv, np.ones_like(vis), PENN13)
    # drop the legs: the scale barely moves (it is a median over bones)
    vis2 = np.ones_like(vis)
    vis2[:, 9:] = False
    _, _, s_noleg = P.normalize(pos, fv, vis2, PENN13)
    assert abs(s_noleg / s_all - 1) < 0.35
    # every frame missing: finite output, scale 1
    n, _c, s = P.normalize(pos, np.zeros(len(pos), bool), vis, PENN13)
    assert np.all(n == 0) and s == 1.0


def test_normalize_batch_shapes():
    x = np.random.default_rng(2).normal(size=(4, 16, 13, 2)).astype(np.float32) * 50
    n, c, s = P.normalize(x, np.ones((4, 16), bool), None, PENN13)
    assert n.shape == x.shape and c.shape == (4, 2) and s.shape == (4,)


def test_akima_matches_scipy_inside_and_beats_linear_on_curves():
    from scipy.interpolate import Akima1DInterpolator

    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(4, 50, 3, 2)), axis=1).astype(np.float32)
    fv = rng.random((4, 50)) > 0.4
    fv[:, [0, 1, 2, -1, -2, -3]] = True
    out = P.interpolate_missing_akima(x, fv)
    assert np.isfinite(out).all() and np.array_equal(out[fv], x[fv])
    for n in range(4):
        idx = np.flatnonzero(fv[n])
        ref = Akima1DInterpolator(idx.astype(float), x[n, idx].astype(float), axis=0)
        tt = np.arange(idx[2], idx[-3] + 1)
        tt = tt[~fv[n, tt]]
        assert np.allclose(out[n, tt], ref(tt.astype(float)), atol=1e-4)
    # a parabola through a 15-frame gap: much closer than the chord
    t = np.arange(64.0)
    q = (0.01 * (t - 30) ** 2)[:, None, None] * np.ones((1, 2, 2))
    f = np.ones(64, bool)
    f[20:35] = False
    err_a = np.abs(P.interpolate_missing_akima(q, f) - q)[~f].mean()
    err_l = np.abs(P.interpolate_missing(q, f) - q)[~f].mean()
    assert err_a < 0.1 * err_l
    # edges held and single-sample tracks constant, exactly like the linear version
    f2 = np.zeros(64, bool)
    f2[[10, 40]] = True
    assert np.allclose(P.interpolate_missing_akima(q, f2), P.interpolate_missing(q, f2))
    f3 = np.zeros(64, bool)
    f3[5] = True
    assert np.allclose(P.interpolate_missing_akima(q, f3), q[5])


# --------------------------------------------------------------------------- prepare_windows
def _moving_windows(n=2, T=40):
    pos, vis = _penn_clip(3)
    pos, vis = pos[:T], vis[:T]
    return (np.repeat(pos[None], n, 0), np.ones((n, T), bool), np.repeat(vis[None], n, 0))


def test_kernel_gravity_comes_from_each_windows_grid_step():
    from finetec_live.inference.prepare import G_BODY, KERNEL_GRAVITY, window_gravity

    grid = np.stack([np.linspace(0, 2.5, 64), np.linspace(0, 63 / 30, 64)])  # 2.5 s, 1/30 s
    g = window_gravity(grid)
    np.testing.assert_allclose(g[:, 0], 0.0)
    np.testing.assert_allclose(g[0, 1], G_BODY * (2.5 / 63) ** 2)
    np.testing.assert_allclose(g[1], KERNEL_GRAVITY)  # the old constant: right at 30 fps only


def test_prepare_gives_the_kernel_per_window_gravity():
    from finetec_live.inference.prepare import G_BODY, KIN_CLIP, prepare_windows
    from finetec_live.kernels import lagrangian_kinematics

    pos, fv, jv = _moving_windows()
    T = pos.shape[1]
    ts = np.stack([np.arange(T) / 30.0, np.arange(T) / 15.0])  # the same motion, half speed
    b = prepare_windows(pos, fv, jv, ts, T=32, layout="penn13")
    # the same positions on the grid and the same accelerations per grid step ...
    np.testing.assert_allclose(b.x[0], b.x[1], atol=1e-6)
    np.testing.assert_array_equal(b.kin[0, ..., [0, 1, 3]], b.kin[1, ..., [0, 1, 3]])
    # ... but gravity per grid step^2 is 4x larger in the slower window's longer steps
    for n in range(2):
        dt = (b.timestamps[n, -1] - b.timestamps[n, 0]) / 31
        want = lagrangian_kinematics(b.x[n], b.mask[n] > 0, np.arange(32.0),
                                     PENN13.parents_array(), PENN13.masses_array(),
                                     gravity=(0.0, G_BODY * dt**2), half_window=3, max_span=6.0)
        tau = np.clip(np.where(want.tau_valid, want.tau, 0.0), -KIN_CLIP, KIN_CLIP)
        np.testing.assert_allclose(b.kin[n, ..., 2], tau, rtol=1e-5, atol=1e-7)
    assert not np.allclose(b.kin[0, ..., 2], b.kin[1, ..., 2])


def test_prepare_runs_only_the_kernels_the_model_uses(monkeypatch):
    import finetec_live.kernels as K
    from finetec_live.inference.prepare import prepare_windows
    from finetec_live.models import ModelConfig

    calls = {"kinematics": 0, "motion": 0}

    def counted(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapper

    for attr, name in (("lagrangian_kinematics", "kinematics"),
                       ("lagrangian_kinematics_batch", "kinematics"),
                       ("region_motion", "motion"), ("region_motion_batch", "motion")):
        monkeypatch.setattr(K, attr, counted(name, getattr(K, attr)))
    pos, fv, jv = _moving_windows()
    for physics, decomposition in ((False, True), (True, False), (True, True)):
        calls.update(kinematics=0, motion=0)
        cfg = ModelConfig(num_classes=3, physics=physics, decomposition=decomposition)
        b = prepare_windows(pos, fv, jv, None, T=32, layout="penn13", kernels=cfg.needs_kernels)
        assert (calls["kinematics"] > 0) == physics and (calls["motion"] > 0) == decomposition
        assert (b.kin != 0).any() == physics and (b.dynamic != 0).any() == decomposition
    assert ModelConfig(num_classes=3, physics=False, decomposition=False).needs_kernels is None


def test_prepare_groups_of_several_lengths_is_each_length_alone():
    """One pass over windows of 23, 40 and 31 frames (irregular times, gaps, a missing last
    frame, a NaN) gives each window the numbers it gets prepared alone."""
    from finetec_live.inference.prepare import prepare_groups, prepare_windows

    rng = np.random.default_rng(3)
    pos, vis = _penn_clip(3)
    groups = []
    for T, n in ((23, 2), (40, 3), (31, 1)):
        p = np.repeat(pos[None, :T], n, 0) + rng.normal(0, 2, (n, T, 13, 2)).astype(np.float32)
        jv = np.repeat(vis[None, :T], n, 0) & (rng.random((n, T, 13)) > 0.2)
        fv = rng.random((n, T)) > 0.15
        fv[0, -1] = False  # the last frame missing: the copies repeat a missing frame
        p[-1, T // 2, 4] = np.nan
        ts = np.cumsum(rng.uniform(0.02, 0.05, (n, T)), axis=1)
        groups.append((p, fv, jv, ts))
    together = prepare_groups(groups, T=32, layout="penn13", interp="akima")
    alone = [prepare_windows(*g, T=32, layout="penn13", interp="akima") for g in groups]
    for name in ("x", "mask", "interp", "dynamic", "kin", "frame_valid", "timestamps",
                 "centre", "scale", "motion"):
        want = np.concatenate([getattr(b, name) for b in alone])
        np.testing.assert_array_equal(getattr(together, name), want, err_msg=name)

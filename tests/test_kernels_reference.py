"""The Numba kernels agree with their NumPy references, on random and real windows."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live import kernels
from finetec_live.kernels import reference
from finetec_live.skeleton.layouts import MEDIAPIPE33, PENN13

LAYOUTS = [PENN13, MEDIAPIPE33]


def random_window(rng, n_t, layout, missing):
    """Smooth random motion plus noise, a random mask and uneven timestamps."""
    n_v = layout.num_joints
    t = np.linspace(0, 1, n_t)[:, None, None]
    base = rng.uniform(0, 500, (1, n_v, 2))
    pos = base + rng.normal(0, 40, (1, n_v, 2)) * np.sin(rng.uniform(1, 8) * t
                                                          + rng.uniform(0, 6, (1, n_v, 1)))
    pos += rng.normal(0, 2, pos.shape)
    valid = rng.random((n_t, n_v)) >= missing
    if n_t > 4 and rng.random() < 0.3:  # a burst of missing frames
        start = rng.integers(0, n_t - 2)
        valid[start:start + rng.integers(1, n_t // 2 + 2)] = False
    ts = rng.uniform(0, 100) + np.cumsum(rng.uniform(0.3, 2.0, n_t)) / 30.0
    return pos.astype(np.float32), valid, ts


def assert_same_lagrangian(a, b):
    np.testing.assert_array_equal(a.acc_valid, b.acc_valid)
    np.testing.assert_array_equal(a.tau_valid, b.tau_valid)
    for x, y in ((a.acc, b.acc), (a.tau, b.tau)):
        assert x.dtype == y.dtype == np.float32
        assert np.isfinite(x).all()
        scale = max(1.0, float(np.abs(y).max(initial=0)))
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5 * scale)
    assert (a.acc[~a.acc_valid] == 0).all() and (a.tau[~a.tau_valid] == 0).all()


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_lagrangian_matches_reference_on_random_windows(layout):
    rng = np.random.default_rng(10)
    parents, masses = layout.parents_array(), layout.masses_array() * 70
    sizes = [1, 2, 3, 4, 5, 8, 13, 32, 64, 128]
    for i, n_t in enumerate(sizes * 2):
        pos, valid, ts = random_window(rng, n_t, layout, missing=rng.choice([0, 0.2, 0.5, 0.8]))
        half = int(rng.choice([1, 2, 3, 4])) if i >= len(sizes) else 3
        span = [kernels.DEFAULT_MAX_SPAN, None, float(rng.uniform(0.05, 0.3))][i % 3]
        if half == 1 and span is None:
            # a 3-sample quadratic extrapolated deep into a long burst is so ill-conditioned
            # (bone lengths go negative) that the two implementations agree only to ~1e-3
            span = 0.3
        kw = dict(masses=masses, gravity=(0.0, 980.0), half_window=half, max_span=span)
        got = kernels.lagrangian_kinematics(pos, valid, ts, parents, **kw)
        want = reference.lagrangian_kinematics(pos, valid, ts, parents, **kw)
        assert_same_lagrangian(got, want)


def test_lagrangian_awkward_windows_match_reference():
    rng = np.random.default_rng(11)
    parents = PENN13.parents_array()
    pos, valid, ts = random_window(rng, 16, PENN13, 0.0)
    cases = {
        "all missing": np.zeros_like(valid),
        "one valid frame": np.broadcast_to((np.arange(16) == 5)[:, None], (16, 13)),
        "root never seen": valid & (np.arange(13) != 0),
        "three frames only": valid & (np.arange(16) % 5 == 0)[:, None],
    }
    for name, mask in cases.items():
        got = kernels.lagrangian_kinematics(pos, mask, ts, parents)
        want = reference.lagrangian_kinematics(pos, mask, ts, parents)
        assert_same_lagrangian(got, want)
        if name != "three frames only":
            assert not got.acc_valid.any(), name
    # non-finite coordinates at valid joints count as missing
    bad = pos.copy()
    bad[3, 5] = np.nan
    bad[7, 0, 1] = np.inf
    got = kernels.lagrangian_kinematics(bad, valid, ts, parents)
    assert_same_lagrangian(got, reference.lagrangian_kinematics(bad, valid, ts, parents))
    assert got.acc_valid.all()
    clean = valid.copy()
    clean[3, 5] = clean[7, 0] = False
    assert_same_lagrangian(got, kernels.lagrangian_kinematics(pos, clean, ts, parents))


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_lagrangian_batch_equals_single_windows(layout):
    rng = np.random.default_rng(12)
    n, n_t = 6, 24
    windows = [random_window(rng, n_t, layout, 0.3) for _ in range(n)]
    pos, valid, ts = (np.stack(x) for x in zip(*windows, strict=True))
    parents = layout.parents_array()
    batch = kernels.lagrangian_kinematics_batch(pos, valid, ts, parents)
    ref = reference.lagrangian_kinematics_batch(pos, valid, ts, parents)
    assert batch.acc.shape == (n, n_t, layout.num_joints, 2)
    assert_same_lagrangian(batch, ref)
    for i in range(n):
        one = kernels.lagrangian_kinematics(pos[i], valid[i], ts[i], parents)
        np.testing.assert_array_equal(batch.acc[i], one.acc)
        np.testing.assert_array_equal(batch.tau[i], one.tau)
        np.testing.assert_array_equal(batch.acc_valid[i], one.acc_valid)
    empty = kernels.lagrangian_kinematics_batch(pos[:0], valid[:0], ts[:0], parents)
    assert empty.acc.shape == (0, n_t, layout.num_joints, 2)


def test_per_window_gravity_in_the_batch_equals_single_windows():
    rng = np.random.default_rng(13)
    n, n_t, layout = 4, 20, PENN13
    windows = [random_window(rng, n_t, layout, 0.2) for _ in range(n)]
    pos, valid, ts = (np.stack(x) for x in zip(*windows, strict=True))
    parents = layout.parents_array()
    gravity = np.stack([np.zeros(n), np.array([0.0, 1.0, 9.81, 50.0])], axis=1)  # (N, 2)
    batch = kernels.lagrangian_kinematics_batch(pos, valid, ts, parents, gravity=gravity)
    ref = reference.lagrangian_kinematics_batch(pos, valid, ts, parents, gravity=gravity)
    assert_same_lagrangian(batch, ref)
    for i in range(n):
        one = kernels.lagrangian_kinematics(pos[i], valid[i], ts[i], parents,
                                            gravity=tuple(gravity[i]))
        np.testing.assert_array_equal(batch.tau[i], one.tau)
    # each window got its own gravity: it changes the forces, not the accelerations
    flat = kernels.lagrangian_kinematics_batch(pos, valid, ts, parents, gravity=(0.0, 0.0))
    np.testing.assert_array_equal(flat.acc, batch.acc)
    np.testing.assert_array_equal(flat.tau[0], batch.tau[0])
    assert all(not np.allclose(flat.tau[i], batch.tau[i]) for i in (1, 2, 3))


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_region_motion_matches_reference(layout):
    rng = np.random.default_rng(13)
    regions = layout.regions_array()
    for n_t in [1, 2, 3, 7, 32, 64, 128] * 3:
        pos, valid, _ = random_window(rng, n_t, layout, rng.choice([0, 0.3, 0.7, 0.95]))
        pos = pos * rng.uniform(0.01, 10)
        threshold = float(rng.uniform(0.05, 1.0))
        s1, d1 = kernels.region_motion(pos, valid, regions, threshold=threshold)
        s2, d2 = reference.region_motion(pos, valid, regions, threshold=threshold)
        assert s1.dtype == np.float32 and d1.dtype == np.bool_ and s1.shape == (5,)
        np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(d1, d2)
    # more regions than 5, all joints missing, one valid frame
    extra = np.arange(layout.num_joints) % 7
    pos, valid, _ = random_window(rng, 20, layout, 0.1)
    for mask in (valid, np.zeros_like(valid), valid & (np.arange(20) == 4)[:, None]):
        s1, d1 = kernels.region_motion(pos, mask, extra)
        s2, d2 = reference.region_motion(pos, mask, extra)
        assert s1.shape == (7,)
        np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(d1, d2)
    batch = [random_window(rng, 16, layout, 0.2) for _ in range(5)]
    pos, valid = np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])
    s1, d1 = kernels.region_motion_batch(pos, valid, regions)
    s2, d2 = reference.region_motion_batch(pos, valid, regions)
    assert s1.shape == d1.shape == (5, 5)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(d1, d2)


def test_kernels_match_reference_on_real_penn_windows(penn):
    """Real Penn Action windows, with their real invisible and outside-the-image joints."""
    clips = [c for c in penn if (~c.joint_valid).any()][:: 40][:12]
    assert len(clips) == 12
    parents, regions = PENN13.parents_array(), PENN13.regions_array()
    masses = PENN13.masses_array() * 70
    supported = []
    for clip in clips:
        n_t = min(64, clip.num_frames)
        pos, valid = clip.positions[:n_t], clip.joint_valid[:n_t]
        ts = np.arange(n_t) / clip.fps
        got = kernels.lagrangian_kinematics(pos, valid, ts, parents, masses, (0.0, 980.0))
        want = reference.lagrangian_kinematics(pos, valid, ts, parents, masses, (0.0, 980.0))
        assert_same_lagrangian(got, want)
        supported.append(got.acc_valid.mean())
        if valid[:, 0].sum() >= 3:  # the root (head) is fitted wherever it is seen
            assert got.acc_valid[valid[:, 0], 0].all()
        s1, d1 = kernels.region_motion(pos, valid, regions)
        s2, d2 = reference.region_motion(pos, valid, regions)
        np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(d1, d2)
        assert d1.any()  # every real clip of these sports has a moving region
    # Penn's tree is rooted at the head: clips whose head is never visible (bench press)
    # get nothing, the others nearly everything
    assert np.mean(supported) > 0.6

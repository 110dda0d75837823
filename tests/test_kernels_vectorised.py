"""The vectorised NumPy twins agree with the Numba kernels (and so with the references)."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels_reference import assert_same_lagrangian, random_window

from finetec_live import kernels
from finetec_live.kernels import reference, vectorised
from finetec_live.skeleton.layouts import MEDIAPIPE33, PENN13

LAYOUTS = [PENN13, MEDIAPIPE33]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_kinematics_twin_matches_numba_on_random_windows(layout):
    rng = np.random.default_rng(20)
    parents, masses = layout.parents_array(), layout.masses_array() * 70
    for i, n_t in enumerate([1, 2, 3, 4, 5, 8, 13, 32, 64, 128] * 2):
        pos, valid, ts = random_window(rng, n_t, layout, missing=rng.choice([0, 0.2, 0.5, 0.8]))
        half = int(rng.choice([2, 3, 4])) if i >= 10 else 3
        span = [kernels.DEFAULT_MAX_SPAN, None, float(rng.uniform(0.05, 0.3))][i % 3]
        kw = dict(masses=masses, gravity=(0.0, 980.0), half_window=half, max_span=span)
        got = vectorised.lagrangian_kinematics(pos, valid, ts, parents, **kw)
        assert_same_lagrangian(got, kernels.lagrangian_kinematics(pos, valid, ts, parents, **kw))


def test_kinematics_twin_on_awkward_windows_and_in_batches():
    rng = np.random.default_rng(21)
    parents = PENN13.parents_array()
    pos, valid, ts = random_window(rng, 24, PENN13, 0.0)
    for mask in (np.zeros_like(valid), valid & (np.arange(24) == 5)[:, None],
                 valid & (np.arange(13) != 0)[None]):  # nothing, one frame, no root
        got = vectorised.lagrangian_kinematics(pos, mask, ts, parents)
        assert_same_lagrangian(got, reference.lagrangian_kinematics(pos, mask, ts, parents))
    bad = pos.copy()
    bad[3, 5] = np.nan
    bad[7, 0] = np.inf
    assert_same_lagrangian(vectorised.lagrangian_kinematics(bad, valid, ts, parents),
                           kernels.lagrangian_kinematics(bad, valid, ts, parents))
    windows = [random_window(rng, 24, PENN13, 0.3) for _ in range(4)]
    p, v, t = (np.stack(x) for x in zip(*windows, strict=True))
    g = np.stack([np.zeros(4), np.arange(4.0)], 1)
    assert_same_lagrangian(vectorised.lagrangian_kinematics_batch(p, v, t, parents, gravity=g),
                           kernels.lagrangian_kinematics_batch(p, v, t, parents, gravity=g))


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.name)
def test_region_motion_twin_matches_numba(layout):
    rng = np.random.default_rng(22)
    regions = layout.regions_array()
    for n_t in (1, 2, 3, 16, 64):
        for missing in (0.0, 0.3, 0.9, 1.0):
            pos, valid, _ = random_window(rng, n_t, layout, missing)
            s1, d1 = vectorised.region_motion(pos, valid, regions)
            s2, d2 = kernels.region_motion(pos, valid, regions)
            np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
            np.testing.assert_array_equal(d1, d2)
    windows = [random_window(rng, 32, layout, 0.2) for _ in range(5)]
    p, v, _ = (np.stack(x) for x in zip(*windows, strict=True))
    p[0, 3, 2] = np.nan
    s1, d1 = vectorised.region_motion_batch(p, v, regions)
    s2, d2 = kernels.region_motion_batch(p, v, regions)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(d1, d2)

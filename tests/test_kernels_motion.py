"""Region motion: which regions are dynamic, on synthetic and real windows."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live import kernels
from finetec_live.kernels import reference
from finetec_live.skeleton.layouts import MEDIAPIPE33, PENN13

# Penn-13 standing pose in pixels (x right, y down)
PENN_POSE = np.array([
    [200, 60], [170, 100], [230, 100], [160, 150], [240, 150], [155, 200], [245, 200],
    [180, 200], [220, 200], [178, 270], [222, 270], [176, 340], [224, 340]], dtype=np.float64)
REGIONS = PENN13.regions_array()


def window(n_t=64, arms=(True, True), jitter=0.5, seed=0):
    """Still body with optionally swinging arms (elbow and wrist about the shoulder)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_t) / 30.0
    pos = np.repeat(PENN_POSE[None], n_t, axis=0)
    for moving, shoulder, elbow, wrist, sign in ((arms[0], 1, 3, 5, -1), (arms[1], 2, 4, 6, 1)):
        if moving:
            ang = np.pi / 2 + sign * 1.2 * (1 + np.sin(2 * np.pi * t))  # arm raised and lowered
            d = np.stack([np.cos(ang), np.sin(ang)], axis=1)
            pos[:, elbow] = pos[:, shoulder] + 50 * d
            pos[:, wrist] = pos[:, elbow] + 50 * d
    pos += rng.normal(0, jitter, pos.shape)
    return pos.astype(np.float32), np.ones((n_t, 13), bool)


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
def test_arms_only_motion_makes_the_arms_dynamic(impl):
    pos, valid = window()
    scores, dynamic = impl.region_motion(pos, valid, REGIONS)
    assert dynamic.tolist() == [False, True, True, False, False]
    assert scores[1] > 50 * max(scores[0], scores[3], scores[4])
    _, left_only = impl.region_motion(*window(arms=(True, False)), REGIONS)
    assert left_only.tolist() == [False, True, False, False, False]


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
def test_still_window_has_nothing_dynamic(impl):
    pos, valid = window(arms=(False, False), jitter=0.0)
    scores, dynamic = impl.region_motion(pos, valid, REGIONS)
    assert (scores == 0).all() and not dynamic.any()
    # keypoint jitter of 1 px on a 280 px person is not motion
    pos, valid = window(arms=(False, False), jitter=1.0)
    scores, dynamic = impl.region_motion(pos, valid, REGIONS)
    assert not dynamic.any() and scores.max() < kernels.DEFAULT_FLOOR


def test_missing_joints_do_not_fake_motion():
    rng = np.random.default_rng(1)
    pos, valid = window(arms=(False, False), jitter=0.3)
    valid = rng.random(valid.shape) > 0.4
    filled = np.where(valid[..., None], pos, 0.0).astype(np.float32)  # zero-filled gaps
    filled[~valid] = np.where(rng.random(((~valid).sum(), 1)) < 0.5, 1.0, np.nan)
    scores, dynamic = kernels.region_motion(filled, valid, REGIONS)
    assert not dynamic.any() and scores.max() < kernels.DEFAULT_FLOOR
    # a region with no joint seen twice scores 0 and is static
    valid[:, [9, 11]] = False
    valid[1:, 3] = valid[1:, 5] = False
    scores, dynamic = kernels.region_motion(window()[0], valid, REGIONS)
    assert scores[1] == 0 and scores[3] == 0 and not dynamic[[1, 3]].any()
    assert dynamic[2]


def test_scores_do_not_depend_on_units_or_position():
    pos, valid = window()
    s1, d1 = kernels.region_motion(pos, valid, REGIONS)
    s2, d2 = kernels.region_motion(pos * 100 + 1e4, valid, REGIONS)
    s3, d3 = kernels.region_motion(pos / 300, valid, REGIONS)
    np.testing.assert_allclose(s2, s1, rtol=1e-4)
    np.testing.assert_allclose(s3, s1, rtol=1e-4)
    assert (d1 == d2).all() and (d1 == d3).all()
    s4, _ = kernels.region_motion(pos.astype(np.float64), valid, REGIONS)
    np.testing.assert_array_equal(s4, s1)


def test_body_size_survives_a_collapsed_torso():
    """Front-view push-up: shoulders and hips on one image point; arms still move."""
    pos, valid = window()
    pos[:, [1, 7]] = pos[:, [1]]
    pos[:, [2, 8]] = pos[:, [2]]
    scores, dynamic = kernels.region_motion(pos, valid, REGIONS)
    assert np.isfinite(scores).all() and scores.max() < 10
    assert dynamic.tolist() == [False, True, True, False, False]


def test_more_regions_and_three_coordinates():
    rng = np.random.default_rng(2)
    pos = rng.normal(size=(20, 33, 3)).astype(np.float32)
    pos[:, MEDIAPIPE33.regions_array() != 2] *= 0.01  # only the right arm moves
    scores, dynamic = kernels.region_motion(pos, np.ones((20, 33), bool),
                                            MEDIAPIPE33.regions_array())
    assert dynamic.tolist() == [False, False, True, False, False]
    eight = np.arange(33) % 8
    scores, dynamic = kernels.region_motion(pos, np.ones((20, 33), bool), eight)
    assert scores.shape == dynamic.shape == (8,)


def test_real_penn_classes_move_the_expected_regions(penn):
    """Default rule on the first 64 frames of every clip of three Penn Action classes."""
    expected = {  # class: (regions mostly dynamic, regions mostly static)
        "bench_press": ([1, 2], [0, 3, 4]),
        "golf_swing": ([1, 2], [3, 4]),
        "pullup": ([0, 3, 4], [1, 2]),
    }
    for name, (moving, still) in expected.items():
        clips = [c for c in penn if c.label_name == name]
        assert len(clips) > 100
        pos = [c.positions[:64] for c in clips]
        dyn = np.array([kernels.region_motion(p, c.joint_valid[:64], REGIONS)[1]
                        for p, c in zip(pos, clips, strict=True)])
        rate = dyn.mean(axis=0)
        assert (rate[moving] > 0.75).all(), (name, rate)
        assert (rate[still] < 0.1).all(), (name, rate)

"""The estimator-like corruptions: what each one does, that none changes its input, and the
Sampler's joint-convention reveal and tempo change."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live.data import load_penn_action
from finetec_live.learning import estimator as E
from finetec_live.learning.windows import Sampler
from finetec_live.skeleton.layouts import get_layout

LAY = get_layout("penn13")
J = {n: i for i, n in enumerate(LAY.joints)}


def _window(T=30, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, 13, 2)).astype(np.float32) * 50 + 200
    pos = base + np.cumsum(rng.normal(size=(T, 13, 2)), 0).astype(np.float32)
    return pos, np.ones((T, 13), bool)


def test_limb_groups_are_root_first():
    g = E.limb_groups(LAY)
    assert g["left_arm"] == [J["left_elbow"], J["left_wrist"]]
    assert g["right_leg"] == [J["right_knee"], J["right_ankle"]]


@pytest.mark.parametrize("fn", [
    lambda p, v, r: E.swap_limbs(p, v, LAY, r),
    lambda p, v, r: E.lag(p, v, r, 0.5),
    lambda p, v, r: E.foreshorten(p, v, LAY, r, 0.5),
    lambda p, v, r: E.out_of_frame(p, v, LAY, r, "below"),
    lambda p, v, r: E.placement(p, v, LAY, r, 1.3, 0.8),
    lambda p, v, r: E.yaw(p, v, r, 0.5),
    lambda p, v, r: E.estimator_errors(p, v, LAY, r, E.EstimatorNoise(
        swap_prob=1, lag_prob=1, foreshorten_prob=1, legs_out_prob=1)),
    lambda p, v, r: E.estimator_geometry(p, v, LAY, r, E.EstimatorNoise(
        placement_prob=1, yaw_prob=1)),
])
def test_no_corruption_changes_its_input(fn):
    pos, jv = _window()
    p0, v0 = pos.copy(), jv.copy()
    out, ok = fn(pos, jv, np.random.default_rng(1))
    np.testing.assert_array_equal(pos, p0)
    np.testing.assert_array_equal(jv, v0)
    assert out.shape == pos.shape and ok.shape == jv.shape and out.dtype == np.float32


def test_swap_exchanges_left_and_right_over_one_run():
    pos, jv = _window()
    out, _ = E.swap_limbs(pos, jv, LAY, np.random.default_rng(3))
    changed = ~np.isclose(out, pos).all((1, 2))
    assert 2 <= changed.sum() <= 12
    run = np.flatnonzero(changed)
    assert (np.diff(run) == 1).all()  # one contiguous run
    arms = (J["left_elbow"], J["right_elbow"]) if not np.isclose(
        out[run, J["left_elbow"]], pos[run, J["left_elbow"]]).all() else (
        J["left_knee"], J["right_knee"])
    np.testing.assert_allclose(out[run, arms[0]], pos[run, arms[1]])
    np.testing.assert_allclose(out[run, arms[1]], pos[run, arms[0]])


def test_lag_trails_a_step_and_alpha_one_is_identity():
    pos = np.zeros((10, 13, 2), np.float32)
    pos[5:] = 10.0  # a step at frame 5
    jv = np.ones((10, 13), bool)
    same, _ = E.lag(pos, jv, None, 1.0)
    np.testing.assert_allclose(same, pos)
    lagged, _ = E.lag(pos, jv, None, 0.5)
    np.testing.assert_allclose(lagged[5, 0], [5.0, 5.0])  # halfway at the step
    assert (np.diff(lagged[:, 0, 0]) >= 0).all() and lagged[-1, 0, 0] < 10.0


def test_foreshortening_keeps_the_limbs_root_and_direction():
    pos, jv = _window()
    out, _ = E.foreshorten(pos, jv, LAY, np.random.default_rng(5), 0.5)
    moved = np.flatnonzero(~np.isclose(out, pos).all(-1).all(0))
    limb = [int(v) for v in moved]
    assert limb in list(E.limb_groups(LAY).values())
    root = LAY.parents[limb[0]]
    t = np.flatnonzero(~np.isclose(out[:, limb[0]], pos[:, limb[0]]).all(-1))
    np.testing.assert_allclose(out[t, limb[0]] - pos[t, root],
                               0.5 * (pos[t, limb[0]] - pos[t, root]), rtol=1e-4, atol=1e-3)


def test_out_of_frame_masks_legs_feet_or_everything_below_a_line():
    pos, jv = _window()
    rng = np.random.default_rng(0)
    _, legs = E.out_of_frame(pos, jv, LAY, rng, "legs")
    assert not legs[:, [J["left_knee"], J["right_ankle"]]].any() and legs[:, J["head"]].all()
    _, feet = E.out_of_frame(pos, jv, LAY, rng, "feet")
    assert not feet[:, J["left_ankle"]].any() and feet[:, J["left_knee"]].all()
    for seed in range(5):
        _, below = E.out_of_frame(pos, jv, LAY, np.random.default_rng(seed), "below")
        ys_kept, ys_gone = pos[..., 1][below], pos[..., 1][~below]
        assert ys_gone.size == 0 or ys_gone.min() > ys_kept.max()
        assert ys_gone.size == 0 or ys_gone.min() >= np.median(pos[..., 1])
        assert ys_kept.size >= pos[..., 1].size // 2


def test_placement_spreads_hips_about_their_midpoint_and_moves_the_head():
    pos, jv = _window()
    out, _ = E.placement(pos, jv, LAY, None, 1.5, 1.2)
    mid = (pos[:, J["left_hip"]] + pos[:, J["right_hip"]]) / 2
    np.testing.assert_allclose((out[:, J["left_hip"]] + out[:, J["right_hip"]]) / 2, mid,
                               rtol=1e-5)
    np.testing.assert_allclose(out[:, J["left_hip"]] - mid, 1.5 * (pos[:, J["left_hip"]] - mid),
                               rtol=1e-4, atol=1e-3)
    sh = (pos[:, J["left_shoulder"]] + pos[:, J["right_shoulder"]]) / 2
    np.testing.assert_allclose(out[:, J["head"]] - sh, 1.2 * (pos[:, J["head"]] - sh),
                               rtol=1e-4, atol=1e-3)


def test_yaw_compresses_x_about_the_centre_and_keeps_y():
    pos, jv = _window()
    out, _ = E.yaw(pos, jv, None, 0.5)
    np.testing.assert_allclose(out[..., 1], pos[..., 1])
    np.testing.assert_allclose(out[..., 0].mean(), pos[..., 0].mean(), rtol=1e-5)
    assert out[..., 0].std() == pytest.approx(0.5 * pos[..., 0].std(), rel=1e-4)


def test_sampler_reveals_hidden_joints_and_changes_tempo():
    clips = [c for c in load_penn_action().train() if c.label_name == "squat"][:4]
    hidden = [np.ones_like(c.joint_valid) & ~c.joint_valid for c in clips]
    assert any(h.any() for h in hidden)
    common = dict(crop_prob=0.0, crop_seconds=(1.2, 3.5), mask_prob=0.0, native_prob=0.0)
    shown = Sampler(clips, "penn13", 32, np.random.default_rng(0), hidden=hidden,
                    reveal_prob=1.0, **common)
    masked = Sampler(clips, "penn13", 32, np.random.default_rng(0), hidden=hidden,
                     reveal_prob=0.0, **common)
    a, b = shown.batch(np.arange(4)), masked.batch(np.arange(4))
    assert a.joint_valid.sum() > b.joint_valid.sum()
    fast = Sampler(clips, "penn13", 32, np.random.default_rng(0), tempo_prob=1.0,
                   tempo=(2.0, 2.0), **common).batch(np.arange(4))
    np.testing.assert_allclose(fast.timestamps[:, -1], b.timestamps[:, -1] / 2, rtol=1e-5)


def test_transplanted_legs_are_scaled_turned_and_anchored_at_the_shoulders():
    T = 6
    donor = np.zeros((T, 13, 2), np.float32)
    donor[:, J["head"]] = (0.0, -1.0)
    donor[:, J["left_shoulder"]], donor[:, J["right_shoulder"]] = (-1.0, 0.0), (1.0, 0.0)
    donor[:, J["left_elbow"]], donor[:, J["right_elbow"]] = (-1.0, 1.0), (1.0, 1.0)
    donor[:, J["left_hip"]], donor[:, J["right_hip"]] = (-0.5, 3.0), (0.5, 3.0)
    donor[:, J["left_ankle"]] = (-0.5, 7.0)
    djv = np.ones((T, 13), bool)
    # the recipient: twice as big, lying (head to the left of the shoulders), no legs
    pos = np.zeros((T, 13, 2), np.float32)
    pos[:, J["head"]] = (8.0, 10.0)
    pos[:, J["left_shoulder"]], pos[:, J["right_shoulder"]] = (10.0, 8.0), (10.0, 12.0)
    pos[:, J["left_elbow"]], pos[:, J["right_elbow"]] = (12.0, 8.0), (12.0, 12.0)
    jv = np.zeros((T, 13), bool)
    jv[:, :7] = True
    out, ok = E.transplant_lower_body(pos, jv, donor, djv, LAY)
    np.testing.assert_array_equal(out[:, :7], pos[:, :7])  # what was there stays
    assert ok[:, E.lower_body(LAY)].all()
    # donor hip offset (-0.5, 3) from its shoulders, x2, turned by -90 degrees
    np.testing.assert_allclose(out[0, J["left_hip"]], (10.0 + 6.0, 10.0 + 1.0), atol=1e-4)
    np.testing.assert_allclose(out[0, J["left_ankle"]], (10.0 + 14.0, 10.0 + 1.0), atol=1e-4)
    jv[:, J["right_elbow"]] = jv[:, J["left_elbow"]] = False  # nothing to scale by
    out, ok = E.transplant_lower_body(pos, jv, donor, djv, LAY)
    assert not ok[:, E.lower_body(LAY)].any()

"""The normalisation kernel against its NumPy twin (``preprocess.normalize``), on random,
hostile and real windows, and what a normalisation must do: no unit, no place, no size."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live.inference.preprocess import body_measures, normalize
from finetec_live.kernels.normalisation import normalise_batch
from finetec_live.skeleton.layouts import get_layout

LAY = get_layout("penn13")


def _both(x, fv, jv, parallel=True, lay=LAY):
    return (normalize(x, fv, jv, lay),
            normalise_batch(x, fv, jv, *body_measures(lay), parallel=parallel))


def _assert_same(want, got):
    """Bit for bit: the kernel is compiled without fast-math's reassociation."""
    for w, g in zip(want, got, strict=True):
        assert g.dtype == np.float32 and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_matches_the_numpy_twin(keep, parallel):
    rng = np.random.default_rng(int(keep * 100))
    N, T, V = 40, 37, LAY.num_joints
    x = (rng.normal(size=(N, T, V, 2)).cumsum(1) * rng.uniform(0.01, 300, (N, 1, 1, 1))
         + rng.uniform(-500, 500, (N, 1, 1, 2))).astype(np.float32)
    fv = rng.random((N, T)) < max(keep, 0.5)
    jv = rng.random((N, T, V)) < keep
    torso = LAY.regions_array() == 0
    jv[0] = False  # nothing usable: centre 0, scale 1
    jv[1][:, torso] = False  # no torso: centred on every usable joint
    jv[2] = False
    jv[2, 5, 3] = True  # one joint in one frame: no bone, no spread
    x[3, 4, 2, 1] = np.nan  # not finite: not usable
    x[4, :, 6] = np.inf
    x[5] = x[5, :1]  # a still body: bones but no spread needed
    fv[6] = False  # no valid frame
    _assert_same(*_both(x, fv, jv, parallel))


@pytest.mark.parametrize("layout", ["mediapipe33", "coco17", "jhmdb15"])
def test_kernel_matches_the_twin_on_other_layouts(layout):
    lay = get_layout(layout)
    rng = np.random.default_rng(len(layout))
    x = (rng.normal(size=(12, 20, lay.num_joints, 2)).cumsum(1) * 40).astype(np.float32)
    jv = rng.random((12, 20, lay.num_joints)) < 0.7
    _assert_same(*_both(x, np.ones((12, 20), bool), jv, lay=lay))


def test_an_empty_batch_and_float64_positions():
    empty = np.zeros((0, 16, LAY.num_joints, 2), np.float32)
    _assert_same(*_both(empty, np.zeros((0, 16), bool), np.zeros((0, 16, LAY.num_joints), bool)))
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, 16, LAY.num_joints, 2)) * 1e3  # float64, rounded as the twin does
    x[0, 0, 0, 0] = 1e300  # beyond float32: infinite, not usable, in both
    with np.errstate(over="ignore"):
        _assert_same(*_both(x, np.ones((3, 16), bool), np.ones((3, 16, LAY.num_joints), bool)))


def test_kernel_matches_the_twin_on_real_windows(data_root):
    from finetec_live.serve.simulate import penn_windows

    windows, _ = penn_windows(48, root=data_root, seed=3)
    T = min(w.num_frames for w in windows)
    x = np.stack([w.positions[:T] for w in windows])
    fv = np.stack([w.frame_valid[:T] for w in windows])
    jv = np.stack([w.joint_valid[:T] for w in windows])
    _assert_same(*_both(x, fv, jv))


def test_no_unit_no_place_no_size():
    """Moved, scaled or given in other units, a window normalises to the same numbers;
    missing entries are 0 and the centre of a torso is at 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 30, LAY.num_joints, 2)).astype(np.float32)
    fv = np.ones((1, 30), bool)
    jv = rng.random((1, 30, LAY.num_joints)) < 0.8
    a, ca, sa = normalise_batch(x, fv, jv, *body_measures(LAY))
    b, cb, sb = normalise_batch(x * 250.0 + np.float32(40.0), fv, jv, *body_measures(LAY))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(sb, 250.0 * sa, rtol=1e-5)
    np.testing.assert_allclose(cb, 250.0 * ca + 40.0, rtol=1e-5, atol=1e-3)
    assert np.all(a[~jv] == 0)
    torso = (LAY.regions_array() == 0)[None, None] & jv
    np.testing.assert_allclose(a[torso].mean(0), 0.0, atol=1e-5)


@pytest.mark.parametrize("change, match", [
    (lambda a: {**a, "positions": a["positions"][0]}, "positions must be"),
    (lambda a: {**a, "positions": a["positions"].astype(np.int32)}, "positions must be"),
    (lambda a: {**a, "joint_valid": a["joint_valid"].astype(np.uint8)}, "joint_valid"),
    (lambda a: {**a, "frame_valid": a["frame_valid"][:, 1:]}, "frame_valid"),
    (lambda a: {**a, "torso": a["torso"][1:]}, "torso"),
    (lambda a: {**a, "child": a["child"][1:]}, "alike"),
    (lambda a: {**a, "child": a["child"] + 20}, "bone ends"),
    (lambda a: {**a, "reference": -a["reference"]}, "positive"),
])
def test_wrapper_refuses_what_the_kernel_cannot_take(change, match):
    torso, child, parent, ref = body_measures(LAY)
    args = {"positions": np.zeros((2, 8, LAY.num_joints, 2), np.float32),
            "frame_valid": np.ones((2, 8), bool),
            "joint_valid": np.ones((2, 8, LAY.num_joints), bool), "torso": torso,
            "child": child, "parent": parent, "reference": ref}
    with pytest.raises(ValueError, match=match):
        normalise_batch(**change(args))

"""The gap-filling kernel against its NumPy twins (linear and Akima), and what any fill
must do: keep observed samples, hold the edges, draw straight motion straight."""

from __future__ import annotations

import numpy as np
import pytest

from finetec_live.inference.preprocess import interpolate_missing, interpolate_missing_akima
from finetec_live.kernels.interpolation import fill_gaps_batch


def _twins(x, valid):
    fv = np.ones(valid.shape[:2], bool)
    return interpolate_missing(x, fv, valid), interpolate_missing_akima(x, fv, valid)


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.95])
@pytest.mark.parametrize("parallel", [False, True])
def test_kernel_matches_the_numpy_twins(keep, parallel):
    rng = np.random.default_rng(int(keep * 100))
    x = rng.normal(size=(24, 40, 13, 2)).cumsum(1).astype(np.float32)
    valid = rng.random((24, 40, 13)) < keep
    valid[0, :, 0] = False  # never observed
    valid[1, :, 1] = False
    valid[1, 7, 1] = True  # one sample
    valid[2, :, 2] = False
    valid[2, [3, 30], 2] = True  # two samples far apart
    lin, aki = fill_gaps_batch(x, valid, parallel=parallel)
    want_lin, want_aki = _twins(x, valid)
    scale = np.abs(x).max()
    np.testing.assert_allclose(lin, want_lin, atol=1e-6 * scale)
    np.testing.assert_allclose(aki, want_aki, atol=1e-6 * scale)


def test_kernel_matches_the_twins_on_real_windows(data_root):
    from finetec_live.serve.simulate import penn_windows

    windows, _ = penn_windows(32, root=data_root, seed=5)
    T = min(w.num_frames for w in windows)
    x = np.stack([w.positions[:T] for w in windows])
    valid = np.stack([w.joint_valid[:T] for w in windows])
    valid &= np.random.default_rng(0).random(valid.shape) < 0.5  # and half of them lost
    lin, aki = fill_gaps_batch(x, valid)
    want_lin, want_aki = _twins(x, valid)
    np.testing.assert_allclose(lin, want_lin, atol=1e-3)  # pixels
    np.testing.assert_allclose(aki, want_aki, atol=1e-3)


def test_observed_samples_kept_edges_held_straight_motion_straight():
    T = 30
    t = np.arange(T, dtype=np.float32)
    x = np.stack([3 * t - 4, -0.5 * t + 2], axis=-1)[None, :, None, :]  # (1, T, 1, 2)
    valid = np.zeros((1, T, 1), bool)
    valid[0, [4, 5, 9, 17, 18, 19, 25], 0] = True
    for fill in fill_gaps_batch(x, valid):
        np.testing.assert_array_equal(fill[valid], x[valid])
        np.testing.assert_allclose(fill[0, 4:26, 0], x[0, 4:26, 0], atol=1e-4)  # straight
        assert (fill[0, :4, 0] == x[0, 4, 0]).all() and (fill[0, 26:, 0] == x[0, 25, 0]).all()
    empty = fill_gaps_batch(x, np.zeros_like(valid))
    assert all((f == 0).all() for f in empty)


def test_kernel_refuses_wrong_inputs():
    x = np.zeros((2, 8, 3, 2), np.float32)
    with pytest.raises(ValueError, match="valid must be bool"):
        fill_gaps_batch(x, np.ones((2, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="positions must be"):
        fill_gaps_batch(x[0], np.ones((8, 3), bool))

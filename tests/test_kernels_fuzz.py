"""Argument checks and hypothesis fuzzing of the kernels: no crash, no NaN, flags consistent."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetec_live import kernels
from finetec_live.kernels import reference
from finetec_live.skeleton.layouts import PENN13

PARENTS = PENN13.parents_array()
# CI runs a fixed set of examples (reproducible); FINETEC_FUZZ=N explores N fresh ones.
EXAMPLES = int(os.environ.get("FINETEC_FUZZ", "60"))
DERANDOMIZE = "FINETEC_FUZZ" not in os.environ
REGIONS = PENN13.regions_array()


def good(n_t=8):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n_t, 13, 2)).astype(np.float32), np.ones((n_t, 13), bool),
            np.arange(n_t) / 30.0)


BAD_LAGRANGIAN = [
    ("positions", dict(positions=np.zeros((8, 13), np.float32))),
    ("positions", dict(positions=np.zeros((8, 13, 3), np.float32))),
    ("positions", dict(positions=np.zeros((8, 13, 2), np.int64))),
    ("joint_valid", dict(joint_valid=np.ones((8, 12), bool))),
    ("joint_valid", dict(joint_valid=np.ones((8, 13), np.float32))),
    ("timestamps", dict(timestamps=np.arange(7) / 30.0)),
    ("timestamps", dict(timestamps=np.r_[0.0, np.arange(7) / 30.0])),  # repeated time
    ("timestamps", dict(timestamps=np.r_[np.arange(7) / 30.0, np.nan])),
    ("parents", dict(parents=PARENTS[:12])),
    ("parents", dict(parents=np.r_[PARENTS[:12], 13])),
    ("parents", dict(parents=np.r_[1, 0, PARENTS[2:]])),  # a cycle
    ("parents", dict(parents=PARENTS.astype(float))),
    ("masses", dict(masses=np.ones(12))),
    ("masses", dict(masses=-np.ones(13))),
    ("gravity", dict(gravity=(0.0, 9.81, 0.0))),
    ("half_window", dict(half_window=0)),
    ("half_window", dict(half_window=10**9)),  # would allocate 2e9-sample fit weights
    ("half_window", dict(half_window=65)),
    ("half_window", dict(half_window=3.0)),
    ("max_span", dict(max_span=0.0)),
    ("max_span", dict(max_span=float("inf"))),
    ("max_span", dict(max_span=float("nan"))),
    ("max_span", dict(max_span=1e300)),
    ("max_span", dict(max_span="long")),
    ("max_span", dict(max_span=[1.0])),
]


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
@pytest.mark.parametrize(("name", "change"), BAD_LAGRANGIAN, ids=[b[0] for b in BAD_LAGRANGIAN])
def test_lagrangian_rejects_bad_arguments_naming_them(impl, name, change):
    pos, valid, ts = good()
    args = dict(positions=pos, joint_valid=valid, timestamps=ts, parents=PARENTS)
    args.update(change)
    with pytest.raises(ValueError, match=f"^{name}"):
        impl.lagrangian_kinematics(**args)


def test_batched_forms_check_their_leading_axis():
    pos, valid, ts = good()
    with pytest.raises(ValueError, match=r"^positions: got shape \(8, 13, 2\).*\(N, T, V, 2\)"):
        kernels.lagrangian_kinematics_batch(pos, valid, ts, PARENTS)
    with pytest.raises(ValueError, match=r"^timestamps"):
        kernels.lagrangian_kinematics_batch(pos[None], valid[None], ts, PARENTS)
    with pytest.raises(ValueError, match=r"^positions.*\(N, T, V, C\)"):
        kernels.region_motion_batch(pos, valid, REGIONS)
    with pytest.raises(ValueError, match=r"^gravity.*\(2,\) or \(1, 2\)"):
        kernels.lagrangian_kinematics_batch(pos[None], valid[None], ts[None], PARENTS,
                                            gravity=np.zeros((2, 2)))


def test_largest_half_window_and_span_are_accepted():
    pos, valid, ts = good()
    res = kernels.lagrangian_kinematics(pos, valid, ts, PARENTS,
                                        half_window=kernels.MAX_HALF_WINDOW,
                                        max_span=kernels.MAX_SPAN_LIMIT)
    assert res.acc_valid.all()


BAD_MOTION = [
    ("positions", dict(positions=np.zeros((8, 13), np.float32))),
    ("positions", dict(positions=np.zeros((8, 0, 2), np.float32))),
    ("positions", dict(positions=np.zeros((8, 13, 2), np.int32))),
    ("joint_valid", dict(joint_valid=np.ones((8, 13), np.uint8))),
    ("regions", dict(regions=REGIONS[:5])),
    ("regions", dict(regions=REGIONS.astype(float))),
    ("regions", dict(regions=REGIONS - 1)),
    ("threshold", dict(threshold=1.5)),
    ("floor", dict(floor=-1.0)),
]


@pytest.mark.parametrize("impl", [kernels, reference], ids=["numba", "reference"])
@pytest.mark.parametrize(("name", "change"), BAD_MOTION, ids=[b[0] for b in BAD_MOTION])
def test_region_motion_rejects_bad_arguments_naming_them(impl, name, change):
    pos, valid, _ = good()
    args = dict(positions=pos, joint_valid=valid, regions=REGIONS)
    args.update(change)
    with pytest.raises(ValueError, match=f"^{name}"):
        impl.region_motion(**args)


def test_error_message_names_shape_received_and_expected():
    pos, valid, ts = good()
    with pytest.raises(ValueError) as err:
        kernels.lagrangian_kinematics(pos, valid[:, :5], ts, PARENTS)
    assert str(err.value) == ("joint_valid: got shape (8, 5) dtype bool, expected (8, 13) bool "
                              "(convert with .astype(bool))")


def test_float64_positions_are_accepted_as_float32():
    pos, valid, ts = good(20)
    a = kernels.lagrangian_kinematics(pos.astype(np.float64), valid, ts, PARENTS)
    b = kernels.lagrangian_kinematics(pos, valid, ts, PARENTS)
    np.testing.assert_array_equal(a.acc, b.acc)


@st.composite
def windows(draw):
    n_t = draw(st.integers(0, 40))
    n_v = draw(st.integers(1, 9))
    parents = np.array([-1] + [draw(st.integers(-1, k - 1)) for k in range(1, n_v)])
    perm = np.array(draw(st.permutations(range(n_v))))
    inv = np.argsort(perm)  # relabel joints so parents do not always come first
    parents = np.where(parents[perm] >= 0, inv[np.maximum(parents[perm], 0)], -1)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = 10.0 ** draw(st.integers(-3, 6))
    pos = rng.normal(0, scale, (n_t, n_v, 2))
    if draw(st.booleans()):  # repeated positions: zero-length bones, still joints
        pos = np.round(pos / scale) * scale
    valid = rng.random((n_t, n_v)) < draw(st.floats(0.0, 1.0))
    pos[~valid] = draw(st.sampled_from([0.0, np.nan, np.inf, 1e30]))
    ts = draw(st.floats(-1e4, 1e4)) + np.cumsum(rng.uniform(1e-3, 1.0, n_t))
    half = draw(st.integers(1, 5))
    span = draw(st.one_of(st.none(), st.floats(1e-3, 10.0)))
    masses = rng.uniform(0, 10, n_v)
    return pos.astype(np.float32), valid, ts, parents, masses, half, span


@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE)
@given(windows())
def test_fuzz_lagrangian_is_finite_and_flags_are_consistent(w):
    pos, valid, ts, parents, masses, half, span = w
    res = kernels.lagrangian_kinematics(pos, valid, ts, parents, masses, (0.0, 9.81), half, span)
    assert np.isfinite(res.acc).all() and np.isfinite(res.tau).all()
    assert (res.acc[~res.acc_valid] == 0).all() and (res.tau[~res.tau_valid] == 0).all()
    child = parents >= 0
    # a joint is supported only if its parent is; tau needs the joint's acceleration
    assert not (res.acc_valid[:, child] & ~res.acc_valid[:, parents[child]]).any()
    assert not (res.tau_valid & ~res.acc_valid).any()
    assert not res.tau_valid[:, ~child].any()
    if len(ts) > 0 and res.acc_valid.any():
        ref = reference.lagrangian_kinematics(pos, valid, ts, parents, masses, (0.0, 9.81),
                                                half, span)
        np.testing.assert_array_equal(res.acc_valid, ref.acc_valid)
    batch = kernels.lagrangian_kinematics_batch(pos[None], valid[None], ts[None], parents,
                                                  masses, (0.0, 9.81), half, span)
    np.testing.assert_array_equal(batch.acc[0], res.acc)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE)
@given(windows(), st.floats(0.0, 1.0))
def test_fuzz_region_motion_is_finite(w, threshold):
    pos, valid, *_ = w
    regions = np.arange(pos.shape[1]) % 5
    scores, dynamic = kernels.region_motion(pos, valid, regions, threshold=threshold)
    assert np.isfinite(scores).all() and (scores >= 0).all() and scores.shape == (5,)
    assert not dynamic[scores <= kernels.DEFAULT_FLOOR].any()
    s2, d2 = kernels.region_motion_batch(pos[None], valid[None], regions, threshold=threshold)
    np.testing.assert_array_equal(s2[0], scores)
    np.testing.assert_array_equal(d2[0], dynamic)

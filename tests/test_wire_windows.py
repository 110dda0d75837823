"""The window message: what crosses between capture and a model in another process."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetec_live.live.pose import Pose
from finetec_live.live.timeline import PersonTimeline
from finetec_live.wire.messages import MalformedMessage
from finetec_live.wire.windows import pack_window, unpack_window


def _real_window():
    tl = PersonTimeline("penn13", 1.0, 0.5, 1 / 30, person=3)
    rng = np.random.default_rng(0)
    windows = []
    for i in range(45):
        if i % 4 == 1:
            pose = Pose.empty("penn13", i, i / 30)
        else:
            jv = rng.random(13) > 0.1
            pose = Pose(i, i / 30, rng.normal(200, 30, (13, 2)), jv, "penn13")
        windows += tl.push(pose)
    return windows[-1]


def test_a_window_crosses_unchanged():
    w = _real_window()
    stream, back = unpack_window(pack_window(w, "cam-1"))
    assert stream == "cam-1" and back.person == 3 and back.seq == w.seq
    assert back.layout == "penn13" and back.t_end == pytest.approx(w.t_end, abs=1e-9)
    for name in ("positions", "frame_valid", "joint_valid", "timestamps"):
        np.testing.assert_array_equal(getattr(back, name), getattr(w, name))


def test_extra_keys_are_ignored_and_person_is_optional():
    m = msgpack.unpackb(pack_window(_real_window(), "cam"), raw=False)
    del m["person"]
    m["colour"] = "blue"
    _, back = unpack_window(msgpack.packb(m, use_bin_type=True))
    assert back.person == 0


@pytest.mark.parametrize("key,value", [
    ("v", 2), ("stream", "a b"), ("seq", -1), ("seq", 1.5), ("shape", [10, 13, 3]),
    ("shape", [10**9, 13, 2]), ("positions", b"\x00" * 7), ("timestamps", "soon"),
    ("layout", 5), ("t_start", True)])
def test_a_bad_field_is_malformed(key, value):
    m = msgpack.unpackb(pack_window(_real_window(), "cam"), raw=False)
    m[key] = value
    with pytest.raises(MalformedMessage):
        unpack_window(msgpack.packb(m, use_bin_type=True))


def test_non_finite_values_and_backwards_times_are_malformed():
    w = _real_window()
    m = msgpack.unpackb(pack_window(w, "cam"), raw=False)
    ts = w.timestamps.copy()
    ts[3] = ts[2]
    for key, arr in (("timestamps", ts), ("timestamps", np.full_like(ts, np.nan))):
        with pytest.raises(MalformedMessage):
            unpack_window(msgpack.packb({**m, key: arr.astype("<f8").tobytes()}))
    pos = w.positions.copy()
    pos[w.joint_valid] = np.inf
    with pytest.raises(MalformedMessage):
        unpack_window(msgpack.packb({**m, "positions": pos.astype("<f4").tobytes()}))


@settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_are_malformed_never_a_crash(data):
    try:
        unpack_window(data)
    except MalformedMessage:
        pass


@settings(max_examples=150, deadline=1000)
@given(st.integers(min_value=0, max_value=10**6))
def test_every_truncation_is_malformed(cut):
    payload = pack_window(_real_window(), "cam")
    cut = cut % len(payload)
    with pytest.raises(MalformedMessage):
        unpack_window(payload[:cut])

"""Property tests of message decoding: whatever arrives, decoding ends in a message
or a MalformedMessage (a ValueError, which the subscriber counts), never another
exception, never a hang."""

from __future__ import annotations

import time

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_checks import decodes_or_refuses as _decodes_or_refuses

from finetec_live.wire.messages import (
    LABEL_KEYS,
    OPTIONAL_KEYS,
    LabelMessage,
    MalformedMessage,
    StatusMessage,
    unpack,
)

FAST = settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])

GOOD = LabelMessage(stream="cam0", seq=3, t_start=1_000, t_end=2_000, label="squat", score=0.5,
                    topk=[["squat", 0.5], ["lunge", 0.25]], missing=0.5, completed=False,
                    latency_ms={"pose": 1.0, "kernels": 2.0, "model": 3.0, "total": 6.0},
                    model="m", wall_ns=5)
STATUS = StatusMessage("cam0", 30.0, 100, 3, 10, 9, 1, 0, 3.3, extra={"no_image": 2})

# every value msgpack can carry, awkward numbers included
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)




def _pack(d) -> bytes:
    return msgpack.packb(d, use_bin_type=True)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes(payload):
    _decodes_or_refuses([b"label.cam0", payload])
    _decodes_or_refuses([b"status.cam0", payload])
    try:
        LabelMessage.unpack(payload)
    except MalformedMessage:
        pass


@FAST
@given(st.data())
def test_truncated_payloads_are_refused(data):
    for good in (GOOD, STATUS):
        payload = good.pack()
        cut = data.draw(st.integers(0, len(payload) - 1))
        assert _decodes_or_refuses([good.topic.encode(), payload[:cut]]) is None


@FAST
@given(st.sampled_from(LABEL_KEYS), values)
def test_any_value_for_any_label_key(key, value):
    d = GOOD.to_dict()
    d[key] = value
    got = _decodes_or_refuses([b"label.cam0", _pack(d)])
    if got is not None:
        assert got.message.to_dict()[key] == value


@FAST
@given(st.sampled_from(LABEL_KEYS))
def test_each_missing_label_key(key):
    d = GOOD.to_dict()
    del d[key]
    got = _decodes_or_refuses([b"label.cam0", _pack(d)])
    # wall_ns is optional, and person and box, which schema 2 did not have
    assert (got is not None) == (key in OPTIONAL_KEYS)


@FAST
@given(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in LABEL_KEYS), values,
                       max_size=5))
def test_extra_label_keys_are_ignored(extra):
    got = _decodes_or_refuses([b"label.cam0", _pack({**GOOD.to_dict(), **extra})])
    assert got is not None and got.message == GOOD


@FAST
@given(st.sampled_from([*STATUS.to_dict(), "new_counter"]), values)
def test_any_value_for_any_status_key(key, value):
    d = STATUS.to_dict()
    d[key] = value
    _decodes_or_refuses([b"status.cam0", _pack(d)])


@FAST
@given(values)
def test_any_msgpack_value_as_a_payload(value):
    payload = _pack(value)
    _decodes_or_refuses([b"label.cam0", payload])
    _decodes_or_refuses([b"status.cam0", payload])


def test_hostile_payloads_end_quickly():
    """Deep nesting, a huge declared length, the size cap: refused, each in well under a
    second."""
    for payload in (b"\x91" * 1_000_000, b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
                    b"\xc6\xff\xff\xff\xff", b"\x90" * (1 << 20), b"\xc0" * ((1 << 20) + 1)):
        t0 = time.perf_counter()
        try:
            unpack(payload)
        except MalformedMessage:
            pass
        else:
            raise AssertionError(f"accepted {payload[:8]!r}...")
        assert time.perf_counter() - t0 < 1.0


@FAST
@given(st.lists(st.binary(max_size=40), max_size=4))
def test_any_frames(frames):
    _decodes_or_refuses(frames)
    _decodes_or_refuses([b"label.cam0", *frames])

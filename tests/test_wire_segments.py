"""The segment message and the label message v2 (open-set labels): round trips,
malformed payloads refused (never another exception), property tests like the label's."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_checks import decodes_or_refuses as _decodes_or_refuses

from finetec_live.cli.subscribe import format_message
from finetec_live.live.segments import Segmenter
from finetec_live.wire.messages import (
    LABEL_KEYS,
    OPEN_SET_LABELS,
    OPTIONAL_KEYS,
    SCHEMA_VERSION,
    SEGMENT_KEYS,
    LabelMessage,
    MalformedMessage,
    SegmentMessage,
)
from finetec_live.wire.subscriber import decode_message

FAST = settings(max_examples=200, deadline=1000, suppress_health_check=[HealthCheck.too_slow])

GOOD = SegmentMessage(stream="cam0", seq=2, label="idle", t_start=1_250_000_000,
                      t_end=7_750_000_000, windows=12, votes=10, score=0.875, first_window=3,
                      last_window=16, model="penn-finetec-0123abcd", wall_ns=5)

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def _pack(d) -> bytes:
    return msgpack.packb(d, use_bin_type=True)


def _with(**kw) -> bytes:
    return _pack({**GOOD.to_dict(), **kw})




def test_round_trip_keys_in_order():
    got = decode_message([b"segment.cam0", GOOD.pack()])
    assert got.is_segment and not got.is_label and got.kind == "segment"
    assert got.message == GOOD and got.topic == "segment.cam0"
    assert tuple(msgpack.unpackb(GOOD.pack())) == SEGMENT_KEYS
    assert GOOD.v == SCHEMA_VERSION == 3
    assert "segment #2" in format_message(GOOD) and "12 windows, 2 other" in format_message(GOOD)


def test_label_v2_carries_unknown_and_idle_outside_topk():
    for label, score in (("unknown", 0.7), ("idle", 1.0)):
        m = LabelMessage(stream="cam0", seq=1, t_start=0, t_end=2_500_000_000, label=label,
                         score=score, topk=[["squat", 0.3], ["lunge", 0.2]], missing=0.0,
                         completed=False, latency_ms=dict.fromkeys(
                             ("pose", "kernels", "model", "total"), 1.0), model="m")
        got = decode_message([b"label.cam0", m.pack()])
        assert got.message == m and got.message.v == SCHEMA_VERSION
        assert tuple(m.to_dict()) == LABEL_KEYS
        line = format_message(m)
        assert label in line and "best class squat 0.30" in line
    # a v1 message (the top class as label) still decodes
    v1 = _pack({**m.to_dict(), "v": 1, "label": "squat", "score": 0.3})
    assert decode_message([b"label.cam0", v1]).message.v == 1


def test_the_open_set_labels_are_the_recognizers():
    from finetec_live.inference import openset

    assert (openset.UNKNOWN, openset.IDLE) == OPEN_SET_LABELS


def test_from_a_segmenter():
    seg = Segmenter()
    for k, lab in enumerate(["squat"] * 3 + ["idle"] * 2):
        done = seg.push(lab, 0.8, k * 0.5, k * 0.5 + 2.5, k)
    assert done is not None
    m = SegmentMessage(stream="s", seq=done.seq, label=done.label,
                       t_start=round(done.t_start * 1e9), t_end=round(done.t_end * 1e9),
                       windows=done.windows, votes=done.votes, score=done.score,
                       first_window=done.first_window, last_window=done.last_window, model="m")
    assert SegmentMessage.unpack(m.pack()) == m and m.t_end == 1_500_000_000  # idle from 1.5 s


MALFORMED = [
    ([b"segment.cam0", b"\xc1junk"], "not msgpack"),
    ([b"segment.cam0", GOOD.pack()[:20]], "truncated"),
    ([b"segment.cam0", _pack([1, 2])], "not a map"),
    ([b"segment.cam0", _with(windows=0)], "no windows"),
    ([b"segment.cam0", _with(votes=0)], "no votes"),
    ([b"segment.cam0", _with(votes=13)], "more votes than windows"),
    ([b"segment.cam0", _with(windows=20)], "more windows than window numbers"),
    ([b"segment.cam0", _with(last_window=2)], "last window before the first"),
    ([b"segment.cam0", _with(first_window=-1)], "negative window"),
    ([b"segment.cam0", _with(t_end=0)], "ends before it starts"),
    ([b"segment.cam0", _with(score=1.5)], "score above 1"),
    ([b"segment.cam0", _with(score=float("nan"))], "NaN score"),
    ([b"segment.cam0", _with(label=3)], "label a number"),
    ([b"segment.cam0", _with(seq=True)], "seq a bool"),
    ([b"segment.cam0", _with(stream="other")], "topic names another stream"),
    ([b"segments.cam0", GOOD.pack()], "unknown kind"),
    ([b"segment.cam0", LabelMessage(
        stream="cam0", seq=0, t_start=0, t_end=1, label="a", score=1.0, topk=[["a", 1.0]],
        missing=0.0, completed=False, model="m",
        latency_ms=dict.fromkeys(("pose", "kernels", "model", "total"), 0.0)).pack()],
     "a label on the segment topic"),
]


@pytest.mark.parametrize(("frames", "why"), MALFORMED, ids=[w for _, w in MALFORMED])
def test_malformed_segments_are_refused(frames, why):
    with pytest.raises(MalformedMessage):
        decode_message(frames)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes(payload):
    _decodes_or_refuses([b"segment.cam0", payload])


@FAST
@given(st.data())
def test_truncations(data):
    payload = GOOD.pack()
    cut = data.draw(st.integers(0, len(payload) - 1))
    assert _decodes_or_refuses([b"segment.cam0", payload[:cut]]) is None


@FAST
@given(st.sampled_from(SEGMENT_KEYS), values)
def test_any_value_for_any_key(key, value):
    got = _decodes_or_refuses([b"segment.cam0", _with(**{key: value})])
    if got is not None:
        assert got.message.to_dict()[key] == value


@pytest.mark.parametrize("key", SEGMENT_KEYS)
def test_each_missing_key(key):
    d = GOOD.to_dict()
    del d[key]
    got = _decodes_or_refuses([b"segment.cam0", _pack(d)])
    assert (got is not None) == (key in OPTIONAL_KEYS)  # wall_ns, and person (schema 3)


@FAST
@given(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in SEGMENT_KEYS), values,
                       max_size=5))
def test_extra_keys_are_ignored(extra):
    got = _decodes_or_refuses([b"segment.cam0", _pack({**GOOD.to_dict(), **extra})])
    assert got is not None and got.message == GOOD

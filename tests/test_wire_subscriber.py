"""The subscriber: malformed messages are counted and skipped, never fatal; checked
on the library step and on a real finetec-subscribe process on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import msgpack
import pytest
import zmq

from finetec_live.wire.messages import LabelMessage, MalformedMessage, StatusMessage
from finetec_live.wire.subscriber import ThrottledReport, decode_message, open_subscriber

SUBSCRIBE = [sys.executable, "-m", "finetec_live.cli.subscribe"]


def _label(seq: int = 0) -> LabelMessage:
    return LabelMessage(stream="cam0", seq=seq, t_start=1_000_000_000, t_end=3_000_000_000,
                        label="squat", score=0.75, topk=[["squat", 0.75], ["lunge", 0.25]],
                        missing=0.25, completed=True,
                        latency_ms={"pose": 2.0, "kernels": 1.0, "model": 5.0, "total": 9.0},
                        model="penn-abc")


def _with(**kw) -> bytes:
    d = _label().to_dict()
    d.update(kw)
    return msgpack.packb(d, use_bin_type=True)


GOOD = _label().pack()
# (frames, what is wrong): each must be skipped and counted
MALFORMED = [
    ([b"label.cam0", b"\xc1\xc1garbage"], "not msgpack"),
    ([b"label.cam0", GOOD[: len(GOOD) // 2]], "truncated"),
    ([b"label.cam0", msgpack.packb([1, 2, 3])], "not a map"),
    ([b"label.cam0", msgpack.packb("text")], "not a map"),
    ([b"label.cam0", _with(seq="7")], "seq a string"),
    ([b"label.cam0", _with(topk=5)], "topk an int"),
    ([b"label.cam0", _with(latency_ms=[1, 2])], "latency a list"),
    ([b"label.cam0", _with(completed="yes")], "completed a string"),
    ([b"label.cam0", _with(score=float("nan"))], "NaN score"),
    ([b"label.cam0", _with(latency_ms={"pose": float("inf"), "kernels": 1.0, "model": 1.0,
                                        "total": 1.0})], "inf latency"),
    ([b"label.cam0", _with(t_end=2**64 - 1)], "huge int"),
    ([b"label.cam0", _with(missing=1e308)], "huge float"),
    ([b"label.cam0", _with(stream="other")], "topic names another stream"),
    ([b"label.\xff\xfe", GOOD], "topic not UTF-8"),
    ([b"label.bad name", GOOD], "bad stream in topic"),
    ([b"label.cam0"], "one frame"),
    ([b"label.cam0", GOOD, b"extra"], "three frames"),
    ([b"status.cam0", msgpack.packb({"stream": "cam0"})], "status lacking keys"),
]


@pytest.mark.parametrize(("frames", "why"), MALFORMED, ids=[w for _, w in MALFORMED])
def test_decode_refuses_malformed_messages(frames, why):
    with pytest.raises(MalformedMessage):
        decode_message(frames)


def test_decode_accepts_good_messages_and_extra_keys():
    got = decode_message([b"label.cam0", _with(future_key=[1, "x"])])
    assert got.is_label and got.message.seq == 0 and got.topic == "label.cam0"
    status = StatusMessage("cam0", 30.0, 100, 3, 10, 9, 1, 0, 3.3, extra={"no_image": 2})
    got = decode_message([status.topic.encode(), status.pack()])
    assert not got.is_label and got.message.extra == {"no_image": 2}


def test_subscriber_counts_malformed_and_returns_the_next_good_one():
    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        with open_subscriber(f"tcp://127.0.0.1:{port}") as sub:
            got = None
            for seq in range(50):
                for frames, _ in MALFORMED:
                    pub.send_multipart(frames)
                pub.send_multipart([b"label.cam0", _label(seq).pack()])
                got = sub.receive(100)
                if got is not None:
                    break
            assert got is not None and got.message.label == "squat"
            assert sub.malformed >= 1 and sub.last_error
    finally:
        pub.close(linger=0)


def test_throttled_report_writes_at_most_once_per_interval():
    lines: list[str] = []
    r = ThrottledReport(lines.append, interval_s=5.0)
    assert r.update(1, "bad", now=100.0)  # the first at once
    assert not r.update(50, "bad", now=101.0) and not r.update(90, now=104.9)
    assert r.update(90, "worse", now=105.0)
    assert not r.update(90, now=200.0)  # nothing new: nothing written
    assert len(lines) == 2 and "89 malformed messages ignored (90 in all)" in lines[1]


def test_subscribe_command_survives_malformed_messages():
    pub = zmq.Context.instance().socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    proc = subprocess.Popen([*SUBSCRIBE, "--connect", f"tcp://127.0.0.1:{port}", "--json",
                             "--count", "3", "--timeout", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, seq = time.time() + 40, 0
        while proc.poll() is None and time.time() < deadline:
            for frames, _ in MALFORMED:  # every good label follows a full round of garbage
                pub.send_multipart(frames)
            pub.send_multipart([b"label.cam0", _label(seq).pack()])
            seq += 1
            time.sleep(0.05)
        out, err = proc.communicate(timeout=10)
    finally:
        pub.close(linger=0)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    labels = [json.loads(line) for line in out.strip().splitlines()]
    assert len(labels) == 3 and all(m["label"] == "squat" for m in labels)
    assert labels[2]["seq"] == labels[0]["seq"] + 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    # one immediate warning (later ones at most every 5 s), then the count at exit
    assert 2 <= len(lines) <= 3, err
    assert lines[0].startswith("warning: ") and "malformed messages ignored" in lines[0]
    n = int(lines[-1].split("finetec-subscribe: ")[1].split()[0])
    per_round = sum(frames[0].startswith(b"label.") for frames, _ in MALFORMED)  # subscribed
    assert n >= 2 * per_round  # at least the two full rounds before labels 2 and 3


def test_subscribe_command_with_nothing_to_print_is_one_line():
    r = subprocess.run([*SUBSCRIBE, "--no-labels", "--no-segments"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "nothing to print" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_seq_gaps_count_windows_between_labels_per_person():
    from finetec_live.wire.subscriber import SeqGaps

    g = SeqGaps()
    for stream, person, seq in [("a", 0, 5), ("a", 0, 6), ("a", 1, 6), ("a", 0, 9),
                                ("b", 0, 0), ("a", 1, 7), ("a", 0, 2), ("a", 0, 4)]:
        g.update(stream, person, seq)
    # a/0: 7, 8 missing; then seq went back (a producer started again); 3 missing
    assert g.missing == {"a": 3} and g.gaps == {"a": 2} and g.total == 3

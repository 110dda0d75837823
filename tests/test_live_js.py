"""A subscriber in another language: Node.js with npm's zeromq and @msgpack/msgpack.

Needs ``node`` and ``(cd tests/js && npm ci)``; skipped cleanly without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from finetec_live.wire.messages import LABEL_KEYS, SEGMENT_KEYS, LabelMessage, SegmentMessage
from finetec_live.wire.publisher import open_publisher

JS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
HAVE_PACKAGES = all((JS / "node_modules" / p / "package.json").is_file()
                    for p in ("zeromq", "@msgpack/msgpack"))

pytestmark = pytest.mark.skipif(
    NODE is None or not HAVE_PACKAGES,
    reason="needs node and the npm packages: (cd tests/js && npm ci)")

# what the decision of label seq is (by seq % 3) and the label it carries
DECISIONS = [("class", "clean_and_jerk"), ("unknown", "unknown"), ("idle", "idle")]


def _label(seq: int) -> LabelMessage:
    label = DECISIONS[seq % 3][1]
    return LabelMessage(stream="cam0", seq=seq, t_start=7_500_000_000 + seq * 500_000_000,
                        t_end=10_000_000_000 + seq * 500_000_000, person=seq % 2 + 1,
                        box=[10.25 + seq, 20.0, 110.25, 220.0], label=label,
                        score=0.875, topk=[["clean_and_jerk", 0.875], ["squat", 0.125]],
                        missing=0.5, completed=True,
                        latency_ms={"pose": 21.5, "kernels": 3.25, "model": 12.0,
                                    "total": 40.0},
                        model="penn-finetec-0123abcd", wall_ns=time.time_ns())


def _segment(seq: int) -> SegmentMessage:
    return SegmentMessage(stream="cam0", seq=seq, label="idle", t_start=seq * 1_000_000_000,
                          t_end=(seq + 1) * 1_000_000_000, windows=3, votes=2, score=0.5,
                          first_window=2 * seq, last_window=2 * seq + 4, person=seq % 2 + 1,
                          model="penn-finetec-0123abcd", wall_ns=time.time_ns())


def test_node_subscriber_decodes_labels_and_segments():
    with open_publisher("tcp://127.0.0.1:*") as pub:
        proc = subprocess.Popen([NODE, str(JS / "subscribe.mjs"), pub.endpoint, "8",
                                 "20000"], cwd=JS, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline, seq = time.time() + 30, 0
        while proc.poll() is None and time.time() < deadline:
            pub.send(_label(seq))  # PUB/SUB joins asynchronously: keep publishing
            pub.send(_segment(seq))
            seq += 1
            time.sleep(0.05)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    got = [json.loads(line) for line in out.strip().splitlines()]
    assert len(got) == 8
    labels = [m for m in got if m["topic"] == "label.cam0"]
    segments = [m for m in got if m["topic"] == "segment.cam0"]
    assert len(labels) == len(segments) == 4
    for m in labels:
        m.pop("topic")
        assert m.pop("decision") == DECISIONS[m["seq"] % 3][0]
        assert m.pop("who") == f"person {m['seq'] % 2 + 1} at {round(10.25 + m['seq'])},20,110,220"
        assert tuple(m) == LABEL_KEYS and m["v"] == 3  # keys, in order, as Python sent them
        expect = _label(m["seq"]).to_dict()
        for k in LABEL_KEYS:
            if k != "wall_ns":
                assert m[k] == expect[k], k
    for m in segments:
        m.pop("topic")
        assert m.pop("decision") == "segment"
        assert m.pop("who") == f"person {m['seq'] % 2 + 1}"
        assert tuple(m) == SEGMENT_KEYS
        expect = _segment(m["seq"]).to_dict()
        assert {k: v for k, v in m.items() if k != "wall_ns"} == {
            k: v for k, v in expect.items() if k != "wall_ns"}
    assert labels[1]["seq"] == labels[0]["seq"] + 1

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

from finetec_live.wire.messages import LABEL_KEYS, LabelMessage
from finetec_live.wire.publisher import open_publisher

JS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
HAVE_PACKAGES = all((JS / "node_modules" / p / "package.json").is_file()
                    for p in ("zeromq", "@msgpack/msgpack"))

pytestmark = pytest.mark.skipif(
    NODE is None or not HAVE_PACKAGES,
    reason="needs node and the npm packages: (cd tests/js && npm ci)")


def _label(seq: int) -> LabelMessage:
    return LabelMessage(stream="cam0", seq=seq, t_start=7_500_000_000 + seq * 500_000_000,
                        t_end=10_000_000_000 + seq * 500_000_000, label="clean_and_jerk",
                        score=0.875, topk=[["clean_and_jerk", 0.875], ["squat", 0.125]],
                        missing=0.5, completed=True,
                        latency_ms={"pose": 21.5, "kernels": 3.25, "model": 12.0,
                                    "total": 40.0},
                        model="penn-finetec-0123abcd", wall_ns=time.time_ns())


def test_node_subscriber_decodes_labels():
    with open_publisher("tcp://127.0.0.1:*") as pub:
        proc = subprocess.Popen([NODE, str(JS / "subscribe.mjs"), pub.endpoint, "3",
                                 "20000"], cwd=JS, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline, seq = time.time() + 30, 0
        while proc.poll() is None and time.time() < deadline:
            pub.send(_label(seq))  # PUB/SUB joins asynchronously: keep publishing
            seq += 1
            time.sleep(0.05)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    got = [json.loads(line) for line in out.strip().splitlines()]
    assert len(got) == 3
    for m in got:
        assert m.pop("topic") == "label.cam0"
        assert tuple(m) == LABEL_KEYS  # keys, in order, as Python sent them
        expect = _label(m["seq"]).to_dict()
        for k in LABEL_KEYS:
            if k != "wall_ns":
                assert m[k] == expect[k], k
    assert got[1]["seq"] == got[0]["seq"] + 1

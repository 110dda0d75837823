"""The real-video development set: poses cached once, windows classified exactly as
``finetec-live`` classifies them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from finetec_live import Recognizer
from finetec_live.errors import FinetecError
from finetec_live.learning import videos as V
from finetec_live.live.sources import DEMO_VIDEO


@pytest.fixture(scope="module")
def devset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dev")
    (root / "box_jump").mkdir()
    (root / "box_jump" / "demo.mp4").write_bytes(DEMO_VIDEO.read_bytes())
    (root / "box_jump" / "notes.txt").write_text("not a video")
    return root


def test_find_videos(devset, tmp_path):
    assert V.find_videos(devset) == [(devset / "box_jump" / "demo.mp4", "box_jump")]
    with pytest.raises(FinetecError, match="no videos"):
        V.find_videos(tmp_path)
    with pytest.raises(FinetecError, match="not found"):
        V.find_videos(tmp_path / "nowhere")


def test_the_same_labels_as_the_live_command_and_poses_cached_once(devset, tmp_path):
    rec = Recognizer.from_checkpoint("penn", device="cpu")
    cache = tmp_path / "cache"
    (video, truth), = V.find_videos(devset)
    first = V.evaluate_videos(rec, [(video, truth)], cache, progress=False)
    recording, = cache.glob("*.fkp")
    stamp = recording.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = V.evaluate_videos(rec, [(video, truth)], cache, progress=False)
    assert time.perf_counter() - t0 < 20 and recording.stat().st_mtime_ns == stamp
    assert again[0].labels == first[0].labels
    r = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--video", str(video),
                        "--fast", "--no-display", "--jsonl", "-", "--bind",
                        "tcp://127.0.0.1:*"], capture_output=True, text=True, timeout=300,
                       env=os.environ)
    assert r.returncode == 0, r.stderr
    live = [json.loads(x)["label"] for x in r.stdout.splitlines()]
    assert first[0].labels == live and len(live) >= 3
    table = V.class_table(first)
    assert "| box_jump | 0 / 1 |" in table and f"0 / {len(live)}" in table

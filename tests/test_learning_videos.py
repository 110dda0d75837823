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


def test_crossval_scores_each_fold_with_its_own_model(tmp_path):
    """--crossval: fold k's videos (whole sources) with the checkpoint named for k, every
    model calibrated in memory with --calibrate."""
    from _tools import load_tool

    from finetec_live.inference.checkpoint import resolve_checkpoint

    root = tmp_path / "dev"
    (root / "box_jump").mkdir(parents=True)
    for who in ("ann", "bob"):
        (root / "box_jump" / f"{who}_jump.mp4").write_bytes(DEMO_VIDEO.read_bytes())
    shipped = resolve_checkpoint("penn")
    for k in (0, 1):
        (tmp_path / f"m{k}.pt").symlink_to(shipped)
    out = tmp_path / "cv.json"
    tool = load_tool("evaluate_videos")
    assert tool.main(["--videos", str(root), "--other", "none", "--crossval",
                      str(tmp_path / "m{fold}.pt"), "--folds", "2", "--calibrate-quantile", "0.05",
                      "--cache", str(tmp_path / "cache"), "--json", str(out),
                      "--quiet"]) == 0
    got = json.loads(out.read_text())
    assert len(got["models"]) == 2
    assert sorted(v["video"].rsplit("/", 1)[1] for v in got["videos"]) == [
        "ann_jump.mp4", "bob_jump.mp4"]
    assert tool.main(["--videos", str(root), "--other", "none", "--crossval",
                      str(tmp_path / "m{fold}.pt"), "--folds", "3", "--quiet",
                      "--cache", str(tmp_path / "cache")]) == 2

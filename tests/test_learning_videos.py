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


def _moving_recording(path, seconds=6.0, fps=30.0):
    """A pose recording of a figure waving its arms (mediapipe33, every joint seen), with
    a stretch of missing frames."""
    import numpy as np

    from finetec_live.live.pose import Pose
    from finetec_live.live.recording import KeypointRecorder

    rng = np.random.default_rng(0)
    base = np.column_stack([320 + 80 * rng.standard_normal(33), 120 + 10 * np.arange(33)])
    rec = KeypointRecorder(path, fps, 640, 480, "synthetic")
    for i in range(int(seconds * fps)):
        t = i / fps
        xy = base + np.column_stack([40 * np.sin(2 * np.pi * 0.7 * t + np.arange(33)),
                                     25 * np.cos(2 * np.pi * 1.3 * t * np.arange(33) / 33)])
        seen = not (2.0 <= t < 2.4)
        rec.write(Pose(i, t, xy.astype(np.float32), np.full(33, seen), "mediapipe33",
                       np.ones(33, np.float32)))
    rec.close()
    return path


def test_fused_lengths_are_the_mean_of_the_lengths_and_one_length_is_live(tmp_path):
    """--fuse-lengths: each live window also cut at other lengths ending at the same time;
    the decision is on the mean of their probabilities; the factor 1 alone is the live
    path's answer."""
    import numpy as np

    from finetec_live.learning import fusion

    rec = Recognizer.from_checkpoint("penn", device="cpu")
    rec.open_set_enabled = False  # closed set: the score is the top fused probability
    recording = _moving_recording(tmp_path / "wave.fkp")
    factors = (0.75, 1.0, 1.5)
    windows = fusion.window_outputs(rec, recording, factors)
    live = V.classify_recording(rec, recording, None, recording, smooth=1)
    one = fusion.fused_result(rec, windows, (1.0,), "mean", None, recording)
    assert one.labels == live.labels and one.scores == pytest.approx(live.scores, abs=1e-6)
    # smoothed over the last windows, as the live path smooths them
    live4 = V.classify_recording(rec, recording, None, recording, smooth=4)
    one4 = fusion.fused_result(rec, windows, (1.0,), "mean", None, recording, smooth=4)
    assert one4.labels == live4.labels and one4.scores == pytest.approx(live4.scores, abs=1e-6)
    assert one4.scores != pytest.approx(one.scores, abs=1e-3)
    assert len(windows) == len(live.labels) + live.skipped >= 5
    full = [w for w in windows if set(w) == set(factors)]
    assert len(full) >= 3
    for got in full:  # the lengths saw different windows
        assert not np.allclose(got[0.75].probs, got[1.5].probs, atol=1e-4)
    for rule in fusion.RULES:
        fused = fusion.fused_result(rec, windows, factors, rule, None, recording)
        assert len(fused.labels) == len(windows) - fused.skipped
        for got, label, score in zip([w for w in windows if w], fused.labels, fused.scores,
                                     strict=True):
            probs = np.stack([got[f].probs for f in factors if f in got]).astype(np.float64)
            want = probs.mean(0) if rule == "mean" else np.exp(np.log(probs).mean(0))
            want /= want.sum()
            assert label == rec.class_names[int(want.argmax())]
            assert score == pytest.approx(want.max(), abs=1e-5)
        one_scores = np.array(one.scores)
        assert np.abs(np.array(fused.scores) - one_scores).max() > 1e-3
    same = fusion.paired_comparison([one], [live])
    assert same == {"better": 0, "worse": 0, "sign_p": 1.0, "made_right": 0, "made_wrong": 0}


def test_the_offline_decision_holds_classes_as_the_live_path_does(tmp_path):
    """fusion.decided_windows replays the live path's hold of a person's class (the open
    set's hold_below): the same labels and scores, window for window, with windows that
    are held (a class below the unknown threshold) among them."""
    import numpy as np

    from finetec_live.inference.openset import OPEN_SET_LABELS, OpenSet
    from finetec_live.learning import fusion

    rec = Recognizer.from_checkpoint("penn", device="cpu")
    recording = _moving_recording(tmp_path / "wave.fkp", seconds=8.0)
    rec.open_set_enabled = False
    closed = V.classify_recording(rec, recording, None, recording, smooth=4)
    tops, tops_of = closed.scores, closed.labels
    # thresholds inside this recording's smoothed top probabilities: a window that starts
    # a class, followed by one of the same class too unsure to start it but sure enough
    # to continue it
    i = next(i for i in range(len(tops) - 1)
             if tops_of[i + 1] == tops_of[i] and tops[i + 1] < tops[i])
    start, keep = 0.5 * (tops[i] + tops[i + 1]), float(np.min(tops)) - 1e-3
    rec.open_set = OpenSet(unknown_below=start, idle_floor=0.0, hold_below=keep)
    rec.open_set_enabled = True
    live = V.classify_recording(rec, recording, None, recording, smooth=4)
    windows = fusion.window_outputs(rec, recording, (1.0,))
    off = fusion.fused_result(rec, windows, (1.0,), "mean", None, recording, smooth=4)
    assert off.labels == live.labels and off.scores == pytest.approx(live.scores, abs=1e-6)
    held = [s < start for lab, s in zip(live.labels, live.scores, strict=True)
            if lab not in OPEN_SET_LABELS]
    assert any(held) and not all(held)  # some windows were held, some started a class
    # without the hold those windows are unknown
    rec.open_set = OpenSet(unknown_below=start, idle_floor=0.0)
    plain = V.classify_recording(rec, recording, None, recording, smooth=4)
    assert plain.labels.count("unknown") > live.labels.count("unknown")

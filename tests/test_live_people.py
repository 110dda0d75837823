"""Several people per stream: the wire's person and box, windows on one grid, tracks that
survive a gap, the multi-person landmarker built from the wheel, and the live command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest

from finetec_live.inference.window import Window
from finetec_live.live.buffer import Windower
from finetec_live.live.people import People
from finetec_live.live.pose import Pose
from finetec_live.live.tracking import PeopleTracker
from finetec_live.wire.messages import LabelMessage, MalformedMessage, SegmentMessage

FPS = 30.0
LAT = {"pose": 1.0, "kernels": 2.0, "model": 3.0, "total": 6.0}


def _label(**kw) -> LabelMessage:
    d = dict(stream="cam0", seq=3, t_start=1_000, t_end=2_000, label="squat", score=0.5,
             topk=[["squat", 0.5]], missing=0.0, completed=False, latency_ms=LAT, model="m",
             person=4, box=[1.0, 2.0, 30.0, 40.0])
    d.update(kw)
    return LabelMessage(**d)


def test_label_carries_person_and_box_and_schema_2_still_decodes():
    m = _label()
    assert LabelMessage.unpack(m.pack()) == m
    old = {k: v for k, v in m.to_dict().items() if k not in ("person", "box")}
    old["v"] = 2
    got = LabelMessage.unpack(msgpack.packb(old))
    assert got.person == 0 and got.box == [] and got.label == "squat"
    seg = SegmentMessage(stream="cam0", seq=0, person=2, label="squat", t_start=0, t_end=5,
                         windows=2, votes=1, score=0.5, first_window=3, last_window=4,
                         model="m")
    assert SegmentMessage.unpack(seg.pack()).person == 2


@pytest.mark.parametrize("bad", [{"box": [3.0, 2.0, 1.0, 40.0]}, {"box": [1.0, 2.0, 3.0]},
                                 {"box": [1.0, float("nan"), 3.0, 4.0]}, {"person": -1},
                                 {"person": 1.5}, {"box": "0,0,1,1"}])
def test_bad_person_or_box_is_refused(bad):
    with pytest.raises(ValueError):
        _label(**bad)
    d = {**_label().to_dict(), **bad}
    with pytest.raises(MalformedMessage):
        LabelMessage.unpack(msgpack.packb(d))


def test_window_box_is_the_last_posed_frame():
    pos = np.zeros((4, 13, 2), np.float32)
    pos[1] = 5.0
    pos[2, :, 0], pos[2, :, 1] = np.arange(13), 100 + np.arange(13)
    fv = np.array([False, True, True, False])
    jv = fv[:, None] & np.ones((4, 13), bool)
    jv[2, 12] = False  # a missing joint is not in the box
    w = Window(pos, fv, jv, np.arange(4) / FPS)
    assert w.box == [0.0, 100.0, 11.0, 111.0]
    assert Window(pos * 0, fv * False, jv * False, np.arange(4) / FPS).box == []


def test_aligned_windower_shares_the_grid_and_starts_after_its_first_tick():
    a, b = Windower(1.0, 0.5, 1 / FPS), Windower(1.0, 0.5, 1 / FPS)
    b.align(0.0, 0.7)  # a person who appears at 0.7 s
    due_a, due_b = [], []
    for i in range(90):
        t = i / FPS
        due_a += a.update(t)
        if t >= 0.7:
            due_b += b.update(t)
    ends_a = {round(hi, 6) for _, hi in due_a}
    assert due_b and {round(hi, 6) for _, hi in due_b} <= ends_a  # same windows as person 0
    assert min(lo for lo, _ in due_b) >= 0.7 - 0.5 / FPS - 1e-9  # none before the person
    with pytest.raises(ValueError):
        Windower(1.0, 0.5, 1 / FPS).align(1.0, 0.5)


def _person(x: float, y: float, i: int, seed: int = 0, size: float = 100.0) -> Pose:
    """A penn13 stick figure at (x, y), ``size`` tall, on tick ``i``."""
    rng = np.random.default_rng(seed * 100_000 + i)
    base = np.stack([np.linspace(-0.2, 0.2, 13), np.linspace(-0.5, 0.5, 13)], 1) * size
    return Pose(i, i / FPS, base + np.array([x, y]) + rng.normal(0, 1, (13, 2)), np.ones(13, bool),
                "penn13")


def test_tracks_keep_their_ids_through_a_gap_and_time_out():
    tracker = PeopleTracker(timeout_ticks=30, frame_period=1 / FPS)
    ids = {}
    for i in range(120):
        left = _person(100 + i, 300, i)
        right = _person(600 - i, 300, i, seed=1)
        hidden = 40 <= i < 55  # the right person is behind something for half a second
        up = tracker.update([left] if hidden else [left, right], i / FPS)
        for k, p in up.poses.items():
            ids.setdefault(k, set()).add("L" if p is left else "R")
    assert len(ids) == 2 and sorted(map(sorted, ids.values())) == [["L"], ["R"]]
    assert tracker.started == 2 and tracker.ended == 0
    for i in range(120, 160):  # the left person stays, the right one is gone for good
        up = tracker.update([_person(100 + i, 300, i)], i / FPS)
    assert tracker.ended == 1 and tracker.in_view == 1


def test_people_give_one_batch_per_hop_and_missing_frames_for_an_unseen_track():
    people = People("penn13", 1.0, 0.5, 1 / FPS, max_people=2, timeout_s=1.0)
    due = []
    for i in range(150):
        poses = [_person(100 + i, 300, i)]
        if i >= 20 and not 70 <= i < 85:
            poses.append(_person(500, 300, i, seed=2))
        for w in people.push(poses, i, i / FPS):
            people.counted(w, skipped=False)
            due.append(w)
    by_person = {}
    for w in due:
        by_person.setdefault(w.person, []).append(w)
    assert len(by_person) == 2, by_person.keys()
    first, second = (by_person[k] for k in sorted(by_person))
    ends = {round(w.t_end, 6) for w in first}
    assert {round(w.t_end, 6) for w in second} <= ends  # same hops: batched together
    assert min(w.t_start for w in second) >= 20 / FPS - 1e-6
    gap = [w for w in second if w.t_start < 85 / FPS and w.t_end > 70 / FPS]
    assert gap and max(w.missing_fraction for w in gap) >= 14 / 30 - 0.05  # marked, not faked
    assert people.started == 2 and people.summary()[str(second[0].person)]["windows"] == len(
        second)


def test_ticks_without_picture_do_not_end_or_block_tracks():
    """Pose slower than the source (real time): two ticks in three are lagged, without
    picture. Those are missing frames of the track; the tracker does not see them, so the
    person is confirmed and keeps one id."""
    people = People("penn13", 1.0, 0.5, 1 / FPS, max_people=2, timeout_s=0.5)
    due = []
    for i in range(150):
        seen = i % 3 == 0
        due += people.push([_person(100 + i, 300, i)] if seen else [], i, i / FPS,
                           observed=seen)
    assert people.started == 1 and due
    assert all(abs(w.missing_fraction - 2 / 3) < 0.1 for w in due)


def test_one_person_allowed_is_person_zero_without_a_tracker():
    people = People("penn13", 1.0, 0.5, 1 / FPS)
    assert people.tracker is None
    due = []
    for i in range(60):
        due += people.push([_person(100, 300, i)] if i % 2 else [], i, i / FPS)
    assert due and {w.person for w in due} == {0}
    assert all(abs(w.missing_fraction - 0.5) < 0.1 for w in due)


@pytest.mark.slow
def test_multi_person_landmarker_is_built_from_the_wheel(tmp_path, monkeypatch, data_root):
    import cv2

    from finetec_live.live.multipose import MultiPoseEstimator, pose_bundle
    from finetec_live.live.pose import PoseEstimator

    monkeypatch.setenv("FINETEC_CACHE", str(tmp_path))
    bundle = pose_bundle()
    assert bundle.parent == tmp_path and bundle.stat().st_size > 1e6
    assert pose_bundle() == bundle  # made once
    cap = cv2.VideoCapture(str(data_root / "videos" / "clean_and_jerk.mp4"))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    with MultiPoseEstimator(2) as multi, PoseEstimator() as single:
        diffs = []
        for i, f in enumerate(frames):
            many, one = multi.estimate(f, i, i / FPS), single.estimate(f, i, i / FPS)
            assert len(many) <= 2
            if many and one.valid:
                d = min(np.abs(p.positions - one.positions).mean() for p in many)
                diffs.append(d / f.shape[0])
    assert len(diffs) >= 15 and np.median(diffs) < 0.01  # the same person as the legacy API


@pytest.mark.parametrize("value", ["0", "99", "-1"])
def test_max_people_out_of_range_is_one_error_line(value, tmp_path):
    out = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--video",
                          str(tmp_path / "none.mp4"), "--max-people", value, "--no-display"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--max-people" in lines[0], out.stderr


def test_stats_json_reports_tracks(tmp_path):
    """A multi-person recording replayed: two people, two tracks, person and box in every
    label, tracks in the statistics."""
    from finetec_live.live.recording import RECORD_FORMAT, RECORD_VERSION

    rng = np.random.default_rng(0)
    records = [{"format": RECORD_FORMAT, "v": RECORD_VERSION, "layout": "mediapipe33",
                "fps": FPS, "width": 640, "height": 480, "source": "test"}]
    for i in range(150):
        people = []
        for x in (150.0, 450.0):
            xy = rng.normal(0, 3, (33, 2)) + [x, 240] + np.c_[np.zeros(33),
                                                           np.linspace(-120, 120, 33)]
            xy[:, 0] += 30 * np.sin(i / 5 + x)  # moving, so not idle
            people.append({"xy": xy.astype("<f4").tobytes(),
                           "ok": np.ones(33, np.uint8).tobytes(),
                           "vis": np.full(33, 0.9, "<f4").tobytes()})
        records.append({"i": i, "t": i / FPS, "gap": False, **people[0], "more": people[1:]})
    path = tmp_path / "two.fkp"
    path.write_bytes(b"".join(msgpack.packb(r) for r in records))
    jsonl, stats = tmp_path / "labels.jsonl", tmp_path / "stats.json"
    out = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--keypoints", str(path),
                          "--fast", "--max-people", "2", "--jsonl", str(jsonl), "--stats-json",
                          str(stats), "--bind", "tcp://127.0.0.1:*"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    labels = [json.loads(line) for line in jsonl.read_text().splitlines()]
    s = json.loads(stats.read_text())
    assert s["tracks_started"] == 2 and len(s["tracks"]) == 2
    persons = {m["person"] for m in labels}
    assert len(persons) == 2
    for p in persons:
        xs = [(m["box"][0] + m["box"][2]) / 2 for m in labels if m["person"] == p]
        assert max(xs) - min(xs) < 150  # each track stays on its own side
    assert s["published"] == len(labels) == sum(t["windows"] - t["skipped_windows"]
                                                for t in s["tracks"].values())


@pytest.mark.slow
def test_sports2d_demo_two_tracks_and_the_gap_is_missing_frames(tmp_path, data_root):
    """The full sports2d clip: one person jumps off a box (pose is lost for some frames in
    the air and on landing), another walks past. Two tracks, not a new person after the
    gap, and the gap is in that track's windows as missing frames. The recording of the
    run keeps both people: replayed, it gives the same labels."""
    from finetec_live.learning.composites import run_live

    rec = tmp_path / "two.fkp"
    got = run_live(data_root / "videos" / "sports2d_demo.mp4", tmp_path, 2,
                   extra=["--record", str(rec)])
    s, labels = got.stats, got.labels
    assert s["tracks_started"] == 2, s["tracks"]
    assert {m["person"] for m in labels} == {int(k) for k in s["tracks"]}
    worst = {}
    for m in labels:
        worst[m["person"]] = max(worst.get(m["person"], 0.0), m["missing"])
    lost = {int(k): round((t["last_s"] - t["first_s"]) * 30) + 1 - t["posed"]
            for k, t in s["tracks"].items()}  # ticks in a track's life without its pose
    jumper = max(lost, key=lost.get)
    assert lost[jumper] >= 3  # frames lost in the jump are the track's, not a new id's
    assert worst[jumper] > 0.05  # and its windows say so: missing frames
    out = tmp_path / "replay"
    out.mkdir()
    replay = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--keypoints",
                             str(rec), "--fast", "--max-people", "2", "--jsonl",
                             str(out / "labels.jsonl"), "--bind", "tcp://127.0.0.1:*"],
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    again = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    key = ("seq", "person", "label", "box", "missing")
    assert [[m[k] for k in key] for m in again] == [[m[k] for k in key] for m in labels]


@pytest.mark.slow
def test_two_real_people_side_by_side(tmp_path, data_root):
    """Two real videos tiled: each side's labels come from tracks of that side (at most two
    ids per side), and each side's majority is what the single-person path says of it."""
    from finetec_live.learning.composites import run_live, score_tiles, tile_videos

    real = data_root / "videos" / "penn_real"
    pair = [(real / "pushup" / "sportsjudge_grass_front.mp4", "pushup"),
            (real / "jumping_jacks" / "venkat_gym_maroon.mp4", "jumping_jacks")]
    both = tmp_path / "pair.mp4"
    tiles = tile_videos(pair, both, seconds=6.0, height=360)
    got = run_live(both, tmp_path, 2)
    scores = score_tiles(tiles, got.labels)
    for tile, score in zip(tiles, scores, strict=True):
        assert score.windows >= 5 and 1 <= score.ids <= 2, (tile.video, score)
        alone = tmp_path / f"{Path(tile.video).stem}_alone.mp4"
        tile_videos([(Path(tile.video), tile.truth)], alone, seconds=6.0, height=360)
        single = [m["label"] for m in run_live(alone, tmp_path, 1).labels]
        assert score.majority == max(set(single), key=single.count), (tile.video, score)
    assert sum(s.windows for s in scores) == len(got.labels)  # every label on a side

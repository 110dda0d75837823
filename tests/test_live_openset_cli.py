"""``finetec-live`` with the open-set decision and segments, end to end on recordings:
the real command, the shipped weights (with thresholds written into a copy), ZeroMQ on
loopback, a real ``finetec-subscribe``; and the replay progress line."""

from __future__ import annotations

import io
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import msgpack
import numpy as np
import pytest
import zmq

from finetec_live.cli.progress import ReplayProgress
from finetec_live.inference.openset import OpenSet
from finetec_live.live.recording import RECORD_FORMAT, RECORD_VERSION
from finetec_live.wire.messages import SEGMENT_KEYS

LIVE = [sys.executable, "-m", "finetec_live.cli.live"]
SUBSCRIBE = [sys.executable, "-m", "finetec_live.cli.subscribe"]
FPS = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recording(path: Path, moving: list[bool]) -> Path:
    """A recording as KeypointRecorder writes it: a standing figure on every tick, held
    perfectly still, or swinging 60 px side to side on the ticks marked ``moving``."""
    pack = msgpack.Packer(use_bin_type=True).pack
    out = [pack({"format": RECORD_FORMAT, "v": RECORD_VERSION, "layout": "mediapipe33",
                 "fps": FPS, "width": 320, "height": 180, "source": "synthetic"})]
    base = np.stack([np.full(33, 160.0), np.linspace(20, 170, 33)], 1)
    for i, move in enumerate(moving):
        t = i / FPS
        sway = 60 * np.sin(2 * np.pi * t) * np.linspace(0.2, 1.0, 33) if move else 0.0
        xy = (base + np.stack([sway + np.zeros(33), np.zeros(33)], 1)).astype("<f4")
        out.append(pack({"i": i, "t": t, "gap": False, "xy": xy.tobytes(),
                         "ok": np.ones(33, np.uint8).tobytes(),
                         "vis": np.full(33, 0.9, "<f4").tobytes()}))
    path.write_bytes(b"".join(out))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import torch

    from finetec_live.inference.checkpoint import load_checkpoint

    d = tmp_path_factory.mktemp("openset")
    ck = dict(load_checkpoint("penn"))  # the shipped weights
    paths = {"still": _recording(d / "still.fkp", [False] * 120),
             "idle_move_idle": _recording(d / "imi.fkp", [False] * 90 + [True] * 90
                                          + [False] * 90)}
    for name, rule in (("calibrated", OpenSet(unknown_below=0.6, idle_floor=0.002)),
                       ("all_unknown", OpenSet(unknown_below=1.0, idle_floor=0.002)),
                       ("uncalibrated", None)):
        ck.pop("open_set", None)
        if rule is not None:
            ck["open_set"] = rule.to_dict()
        torch.save(ck, d / f"{name}.pt")
        paths[name] = d / f"{name}.pt"
    return paths


def _live(args: list[str], tmp_path: Path, port: int | None = None):
    stats = tmp_path / "stats.json"
    port = port or _free_port()
    r = subprocess.run([*LIVE, "--fast", "--no-display", "--jsonl", "-", "--stats-json",
                        str(stats), "--bind", f"tcp://127.0.0.1:{port}", *args],
                       capture_output=True, timeout=180)
    # bytes decoded here: text mode would turn a progress line's carriage returns into
    # new lines
    r = subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    labels = [json.loads(x) for x in r.stdout.splitlines()]
    return r, labels, json.loads(stats.read_text())


def _class_names(path: Path) -> set[str]:
    import torch

    return set(torch.load(path, weights_only=True)["class_names"])


def test_a_still_recording_is_idle_and_no_open_set_gives_classes(files, tmp_path):
    r, labels, stats = _live(["--keypoints", str(files["still"]), "--model",
                              str(files["calibrated"])], tmp_path)
    assert len(labels) == stats["published"] >= 3
    assert {m["label"] for m in labels} == {"idle"}
    assert all(m["score"] == pytest.approx(1.0) for m in labels)  # perfectly still
    assert all(m["topk"][0][0] in _class_names(files["calibrated"]) for m in labels)
    assert stats["open_set"] == {"enabled": True, "calibrated": True, "unknown_below": 0.6,
                                 "idle_floor": 0.002, "hold_below": None}
    assert [(s["label"], s["windows"]) for s in stats["segments"]] == [("idle", len(labels))]
    assert "WARNING" not in r.stderr and "open set" in r.stderr
    assert "\r" not in r.stderr  # no progress line: stderr is no terminal

    r, labels, stats = _live(["--keypoints", str(files["still"]), "--model",
                              str(files["calibrated"]), "--no-open-set"], tmp_path)
    names = _class_names(files["calibrated"])
    assert labels and all(m["label"] in names for m in labels)
    assert all(m["label"] == m["topk"][0][0] and m["score"] == m["topk"][0][1]
               for m in labels)
    assert stats["open_set"] == {"enabled": False, "calibrated": True}
    assert "WARNING" not in r.stderr and "closed set" in r.stderr


def test_an_uncalibrated_checkpoint_warns_once_and_gives_classes(files, tmp_path):
    r, labels, stats = _live(["--keypoints", str(files["still"]), "--model",
                              str(files["uncalibrated"])], tmp_path)
    warnings = [x for x in r.stderr.splitlines() if "WARNING" in x]
    assert len(warnings) == 1, r.stderr
    assert "closed-set" in warnings[0]
    assert "python tools/calibrate.py --checkpoint FILE" in warnings[0]
    assert labels and all(m["label"] in _class_names(files["uncalibrated"]) for m in labels)
    assert stats["open_set"] == {"enabled": False, "calibrated": False}
    r, _, _ = _live(["--keypoints", str(files["still"]), "--model",
                     str(files["uncalibrated"]), "--no-open-set"], tmp_path)
    assert "WARNING" not in r.stderr  # asked for closed-set labels: nothing to say


def test_a_replay_publishes_its_segments_and_prints_the_timeline(files, tmp_path):
    """3 s still, 3 s swinging, 3 s still; every moving window unknown (no probability
    reaches 1): idle, unknown, idle, published as segment messages (the last at the end
    of the file), in --stats-json and on the console."""
    port = _free_port()
    ep = f"tcp://127.0.0.1:{port}"
    sub = subprocess.Popen([*SUBSCRIBE, "--connect", ep, "--no-labels", "--json", "--count",
                            "3", "--timeout", "120"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    order: list[bytes] = []  # every topic on the wire, in order
    raw = zmq.Context.instance().socket(zmq.SUB)
    raw.setsockopt(zmq.SUBSCRIBE, b"")
    raw.setsockopt(zmq.RCVTIMEO, 200)
    raw.connect(ep)
    done = threading.Event()

    def collect() -> None:
        while not done.is_set():
            try:
                order.append(raw.recv_multipart()[0])
            except zmq.Again:
                continue

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    try:
        r, labels, stats = _live(["--keypoints", str(files["idle_move_idle"]), "--model",
                                  str(files["all_unknown"])], tmp_path, port)
        out, err = sub.communicate(timeout=60)
    finally:
        time.sleep(0.5)
        done.set()
        thread.join()
        raw.close(linger=0)
        if sub.poll() is None:
            sub.kill()
    assert sub.returncode == 0, err
    segs = [json.loads(x) for x in out.splitlines()]
    assert [m.pop("topic") for m in segs] == ["segment.imi"] * 3
    assert all(tuple(m) == SEGMENT_KEYS for m in segs)
    assert [m["label"] for m in segs] == ["idle", "unknown", "idle"]
    assert [m["seq"] for m in segs] == [0, 1, 2]
    assert sum(m["windows"] for m in segs) == len(labels) == stats["published"]
    assert segs[0]["t_start"] == labels[0]["t_start"] and segs[-1]["t_end"] == labels[-1][
        "t_end"]
    for a, b in itertools.pairwise(segs):
        assert a["t_end"] == b["t_start"] and a["last_window"] + 1 == b["first_window"]
    # idle segments span their still windows: the changes lie where the motion starts
    # and stops, 3 s and 6 s (to a frame)
    assert segs[1]["t_start"] / 1e9 == pytest.approx(3.0, abs=1 / FPS)
    assert segs[2]["t_start"] / 1e9 == pytest.approx(6.0, abs=1 / FPS)
    # the same segments in --stats-json (seconds) and, in order, in the timeline
    assert [(s["label"], s["windows"], s["votes"]) for s in stats["segments"]] == [
        (m["label"], m["windows"], m["votes"]) for m in segs]
    assert stats["segments"][1]["t_start"] == pytest.approx(segs[1]["t_start"] / 1e9)
    lines = r.stderr[r.stderr.index("timeline of imi: 3 segments"):].splitlines()[1:4]
    assert [ln.split()[4] for ln in lines] == ["idle", "unknown", "idle"]
    assert f"{segs[1]['windows']} windows" in lines[1]
    # the last segment goes out at the end of the file, before the final heartbeat
    kinds = [t.split(b".")[0] for t in order]
    assert kinds.count(b"segment") == 3 and kinds[-2:] == [b"segment", b"status"]


def _worker(published: int, label: str | None):
    latest = None if label is None else SimpleNamespace(message=SimpleNamespace(label=label))
    return SimpleNamespace(stats=SimpleNamespace(published=published), newest=latest)


def test_progress_line_throttles_and_ends_at_the_total():
    out = io.StringIO()
    p = ReplayProgress("clip", 10.0, 0.1, file=out, refresh_s=0.5)
    assert p.update(100.0, _worker(0, None), now=1.0)  # times relative to the first tick
    assert not p.update(101.0, _worker(1, "squat"), now=1.2)  # throttled
    assert p.update(103.4, _worker(5, "unknown"), now=1.6)
    assert "clip: 3.5/10.0 s, 5 windows, unknown" in out.getvalue()
    p.update(109.9, _worker(18, "idle"), now=1.7)
    p.close(_worker(19, "idle"))
    last = out.getvalue().rstrip("\n").split("\r")[-1]
    assert "100%" in last and last.endswith("clip: 10.0/10.0 s, 19 windows, idle")
    assert out.getvalue().count("\n") == 1  # one line, redrawn


def test_progress_line_without_a_total():
    out = io.StringIO()
    p = ReplayProgress("poses", None, 1 / 30, file=out)
    p.update(5.0, _worker(0, None), now=0.0)
    p.close(_worker(2, "squat"))
    assert out.getvalue().rstrip("\n").split("\r")[-1] == "poses: 0.0 s, 2 windows, squat"


def test_smoothed_labels_are_the_mean_of_the_last_windows(files, tmp_path):
    """--smooth K: each message ranks (and labels by) the mean class probabilities of the
    person's last K windows; --smooth 1 gives each window's own."""
    common = ["--keypoints", str(files["idle_move_idle"]), "--no-open-set", "--topk", "15"]
    _, alone, stats1 = _live([*common, "--smooth", "1"], tmp_path)
    _, smooth, stats3 = _live([*common, "--smooth", "3"], tmp_path)
    assert (stats1["smoothed_windows"], stats3["smoothed_windows"]) == (1, 3)
    assert len(alone) == len(smooth) >= 8
    names = sorted(name for name, _ in alone[0]["topk"])
    raw = np.array([[dict(m["topk"])[n] for n in names] for m in alone])
    for i, m in enumerate(smooth):
        want = raw[max(0, i - 2): i + 1].mean(0)
        got = np.array([dict(m["topk"])[n] for n in names])
        np.testing.assert_allclose(got, want / want.sum(), atol=1e-5)
        assert m["label"] == names[int(want.argmax())] == m["topk"][0][0]
    assert [m["label"] for m in alone] != [m["label"] for m in smooth] or \
        not np.allclose(raw, [[dict(m["topk"])[n] for n in names] for m in smooth], atol=1e-3)

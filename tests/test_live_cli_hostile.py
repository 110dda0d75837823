"""``finetec-live`` against what a new user does: paths that clash, absurd windows,
displays that are not there, full disks, damaged files; and the promise that
lagged frames are missing ticks, counted, with only real pictures written."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from finetec_live.live.sources import DEMO_VIDEO

LIVE = [sys.executable, "-m", "finetec_live.cli.live"]


def _live(args: list[str], timeout: float = 120, env: dict | None = None):
    env = {**os.environ, **(env or {})}
    return subprocess.run([*LIVE, "--bind", "tcp://127.0.0.1:*", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _one_line_error(r, *words: str) -> str:
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_video(path: Path, fps: float, repeat: int = 1) -> int:
    """The demo clip re-encoded (MJPG) at another frame rate, ``repeat`` times over."""
    import cv2

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 180))
    n = 0
    for _ in range(repeat):
        cap = cv2.VideoCapture(str(DEMO_VIDEO))
        while True:
            ok, image = cap.read()
            if not ok:
                break
            out.write(image)
            n += 1
        cap.release()
    out.release()
    return n


# ------------------------------------------------------------------ outputs over inputs
@pytest.fixture()
def demo_copy(tmp_path) -> Path:
    p = tmp_path / "clip.mp4"
    p.write_bytes(DEMO_VIDEO.read_bytes())
    return p


@pytest.mark.parametrize("option", ["--output", "--stats-json", "--jsonl", "--record"])
def test_an_output_over_the_input_video_is_refused(demo_copy, option):
    before = _digest(demo_copy)
    r = _live(["--video", str(demo_copy), "--no-display", option, str(demo_copy)])
    _one_line_error(r, option, "same file", "--video")
    assert r.returncode == 1 and _digest(demo_copy) == before


def test_recording_over_the_replayed_recording_is_refused(tmp_path):
    rec = tmp_path / "poses.fkp"
    r = _live(["--video", str(DEMO_VIDEO), "--fast", "--no-display", "--record", str(rec)],
              timeout=300)
    assert r.returncode == 0, r.stderr
    before = _digest(rec)
    r = _live(["--keypoints", str(rec), "--record", str(tmp_path / "." / "poses.fkp")])
    _one_line_error(r, "--record", "same file", "--keypoints")
    assert _digest(rec) == before


def test_two_outputs_on_one_file_are_refused(tmp_path):
    r = _live(["--video", str(DEMO_VIDEO), "--stats-json", str(tmp_path / "x"),
               "--jsonl", str(tmp_path / "x")])
    _one_line_error(r, "same file")


# ------------------------------------------------------------------ absurd values, at once
@pytest.mark.parametrize("args,words", [
    (["--window", "1000000"], ["--window", "60"]),
    (["--hop", "0.0001", "--fast"], ["--hop"]),
    (["--hop", "0.02", "--fast"], ["--hop", "one frame"]),  # 30 fps: 0.033 s a frame
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--smooth", "0"], ["--smooth", ">= 1"]),
    (["--smooth", "2.5"], ["--smooth", "integer"]),
])
def test_absurd_values_are_refused_quickly(args, words):
    t0 = time.monotonic()
    r = _live(["--video", str(DEMO_VIDEO), "--no-display", *args], timeout=60)
    _one_line_error(r, *words)
    assert time.monotonic() - t0 < 45  # no warm-up of a giant window, no endless run


def test_a_folder_passed_as_video_is_named_as_such(tmp_path):
    r = _live(["--video", str(tmp_path)])
    _one_line_error(r, "folder", "--video")


def test_a_malformed_environment_variable_is_one_line(demo_copy):
    r = _live(["--video", str(demo_copy), "--no-display"],
              env={"FINETEC_CAPTURE_NICE": "lots"})
    _one_line_error(r, "FINETEC_CAPTURE_NICE")


# ------------------------------------------------------------------ files that cannot be written
def test_an_unwritable_stats_file_is_found_before_the_run(tmp_path):
    t0 = time.monotonic()
    r = _live(["--video", str(DEMO_VIDEO), "--fast", "--no-display",
               "--stats-json", str(tmp_path)])  # a folder
    _one_line_error(r, "--stats-json", "folder")
    assert "publishing" not in r.stderr and time.monotonic() - t0 < 30
    r = _live(["--video", str(DEMO_VIDEO), "--fast", "--no-display",
               "--stats-json", "/proc/version"])
    _one_line_error(r, "--stats-json", "/proc/version")
    assert "publishing" not in r.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("option", ["--stats-json", "--jsonl", "--record"])
def test_a_full_disk_is_named(option):
    r = _live(["--video", str(DEMO_VIDEO), "--fast", "--no-display", option, "/dev/full"],
              timeout=300)
    _one_line_error(r, "disk is full", option)


# ------------------------------------------------------------------ displays
def test_show_with_an_unreachable_display_is_one_line_not_an_abort(demo_copy):
    r = _live(["--video", str(demo_copy), "--show"], env={"DISPLAY": ":97",
                                                          "WAYLAND_DISPLAY": ""})
    _one_line_error(r, "--show", ":97", "--output")
    assert r.returncode == 1


# ------------------------------------------------------------------ damaged files
def test_a_truncated_video_says_how_much_was_read(tmp_path):
    full = tmp_path / "full.avi"
    assert _write_video(full, 30.0) == 150
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    r = _live(["--video", str(cut), "--fast", "--no-display",
               "--stats-json", str(tmp_path / "s.json")], timeout=300)
    assert r.returncode == 0, r.stderr
    assert "of the 150 frames its header announces" in r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["source_truncated"] is True and s["source_frames"] == 150
    assert 40 <= s["frames"] < 149


# ------------------------------------------------------------------ lag is missing ticks
def test_lagged_frames_are_missing_ticks_counted_and_never_written(tmp_path):
    """Real-time replay of a 120 fps clip: pose cannot keep up, so most frames are
    lagged. Every one is a tick (counted, in the end line and the stats), and the
    written video holds only the real pictures, at the source's frame rate."""
    import cv2

    clip = tmp_path / "fast.avi"
    n = _write_video(clip, 120.0, repeat=2)
    out = tmp_path / "annotated.avi"
    windows = ["--window", "1", "--hop", "0.25", "--min-valid", "0.05", "--jsonl", "-"]
    r = _live(["--video", str(clip), "--no-display", "--output", str(out),
               "--stats-json", str(tmp_path / "s.json"), *windows], timeout=300)
    assert r.returncode == 0, r.stderr
    fast = _live(["--video", str(clip), "--fast", "--no-display", *windows], timeout=300)
    assert fast.returncode == 0, fast.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == n  # every frame of the file is a tick
    assert s["lagged"] > n // 4  # 120 fps is beyond pose estimation on a CPU
    assert s["no_image"] >= s["lagged"]
    assert s["output_frames"] == n - s["lagged"]
    assert f"{s['lagged']} lagged" in r.stderr  # the end line names them
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == s["output_frames"]
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(120.0, rel=0.01)
    means = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        means.append(image.mean())
    cap.release()
    assert len(means) == s["output_frames"] and min(means) > 5  # no black frames
    # a window's pose latency is the mean over its ticks that had a picture: lagged
    # ticks (no pose run) do not dilute it
    pose_ms = [json.loads(x)["latency_ms"]["pose"] for x in r.stdout.splitlines()]
    every_frame = [json.loads(x)["latency_ms"]["pose"] for x in fast.stdout.splitlines()]
    assert np.median(pose_ms) > 0.6 * np.median(every_frame)


def test_progress_line_on_request(tmp_path):
    """--progress on a file whose stderr is no terminal: one line redrawn (carriage
    returns, never new lines), ending at the file's length with the windows classified."""
    r = subprocess.run([*LIVE, "--bind", "tcp://127.0.0.1:*", "--video", str(DEMO_VIDEO),
                        "--fast", "--no-display", "--progress", "--stats-json",
                        str(tmp_path / "s.json")], capture_output=True, timeout=300)
    err = r.stderr.decode()  # as bytes: text mode would turn carriage returns into new lines
    assert r.returncode == 0, err
    published = json.loads((tmp_path / "s.json").read_text())["published"]
    lines = err.split("\n")
    line = next(x for x in lines if "\r" in x)
    last = line.split("\r")[-1]
    assert "100%" in last and f"sports2d_demo: 5.0/5.0 s, {published} windows, " in last
    assert sum("\r" in x for x in lines) == 1  # the one line


def test_address_in_use():
    holder = zmq.Context.instance().socket(zmq.PUB)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        r = _live(["--video", str(DEMO_VIDEO), "--bind", f"tcp://127.0.0.1:{port}"])
    finally:
        holder.close(linger=0)
    _one_line_error(r, "already in use", "--bind")


def test_keygen_writes_usable_keys(tmp_path):
    r = subprocess.run([*LIVE, "keygen", str(tmp_path / "keys")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert names == ["client.key", "client.key_secret", "server.key", "server.key_secret"]
    again = subprocess.run([*LIVE, "keygen", str(tmp_path / "keys")], capture_output=True,
                           text=True, timeout=30)
    _one_line_error(again, "already exist")


def test_cuda_asked_for_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    r = _live(["--video", str(DEMO_VIDEO), "--device", "cuda"])
    _one_line_error(r, "CUDA", "--device cpu")  # the flag, not a Python argument


def test_a_wildcard_port_is_logged_as_the_port_bound():
    r = _live(["--video", str(DEMO_VIDEO), "--fast", "--no-display", "--max-seconds", "1"],
              timeout=300)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if "publishing label." in x)
    port = int(line.split("tcp://127.0.0.1:")[1].split(";")[0])
    assert 0 < port < 65536


def test_native_messages_are_kept_in_a_file_while_the_terminal_keeps_ours(tmp_path):
    """What native code writes on descriptor 2 during a run goes to a log file (so a
    crash leaves a trace), Python's own stderr stays on the terminal."""
    code = (
        "import logging, os, sys\n"
        "from finetec_live.live.native import NativeLog\n"
        "logging.basicConfig(level=logging.INFO)\n"
        f"n = NativeLog({str(tmp_path / 'native.log')!r}).start()\n"
        "os.write(2, b'native chatter\\n')\n"
        "logging.getLogger('x').info('ours')\n"
        "print('python stderr', file=sys.stderr)\n"
        "sys.stderr.flush()\n"
        "os.abort()\n")  # a native crash: stop() never runs
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "ours" in r.stderr and "python stderr" in r.stderr
    assert "native chatter" not in r.stderr
    assert "Fatal Python error" in r.stderr  # faulthandler on the terminal
    assert "native chatter" in (tmp_path / "native.log").read_text()

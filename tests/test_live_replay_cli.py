"""``finetec-live --keypoints`` end to end on recordings with hostile times: each
run ends quickly, as a gap (status 0) or one ``error:`` line (status 1), with a
number of windows bounded by the recorded data, never a flood or a traceback."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from finetec_live.live.recording import RECORD_FORMAT, RECORD_VERSION

LIVE = [sys.executable, "-m", "finetec_live.cli.live"]
MODEL = (["--model", os.environ["FINETEC_LIVE_TEST_MODEL"]]
         if os.environ.get("FINETEC_LIVE_TEST_MODEL") else [])
FPS = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recording(path: Path, times: list[float]) -> Path:
    """A recording as KeypointRecorder writes it: a standing figure on every tick."""
    rng = np.random.default_rng(0)
    pack = msgpack.Packer(use_bin_type=True).pack
    out = [pack({"format": RECORD_FORMAT, "v": RECORD_VERSION, "layout": "mediapipe33",
                 "fps": FPS, "width": 320, "height": 180, "source": "synthetic"})]
    base = np.stack([np.full(33, 160.0), np.linspace(20, 170, 33)], 1)
    for i, t in enumerate(times):
        xy = (base + rng.normal(0, 2, (33, 2))).astype("<f4")
        out.append(pack({"i": i, "t": t, "gap": False, "xy": xy.tobytes(),
                         "ok": np.ones(33, np.uint8).tobytes(),
                         "vis": np.full(33, 0.9, "<f4").tobytes()}))
    path.write_bytes(b"".join(out))
    return path


def _run(path: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict, float]:
    stats = tmp_path / "stats.json"
    t0 = time.monotonic()
    args = ["--keypoints", str(path), "--fast", "--no-display", "--stats-json", str(stats),
            "--bind", f"tcp://127.0.0.1:{_free_port()}", *MODEL]
    r = subprocess.run([*LIVE, *args], capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    assert "Traceback" not in r.stderr, r.stderr
    return r, json.loads(stats.read_text()) if stats.exists() else {}, wall


TICKS = list(np.arange(120) / FPS)  # 4 s of poses


@pytest.mark.parametrize(("name", "times", "bad"), [
    ("nan", [*TICKS[:50], math.nan, *TICKS[51:]], 1),
    ("backwards", TICKS[:80] + [t - 1.0 for t in TICKS[80:]], 30),  # 1 s back, then on
    ("jump", TICKS[:60] + [t + 1e6 for t in TICKS[60:]], 0),
])
def test_hostile_times_end_as_gaps(tmp_path, name, times, bad):
    r, stats, wall = _run(_recording(tmp_path / f"{name}.fkp", times), tmp_path)
    assert r.returncode == 0, r.stderr
    assert wall < 30 and stats["stopped_by"] == "end"
    # 4 s of data, hop 0.5 s: about 4 windows classified, a few more around a gap
    # (whose missing ticks the command fills in part) -- never one per hop of the
    # jump (those hold no tick: counted, not cut)
    assert 1 <= stats["published"] + stats["dropped_windows"] <= 40
    assert stats.get("bad_ticks", bad) == bad


def test_a_recording_without_a_usable_time_is_one_error_line(tmp_path):
    r, _, wall = _run(_recording(tmp_path / "allnan.fkp", [math.nan] * 10), tmp_path)
    assert r.returncode == 1 and wall < 60
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "holds no usable frame tick" in errors[0], r.stderr

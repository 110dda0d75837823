"""A checkpoint's recommended live window is bounded like the --window option."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from finetec_live import Recognizer
from finetec_live.errors import FinetecError
from finetec_live.inference.checkpoint import load_checkpoint
from finetec_live.live.sources import DEMO_VIDEO

BAD = [dict(window_seconds=1e6), dict(window_seconds=float("nan")), dict(hop_seconds=-1.0),
       dict(hop_seconds=5.0), dict(window_seconds="long")]


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint("penn")


@pytest.mark.parametrize("change", BAD, ids=[str(c) for c in BAD])
def test_an_absurd_live_window_in_a_checkpoint_is_refused(shipped, tmp_path, change):
    path = tmp_path / "odd.pt"
    torch.save({**shipped, **change}, path)
    with pytest.raises(FinetecError, match=f"checkpoint {path} recommends a live window"):
        Recognizer.from_checkpoint(path, device="cpu")


def test_the_live_command_refuses_it_in_one_line_before_any_allocation(shipped, tmp_path):
    path = tmp_path / "huge_window.pt"
    torch.save({**shipped, "window_seconds": 1e6}, path)
    r = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--model", str(path),
                        "--video", str(DEMO_VIDEO), "--no-display", "--bind",
                        "tcp://127.0.0.1:*"], capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: checkpoint {path} recommends a live window")

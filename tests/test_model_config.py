"""A checkpoint's configuration is bounded before anything is built from it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from finetec_live.errors import FinetecError
from finetec_live.inference.recognizer import Recognizer, load_checkpoint
from finetec_live.models import LIMITS, FinetecNet, ModelConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "finetec_live" / "demo" / "sports2d_demo.mp4"
PENN = ModelConfig.from_dict(dict(load_checkpoint("penn")["config"]))

# (field, bad value, what the message must say)
BAD = [
    ("completion_bank", 10**7, r"completion_bank = 10000000 is outside the bound \[0, 8192\]"),
    ("T", 10**9, r"T = 1000000000 is outside the bound \[8, 1024\]"),
    ("T", "64", r"T must be an integer, got '64' \(str\)"),
    ("T", 64.0, r"T must be an integer, got 64.0"),
    ("num_classes", True, r"num_classes must be an integer, got True"),
    ("num_classes", 10**6, r"num_classes = 1000000 is outside the bound"),
    ("completion_bank_k", 0, r"completion_bank_k = 0 is outside the bound \[1, 256\]"),
    ("completion_hidden", 10**6, r"completion_hidden = 1000000 is outside the bound"),
    ("completion_blocks", 10**4, r"completion_blocks = 10000 is outside"),
    ("completion_attention", 100, r"completion_attention = 100 is outside"),
    ("completion_dilation_cycle", 0, r"completion_dilation_cycle = 0 is outside"),
    ("physics_hidden", 10**6, r"physics_hidden = 1000000 is outside"),
    ("temporal_kernel", 10**3, r"temporal_kernel = 1000 is outside"),
    ("channels", [64] * 100, r"channels has 100 entries, outside the bound \[1, 16\]"),
    ("channels", [32, 10**6, 64, 64], r"channels\[1\] = 1000000 is outside the bound \[1, 512\]"),
    ("channels", "32,64", r"channels must be a list of integers"),
    ("strides", [2, 2, 1, 99], r"strides\[3\] = 99 is outside the bound \[1, 4\]"),
    ("dropout", 2.0, r"dropout = 2.0 is outside the bound"),
    ("dropout", "0.2", r"dropout must be a number"),
    ("physics", "yes", r"physics must be true or false"),
    ("method", 3, r"method must be one of"),
]


def _config(**change) -> dict:
    d = PENN.to_dict()
    d.update(change)
    return d


@pytest.mark.parametrize(("name", "value", "message"), BAD,
                         ids=[f"{b[0]}={str(b[1])[:12]}" for b in BAD])
def test_every_field_is_checked_naming_field_value_and_bound(name, value, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(_config(**{name: value}))


def test_the_bounds_admit_the_shipped_models_and_their_products_are_bounded():
    for name, (lo, hi) in LIMITS.items():
        assert lo <= hi, name
    # each size within its bound, but the bank's product is ~700 M entries
    with pytest.raises(ValueError, match=r"completion_bank \* T \* joints = 8192 \* 1024 \* 13"):
        ModelConfig.from_dict(_config(completion_bank=8192, T=1024))
    with pytest.raises(ValueError, match="multiple of 4"):
        ModelConfig.from_dict(_config(completion_attention=1, completion_hidden=30))
    with pytest.raises(ValueError, match=r"unknown fields \['completion_bnak'\]"):
        ModelConfig.from_dict(_config(completion_bnak=8))


@pytest.mark.parametrize("name", ["penn", "jhmdb"])
def test_shipped_checkpoints_load_strictly_with_their_stored_extra_key(name):
    ck = load_checkpoint(name)
    # jhmdb.pt was written by an older ModelConfig with an `extra` key, dropped on load
    assert ("extra" in ck["config"]) == (name == "jhmdb")
    cfg = ModelConfig.from_dict(dict(ck["config"]))
    FinetecNet(cfg).load_state_dict(ck["state_dict"], strict=True)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def _tiny_checkpoint(path: Path, **change) -> Path:
    ck = {"format": "finetec-live/1", "state_dict": {}, "config": _config(**change),
          "layout": "penn13", "class_names": [f"c{k}" for k in range(PENN.num_classes)]}
    torch.save(ck, path)
    return path


TINY = [dict(completion_bank=10**7), dict(T=10**9), dict(T="64")]


@pytest.mark.parametrize("change", TINY, ids=[next(iter(c)) + "-" + str(c) for c in TINY])
def test_recognizer_refuses_a_tiny_checkpoint_asking_for_too_much(tmp_path, change):
    path = _tiny_checkpoint(tmp_path / "bad.pt", **change)
    assert path.stat().st_size < 10_000
    start = time.perf_counter()
    field = next(iter(change))
    with pytest.raises(FinetecError, match=f"^checkpoint {path} does not fit .*{field}"):
        Recognizer.from_checkpoint(path, device="cpu")
    assert time.perf_counter() - start < 1.0


_PEAK = """
import resource, subprocess, sys
with open(sys.argv[1], "w") as fh:
    code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=fh).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.slow
@pytest.mark.parametrize("change", TINY, ids=[next(iter(c)) + "-" + str(c) for c in TINY])
def test_live_cli_refuses_it_with_one_error_line_quickly_and_small(tmp_path, change):
    path = _tiny_checkpoint(tmp_path / "bad.pt", **change)
    err = tmp_path / "stderr.txt"
    start = time.perf_counter()
    # measured from a small parent: a child forked from this (large) test process would
    # count the parent's resident memory at the fork in its own peak
    r = subprocess.run([sys.executable, "-c", _PEAK, str(err), sys.executable, "-m",
                        "finetec_live.cli.live", "--model", str(path), "--video", str(DEMO),
                        "--no-display"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    elapsed = time.perf_counter() - start
    code, peak_kb = map(int, r.stdout.split())
    lines = err.read_text().strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert next(iter(change)) in lines[0]
    assert elapsed < 30.0  # torch's import is most of it; building the model would be minutes
    assert peak_kb < 1_500_000  # kB: torch and NumPy, nothing of the asked 66 GB

"""The network as ONNX: the export reproduces PyTorch on real windows, onnxruntime runs
it behind the same Recognizer, and a file of another checkpoint is refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from finetec_live.errors import FinetecError
from finetec_live.inference.onnx_network import (
    TOLERANCE,
    OnnxNetwork,
    check_against,
    export_onnx,
    max_differences,
)
from finetec_live.inference.recognizer import Recognizer
from finetec_live.models.completion import doubling_max
from finetec_live.serve.simulate import penn_windows


@pytest.mark.parametrize("T", [1, 2, 7, 64, 65])
def test_the_doubling_scan_is_cummax(T):
    a = torch.from_numpy(np.random.default_rng(T).integers(-5, 90, (3, T, 4)))
    assert torch.equal(doubling_max(a), a.cummax(dim=1).values)
    assert torch.equal(-doubling_max(-a.flip(1)).flip(1), a.flip(1).cummin(1).values.flip(1))


@pytest.fixture(scope="module")
def penn():
    return Recognizer.from_checkpoint()


@pytest.fixture(scope="module")
def exported(penn, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "penn.onnx"
    assert export_onnx(penn, path) == ("logits", "features", "completed")
    return path


def _batch(rec, windows):
    return rec.prepare_groups([(w.positions[None], w.frame_valid[None], w.joint_valid[None],
                                w.timestamps[None]) for w in windows])


def test_export_matches_pytorch_on_real_windows(penn, exported, data_root):
    windows, _ = penn_windows(96, root=data_root, seed=3)
    batch = _batch(penn, windows)
    assert (batch.mask == 0).any()  # real missing joints are in these windows
    net = OnnxNetwork(exported)
    diffs = max_differences(penn, net, batch)
    assert set(diffs) == {"logits", "features", "completed"}
    assert max(diffs.values()) <= TOLERANCE, diffs
    # the batch axis is free: one window gives what it gives inside the batch
    one = net(*(a[5:6] for a in batch.network_inputs()))
    many = net(*batch.network_inputs())
    np.testing.assert_allclose(one["logits"][0], many["logits"][5], atol=1e-5)


def test_recognizer_on_onnxruntime_gives_the_same_decisions(exported, data_root):
    windows, _ = penn_windows(64, root=data_root, seed=4)
    torch_rec, ort_rec = Recognizer.from_checkpoint(), Recognizer.from_checkpoint()
    diffs = ort_rec.use_onnx(exported, threads=1)
    assert ort_rec.backend == "onnxruntime" and max(diffs.values()) <= TOLERANCE
    a, b = _batch(torch_rec, windows), _batch(ort_rec, windows)
    pa, pb = torch_rec.predict(a), ort_rec.predict(b)
    np.testing.assert_allclose(pa, pb, atol=1e-5)
    assert [d.label for d in torch_rec.decide(pa, a)] == [d.label for d in ort_rec.decide(pb, b)]
    np.testing.assert_allclose(a.features, b.features, atol=1e-4)  # the open set reads them


def test_default_export_is_cached_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FINETEC_CACHE", str(tmp_path))
    rec = Recognizer.from_checkpoint()
    rec.use_onnx()
    path = tmp_path / "onnx" / f"{rec.model_id}.onnx"
    assert path.is_file() and rec.onnx.path == path
    stamp = path.stat().st_mtime_ns
    Recognizer.from_checkpoint().use_onnx()
    assert path.stat().st_mtime_ns == stamp  # reused, checked, not written again
    path.write_bytes(b"stale")  # a cache another version left, or damaged: made again
    Recognizer.from_checkpoint().use_onnx()
    assert path.stat().st_size > 100_000


def test_an_export_of_other_weights_or_another_layout_is_refused(penn, tmp_path):
    other = Recognizer.from_checkpoint()
    with torch.no_grad():
        next(other.model.parameters()).add_(0.05)
    export_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(FinetecError, match="differs from penn"):
        check_against(penn, OnnxNetwork(tmp_path / "other.onnx"))
    jhmdb = Recognizer.from_checkpoint("jhmdb")
    export_onnx(jhmdb, tmp_path / "jhmdb.onnx")
    with pytest.raises(FinetecError, match="does not run on penn"):
        penn.use_onnx(tmp_path / "jhmdb.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not a model")
    with pytest.raises(FinetecError, match="not a network onnxruntime can run"):
        OnnxNetwork(tmp_path / "junk.onnx")
    with pytest.raises(FinetecError, match="not found"):
        penn.use_onnx(tmp_path / "absent.onnx")
    assert penn.onnx is None  # nothing was swapped in


def test_finetec_export_reports_the_difference_and_refuses_a_bad_path(tmp_path, data_root):
    out = subprocess.run([sys.executable, "-m", "finetec_live.cli.export", "penn", "--onnx",
                          str(tmp_path / "p.onnx"), "--windows", "32", "--data",
                          str(data_root)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "32 windows of penn's test clips: largest difference logits" in out.stderr
    assert (tmp_path / "p.onnx").stat().st_size > 100_000
    bad = subprocess.run([sys.executable, "-m", "finetec_live.cli.export", "penn", "--onnx",
                          str(tmp_path / "no" / "such" / "p.onnx")],
                         capture_output=True, text=True, timeout=300)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and lines[-1].startswith("error: cannot write"), bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_finetec_live_on_onnxruntime_gives_the_labels_of_torch(tmp_path, monkeypatch):
    import json

    from finetec_live.live.sources import DEMO_VIDEO

    monkeypatch.setenv("FINETEC_CACHE", str(tmp_path / "cache"))
    got = {}
    for backend in ("torch", "onnxruntime"):
        out = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--video",
                              str(DEMO_VIDEO), "--fast", "--no-display", "--jsonl", "-",
                              "--bind", "tcp://127.0.0.1:*", "--backend", backend,
                              "--log-level", "WARNING"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        got[backend] = [json.loads(line) for line in out.stdout.splitlines()]
    a, b = got["torch"], got["onnxruntime"]
    assert len(a) == len(b) > 3
    assert [(m["seq"], m["label"]) for m in a] == [(m["seq"], m["label"]) for m in b]
    assert max(abs(m["score"] - n["score"]) for m, n in zip(a, b, strict=True)) < 1e-4


@pytest.mark.parametrize("argv, says", [
    (["--onnx", "x.onnx"], "--backend onnxruntime"),
    (["--serve", "tcp://127.0.0.1:5999", "--backend", "onnxruntime"], "--serve"),
    (["--backend", "onnxruntime", "--onnx", "/nonexistent/x.onnx"], "not found")])
def test_finetec_live_refuses_backend_misuse_in_one_line(argv, says):
    from finetec_live.live.sources import DEMO_VIDEO

    out = subprocess.run([sys.executable, "-m", "finetec_live.cli.live", "--video",
                          str(DEMO_VIDEO), "--no-display", "--bind", "tcp://127.0.0.1:*",
                          *argv], capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and says in lines[-1] and "Traceback" not in out.stderr, out.stderr

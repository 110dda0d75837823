"""CUDA path: CPU/CUDA agreement, bf16 autocast, CUDA graphs. Skipped without a CUDA device.

Run with ``pytest -m gpu`` (``tools/gpu_check.sh`` does, on a machine with a GPU).
Windows are real Penn Action test clips when the data is there, otherwise
moving synthetic skeletons (the agreement checks hold for any input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "weights" / "penn.pt"


@pytest.fixture(scope="module")
def bench():
    from finetec_live.inference import speed

    return speed


@pytest.fixture(scope="module")
def windows():
    """``(positions (N, T, 13, 2), frame_valid, joint_valid, timestamps)`` with gaps."""
    from finetec_live.data.corruption import Corruption, protocol_rng
    from finetec_live.inference.preprocess import resample

    n, T = 96, 64
    try:
        from finetec_live.data import load_penn_action

        clips = list(load_penn_action().test())[::11][:n]
        rows = [resample(c.positions, c.frame_valid, c.joint_valid, c.timestamps(), T)
                for c in clips]
        pos, fv, jv, ts = (np.stack([r[k] for r in rows]) for k in range(4))
    except Exception:  # no data on this machine
        rng = np.random.default_rng(0)
        base = rng.uniform(100, 300, size=(n, 1, 13, 2))
        pos = (base + np.cumsum(rng.normal(0, 3, size=(n, T, 13, 2)), axis=1)).astype(np.float32)
        jv = rng.random((n, T, 13)) > 0.05
        fv = np.ones((n, T), bool)
        ts = np.broadcast_to(np.arange(T) / 30.0, (n, T)).copy()
    fv = fv.copy()
    for i in range(len(fv)):  # a third of the windows with 60% bursts missing
        if i % 3 == 0:
            spec = Corruption.parse("burst:0.6:3")
            fv[i] &= spec.frame_mask(T, protocol_rng(0, i, spec))
    jv = jv & fv[..., None]
    pos = np.where(jv[..., None], pos, 0.0).astype(np.float32)
    return pos, fv, jv, ts


def _recognizer(device: str):
    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.models import FinetecNet, ModelConfig

    if SHIPPED.is_file():
        return Recognizer.from_checkpoint(str(SHIPPED), device=device)
    torch.manual_seed(0)
    cfg = ModelConfig(num_classes=15)
    model = FinetecNet(cfg).eval()
    return Recognizer(model.to(device), cfg, "penn13", [f"c{k}" for k in range(15)],
                      device=device)


@pytest.fixture
def no_tf32():
    """Full fp32 on CUDA for the agreement checks (TF32 convolutions differ at ~1e-3)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_classify_and_complete_agree_between_cpu_and_cuda(windows, no_tf32):
    cpu, gpu = _recognizer("cpu"), _recognizer("cuda")
    assert gpu.device == "cuda" and next(gpu.model.parameters()).is_cuda
    p_cpu, p_gpu = cpu.classify(*windows), gpu.classify(*windows)
    assert p_gpu.shape == p_cpu.shape and p_gpu.dtype == np.float32
    np.testing.assert_allclose(p_gpu, p_cpu, atol=1e-4)
    assert (p_gpu.argmax(1) == p_cpu.argmax(1)).mean() >= 0.98  # ties may flip
    c_cpu, c_gpu = cpu.complete(*windows), gpu.complete(*windows)
    scale = np.abs(windows[0]).max()
    np.testing.assert_allclose(c_gpu, c_cpu, atol=1e-4 * scale)


def test_cuda_batch_equals_one_by_one(windows, no_tf32):
    gpu = _recognizer("cuda")
    batched = gpu.classify(*windows)
    single = np.concatenate([gpu.classify(*(a[i:i + 1] for a in windows)) for i in range(8)])
    np.testing.assert_allclose(batched[:8], single, atol=1e-4)


def test_bf16_autocast_close_to_fp32(bench, windows):
    gpu = _recognizer("cuda")
    batch = gpu.prepare(*windows)
    inputs = [torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in batch.network_inputs()]
    fp32 = torch.softmax(bench.eager_forward(gpu.model, "cuda", False)(*inputs).float(), -1)
    bf16 = torch.softmax(bench.eager_forward(gpu.model, "cuda", True)(*inputs).float(), -1)
    assert torch.isfinite(bf16).all()
    assert (bf16 - fp32).abs().max().item() < 0.05
    assert (bf16.argmax(1) == fp32.argmax(1)).float().mean().item() >= 0.95


@pytest.mark.parametrize("bf16", [False, True])
def test_cuda_graph_replay_equals_eager(bench, windows, bf16, no_tf32):
    gpu = _recognizer("cuda")
    batch = gpu.prepare(*windows)
    inputs = [torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in batch.network_inputs()]
    eager = bench.eager_forward(gpu.model, "cuda", bf16)
    first = [x[:1] for x in inputs]
    graph = bench.cuda_graph_forward(gpu.model, first, bf16)
    atol = 2e-2 if bf16 else 1e-4
    for i in (0, 1, 5):  # new inputs each replay: the captured buffers are refilled
        x = [t[i:i + 1] for t in inputs]
        got = graph(*x).float().clone()
        torch.testing.assert_close(got, eager(*x).float(), atol=atol, rtol=0)
    assert not torch.equal(graph(*[t[1:2] for t in inputs]).clone(),
                           graph(*[t[5:6] for t in inputs]).clone())


def test_bench_gpu_runs_and_reports(bench, windows):
    recs = {"ours": _recognizer("cuda"), "stgcn": bench.stgcn_baseline(15, device="cuda")}
    w = bench.penn_window()
    res = bench.bench_gpu(recs, w, repeats=5, batches=(1, 64))
    for name in recs:
        for mode in ("fp32", "bf16", "graph-fp32", "graph-bf16"):
            r = res[name]["modes"][mode]["1"]
            assert "ms" in r and r["ms"] > 0, (name, mode, r)
    assert "batch 1" in bench.gpu_table(res)


def test_recognizer_cuda_graphs_and_bf16_agree_with_eager(windows):
    from finetec_live import Recognizer

    pos, fv, jv, ts = windows
    eager = Recognizer.from_checkpoint(SHIPPED, device="cuda", cuda_graphs=False)
    graphs = Recognizer.from_checkpoint(SHIPPED, device="cuda", cuda_graphs=True)
    bf16 = Recognizer.from_checkpoint(SHIPPED, device="cuda", precision="bf16")
    ref = eager.classify(pos[:1], fv[:1], jv[:1], ts[:1])
    for _ in range(3):  # first call captures, the next ones replay
        got = graphs.classify(pos[:1], fv[:1], jv[:1], ts[:1])
        np.testing.assert_allclose(got, ref, atol=1e-4)
    assert graphs.cuda_graphs and len(graphs._graphs) == 1
    full = eager.classify(pos, fv, jv, ts)
    half = bf16.classify(pos, fv, jv, ts)
    assert (full.argmax(1) == half.argmax(1)).mean() >= 0.95

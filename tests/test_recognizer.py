"""Recognizer: checkpoint round trip, clear errors, invariance to units and gap contents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finetec_live import Recognizer
from finetec_live.data import load_penn_action
from finetec_live.errors import FinetecError
from finetec_live.inference.prepare import prepare_windows
from finetec_live.inference.preprocess import resample
from finetec_live.inference.recognizer import CHECKPOINT_FORMAT, resolve_checkpoint
from finetec_live.models import FinetecNet, ModelConfig

SMALL = {"channels": (16, 24), "strides": (2, 1), "completion_hidden": 32, "physics_hidden": 8}


def _checkpoint(tmp_path, method="finetec", layout="penn13", name="model.pt", seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(num_classes=15, layout=layout, method=method, **SMALL)
    model = FinetecNet(cfg)
    model.set_prior(torch.randn(cfg.T, model.V, 2) * 0.1)
    # give the batch norms non-trivial statistics so that eval differs from init
    model.train()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(8, cfg.T, model.V, 2, generator=g)
        model(x, torch.ones(8, cfg.T, model.V), x, torch.ones(8, model.V),
              torch.zeros(8, cfg.T, model.V, 4))
    ck = {"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(),
          "config": cfg.to_dict(), "layout": layout,
          "class_names": [f"c{i}" for i in range(15)], "dataset": "penn",
          "normalization": {"fill": cfg.fill}, "prior": model.completion.prior.clone()
          if model.completion is not None else torch.zeros(cfg.T, model.V, 2),
          "window_seconds": 2.5, "hop_seconds": 0.5, "command": "test", "train_seconds": 0.0,
          "epoch": 1}
    path = tmp_path / name
    torch.save(ck, path)
    return path, model.eval()


@pytest.fixture(scope="module")
def penn_clips():
    cs = load_penn_action()
    test = cs.test()
    return [test[i] for i in range(0, len(test), 107)][:8]


def _clip_window(clip, T=None):
    T = T or clip.num_frames
    pos = clip.positions[:T][None].copy()
    jv = clip.joint_valid[:T][None].copy()
    return pos, np.ones((1, T), bool), jv


def test_round_trip_matches_the_network(tmp_path, penn_clips):
    path, model = _checkpoint(tmp_path)
    rec = Recognizer.from_checkpoint(path, device="cpu")
    assert rec.layout == "penn13" and rec.T == 64 and rec.device == "cpu"
    assert rec.class_names == [f"c{i}" for i in range(15)]
    assert rec.uses_completion and rec.window_seconds == 2.5 and rec.hop_seconds == 0.5
    assert rec.model_id.startswith("penn-finetec-") and len(rec.model_id.split("-")[-1]) == 8
    pos, fv, jv = _clip_window(penn_clips[0])
    batch = rec.prepare(pos, fv, jv)
    probs = rec.predict(batch)
    assert probs.shape == (1, 15) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    with torch.no_grad():
        logits = model(*[torch.from_numpy(a) for a in batch.network_inputs()])["logits"]
    assert np.allclose(probs, torch.softmax(logits, -1).numpy(), atol=1e-6)
    assert np.allclose(rec.classify(pos, fv, jv), probs)


@pytest.mark.parametrize("method", ["finetec", "stgcn-zero", "stgcn-interp"])
def test_invariant_to_units_and_missing_contents(tmp_path, penn_clips, method):
    path, _ = _checkpoint(tmp_path, method=method)
    rec = Recognizer.from_checkpoint(path, device="cpu")
    clip = penn_clips[1]
    pos, fv, jv = _clip_window(clip)
    T = pos.shape[1]
    rng = np.random.default_rng(0)
    fv[0, rng.choice(T, size=T // 2, replace=False)] = False
    ts = (np.arange(T) / 30.0)[None]
    ref = rec.classify(pos, fv, jv, ts)
    # units: normalised image coordinates instead of pixels, and a shifted origin
    assert np.allclose(rec.classify(pos / 480.0, fv, jv, ts), ref, atol=1e-4)
    assert np.allclose(rec.classify(pos * 3.0 + 100.0, fv, jv, ts), ref, atol=1e-4)
    # whatever the missing frames hold
    for fill in (np.nan, 0.0, 1e6):
        bad = pos.copy()
        bad[~fv] = fill
        assert np.allclose(rec.classify(bad, fv, jv, ts), ref, atol=1e-5), fill
    garbage = pos.copy()
    garbage[~fv] = rng.normal(size=garbage[~fv].shape) * 1e4
    assert np.allclose(rec.classify(garbage, fv, jv, ts), ref, atol=1e-5)


def test_complete_returns_callers_frames_and_units(tmp_path, penn_clips):
    path, _ = _checkpoint(tmp_path)
    rec = Recognizer.from_checkpoint(path, device="cpu")
    pos, fv, jv = _clip_window(penn_clips[2])
    T = pos.shape[1]
    fv[0, T // 4: T // 2] = False
    bad = pos.copy()
    bad[~fv] = np.nan
    out = rec.complete(bad, fv, jv)
    assert out.shape == pos.shape and np.isfinite(out).all()
    obs = fv[..., None] & jv
    assert np.array_equal(out[obs], pos[obs])  # observed joints come back unchanged
    # the completed gap lies in the body's range, in pixels
    lo, hi = pos[obs].min(0) - 50, pos[obs].max(0) + 50
    gap = out[0, T // 4: T // 2]
    assert (gap >= lo).all() and (gap <= hi).all()
    # units follow the caller
    out2 = rec.complete(bad / 480.0, fv, jv)
    assert np.allclose(out2 * 480.0, out, atol=1e-2)
    # one window without the leading N
    assert rec.complete(bad[0], fv[0], jv[0]).shape == pos.shape[1:]


def test_all_missing_window_gives_finite_output(tmp_path):
    path, _ = _checkpoint(tmp_path)
    rec = Recognizer.from_checkpoint(path, device="cpu")
    pos = np.full((2, 20, 13, 2), np.nan, np.float32)
    fv = np.zeros((2, 20), bool)
    probs = rec.classify(pos, fv)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.isfinite(rec.complete(pos, fv)).all()


def test_clear_errors(tmp_path):
    path, _ = _checkpoint(tmp_path)
    with pytest.raises(FinetecError, match="not found"):
        Recognizer.from_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FinetecError, match="cannot read"):
        Recognizer.from_checkpoint(corrupt)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(FinetecError, match="not a finetec-live checkpoint"):
        Recognizer.from_checkpoint(other)
    with pytest.raises(FinetecError, match="layout penn13, not jhmdb15"):
        Recognizer.from_checkpoint(path, layout="jhmdb15")
    jpath, _ = _checkpoint(tmp_path, layout="jhmdb15", name="j.pt")
    rec = Recognizer.from_checkpoint(jpath, device="cpu")
    assert rec.layout == "jhmdb15"
    with pytest.raises(FinetecError, match="layout jhmdb15"):
        rec.classify(np.zeros((1, 30, 13, 2)), np.ones((1, 30), bool))
    with pytest.raises(FinetecError, match="at least 8 frames"):
        rec.classify(np.zeros((1, 5, 15, 2)), np.ones((1, 5), bool))
    # a state dict that does not fit the configuration
    ck = torch.load(path, weights_only=True)
    ck["config"]["channels"] = [8, 8]
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    with pytest.raises(FinetecError, match="does not fit"):
        Recognizer.from_checkpoint(bad)
    if not torch.cuda.is_available():
        with pytest.raises(FinetecError, match="CUDA"):
            Recognizer.from_checkpoint(path, device="cuda")


def test_named_weights_resolve():
    assert resolve_checkpoint(None).name == "penn.pt"
    assert resolve_checkpoint("jhmdb").name == "jhmdb.pt"
    assert resolve_checkpoint("x/y.pt").as_posix() == "x/y.pt"


def test_prepare_windows_fill_modes(penn_clips):
    best = max(penn_clips, key=lambda c: c.joint_valid.mean())  # kinematics need the root
    pos, fv, jv = _clip_window(best)
    fv[0, 5:15] = False
    z = prepare_windows(pos, fv, jv, None, T=64, layout="penn13", fill="zeros")
    i = prepare_windows(pos, fv, jv, None, T=64, layout="penn13", fill="interp")
    missing = z.mask == 0
    assert np.all(z.x[missing] == 0)
    assert np.allclose(i.x, i.interp) and np.abs(i.x[missing]).sum() > 0
    assert z.dynamic.shape == (1, 13) and set(np.unique(z.dynamic)) <= {0.0, 1.0}
    assert np.isfinite(z.kin).all() and z.kin[..., 3].mean() > 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_cuda_agree(tmp_path, penn_clips):
    path, _ = _checkpoint(tmp_path)
    cpu = Recognizer.from_checkpoint(path, device="cpu")
    gpu = Recognizer.from_checkpoint(path, device="cuda")
    assert gpu.device == "cuda"
    pos, fv, jv = _clip_window(penn_clips[4])
    assert np.allclose(cpu.classify(pos, fv, jv), gpu.classify(pos, fv, jv), atol=1e-4)


@pytest.mark.parametrize("name,loader", [("penn", "penn"), ("jhmdb", "jhmdb")])
def test_shipped_weights_recognise_real_test_clips(name, loader):
    from finetec_live.data import load_jhmdb

    path = resolve_checkpoint(name)
    if name == "jhmdb" and not path.exists():
        pytest.skip("J-HMDB weights not shipped yet")
    rec = Recognizer.from_checkpoint(name, device="cpu")
    cs = load_penn_action() if loader == "penn" else load_jhmdb()
    assert rec.class_names == list(cs.class_names)
    assert rec.layout == cs.layout and rec.T == 64 and rec.uses_completion
    test = cs.test()
    clips = [test[i] for i in range(0, len(test), max(1, len(test) // 40))]
    # every clip resampled whole to 64 frames (as the evaluation does), one batch
    wins = [resample(c.positions, np.ones(c.num_frames, bool), c.joint_valid,
                     np.arange(c.num_frames) / c.fps, 64) for c in clips]
    pos = np.stack([w[0] for w in wins])
    jv = np.stack([w[2] for w in wins])
    ts = np.stack([w[3] for w in wins])
    labels = np.array([c.label for c in clips])
    fv = np.ones(pos.shape[:2], bool)
    right = int((rec.classify(pos, fv, jv, ts).argmax(1) == labels).sum())
    # a 60 % hole in the middle, holding garbage
    fv[:, 13:51] = False
    pos[~fv] = np.random.default_rng(0).normal(size=pos[~fv].shape) * 1e3
    right_burst = int((rec.classify(pos, fv, jv, ts).argmax(1) == labels).sum())
    floor = 0.9 if name == "penn" else 0.6
    assert right / len(clips) >= floor, (right, len(clips))
    assert right_burst / len(clips) >= floor - 0.1, (right_burst, len(clips))


def test_batched_kernels_leave_torch_thread_count_alone():
    # Numba's OpenMP layer sets the shared OpenMP thread count; prepare undoes it
    import torch

    from finetec_live.inference.prepare import SERIAL_KERNELS_UP_TO, prepare_windows

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        n = SERIAL_KERNELS_UP_TO + 8
        rng = np.random.default_rng(0)
        pos = rng.normal(size=(n, 64, 13, 2)).astype(np.float32)
        prepare_windows(pos, np.ones((n, 64), bool), None, None, T=64, layout="penn13")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_precision_is_checked_and_bf16_on_the_cpu_keeps_the_labels():
    from finetec_live import Recognizer
    from finetec_live.inference.recognizer import bf16_is_native

    with pytest.raises(FinetecError, match="precision"):
        Recognizer.from_checkpoint(precision="fp16", device="cpu")
    fp32 = Recognizer.from_checkpoint(device="cpu")
    bf16 = Recognizer.from_checkpoint(precision="bf16", cuda_graphs=True, device="cpu")
    auto = Recognizer.from_checkpoint(precision="auto", device="cpu")
    assert bf16.device == "cpu" and not bf16.cuda_graphs and fp32.precision == "fp32"
    assert auto.precision == ("bf16" if bf16_is_native("cpu") else "fp32")
    test = load_penn_action().test()
    clips = [test[i] for i in range(0, len(test), len(test) // 48)][:48]
    wins = [resample(c.positions, np.ones(c.num_frames, bool), c.joint_valid,
                     np.arange(c.num_frames) / c.fps, 64) for c in clips]
    pos, jv, ts = (np.stack([w[k] for w in wins]) for k in (0, 2, 3))
    fv = np.ones(pos.shape[:2], bool)
    fv[::3, 20:40] = False  # some windows with a hole
    a = fp32.classify(pos, fv, jv, ts)
    b = bf16.classify(pos, fv, jv, ts)
    assert b.dtype == np.float32 and np.allclose(b.sum(1), 1.0, atol=1e-5)
    assert not np.array_equal(a, b)  # bf16 arithmetic did run
    assert np.abs(a - b).max() < 0.05 and (a.argmax(1) == b.argmax(1)).mean() >= 0.97
    same = [x == y for x, y in zip(bf16.label(pos, fv, jv, ts), fp32.label(pos, fv, jv, ts),
                                   strict=True)]
    assert np.mean(same) >= 0.97


def test_classify_and_complete_is_one_forward_pass(tmp_path, penn_clips):
    path, _ = _checkpoint(tmp_path)
    rec = Recognizer.from_checkpoint(path, device="cpu")
    pos, fv, jv = _clip_window(penn_clips[3])
    T = pos.shape[1]
    fv[0, T // 3: T // 2] = False
    ts = (np.arange(T) / 25.0)[None]  # not the model's grid: completion is mapped back
    calls = []
    hook = rec.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        probs, done = rec.classify_and_complete(pos, fv, jv, ts)
        assert len(calls) == 1
        batch = rec.prepare(pos, fv, jv, ts)
        p2, grid = rec.predict(batch, with_completion=True)
        assert len(calls) == 2 and grid.shape == (1, rec.T, 13, 2)
    finally:
        hook.remove()
    np.testing.assert_allclose(probs, rec.classify(pos, fv, jv, ts), atol=1e-6)
    np.testing.assert_allclose(done, rec.complete(pos, fv, jv, ts), atol=1e-5)
    np.testing.assert_allclose(p2, probs, atol=1e-6)
    np.testing.assert_allclose(rec.to_caller_frames(grid, batch, pos, fv, jv, ts), done,
                               atol=1e-5)
    # one window without the leading N, as complete() takes it
    _, one = rec.classify_and_complete(pos[0], fv[0], jv[0], ts[0])
    assert one.shape == pos.shape[1:]


def test_map_to_frames_interpolates_in_time_and_keeps_observed():
    from finetec_live.inference.recognizer import map_to_frames

    grid = np.array([[0.0, 1.0, 2.0]])
    comp = np.array([0.0, 10.0, 20.0], np.float32).reshape(1, 3, 1, 1).repeat(2, -1)
    ts = np.array([[0.5, 1.5, 2.0, 9.0]])
    pos = np.full((1, 4, 1, 2), -1.0, np.float32)
    observed = np.array([False, False, True, False]).reshape(1, 4, 1)
    out = map_to_frames(comp, grid, ts, pos, observed)
    assert out[0, :, 0, 0].tolist() == [5.0, 15.0, -1.0, 20.0]  # held past the grid's end
    held = map_to_frames(comp[:, :1], np.zeros((1, 1)), ts, pos, np.zeros((1, 4, 1), bool))
    assert (held == 0).all()  # a grid of one instant is held


def test_error_reasons_are_cut_at_a_word_with_an_ellipsis():
    from finetec_live.inference.checkpoint import short_reason

    e = RuntimeError("Error(s) in loading state_dict for FinetecNet: " + "size mismatch " * 30)
    msg = short_reason(e, 60)
    assert len(msg) <= 61 and msg.endswith("…") and msg[:-1].endswith(("size", "mismatch"))
    assert short_reason(ValueError("short")) == "short"
    assert short_reason(KeyError()) == "KeyError"
    long_word = short_reason(ValueError("x" * 300), 50)
    assert long_word == "x" * 50 + "…"  # no space to cut at: cut at the limit


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_cuda_without_a_gpu_names_flag_and_argument(tmp_path):
    path, _ = _checkpoint(tmp_path)
    with pytest.raises(FinetecError, match=r"--device cpu \(device='cpu'\)"):
        Recognizer.from_checkpoint(path, device="cuda")


def test_stages_read_old_and_new_checkpoints():
    from finetec_live.inference.checkpoint import checkpoint_stages, load_checkpoint

    old = {"command": "python tools/train.py --refit-completion D.pt",
           "base_command": "python tools/train.py --resume C.pt",
           "stages": [{"command": "train.py --dataset penn", "seconds": 1.0},
                      {"command": "python tools/train.py --resume C.pt", "seconds": 2.0}]}
    got = [s["command"] for s in checkpoint_stages(old)]
    assert got == ["train.py --dataset penn", "python tools/train.py --resume C.pt",
                   "python tools/train.py --refit-completion D.pt"]
    assert [s["command"] for s in checkpoint_stages({"command": "x"})] == ["x"]
    shipped = [s["command"] for s in checkpoint_stages(load_checkpoint("penn"))]
    assert len(shipped) == 9 and "--completion-bank 1024" in shipped[4]
    assert "--real-videos" in shipped[6] and "tools/calibrate.py" in shipped[7]
    assert "tools/calibrate.py" in shipped[8]  # the hold, nothing trained
    assert len(checkpoint_stages(load_checkpoint("jhmdb"))) == 3


def test_mirror_batch_is_the_prepared_mirror_image_and_mirror_average_its_mean():
    from finetec_live.inference.prepare import mirror_batch
    from finetec_live.skeleton.layouts import get_layout

    rec = Recognizer.from_checkpoint(device="cpu")
    test = load_penn_action().test()
    clips = [c for c in (test[i] for i in range(0, len(test), 60)) if c.num_frames >= 60]
    pos = np.stack([np.asarray(c.positions[:60], np.float32) for c in clips])
    jv = np.stack([np.asarray(c.joint_valid[:60], bool) for c in clips])
    fv = jv.any(2)
    fv[::2, 10:30] = False  # gaps, so the fills and the kernels' validity matter
    ts = np.broadcast_to(np.arange(60) / 30.0, fv.shape).copy()
    perm = get_layout("penn13").flip_permutation()
    mpos = pos[:, :, perm] * np.array([-1.0, 1.0], np.float32)
    batch = rec.prepare(pos, fv, jv, ts)
    want = rec.prepare(mpos, fv, jv[:, :, perm], ts)
    got = mirror_batch(batch, "penn13")
    for name in ("x", "mask", "interp", "dynamic", "kin", "centre", "scale", "motion"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-5,
                                   err_msg=name)
    assert np.abs(batch.kin[..., 2]).max() > 0  # the force's sign was really checked
    plain, mirrored = rec.classify(pos, fv, jv, ts), rec.classify(mpos, fv, jv[:, :, perm], ts)
    assert not np.allclose(plain, mirrored, atol=1e-3)
    feats = []
    for p, j in ((pos, jv), (mpos, jv[:, :, perm])):
        b = rec.prepare(p, fv, j, ts)
        rec.predict(b)
        feats.append(b.features)
    _, done_plain = rec.classify_and_complete(pos, fv, jv, ts)
    rec.mirror_average = True
    both = rec.predict(b := rec.prepare(pos, fv, jv, ts))
    np.testing.assert_allclose(both, (plain + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(b.features, (feats[0] + feats[1]) / 2, atol=1e-4)
    probs, done = rec.classify_and_complete(pos, fv, jv, ts)
    np.testing.assert_allclose(probs, both, atol=1e-5)
    np.testing.assert_allclose(done, done_plain, atol=1e-3)  # the windows' own completion

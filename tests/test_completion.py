"""Completion internals: torch gap filling, gap lengths, the prototype bank and its gate, and
the shipped completion against interpolation on real Penn clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from finetec_live import Recognizer
from finetec_live.data import load_penn_action
from finetec_live.data.corruption import Corruption
from finetec_live.inference.preprocess import interpolate_missing, normalize, resample
from finetec_live.models import FinetecNet, ModelConfig
from finetec_live.models.completion import CentroidBank, Completion, fill_gaps, gap_lengths

T, V = 24, 13


@pytest.mark.parametrize("seed", range(6))
def test_fill_gaps_is_the_numpy_interpolation(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, T, V, 2)).astype(np.float32)
    valid = rng.random((4, T, V)) > rng.uniform(0.2, 0.9)
    valid[0, :, 3] = False  # a joint never observed: 0
    valid[1, :5] = False  # a missing prefix: the first observation held
    valid[2, -7:] = False  # a missing tail: the last observation held
    want = interpolate_missing(x, np.ones((4, T), bool), valid)
    got = fill_gaps(torch.from_numpy(x), torch.from_numpy(valid)).numpy()
    assert np.allclose(got, want, atol=1e-5)


def test_gap_lengths():
    valid = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 0, 0], dtype=torch.bool).view(1, 10, 1)
    got = gap_lengths(valid)[0, :, 0].tolist()
    # inner gaps count their length; the open tail (3 frames) counts twice
    assert got == [0, 2, 2, 0, 0, 1, 0, 6, 6, 6]
    head = torch.tensor([0, 0, 1, 1], dtype=torch.bool).view(1, 4, 1)
    assert gap_lengths(head)[0, :, 0].tolist() == [4, 4, 0, 0]
    assert gap_lengths(torch.zeros(1, 4, 1, dtype=torch.bool))[0, :, 0].tolist() == [8] * 4


def test_bank_retrieves_the_matching_prototype():
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(16, T, V, 2, generator=g)
    bank = CentroidBank(16, T, V, k=1)
    bank.set(protos)
    mask = (torch.rand(3, T, V, generator=g) > 0.6).float()
    x = protos[[5, 9, 2]] * mask.unsqueeze(-1)  # prototypes 5, 9, 2 seen through a mask
    d = bank.distances(x, mask)
    assert d.shape == (3, 16)
    assert torch.equal(d.argmin(1), torch.tensor([5, 9, 2]))
    assert torch.allclose(bank(x, mask), protos[[5, 9, 2]])
    with pytest.raises(ValueError, match="prototypes of shape"):
        bank.set(torch.zeros(8, T, V, 2))


def test_bank_gate_keeps_short_gaps_and_fills_long_ones_from_the_template():
    torch.manual_seed(0)
    comp = Completion(T, V, 16, 1, "conv", bank_size=4, bank_k=1).eval()
    t = torch.linspace(0, 2 * math.pi, T)
    wave = torch.stack([torch.sin(t), torch.cos(t)], -1)  # (T, 2)
    protos = wave.view(1, T, 1, 2).expand(4, T, V, 2) * torch.tensor([1.0, 2, 3, 4]).view(
        4, 1, 1, 1)
    comp.bank.set(protos)
    truth = 3 * wave.view(1, T, 1, 2).expand(1, T, V, 2) + 0.5  # prototype 2, shifted
    mask = torch.ones(1, T, V)
    mask[:, 2] = 0  # a one-frame gap
    mask[:, 8:20] = 0  # a 12-frame gap
    x = truth * mask.unsqueeze(-1)
    interp = fill_gaps(x, mask > 0)
    with torch.no_grad():
        out = comp(x, mask, interp)
    m = mask.unsqueeze(-1)
    assert torch.equal(out * m, x * m)
    long_err = (out[:, 8:20] - truth[:, 8:20]).norm(dim=-1).mean()
    # gate ~0.9 at length 12: a tenth of the interpolation error is left
    assert long_err < 0.15 * (interp[:, 8:20] - truth[:, 8:20]).norm(dim=-1).mean()
    # the one-frame gap stays close to the interpolation (gate ~0.06 at length 1)
    assert (out[:, 2] - interp[:, 2]).norm(dim=-1).max() < 0.1


def test_model_with_bank_round_trips_its_state():
    cfg = ModelConfig(num_classes=3, T=T, channels=(8,), strides=(1,), completion_hidden=16,
                      completion_bank=6, completion_bank_k=2)
    a = FinetecNet(cfg)
    a.set_bank(torch.randn(6, T, V, 2))
    b = FinetecNet(ModelConfig.from_dict(cfg.to_dict()))
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.completion.bank.protos, a.completion.bank.protos)
    # the derived keys are rebuilt on load: both models retrieve the same template
    x, mask = torch.randn(2, T, V, 2), (torch.rand(2, T, V) > 0.5).float()
    assert torch.allclose(b.completion.bank(x, mask), a.completion.bank(x, mask))
    d = ((x.unsqueeze(1) - a.completion.bank.protos) ** 2).sum(-1)  # (2, 6, T, V)
    direct = (d * mask.unsqueeze(1)).sum((2, 3)) / mask.sum((1, 2)).unsqueeze(1)
    assert torch.allclose(b.completion.bank.distances(x, mask), direct, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="no prototype bank"):
        FinetecNet(ModelConfig(num_classes=3, T=T)).set_bank(torch.zeros(6, T, V, 2))
    with pytest.raises(ValueError, match="completion_bank"):
        ModelConfig(num_classes=3, completion_bank=-1)


def test_shipped_completion_beats_interpolation_under_long_bursts():
    rec = Recognizer.from_checkpoint(None, device="cpu")
    assert rec.model.cfg.completion_bank > 0
    test = load_penn_action().test()
    clips = [test[i] for i in range(0, len(test), 8)]  # 134 clips, every class
    burst = Corruption.parse("burst:0.6:3")
    rng = np.random.default_rng(0)
    err_model = err_lin = 0.0
    for c in clips:
        pos, fv, jv, ts = resample(c.positions, np.ones(c.num_frames, bool), c.joint_valid,
                                   np.arange(c.num_frames) / c.fps, 64)
        keep, _ = burst.masks(64, V, rng)
        missing = jv & ~keep[:, None]
        _, _, scale = normalize(pos, fv, jv, rec.layout)
        obs = np.where(keep[:, None, None], pos, 0.0)
        done = rec.complete(obs, keep, jv & keep[:, None], ts)
        lin = interpolate_missing(obs, keep, jv & keep[:, None])
        err_model += np.linalg.norm(done - pos, axis=-1)[missing].sum() / scale
        err_lin += np.linalg.norm(lin - pos, axis=-1)[missing].sum() / scale
    # the full test split measures 0.71x (docs/EVALUATION.md); the target is 0.8x
    assert err_model < 0.8 * err_lin, err_model / err_lin


@pytest.mark.parametrize("dilation, T", [(1, 64), (2, 64), (4, 64), (4, 30), (8, 13)])
def test_depthwise_temporal_is_the_dilated_convolution(dilation, T):
    """The interleaved form of a dilated depthwise convolution gives its numbers, for
    lengths that are not a multiple of the dilation too, and the same gradients."""
    import torch.nn.functional as F

    from finetec_live.models.completion import depthwise_temporal

    torch.manual_seed(dilation + T)
    conv = torch.nn.Conv1d(6, 6, 7, padding=3 * dilation, dilation=dilation, groups=6)
    x = torch.randn(3, 6, T, requires_grad=True)
    got, want = depthwise_temporal(conv, x), conv(x)
    assert got.shape == want.shape == (3, 6, T)
    assert torch.allclose(got, want, atol=1e-5)
    g1 = torch.autograd.grad(got.square().sum(), (x, conv.weight))
    g2 = torch.autograd.grad(conv(x).square().sum(), (x, conv.weight))
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    # another padding or a grouped (not depthwise) convolution: the convolution itself
    other = torch.nn.Conv1d(6, 6, 7, padding=0, dilation=dilation, groups=6)
    if T > 6 * dilation:
        assert torch.equal(depthwise_temporal(other, x), other(x))
    grouped = torch.nn.Conv1d(6, 6, 7, padding=3 * dilation, dilation=dilation, groups=3)
    assert torch.allclose(depthwise_temporal(grouped, x), F.conv1d(
        x, grouped.weight, grouped.bias, padding=3 * dilation, dilation=dilation, groups=3))

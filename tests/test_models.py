"""Contract tests for every network configuration: shapes, gradients, NaN, determinism."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from finetec_live.models import (
    FinetecNet,
    ModelConfig,
    compute_losses,
    finite_differences,
    spatial_partitions,
)
from finetec_live.skeleton.layouts import PENN13

T, V, K, N = 16, 13, 5, 3
SMALL = {"channels": (16, 24), "strides": (2, 1), "completion_hidden": 32, "physics_hidden": 8,
         "T": T}
CONFIGS = [dict(method="finetec", completion=c, decomposition=d, physics=p)
           for c, d, p in itertools.product((True, False), repeat=3)]
CONFIGS += [dict(method="finetec", completion=True, decomposition=True, physics=True,
                completion_bank=8, completion_bank_k=3)]
CONFIGS += [dict(method="stgcn-zero"), dict(method="stgcn-interp")]


def _ids(cfg):
    if cfg["method"] != "finetec":
        return cfg["method"]
    return "finetec-" + "".join(k[0] if cfg[k] else "_" for k in
                                ("completion", "decomposition", "physics")) + (
        "-bank" if cfg.get("completion_bank") else "")


def _inputs(seed=0, all_missing=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, T, V, 2, generator=g)
    mask = (torch.rand(N, T, V, generator=g) > 0.4).float()
    if all_missing:
        mask = torch.zeros(N, T, V)
    x = x * mask.unsqueeze(-1)
    interp = torch.randn(N, T, V, 2, generator=g) * (0 if all_missing else 1)
    dynamic = (torch.rand(N, V, generator=g) > 0.5).float()
    kin = torch.randn(N, T, V, 4, generator=g)
    kin[..., 3] = (kin[..., 3] > 0).float()
    return x, mask, interp, dynamic, kin


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    model = FinetecNet(ModelConfig(num_classes=K, **SMALL, **cfg))
    if cfg.get("completion_bank"):
        model.set_bank(torch.randn(cfg["completion_bank"], T, V, 2))
    return model


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_shapes_and_no_nan(cfg):
    model = _model(cfg)
    for all_missing in (False, True):
        out = model(*_inputs(all_missing=all_missing))
        assert out["logits"].shape == (N, K)
        assert out["completed"].shape == (N, T, V, 2)
        for name, t in out.items():
            assert torch.isfinite(t).all(), name
        if model.cfg.physics:
            assert out["acc_learned"].shape == out["acc_target"].shape
            assert out["acc_learned"].shape[1:] == (N, T, V, 2)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_every_parameter_gets_a_gradient(cfg):
    model = _model(cfg)
    model.train()
    x, mask, interp, dynamic, kin = _inputs()
    target = torch.randn(N, T, V, 2)
    labels = torch.tensor([0, 1, 2])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    # two steps: zero-initialised output layers pass no gradient upstream at step one
    for _ in range(2):
        opt.zero_grad()
        out = model(x, mask, interp, dynamic, kin)
        losses = compute_losses(out, labels, mask, target, torch.ones(N, T, V))
        losses["total"].backward()
        opt.step()
    opt.zero_grad()
    out = model(x, mask, interp, dynamic, kin)
    compute_losses(out, labels, mask, target, torch.ones(N, T, V))["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_eval_is_deterministic(cfg):
    model = _model(cfg).eval()
    inputs = _inputs(seed=3)
    with torch.no_grad():
        a = model(*inputs)
        b = model(*inputs)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_completion_keeps_observed_and_starts_at_interpolation():
    model = _model(dict(method="finetec")).eval()
    x, mask, interp, dynamic, kin = _inputs(seed=4)
    with torch.no_grad():
        comp = model(x, mask, interp, dynamic, kin)["completed"]
    m = mask.unsqueeze(-1)
    assert torch.equal(comp * m, x * m)  # observed entries pass through unchanged
    # zero-initialised correction: an untrained completion is the interpolation
    assert torch.allclose(comp, m * x + (1 - m) * interp, atol=1e-6)


def _backbone_input(model, inputs):
    """The fused features ``(N, T, V, C_in)`` the ST-GCN head receives."""
    seen = []
    embed = model.backbone.embed

    def spy(x):
        seen.append(x)
        return embed(x)

    model.backbone.embed = spy
    try:
        model(*inputs)
    finally:
        del model.backbone.embed  # the class's method again
    return seen[0].permute(0, 2, 3, 1)


def test_decomposition_perturbs_dynamic_and_static_streams_only_in_training():
    # no dropout: the perturbation is the only randomness of a training forward pass
    model = _model(dict(method="finetec", dropout=0.0, strong_sigma=0.08, weak_sigma=0.02))
    x, mask, interp, dynamic, kin = _inputs(seed=5)
    with torch.no_grad():
        clean = _backbone_input(model.eval(), (x, mask, interp, dynamic, kin))
        model.train()
        torch.manual_seed(0)
        noisy = _backbone_input(model, (x, mask, interp, dynamic, kin))
    # fused channels: s_base 0:2, velocity 2:4, bones 4:6, mask 6, s_dyna 7:9, s_stat 9:11
    np.testing.assert_array_equal(noisy[..., :7].numpy(), clean[..., :7].numpy())
    d = dynamic.bool()[:, None, :].expand(-1, T, -1)  # (N, T, V)
    dyn_noise = (noisy - clean)[..., 7:9]
    stat_noise = (noisy - clean)[..., 9:11]
    assert dyn_noise[d].std().item() == pytest.approx(0.08, rel=0.15)
    assert stat_noise[~d].std().item() == pytest.approx(0.02, rel=0.15)
    assert (dyn_noise[~d] == 0).all() and (stat_noise[d] == 0).all()  # gated by region
    # the same model with both sigmas at zero is deterministic in training
    quiet = _model(dict(method="finetec", dropout=0.0, strong_sigma=0.0, weak_sigma=0.0)).train()
    with torch.no_grad():
        torch.manual_seed(0)
        a = quiet(x, mask, interp, dynamic, kin)["logits"]
        torch.manual_seed(1)
        b = quiet(x, mask, interp, dynamic, kin)["logits"]
    assert torch.equal(a, b)


def test_config_round_trip_and_baselines():
    cfg = ModelConfig(num_classes=K, **SMALL)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    base = ModelConfig(num_classes=K, method="stgcn-interp")
    assert not (base.completion or base.decomposition or base.physics)
    assert base.fill == "interp" and ModelConfig(num_classes=K).fill == "zeros"
    with pytest.raises(ValueError, match="method"):
        ModelConfig(num_classes=K, method="transformer")
    with pytest.raises(ValueError, match="channels"):
        ModelConfig(num_classes=K, channels=(8, 8), strides=(1,))


def test_spatial_partitions_cover_the_graph():
    parts = spatial_partitions("penn13")
    assert parts.shape == (3, V, V)
    total = (parts > 0).sum(0)
    adj = PENN13.adjacency() + np.eye(V)
    assert np.array_equal(total > 0, adj > 0)
    assert np.allclose(np.diag(parts[0]) > 0, True)


@pytest.mark.parametrize("n,c_in,c_out,t", [(1, 3, 5, 4), (4, 7, 6, 40), (9, 16, 8, 16)])
def test_graph_conv_orders_agree(n, c_in, c_out, t):
    """Graph-first and convolution-first are the same sums, bias and learned graph
    included; forward takes each by the input's size; gradients agree too."""
    from finetec_live.models.network import GraphConv

    torch.manual_seed(0)
    g = GraphConv(c_in, c_out, spatial_partitions("penn13"))
    with torch.no_grad():
        g.B.normal_(0, 0.3)
        g.conv.bias.normal_(0, 1.0)  # a bias that differs per partition: sum_v A_k matters
    x = torch.randn(n, c_in, t, V, requires_grad=True)
    a, b = g.forward_conv_first(x), g.forward_graph_first(x)
    assert a.shape == b.shape == (n, c_out, t, V)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(a.square().sum(), (x, g.B, g.conv.weight, g.conv.bias))
    gb = torch.autograd.grad(b.square().sum(), (x, g.B, g.conv.weight, g.conv.bias))
    for u, w in zip(ga, gb, strict=True):
        # sums of hundreds of products in another order: equal to ~1e-6 of their scale
        assert float((u - w).abs().max()) <= 1e-5 * float(w.abs().max())
    big = n * t >= GraphConv.GRAPH_FIRST_FROM
    assert torch.equal(g(x), b if big else a)
    # a per-node input through a graph with only self loops is scaled by W_0 alone
    with torch.no_grad():
        g.B.zero_()
        g.A.zero_()
        g.A[0] = torch.eye(V)
    y = g.forward_graph_first(x)
    w0 = g.conv.weight[:c_out, :, 0, 0]
    expect = torch.einsum("oc,nctv->notv", w0, x) + g.conv.bias[:c_out].view(1, -1, 1, 1)
    assert torch.allclose(y, expect, atol=1e-5)


def test_graph_conv_orders_agree_under_bf16_autocast_and_onnx_takes_graph_first(tmp_path,
                                                                                  monkeypatch):
    from finetec_live.models.network import GraphConv

    torch.manual_seed(1)
    g = GraphConv(8, 16, spatial_partitions("penn13")).eval()
    x = torch.randn(4, 8, 32, V)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = g.forward_conv_first(x), g.forward_graph_first(x)
    assert a.dtype == b.dtype == torch.bfloat16
    assert (a.float() - b.float()).abs().max() < 0.05 * a.float().abs().max()
    taken = []
    real = GraphConv.forward_graph_first

    def spy(self, x):
        taken.append(x.shape[0] * x.shape[2])
        return real(self, x)

    monkeypatch.setattr(GraphConv, "forward_graph_first", spy)
    with warnings.catch_warnings():  # a batch of one: graph-first only while exporting
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(g, (torch.randn(1, 8, 8, V),), str(tmp_path / "g.onnx"),
                          dynamo=False, opset_version=17)
    assert taken and max(taken) < GraphConv.GRAPH_FIRST_FROM


def test_input_normalisation_in_eval_is_the_batch_norm_over_joints_and_channels():
    """Eval mode's affine map on (N, C, T, V) equals ST-GCN's BatchNorm1d over (N, V*C, T)
    with the same running statistics; training mode is that batch norm itself."""
    from finetec_live.models.network import STGCN

    torch.manual_seed(3)
    c = 5
    net = STGCN(c, 4, "penn13", (8,), (1,), kernel=3)
    bn = net.data_bn
    with torch.no_grad():
        bn.running_mean.normal_(0, 2.0)
        bn.running_var.uniform_(0.1, 4.0)
        bn.weight.normal_(1.0, 0.5)
        bn.bias.normal_(0, 1.0)
    x = torch.randn(3, c, 11, V)
    net.eval()
    flat = x.permute(0, 3, 1, 2).reshape(3, V * c, 11)  # channel v * C + c, as ST-GCN's
    expect = bn(flat).view(3, V, c, 11).permute(0, 2, 3, 1)
    got = net.normalise_input(x)
    assert got.shape == x.shape and got.is_contiguous()
    assert torch.allclose(got, expect, atol=1e-5, rtol=1e-5)
    net.train()
    before = bn.running_mean.clone()
    assert torch.allclose(net.normalise_input(x), bn.train()(flat).view(3, V, c, 11)
                          .permute(0, 2, 3, 1), atol=1e-5)
    assert not torch.equal(bn.running_mean, before)  # statistics still updated in training


def test_per_frame_dynamics_is_the_euler_lagrange_form_of_its_mlp():
    """The learned acceleration is M_hat * tau_hat - C_hat * velocity - g_hat, with M_hat =
    softplus of the MLP's first two outputs, read from the MLP applied per joint and frame
    to (position, velocity, the body's mean position and velocity)."""
    from finetec_live.models.network import PerFrameDynamics

    torch.manual_seed(4)
    dyn = PerFrameDynamics(6).eval()
    s, vel = torch.randn(2, 9, V, 2), torch.randn(2, 9, V, 2)
    got = dyn(s, vel)
    assert got.shape == (2, 9, V, 2)
    glob = torch.cat([s.mean(2), vel.mean(2)], -1)  # (N, T, 4)
    feats = torch.cat([s, vel, glob[:, :, None].expand(-1, -1, V, -1)], -1)  # (N, T, V, 8)
    h = feats
    for layer in dyn.net:  # the 1x1 convolutions as matrices over the last axis
        h = (h @ layer.weight[:, :, 0, 0].t() + layer.bias if isinstance(layer, torch.nn.Conv2d)
             else layer(h))
    expect = (torch.nn.functional.softplus(h[..., 0:2]) * h[..., 2:4] - h[..., 4:6] * vel
              - h[..., 6:8])
    assert torch.allclose(got, expect, atol=1e-5, rtol=1e-5)


def test_finite_differences_of_a_parabola():
    t = torch.arange(10, dtype=torch.float32)
    s = (0.5 * 3.0 * t**2).view(1, 10, 1, 1).expand(1, 10, 2, 2)
    vel, acc = finite_differences(s)
    assert torch.allclose(acc[:, 1:-1], torch.full_like(acc[:, 1:-1], 3.0))
    assert torch.allclose(vel[:, 1:-1, 0, 0], 3.0 * t[1:-1])


def test_linear_mixing_and_legacy_configs():
    model = _model(dict(method="finetec", completion_mixing="linear"))
    out = model(*_inputs())
    assert out["completed"].shape == (N, T, V, 2)
    legacy = ModelConfig(num_classes=K, **SMALL).to_dict()
    del legacy["completion_mixing"], legacy["interp"]
    cfg = ModelConfig.from_dict(legacy)  # checkpoints from before these options
    assert cfg.completion_mixing == "linear" and cfg.interp == "linear"
    assert ModelConfig(num_classes=K).interp == "akima"
    assert ModelConfig(num_classes=K, method="stgcn-zero").interp == "linear"
    with pytest.raises(ValueError, match="interp"):
        ModelConfig(num_classes=K, interp="cubic")


def test_completion_attention_and_dilation_cycle():
    legacy = ModelConfig(num_classes=K, **SMALL).to_dict()
    del legacy["completion_attention"], legacy["completion_dilation_cycle"]
    cfg = ModelConfig.from_dict(legacy)  # checkpoints from before these options
    assert cfg.completion_attention == 0 and cfg.completion_dilation_cycle == 3
    model = _model(dict(method="finetec", completion_blocks=4, completion_dilation_cycle=4,
                        completion_attention=1)).eval()
    dil = [blk.mix_t[0].dilation[0] for blk in model.completion.blocks]
    assert dil == [1, 2, 4, 8]
    for all_missing in (False, True):
        x, mask, interp, dynamic, kin = _inputs(seed=6, all_missing=all_missing)
        with torch.no_grad():
            comp = model(x, mask, interp, dynamic, kin)["completed"]
        assert torch.isfinite(comp).all()
        # attention's output projection starts at zero: still the interpolation untrained
        m = mask.unsqueeze(-1)
        assert torch.allclose(comp, m * x + (1 - m) * interp, atol=1e-6)
    with pytest.raises(ValueError, match="completion_attention"):
        ModelConfig(num_classes=K, completion_attention=-1)

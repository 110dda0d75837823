"""FineTec networks: context-aware completion, decomposition, physics, fusion, ST-GCN.

"Physics" here is a learned per-frame acceleration estimate
(:class:`PerFrameDynamics`) trained towards the kinematics kernel's windowed
fit; the kernel's generalised forces enter as input features.

One module, :class:`FinetecNet`, built from a :class:`ModelConfig`. Every part
can be switched off for ablation, and the two baselines (a standard ST-GCN fed
zero-filled or linearly interpolated windows) are the same code with every
part off. ``forward`` maps tensors to tensors; the losses are in
:func:`compute_losses`; nothing here reads files.

Inputs (from :func:`finetec_live.inference.prepare.prepare_windows`, all float32):

- ``x (N, T, V, 2)``: normalised positions; missing entries are 0 (or the
  linear interpolation for the ``stgcn-interp`` baseline).
- ``mask (N, T, V)``: 1 where the joint was observed.
- ``interp (N, T, V, 2)``: the interpolation of the gaps completion starts from
  (``ModelConfig.interp``: Akima or linear; edges held).
- ``dynamic (N, V)``: 1 for joints in a region the motion kernel called dynamic.
- ``kin (N, T, V, 4)``: the kinematics kernel's fitted acceleration (2, in
  body units per grid step^2), generalised force tau (1) and validity (1);
  zeros where the kernel could not fit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finetec_live.skeleton.layouts import get_layout

from .completion import Completion
from .config import ModelConfig


# --------------------------------------------------------------------------- graph
def spatial_partitions(layout_name: str) -> np.ndarray:
    """ST-GCN's three spatial partitions ``(3, V, V)``: self, towards the root, away from it.

    Each partition is normalised by the degree of the full graph (with self
    loops), ``D^-1/2 A D^-1/2``.
    """
    layout = get_layout(layout_name)
    V = layout.num_joints
    depth = layout.depths()
    adj = layout.adjacency() + np.eye(V, dtype=np.float32)
    deg = adj.sum(1)
    dn = 1.0 / np.sqrt(deg)
    parts = np.zeros((3, V, V), dtype=np.float32)
    for i in range(V):
        for j in range(V):
            if adj[i, j] == 0:
                continue
            if i == j:
                k = 0
            elif depth[j] < depth[i] or (depth[j] == depth[i] and j < i):
                k = 1
            else:
                k = 2
            parts[k, i, j] = dn[i] * adj[i, j] * dn[j]
    return parts


def per_frame(b: torch.Tensor, T: int) -> torch.Tensor:
    """``b (C, V)`` repeated over ``T`` frames, ``(C, T, V)`` and contiguous.

    Adding it to an ``(N, C, T, V)`` tensor broadcasts over the batch only. A ``(C, 1, V)``
    operand, broadcast over frames too, leaves the elementwise loop an innermost run of
    ``V`` (13) values: on a CPU that add took several times as long (most in bf16), and
    was the network's biggest cost after its matrix products and convolutions."""
    return b.unsqueeze(1).expand(-1, T, -1).contiguous()


class GraphConv(nn.Module):
    """Spatial graph convolution over the layout's partitions, with a learned residual graph.

    ``y[n, c', t, w] = sum_k sum_v A_k[w, v] (W_k x[n, :, t, v] + b_k)[c']`` with
    ``A_k = A + B`` per partition. Two orders of the same sums (tests compare them):
    :meth:`forward_conv_first` (1x1 convolution, then the graph as an ``einsum``, which
    permutes the convolution's output) for small inputs, and :meth:`forward_graph_first`
    (the graph as one matrix product on the contiguous joint axis, then the K partitions'
    weights as one convolution of kernel and stride ``(K, 1)``: no permuted copy) for
    batches, where it is faster on a CPU (1.1-1.6x the network's windows/s in fp32 at
    batches of 64-128 on two cores, about 1.0x at 32: ``tools/bench_graphconv.py``).
    """

    #: ``N * T`` from which :meth:`forward` takes the graph-first order.
    GRAPH_FIRST_FROM = 128

    def __init__(self, c_in: int, c_out: int, parts: np.ndarray) -> None:
        super().__init__()
        K, V, _ = parts.shape
        self.K = K
        self.register_buffer("A", torch.from_numpy(parts))  # (K, V, V)
        self.B = nn.Parameter(torch.zeros(K, V, V))  # learned correction of the graph
        self.conv = nn.Conv2d(c_in, c_out * K, 1)  # output channel k * C' + c': W_k, b_k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, T, V) -> (N, C', T, V)
        if torch.onnx.is_in_onnx_export() or x.shape[0] * x.shape[2] >= self.GRAPH_FIRST_FROM:
            return self.forward_graph_first(x)
        return self.forward_conv_first(x)

    def forward_conv_first(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, T, V) -> (N, C', T, V)
        N, _, T, V = x.shape
        y = self.conv(x).view(N, self.K, -1, T, V)  # (N, K, C', T, V)
        A = self.A + self.B  # (K, W, V)
        return torch.einsum("nkctv,kwv->nctw", y, A)  # (N, C', T, V)

    def forward_graph_first(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, T, V) -> (N, C', T, V)
        N, C, T, V = x.shape
        K = self.K
        A = self.A + self.B  # (K, W, V)
        # xg[n, c, t, k * V + w] = sum_v x[n, c, t, v] A_k[w, v]: per window one
        # (C T, V) @ (V, K W), a batched product (on a CPU as fast as one (N C T, V) product
        # in bf16, up to 1.6x as fast in fp32, where that shape suits the BLAS poorly)
        G = A.permute(2, 0, 1).reshape(V, K * V)  # (V, K*W)
        xg = torch.bmm(x.reshape(N, C * T, V), G.expand(N, -1, -1).to(x.dtype))
        xg = xg.view(N, C, T, K * V)  # (N, C, T, K*W)
        c_out = self.conv.out_channels // K
        # the K partitions' weights as the kernel rows of one convolution over (T*K, W):
        # weight[c', c, k, 0] = W_k[c', c]; stride K visits each frame's K rows once
        weight = self.conv.weight.view(K, c_out, C, 1).permute(1, 2, 0, 3)  # (C', C, K, 1)
        y = F.conv2d(xg.view(N, C, T * K, V), weight.to(xg.dtype), None, stride=(K, 1))
        # the bias passes through the graph: sum_k b_k[c'] sum_v A_k[w, v]
        bias = (A.sum(2).t() @ self.conv.bias.view(K, c_out)).t()  # (C', W)
        return y + per_frame(bias, T).to(y.dtype)  # (N, C', T, W)


class STGCNBlock(nn.Module):
    """Graph conv -> BN -> ReLU -> temporal conv (stride) -> BN, with a residual."""

    def __init__(self, c_in: int, c_out: int, parts: np.ndarray, stride: int = 1,
                 kernel: int = 9, dropout: float = 0.0, residual: bool = True) -> None:
        super().__init__()
        self.gcn = GraphConv(c_in, c_out, parts)
        self.bn1 = nn.BatchNorm2d(c_out)
        pad = (kernel - 1) // 2
        self.tcn = nn.Conv2d(c_out, c_out, (kernel, 1), (stride, 1), (pad, 0))
        self.bn2 = nn.BatchNorm2d(c_out)
        self.drop = nn.Dropout(dropout)
        if not residual:
            self.res = None
        elif c_in == c_out and stride == 1:
            self.res = nn.Identity()
        else:
            self.res = nn.Sequential(nn.Conv2d(c_in, c_out, 1, (stride, 1)), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, T, V) -> (N, C', T/stride, V)
        y = F.relu(self.bn1(self.gcn(x)))
        y = self.bn2(self.tcn(self.drop(y)))
        if self.res is not None:
            y = y + self.res(x)
        return F.relu(y)


class STGCN(nn.Module):
    """A compact ST-GCN classifier over ``(N, C, T, V)`` features."""

    def __init__(self, c_in: int, num_classes: int, layout: str, channels, strides,
                 kernel: int = 9, dropout: float = 0.2) -> None:
        super().__init__()
        V = get_layout(layout).num_joints
        parts = spatial_partitions(layout)
        self.data_bn = nn.BatchNorm1d(c_in * V)
        blocks, c = [], c_in
        for i, (co, s) in enumerate(zip(channels, strides, strict=True)):
            blocks.append(STGCNBlock(c, co, parts, s, kernel, dropout if i > 0 else 0.0,
                                     residual=i > 0))
            c = co
        self.blocks = nn.ModuleList(blocks)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def normalise_input(self, x: torch.Tensor) -> torch.Tensor:
        """``data_bn``, one normalisation per (joint, channel), on ``x (N, C, T, V)``.

        While training, ST-GCN's batch norm over ``(N, V*C, T)`` (it updates the running
        statistics); in eval mode the same affine map, ``x * scale[c, v] + shift[c, v]``,
        applied in place of layout: no permuted copies (tests compare the two).
        """
        N, C, T, V = x.shape
        bn = self.data_bn
        if self.training or not bn.track_running_stats or bn.running_var is None:
            y = bn(x.permute(0, 3, 1, 2).reshape(N, V * C, T))  # (N, V*C, T)
            return y.view(N, V, C, T).permute(0, 2, 3, 1)  # (N, C, T, V)
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (V*C,), channel v*C + c
        shift = bn.bias - bn.running_mean * scale
        # (C, T, V) operands: see per_frame
        return torch.addcmul(per_frame(shift.view(V, C).t(), T), x,
                             per_frame(scale.view(V, C).t(), T))  # (N, C, T, V)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, T, V) -> pooled features (N, C'), what the classification layer reads
        x = self.normalise_input(x)
        for blk in self.blocks:
            x = blk(x)
        return x.mean(dim=(2, 3))  # (N, C')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, T, V) -> logits (N, K)
        return self.fc(self.drop(self.embed(x)))


# --------------------------------------------------------------------------- physics
def finite_differences(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity and acceleration ``(N, T, V, C)`` per frame (central, edges replicated)."""
    p = torch.cat([s[:, :1], s, s[:, -1:]], dim=1)  # (N, T+2, V, C)
    vel = 0.5 * (p[:, 2:] - p[:, :-2])
    acc = p[:, 2:] - 2 * p[:, 1:-1] + p[:, :-2]
    return vel, acc


class PerFrameDynamics(nn.Module):
    """An unconstrained per-frame acceleration estimate shaped like Euler–Lagrange.

    ``S_dd = M_hat * tau_hat - C_hat * S_d - g_hat``, with M_hat (positive,
    diagonal), tau_hat, C_hat (diagonal) and g_hat all predicted by a small
    pointwise MLP per joint and frame from local (the joint's position and
    velocity) and global (the body's mean position and velocity) features.
    Nothing ties the four terms to a mass, a force or gravity: it is a learned
    estimate of each frame's acceleration, pulled towards the kinematics
    kernel's fit (and finite differences) by the physics loss.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(8, hidden, 1), nn.GELU(), nn.Conv2d(hidden, hidden, 1),
                                 nn.GELU(), nn.Conv2d(hidden, 8, 1))

    def forward(self, s: torch.Tensor, vel: torch.Tensor) -> torch.Tensor:
        # s, vel: (N, T, V, 2) -> learned acceleration (N, T, V, 2), a permuted view of a
        # contiguous (N, 2, T, V)
        V = s.shape[2]
        glob = torch.cat([s.mean(2, keepdim=True), vel.mean(2, keepdim=True)], -1)  # (N,T,1,4)
        feats = torch.cat([s, vel, glob.expand(-1, -1, V, -1)], dim=-1)  # (N, T, V, 8)
        # the 1x1 convolutions read the channels-last view (faster for 8-16 channels); the
        # terms then run on whole (N, 2, T, V) planes, not on 2-wide strided slices
        out = self.net(feats.permute(0, 3, 1, 2)).contiguous()  # (N, 8, T, V)
        m_hat = F.softplus(out[:, 0:2])  # M_hat, tau_hat, C_hat, g_hat: 2 channels each
        acc = m_hat * out[:, 2:4] - out[:, 4:6] * vel.permute(0, 3, 1, 2) - out[:, 6:8]
        return acc.permute(0, 2, 3, 1)


# --------------------------------------------------------------------------- the model
class FinetecNet(nn.Module):
    """Completion -> decomposition -> physics -> early fusion -> ST-GCN head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layout = get_layout(cfg.layout)
        V = layout.num_joints
        self.V = V
        self.register_buffer("parents", torch.as_tensor(
            [p if p >= 0 else k for k, p in enumerate(layout.parents)], dtype=torch.long))
        self.completion = (Completion(cfg.T, V, cfg.completion_hidden, cfg.completion_blocks,
                                      cfg.completion_mixing, cfg.completion_dilation_cycle,
                                      cfg.completion_attention, cfg.completion_bank,
                                      cfg.completion_bank_k)
                           if cfg.completion else None)
        # attribute name kept: the shipped weights' keys are physics.net.*
        self.physics = PerFrameDynamics(cfg.physics_hidden) if cfg.physics else None
        self.backbone = STGCN(self.in_channels, cfg.num_classes, cfg.layout, cfg.channels,
                              cfg.strides, cfg.temporal_kernel, cfg.dropout)

    @property
    def in_channels(self) -> int:
        cfg = self.cfg
        if cfg.method != "finetec":
            return 2  # standard ST-GCN: positions only
        c = 2 + 2 + 2 + 1  # S_base, velocity, bone vectors, mask
        if cfg.physics:
            c += 2 + 2 + 4  # finite-difference and learned acceleration; kernel acc, tau, valid
        if cfg.decomposition:
            c += 2 + 2 + 1  # S_dyna, S_stat, dynamic indicator
            if cfg.physics:
                c += 2 * (2 + 2)  # accelerations of S_dyna and S_stat
        return c

    def set_prior(self, prior: torch.Tensor) -> None:
        """Store the mean training sequence ``(T, V, 2)`` used by completion."""
        if self.completion is not None:
            self.completion.prior.copy_(prior.to(self.completion.prior))

    def set_bank(self, protos: torch.Tensor) -> None:
        """Set the completion's centroid bank ``(K, T, V, 2)``: k-means centroids of training
        windows (normalised units), a buffer the optimiser never touches."""
        if self.completion is None or self.completion.bank is None:
            raise ValueError("this model's completion has no prototype bank (completion_bank=0)")
        self.completion.bank.set(protos)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, interp: torch.Tensor,
                dynamic: torch.Tensor, kin: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``logits (N, K)``, ``features (N, C')`` (the pooled backbone features the
        classification layer reads), ``completed (N, T, V, 2)`` and, with physics,
        ``acc_learned``/``acc_target`` (one row per stream) for the loss."""
        cfg = self.cfg
        out: dict[str, torch.Tensor] = {}
        if cfg.method != "finetec":
            out["completed"] = x
            feats = x.permute(0, 3, 1, 2)  # (N, 2, T, V)
            out["features"] = self.backbone.embed(feats)  # (N, C')
            out["logits"] = self.backbone.fc(self.backbone.drop(out["features"]))
            return out

        # 1. completion: S_base (N, T, V, 2)
        s_base = self.completion(x, mask, interp) if self.completion is not None else x * \
            mask.unsqueeze(-1)
        out["completed"] = s_base
        streams = [s_base]
        m = mask.unsqueeze(-1)  # (N, T, V, 1)
        feats = [s_base]
        vel_b, _ = finite_differences(s_base)
        bones = s_base - s_base[:, :, self.parents]  # (N, T, V, 2)
        feats += [vel_b, bones, m]

        # 2. decomposition: region-gated streams, perturbed while training
        if cfg.decomposition:
            d = dynamic[:, None, :, None]  # (N, 1, V, 1)
            s_dyna, s_stat = d * s_base, (1 - d) * s_base
            if self.training:
                s_dyna = s_dyna + d * cfg.strong_sigma * torch.randn_like(s_dyna)
                s_stat = s_stat + (1 - d) * cfg.weak_sigma * torch.randn_like(s_stat)
            streams += [s_dyna, s_stat]
            feats += [s_dyna, s_stat, d.expand(-1, s_base.shape[1], -1, -1)]

        # 3. physics: finite differences fused with the learned per-frame estimate
        if self.physics is not None:
            S, N = len(streams), s_base.shape[0]
            stacked = torch.cat(streams, dim=0)  # (S*N, T, V, 2): one pass for all streams
            vel, acc_fd = finite_differences(stacked)
            acc_el = self.physics(stacked, vel)  # (S*N, T, V, 2)
            for i in range(S):
                feats += [acc_fd[i * N:(i + 1) * N], acc_el[i * N:(i + 1) * N]]
            acc_fd = acc_fd.detach().view(S, N, *acc_fd.shape[1:])  # (S, N, T, V, 2)
            # the base stream is tied to the kernel's windowed kinematics fit where it has one,
            # the others (and the base elsewhere) to their finite differences
            kv = kin[..., 3:4]  # (N, T, V, 1)
            target = acc_fd.clone()
            target[0] = kv * kin[..., 0:2] + (1 - kv) * acc_fd[0]
            feats.append(kin)  # (N, T, V, 4)
            out["acc_learned"] = acc_el.view(S, N, *acc_el.shape[1:])  # (S, N, T, V, 2)
            out["acc_target"] = target

        # 4. early fusion + ST-GCN head
        # (N, C_in, T, V), contiguous: concatenated on the channel axis of each part's view
        fused = torch.cat([f.permute(0, 3, 1, 2) for f in feats], dim=1)
        out["features"] = self.backbone.embed(fused)  # (N, C')
        out["logits"] = self.backbone.fc(self.backbone.drop(out["features"]))  # (N, K)
        return out


def compute_losses(out: dict[str, torch.Tensor], labels: torch.Tensor, mask: torch.Tensor,
                   target: torch.Tensor | None = None, target_valid: torch.Tensor | None = None,
                   w_completion: float = 1.0, w_physics: float = 0.1,
                   label_smoothing: float = 0.1, outlier: torch.Tensor | None = None,
                   w_outlier: float = 0.5) -> dict[str, torch.Tensor]:
    """Cross-entropy + completion (on missing entries with ground truth) + acceleration tie,
    + outlier exposure.

    ``labels (N,)``; ``mask (N, T, V)`` observed; ``target (N, T, V, 2)`` clean
    normalised positions and ``target_valid (N, T, V)`` where they exist; ``outlier (N,)``
    bool: windows of none of the classes, whose loss is the cross-entropy to the uniform
    distribution over the classes (Hendrycks et al., ICLR 2019) instead of their label's.
    """
    logits = out["logits"]  # (N, K)
    if outlier is None:
        losses = {"ce": F.cross_entropy(logits, labels, label_smoothing=label_smoothing)}
    else:
        inl = ~outlier
        losses = {"ce": F.cross_entropy(logits[inl], labels[inl],
                                        label_smoothing=label_smoothing)}
    total = losses["ce"]
    if outlier is not None and bool(outlier.any()):
        losses["outlier"] = -F.log_softmax(logits[outlier], dim=-1).mean()
        total = total + w_outlier * losses["outlier"]
    if target is not None and target_valid is not None:
        w = (1 - mask) * target_valid  # (N, T, V)
        err = F.smooth_l1_loss(out["completed"], target, reduction="none", beta=0.1).sum(-1)
        losses["completion"] = (err * w).sum() / w.sum().clamp_min(1.0)
        total = total + w_completion * losses["completion"]
    if "acc_learned" in out:
        diff = F.smooth_l1_loss(out["acc_learned"], out["acc_target"], reduction="none", beta=0.1)
        losses["physics"] = diff.mean()
        total = total + w_physics * losses["physics"]
    losses["total"] = total
    return losses

"""Context-aware completion: a centroid bank's template, the gaps' interpolation and a mixer.

A window's observed joints pick the nearest sequences of a fixed bank (the
in-context prompt of FineTec's completion: k-means centroids of training
windows, in body units, stored in a buffer and not trained); their
softmax-weighted mean, the *template*, carries the shape of the motion
through a gap. The template is anchored to the observations by interpolating
the residual ``observed - template`` across each gap, so an empty bank (or a
template equal to the truth's offset) reduces to plain interpolation. A stack
of temporal/spatial mixing blocks then predicts a correction (zero at
initialisation) on top of that fill. Observed entries always pass through.

Shapes: ``x (N, T, V, 2)`` normalised positions (zeros where missing), ``mask
(N, T, V)`` 1 where observed, ``interp (N, T, V, 2)`` the NumPy interpolation
the recognizer computed (Akima or linear).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def running_max(a: torch.Tensor) -> torch.Tensor:
    """``a.cummax(dim=1).values`` of ``a (N, T, ...)``, as a doubling scan while exporting.

    ONNX has no cumulative maximum; ``ceil(log2 T)`` maxima with a shifted copy
    give the same values, exactly (tests compare the two)."""
    if not torch.onnx.is_in_onnx_export():
        return a.cummax(dim=1).values
    return doubling_max(a)


def doubling_max(a: torch.Tensor) -> torch.Tensor:
    """The running maximum over dim 1 of ``a (N, T, ...)`` by a doubling scan: after
    the step of shift ``s``, entry ``t`` holds the maximum of ``a[t - 2s + 1 .. t]``."""
    T, step = a.shape[1], 1
    while step < T:
        a = torch.maximum(a, torch.cat([a[:, :1].expand(-1, step, *a.shape[2:]),
                                        a[:, :T - step]], dim=1))
        step *= 2
    return a


def _neighbours(valid: torch.Tensor):
    """Per entry of ``valid (N, T, V)``: the previous and next valid frame (-1 / T if none)."""
    T = valid.shape[1]
    t = torch.arange(T, device=valid.device).view(1, T, 1).expand_as(valid)
    prev = running_max(torch.where(valid, t, torch.full_like(t, -1)))  # (N, T, V)
    nxt = -running_max(torch.where(valid, -t, torch.full_like(t, -T)).flip(1)).flip(1)
    return t, prev, nxt


def fill_gaps(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Linear interpolation over time of the entries where ``valid`` is False.

    ``values (N, T, V, C)``, ``valid (N, T, V)`` bool. Before the first and
    after the last valid frame the nearest valid value is held; a joint never
    valid in the window gets 0. Valid entries are returned unchanged. The same
    rule as :func:`finetec_live.inference.preprocess.interpolate_missing`, in torch.
    """
    T, C = values.shape[1], values.shape[3]
    t, prev, nxt = _neighbours(valid)
    has_prev, has_next = prev >= 0, nxt < T
    p, q = prev.clamp(min=0), nxt.clamp(max=T - 1)
    vp = values.gather(1, p.unsqueeze(-1).expand(-1, -1, -1, C))  # (N, T, V, C)
    vq = values.gather(1, q.unsqueeze(-1).expand(-1, -1, -1, C))
    span = (q - p).clamp(min=1).to(values.dtype)
    w = ((t - p).to(values.dtype) / span).unsqueeze(-1)  # (N, T, V, 1)
    both = (has_prev & has_next).unsqueeze(-1)
    out = torch.where(both, vp + w * (vq - vp),
                      torch.where(has_prev.unsqueeze(-1), vp,
                                  torch.where(has_next.unsqueeze(-1), vq,
                                              torch.zeros_like(vp))))
    return torch.where(valid.unsqueeze(-1), values, out)


def gap_lengths(valid: torch.Tensor) -> torch.Tensor:
    """Length in frames ``(N, T, V)`` of the gap each missing entry lies in (0 where valid).

    A gap open at the window's edge (nothing observed on one side: extrapolation)
    counts twice its length; a joint never observed counts ``2 T``.
    """
    T = valid.shape[1]
    _, prev, nxt = _neighbours(valid)
    inner = (nxt - prev - 1).to(torch.float32)
    edge = torch.where(prev < 0, 2 * nxt, 2 * (T - 1 - prev)).to(torch.float32)
    length = torch.where((prev >= 0) & (nxt < T), inner, edge)
    return torch.where(valid, torch.zeros_like(length), length)


class CentroidBank(nn.Module):
    """A fixed bank of ``size`` sequences ``(T, V, 2)`` with one learned scalar.

    The sequences are a buffer, not parameters: k-means centroids of training
    windows, set once with :meth:`set` (``tools/train.py``) and never updated
    by gradient descent. A window retrieves its ``k`` nearest on its observed
    joints (mean squared distance) and mixes them with a softmax whose
    temperature ``exp(log_temp)`` is the bank's only learned number (the
    completion's gate adds two more: slope and log length). Buffer names
    (``protos``) are those of the shipped weights."""

    def __init__(self, size: int, T: int, V: int, k: int = 10) -> None:
        super().__init__()
        self.k = int(k)
        self.register_buffer("protos", torch.zeros(size, T, V, 2))  # (K, T, V, 2)
        self.log_temp = nn.Parameter(torch.zeros(()))  # temperature exp(0) = 1: near-uniform
        # derived from the prototypes, for one matrix product per query: (3 L, K), L = T V,
        # rows (p_x, p_y, |p|^2) of every entry; rebuilt by set() and after loading a state
        self.register_buffer("keys", torch.zeros(3 * T * V, size), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _: module._refresh_keys())

    def _refresh_keys(self) -> None:
        K = self.protos.shape[0]
        pf = self.protos.reshape(K, -1, 2)  # (K, L, 2)
        keys = torch.cat([pf, (pf ** 2).sum(-1, keepdim=True)], dim=-1)  # (K, L, 3)
        with torch.no_grad():
            self.keys.copy_(keys.reshape(K, -1).T)

    def set(self, protos: torch.Tensor) -> None:
        if protos.shape != self.protos.shape:
            raise ValueError(f"prototypes of shape {tuple(protos.shape)} for a bank of "
                             f"{tuple(self.protos.shape)}")
        with torch.no_grad():
            self.protos.copy_(protos.to(self.protos))
        self._refresh_keys()

    def distances(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared distance ``(N, K)`` on the observed joints (float32, autocast off:
        the expansion below cancels, and the ranking must not depend on the precision)."""
        N = x.shape[0]
        with torch.autocast(x.device.type, enabled=False):
            m = mask.reshape(N, -1).float()  # (N, L)
            xm = x.reshape(N, -1, 2).float() * m.unsqueeze(-1)  # (N, L, 2)
            # sum_l m |x - p|^2 = sum m x^2 + sum_l (-2 m x, m) . (p, |p|^2)
            q = torch.cat([-2 * xm, m.unsqueeze(-1)], dim=-1).reshape(N, -1)  # (N, 3 L)
            d = (xm ** 2).sum((1, 2)).unsqueeze(1) + q @ self.keys  # (N, K)
            return d.clamp_min(0) / m.sum(1, keepdim=True).clamp_min(1.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (N, T, V, 2) zeros where missing; mask: (N, T, V) -> template (N, T, V, 2)
        N = x.shape[0]
        d = self.distances(x, mask)  # (N, K)
        dk, idx = torch.topk(d, min(self.k, d.shape[1]), dim=1, largest=False)  # (N, k)
        w = F.softmax(-dk / self.log_temp.exp(), dim=1)  # (N, k)
        chosen = self.protos[idx]  # (N, k, T, V, 2)
        return torch.einsum("nk,nktvc->ntvc", w, chosen).reshape(N, *self.protos.shape[1:])




class TemporalAttention(nn.Module):
    """Self-attention over the frames, keys restricted to frames with an observed joint, so
    a gap can copy from anywhere in the window (e.g. the same phase one cycle earlier). A
    residual block whose output projection starts at zero (an identity when added)."""

    def __init__(self, T: int, hidden: int, heads: int = 4) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(T, hidden))  # (T, H) learned frame position
        self.norm = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, h: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        # h: (N, T, H); observed: (N, T) bool, a frame with at least one observed joint
        q = self.norm(h) + self.pos
        pad = ~observed
        pad = pad & ~pad.all(1, keepdim=True)  # a window with nothing observed attends to all
        a, _ = self.attn(q, q, q, key_padding_mask=pad, need_weights=False)
        return h + a


def depthwise_temporal(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` (depthwise, odd kernel, "same" padding, any dilation) on ``x (N, H, T)``.

    A dilated convolution is the undilated one on each of its ``dilation`` interleaved
    subsequences: ``x`` is viewed as ``(N, H, T / d, d)`` (zeros appended up to a
    multiple of ``d``, as its zero padding would read them) and convolved with a ``(k, 1)``
    kernel. The same sums; oneDNN's dilated depthwise convolution on a CPU was seen to take
    more than 10x as long at dilation 4 on some calls."""
    d, k = conv.dilation[0], conv.kernel_size[0]
    if (d == 1 or conv.padding != ((k - 1) // 2 * d,) or conv.stride != (1,)
            or conv.padding_mode != "zeros" or not conv.groups == conv.in_channels
            == conv.out_channels == x.shape[1]):
        return conv(x)
    N, H, T = x.shape
    Tp = -(-T // d) * d
    if Tp != T:
        x = F.pad(x, (0, Tp - T))
    y = F.conv2d(x.reshape(N, H, Tp // d, d), conv.weight.unsqueeze(-1), conv.bias,
                 padding=((k - 1) // 2, 0), groups=conv.groups)  # (N, H, Tp / d, d)
    return y.reshape(N, H, Tp)[..., :T]


class MixerBlock(nn.Module):
    """Temporal mixing (over frames) then spatial mixing (over joint features).

    ``mixing="linear"``: a position-specific MLP over the T frames (MLP-Mixer).
    ``mixing="conv"``: a dilated depthwise temporal convolution and a pointwise
    layer, the same rule at every frame (learns gap filling from few clips).
    """

    def __init__(self, T: int, hidden: int, mixing: str = "linear", dilation: int = 1) -> None:
        super().__init__()
        self.mixing = mixing
        self.norm_t = nn.LayerNorm(hidden)
        if mixing == "linear":
            self.mix_t = nn.Sequential(nn.Linear(T, T), nn.GELU(), nn.Linear(T, T))
        else:
            self.mix_t = nn.Sequential(
                nn.Conv1d(hidden, hidden, 7, padding=3 * dilation, dilation=dilation,
                          groups=hidden),
                nn.GELU(), nn.Conv1d(hidden, hidden, 1))
        self.norm_s = nn.LayerNorm(hidden)
        self.mix_s = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(),
                                   nn.Linear(2 * hidden, hidden))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: (N, T, H); both kinds of temporal mixing act on (N, H, T)
        ht = self.norm_t(h).transpose(1, 2)  # (N, H, T)
        if self.mixing == "conv":
            dw, act, pw = self.mix_t
            ht = pw(act(depthwise_temporal(dw, ht)))
        else:
            ht = self.mix_t(ht)
        h = h + ht.transpose(1, 2)
        return h + self.mix_s(self.norm_s(h))


class Completion(nn.Module):
    """Context-aware completion: a correction to the interpolation, blended with the
    centroid bank's template fill where gaps are long.

    Input per frame: the observed positions (zeros where missing), the mask, the
    interpolation and the prior (the mean training sequence). The mixer predicts
    a correction to the interpolation (starting at exactly 0: zero-initialised
    output layer). With a bank, each missing entry then moves towards the
    template fill by a learned gate of its gap's length,
    ``g = sigmoid(a * (log L - log L0))``: short gaps keep the interpolation,
    long ones take the motion's shape from the retrieved template. Output
    ``S_base = mask * x + (1 - mask) * prediction``.
    """

    def __init__(self, T: int, V: int, hidden: int, blocks: int, mixing: str = "linear",
                 dilation_cycle: int = 3, attention: int = 0, bank_size: int = 0,
                 bank_k: int = 10) -> None:
        super().__init__()
        self.register_buffer("prior", torch.zeros(T, V, 2))  # (T, V, 2), set from training data
        self.inp = nn.Linear(V * 7, hidden)
        # conv mixing: dilations 1, 2, 4, ... restarting every ``dilation_cycle`` blocks
        self.blocks = nn.ModuleList([MixerBlock(T, hidden, mixing,
                                                dilation=2 ** (i % dilation_cycle))
                                     for i in range(blocks)])
        self.attention = nn.ModuleList([TemporalAttention(T, hidden) for _ in range(attention)])
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, V * 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.bank = CentroidBank(bank_size, T, V, bank_k) if bank_size > 0 else None
        if self.bank is not None:
            # gate slope a and log L0: half trust in the template at 4-frame gaps at first
            self.gate = nn.Parameter(torch.tensor([2.0, math.log(4.0)]))

    def template_fill(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The bank's template plus the interpolated residual ``(N, T, V, 2)``:
        observed entries are ``x`` exactly."""
        xm = x * mask.unsqueeze(-1)
        template = self.bank(xm, mask)  # (N, T, V, 2)
        return template + fill_gaps(xm - template, mask > 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, interp: torch.Tensor) -> torch.Tensor:
        # x, interp: (N, T, V, 2); mask: (N, T, V) -> S_base (N, T, V, 2)
        N, T, V, _ = x.shape
        m = mask.unsqueeze(-1)  # (N, T, V, 1)
        prior = self.prior.unsqueeze(0).expand(N, -1, -1, -1)  # (N, T, V, 2)
        feats = torch.cat([x * m, m, interp, prior], dim=-1)  # (N, T, V, 7)
        h = self.inp(feats.reshape(N, T, V * 7))  # (N, T, H)
        for blk in self.blocks:
            h = blk(h)
        if len(self.attention):
            observed = mask.amax(-1) > 0  # (N, T)
            for att in self.attention:
                h = att(h, observed)
        corr = self.out(self.norm(h)).view(N, T, V, 2)  # (N, T, V, 2)
        pred = interp + corr
        if self.bank is not None:
            length = gap_lengths(mask > 0).clamp_min(1.0)  # (N, T, V)
            g = torch.sigmoid(self.gate[0] * (length.log() - self.gate[1])).unsqueeze(-1)
            pred = pred + g * (self.template_fill(x, mask) - pred)
        return m * x + (1 - m) * pred

"""Fitting a model to a user's classes, starting from the shipped weights.

The student is the base checkpoint's network with a new classification layer for the
user's classes: completion, decomposition, physics and the ST-GCN backbone carry over
(the completion module stays frozen, so the student completes missing frames exactly as
the base does). The new layer starts *imprinted*: each class's weight row is the mean
backbone feature of its training windows, scaled to the base layer's norms, so that the
first step is already a nearest-class-mean classifier; then the last
``FitOptions.train_blocks`` ST-GCN blocks and the new layer are fine-tuned (completion,
physics, the input batch norm and the earlier blocks stay the base's) on windows drawn by
the training
:class:`~finetec_live.learning.windows.Sampler` (live-window crops, temporal masks, tempo
and pose-estimator augmentation), with windows of other actions, when there are any,
trained towards the uniform distribution (outlier exposure) so that ``unknown`` can be
calibrated afterwards.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

log = logging.getLogger(__name__)

HEAD = ("backbone.fc.weight", "backbone.fc.bias")


@dataclass
class FitOptions:
    """How the student is fine-tuned (``finetec-train --help`` names them)."""

    steps: int = 500
    batch_size: int = 32
    lr: float = 1e-3
    head_lr: float = 3e-3
    weight_decay: float = 5e-4
    outlier_share: float = 0.25
    outlier_weight: float = 0.5
    crop_prob: float = 0.9
    mask_prob: float = 0.85
    native_prob: float = 0.15
    tempo_prob: float = 0.3
    estimator_prob: float = 0.3
    outlier_estimator_prob: float = 0.8  # the other actions are mostly annotated poses
    train_blocks: int | None = 2  # fine-tune only the last N ST-GCN blocks (None: all)
    seed: int = 0


def student(base: dict, class_names) -> tuple[torch.nn.Module, object]:
    """The base checkpoint's network with a fresh classification layer for
    ``class_names``: ``(model, config)``."""
    from finetec_live.models import FinetecNet, ModelConfig

    cfg = ModelConfig.from_dict({**base["config"], "num_classes": len(class_names)})
    model = FinetecNet(cfg)
    carried = {k: v for k, v in base["state_dict"].items() if k not in HEAD}
    missing, unexpected = model.load_state_dict(carried, strict=False)
    if set(missing) != set(HEAD) or unexpected:
        raise RuntimeError(f"base weights do not fit the student: missing {missing}, "
                           f"unexpected {unexpected}")
    return model, cfg


def _batch_tensors(cfg, layout, tb, device):
    from finetec_live.learning.refine import to_tensors
    from finetec_live.learning.windows import make_batch

    batch, target, tvalid = make_batch(cfg, layout, tb)
    return to_tensors(batch.network_inputs(), device), to_tensors((target, tvalid), device)


@torch.no_grad()
def features(model, cfg, layout, sampler, idx, device, chunk: int = 64) -> np.ndarray:
    """Backbone features ``(N, C)`` (the classification layer's input) of one augmented
    window of each clip in ``idx``, the model in evaluation mode."""
    grabbed = []
    was = model.training
    model.eval()
    try:
        for s in range(0, len(idx), chunk):
            inputs, _ = _batch_tensors(cfg, layout, sampler.batch(idx[s:s + chunk]), device)
            grabbed.append(model(*inputs)["features"])
    finally:
        model.train(was)
    return torch.cat(grabbed).cpu().numpy()


def imprint(model, feats: np.ndarray, labels: np.ndarray, base_weight: torch.Tensor) -> None:
    """Class-mean features as the new layer's rows, at the base layer's mean row norm,
    with biases that centre the logits."""
    k = model.backbone.fc.weight.shape[0]
    means = np.stack([feats[labels == c].mean(0) for c in range(k)])  # (K, C)
    centred = means - means.mean(0, keepdims=True)
    norm = float(base_weight.norm(dim=1).mean())
    rows = centred / np.linalg.norm(centred, axis=1, keepdims=True).clip(1e-6) * norm
    w = torch.from_numpy(rows.astype(np.float32))
    b = -(w @ torch.from_numpy(means.mean(0).astype(np.float32)))
    model.backbone.fc.weight.data.copy_(w.to(model.backbone.fc.weight))
    model.backbone.fc.bias.data.copy_(b.to(model.backbone.fc.bias))


def fit(model, cfg, layout: str, sampler, outliers, opts: FitOptions, device: str,
        progress: bool = True) -> list[dict]:
    """Fine-tune ``model`` for ``opts.steps`` steps on ``sampler``'s windows (plus
    ``outliers``' towards the uniform distribution, when given); completion frozen. Returns
    the mean losses and accuracy of every 50 steps."""
    from finetec_live.models import compute_losses

    frozen = [model.completion] if model.completion is not None else []
    if opts.train_blocks is not None:
        blocks = model.backbone.blocks
        frozen += [model.backbone.data_bn, *blocks[:max(0, len(blocks) - opts.train_blocks)]]
        frozen += [model.physics] if model.physics is not None else []
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    head = [p for n, p in model.named_parameters() if n in HEAD]
    body = [p for n, p in model.named_parameters() if n not in HEAD and p.requires_grad]
    opt = torch.optim.AdamW([{"params": body, "lr": opts.lr, "base": opts.lr},
                             {"params": head, "lr": opts.head_lr, "base": opts.head_lr}],
                            weight_decay=opts.weight_decay)
    n_clips = len(sampler.clips)
    rng = np.random.default_rng([opts.seed, 7])
    warm = max(1, opts.steps // 20)
    history, sums, t0 = [], {}, time.time()
    model.train()
    for m in frozen:  # frozen batch norms keep their statistics
        m.eval()
    bar = tqdm(range(opts.steps), desc="training", unit="step", disable=not progress,
               file=sys.stderr)
    for step in bar:
        idx = rng.integers(n_clips, size=opts.batch_size)
        tb = sampler.batch(idx)
        n_out = 0
        if outliers is not None:
            from finetec_live.learning.windows import join_batches

            n_out = max(2, round(opts.outlier_share * opts.batch_size))
            tb = join_batches(tb, outliers.batch(rng.integers(len(outliers.clips), size=n_out)))
        inputs, (_tgt, _tv) = _batch_tensors(cfg, layout, tb, device)
        lab = torch.from_numpy(tb.labels).to(device)
        is_out = torch.zeros(len(lab), dtype=torch.bool, device=device)
        if n_out:
            is_out[-n_out:] = True
        scale = min(1.0, (step + 1) / warm) * (
            0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * step / max(1, opts.steps))))
        for g in opt.param_groups:
            g["lr"] = g["base"] * scale
        out = model(*inputs)
        losses = compute_losses(out, lab, inputs[1], None, None,
                                outlier=is_out if n_out else None,
                                w_outlier=opts.outlier_weight)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        inl = ~is_out
        acc = float((out["logits"][inl].argmax(-1) == lab[inl]).float().mean())
        for k, v in {**{k: float(v.detach()) for k, v in losses.items()}, "acc": acc}.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{float(losses['total'].detach()):.3f}", acc=f"{acc:.2f}")
        if (step + 1) % 50 == 0 or step + 1 == opts.steps:
            n = (step % 50) + 1
            history.append({"step": step + 1, "seconds": round(time.time() - t0, 1),
                            **{k: round(v / n, 4) for k, v in sums.items()}})
            log.info("step %d: %s", step + 1, history[-1])
            sums = {}
    model.eval()
    return history

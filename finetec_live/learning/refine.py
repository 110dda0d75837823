"""Completion-only training: the completion module fitted on reconstruction, the rest of the
model frozen; and the centroid bank's k-means start. Used by the completion refit
(:mod:`finetec_live.learning.refit`) and by ``--refine-epochs`` after joint training."""

from __future__ import annotations

import logging
import math
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from finetec_live.inference.preprocess import interpolate_missing
from finetec_live.learning.validation import BURST60
from finetec_live.learning.windows import (
    Sampler,
    initial_prototypes,
    make_batch,
    prototype_windows,
)

log = logging.getLogger(__name__)


def to_tensors(arrays, device) -> list[torch.Tensor]:
    """NumPy arrays -> contiguous tensors on ``device``."""
    return [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]


def euclidean_completion_loss(completed, target, mask, target_valid):
    """Mean Euclidean distance on the missing joints that have ground truth."""
    w = (1 - mask) * target_valid  # (N, T, V)
    dist = torch.sqrt(((completed - target) ** 2).sum(-1) + 1e-6)  # (N, T, V)
    return (dist * w).sum() / w.sum().clamp_min(1.0)


def init_bank(model, cfg, clips, layout, opts) -> None:
    """Put k-means centroids of the training windows in the completion's centroid bank."""
    t0 = time.time()
    windows, clip_index = prototype_windows(clips, cfg.T, layout,
                                            np.random.default_rng([opts.seed, 77]),
                                            opts.bank_crops, tuple(opts.crop_seconds))
    protos = initial_prototypes(windows, clip_index, cfg.completion_bank, opts.seed)
    model.set_bank(torch.from_numpy(protos))
    log.info("centroid bank: %d k-means centroids of %d windows of %d training clips, each "
             "over 3 clips or more (%.0f s)", len(protos), len(windows), len(clips),
             time.time() - t0)


def _freeze_all_but_completion(model, bank_only: bool) -> list:
    trained = ("completion.bank.", "completion.gate") if bank_only else ("completion.",)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trained))
    return [p for p in model.completion.parameters() if p.requires_grad]


def _refine_step(model, cfg, layout, sampler, idx, opt, params, device) -> tuple[float, float]:
    """One optimiser step on the batch ``idx``: ``(completion loss, interpolation's)``."""
    comp = model.completion
    batch, target, tvalid = make_batch(cfg, layout, sampler.batch(idx), completion_only=True)
    x, mask, interp, tgt, tv = to_tensors((batch.x, batch.mask, batch.interp, target, tvalid),
                                          device)
    loss = euclidean_completion_loss(comp(x, mask, interp), tgt, mask, tv)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0)
    opt.step()
    with torch.no_grad():
        lin = torch.from_numpy(interpolate_missing(batch.x, batch.frame_valid, batch.mask > 0))
        base = euclidean_completion_loss(lin.to(device), tgt, mask, tv)
    return float(loss.detach()), float(base)


def refine_completion(model, cfg, layout, train_clips, opts, epochs: int, device,
                      validator=None) -> list[dict]:
    """Train the completion module alone on reconstruction (mean Euclidean error on the
    missing joints, a temporal mask on every sample), the rest of the model frozen and in
    eval mode. Returns the per-epoch history: completion against linear interpolation on
    the training windows, and with a ``validator`` (every 5 epochs and the last) the
    validation ratio under 60 % bursts (``val_burst60_ratio``)."""
    model.eval()
    model.completion.train()
    params = _freeze_all_but_completion(model, opts.bank_only)
    sampler = Sampler(train_clips, layout, cfg.T, np.random.default_rng(opts.seed),
                      crop_prob=opts.crop_prob, crop_seconds=tuple(opts.crop_seconds),
                      mask_prob=1.0, native_prob=opts.native_prob, gap_prob=opts.gap_prob)
    opt = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_clips) / opts.batch_size))
    total = steps_per_epoch * epochs
    step, history = 0, []
    for epoch in range(epochs):
        sampler.rng = np.random.default_rng([opts.seed, 1000 + epoch])
        perm = sampler.rng.permutation(len(train_clips))
        sums = np.zeros(2)
        for it in tqdm(range(steps_per_epoch), desc=f"refit {epoch + 1}/{epochs}",
                       disable=opts.quiet, leave=False, file=sys.stderr):
            idx = perm[it * opts.batch_size:(it + 1) * opts.batch_size]
            if len(idx) < 2:
                continue
            for g in opt.param_groups:  # cosine schedule
                g["lr"] = opts.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))
            sums += _refine_step(model, cfg, layout, sampler, idx, opt, params, device)
            step += 1
        rec = {"epoch": epoch + 1, "completion": float(sums[0]) / steps_per_epoch,
               "interpolation": float(sums[1]) / steps_per_epoch}  # plain floats: weights_only
        rec["ratio"] = rec["completion"] / max(rec["interpolation"], 1e-9)
        if validator and (epoch + 1 == epochs or (epoch + 1) % 5 == 0):
            rec["val_burst60_ratio"] = validator.evaluate(model, device, [BURST60])[BURST60][
                "completion_ratio"]
            log.info("refit epoch %d: validation 60%% bursts ratio %.3f", epoch + 1,
                     rec["val_burst60_ratio"])
        history.append(rec)
        log.info("refit epoch %d: completion %.4f, interpolation %.4f (ratio %.3f)", epoch + 1,
                 rec["completion"], rec["interpolation"], rec["ratio"])
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return history

"""The completion refit: retrain the completion module of a trained checkpoint alone (the
rest frozen), optionally with another completion architecture (afresh, or grown by blocks)
or a new centroid bank; writes a new checkpoint with this run appended to its stages."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from finetec_live.data import load_dataset
from finetec_live.errors import FinetecError
from finetec_live.inference.checkpoint import load_checkpoint, resolve_device
from finetec_live.learning.checkpoints import atomic_save, stage_record, with_stage
from finetec_live.learning.options import TrainOptions
from finetec_live.learning.refine import init_bank, refine_completion
from finetec_live.learning.train import balanced_subset
from finetec_live.learning.validation import BURST60, Validator
from finetec_live.learning.windows import split_train_val

log = logging.getLogger(__name__)

_ARCH = ("completion_hidden", "completion_blocks", "completion_mixing",
         "completion_dilation_cycle", "completion_attention")


def grow_completion(comp, old_blocks: int) -> None:
    """Make the blocks from ``old_blocks`` on identities (their residual branches' last
    layers zeroed), so a completion grown by blocks computes what the old one did."""
    with torch.no_grad():
        for blk in comp.blocks[old_blocks:]:
            for layer in (blk.mix_t[-1], blk.mix_s[-1]):
                layer.weight.zero_()
                layer.bias.zero_()


def _can_grow(cfg, base_cfg) -> bool:
    """``cfg`` only adds blocks (and attention blocks) to ``base_cfg``'s completion, the old
    blocks' dilations unchanged."""
    return (all(getattr(cfg, f) == getattr(base_cfg, f)
                for f in ("completion_hidden", "completion_mixing"))
            and cfg.completion_blocks >= base_cfg.completion_blocks
            and cfg.completion_attention >= base_cfg.completion_attention
            and all(2 ** (i % cfg.completion_dilation_cycle)
                    == 2 ** (i % base_cfg.completion_dilation_cycle)
                    for i in range(base_cfg.completion_blocks)))


def refit_model(base: dict, opts: TrainOptions):
    """The model to refit: ``base``'s weights in the configuration ``opts`` asks for.

    Returns ``(model, cfg, changes, new_bank)``; ``changes`` says what differs from base.
    A changed completion architecture starts afresh (at the interpolation: zero output
    layer) unless grown (old blocks kept, new ones identities); the centroid bank and its
    gate load when the base has one of the same size.
    """
    from finetec_live.models import FinetecNet, ModelConfig

    base_cfg = ModelConfig.from_dict(base["config"])
    cfg = ModelConfig.from_dict({**base["config"], **opts.completion_overrides()})
    if not cfg.completion:
        raise FinetecError(f"{opts.refit_completion} has no completion module to refit")
    same = all(getattr(cfg, f) == getattr(base_cfg, f) for f in _ARCH)
    grow = not same and opts.grow_completion and _can_grow(cfg, base_cfg)
    if opts.grow_completion and not same and not grow:
        raise FinetecError("--grow-completion needs the same --completion-hidden and mixing, "
                           "no fewer blocks or attention blocks, and the old blocks' "
                           "dilations unchanged")
    model = FinetecNet(cfg)
    if grow:
        grow_completion(model.completion, base_cfg.completion_blocks)  # new attention: zero
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = {k: v for k, v in base["state_dict"].items()
             if k in shapes and shapes[k] == v.shape
             and (same or grow or not k.startswith("completion.") or k == "completion.prior")}
    model.load_state_dict(state, strict=False)
    model.set_prior(base["prior"].float())
    new_bank = bool(cfg.completion_bank) and "completion.bank.protos" not in state
    changed = {f: [getattr(base_cfg, f), getattr(cfg, f)] for f in
               (*_ARCH, "completion_bank", "completion_bank_k", "interp")
               if getattr(cfg, f) != getattr(base_cfg, f)}
    how = "grown" if grow else ("kept" if same else "new")
    what = ("the centroid bank's gate and temperature" if opts.bank_only
            else "the completion module")
    note = (f"completion refit: {what} only, {opts.epochs} epochs, architecture {how}"
            + (f", config {changed}" if changed else "")
            + (", a new bank of k-means centroids" if new_bank else ""))
    return model, cfg, note, new_bank


def refit_completion(opts: TrainOptions, command: str) -> dict:
    """Second stage: retrain the completion module of ``opts.refit_completion`` alone and
    write ``opts.out``; returns the checkpoint written."""
    torch.set_num_threads(max(1, opts.threads))
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    base = load_checkpoint(opts.refit_completion)
    model, cfg, note, new_bank = refit_model(base, opts)
    model.to(device).eval()
    clipset = load_dataset(opts.dataset, opts.data_root)
    if clipset.layout != cfg.layout or list(clipset.class_names) != list(base["class_names"]):
        raise FinetecError(f"{opts.refit_completion} was not trained on --dataset "
                           f"{opts.dataset}; pass the data set it was trained on")
    layout = clipset.layout
    train_clips = list(clipset.train())
    if opts.subset:  # the clips a training run with the same --subset used
        train_clips = balanced_subset(train_clips, opts.subset)
    train_clips, val_clips = split_train_val(train_clips, opts.val_fraction)
    validator = Validator(val_clips, layout, base["class_names"])
    record = stage_record(command, 0.0, note, opts.to_record())
    t_start = time.time()
    fit_clips = train_clips
    if new_bank and opts.bank_split:
        # the bank from one half, completion trained on the other: retrieval during the
        # refit is as good as for a clip never seen (no clip finds itself); the shipped
        # bank is then rebuilt from every training clip
        half = np.random.default_rng([opts.seed, 78]).permutation(len(train_clips))
        init_bank(model, cfg, [train_clips[i] for i in half[::2]], layout, opts)
        fit_clips = [train_clips[i] for i in half[1::2]]
    elif new_bank:
        init_bank(model, cfg, train_clips, layout, opts)
    history = refine_completion(model, cfg, layout, fit_clips, opts, opts.epochs, device,
                                validator)
    if fit_clips is not train_clips:
        init_bank(model, cfg, train_clips, layout, opts)
        if validator:
            val = validator.evaluate(model, device, [BURST60])[BURST60]
            history[-1]["val_burst60_ratio_full_bank"] = val["completion_ratio"]
    record["seconds"] = time.time() - t_start
    ck = {k: v for k, v in base.items()
          if k not in ("optimizer", "test_clean_accuracy", "base_command")}
    ck.update({
        "state_dict": {k: v.detach().cpu() for k, v in model.eval().state_dict().items()},
        "config": cfg.to_dict(), "command": command, "stages": with_stage(base, record),
        "train_seconds": float(base.get("train_seconds", 0.0)) + record["seconds"],
        "refit_seconds": record["seconds"], "refit_history": history,
        "validation": {"fraction": opts.val_fraction, "clips": len(val_clips)},
    })
    atomic_save(ck, opts.out)
    log.info("saved %s (refit %.1f min)", opts.out, record["seconds"] / 60)
    return ck

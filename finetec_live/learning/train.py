"""Joint training of a FineTec model (or an ablation, or an ST-GCN baseline) on skeleton clips.

Every training sample is a whole clip or a random crop of the durations live windows
use, augmented in space and in time (:class:`~finetec_live.learning.windows.Sampler`),
and goes through the same :func:`~finetec_live.inference.prepare.prepare_windows` as
live inference and evaluation. Choices are made on a validation split carved once from
the training split (:func:`~finetec_live.learning.windows.split_train_val`); the test
split is not touched here (``tools/evaluate.py`` scores it). A checkpoint is written
atomically after every epoch and can be resumed.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from finetec_live.data import load_dataset
from finetec_live.errors import FinetecError
from finetec_live.inference.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, resolve_device
from finetec_live.inference.prepare import G_BODY
from finetec_live.learning.checkpoints import atomic_save, stage_record, with_stage
from finetec_live.learning.options import TrainOptions
from finetec_live.learning.refine import init_bank, refine_completion, to_tensors
from finetec_live.learning.validation import BURST60, CLEAN, Validator
from finetec_live.learning.windows import (
    Sampler,
    join_batches,
    make_batch,
    mean_sequence,
    split_train_val,
)

log = logging.getLogger(__name__)

NORMALIZATION = {"centre": "mean of valid torso joints over the window",
                 "scale": "median over bones of (80th percentile length / typical relative "
                          "length)"}


def balanced_subset(clips, n: int) -> list:
    """The first ``n`` clips taken round-robin over the classes (each in the clips' order)."""
    by_class: dict[int, list] = {}
    for c in sorted(clips, key=lambda c: c.label):
        by_class.setdefault(c.label, []).append(c)
    return [c for group in zip(*by_class.values(), strict=False) for c in group][:n]


def model_config(opts: TrainOptions, num_classes: int, layout: str):
    """The :class:`ModelConfig` ``opts`` asks for."""
    from finetec_live.models import ModelConfig

    kw = opts.completion_overrides()
    if opts.channels:
        kw["channels"] = tuple(opts.channels)
    if opts.strides:
        kw["strides"] = tuple(opts.strides)
    return ModelConfig(num_classes=num_classes, layout=layout, method=opts.method,
                       completion=not opts.no_completion,
                       decomposition=not opts.no_decomposition, physics=not opts.no_physics,
                       **kw)


@dataclass
class Run:
    """A training run's state: model, optimiser, data and what goes into the checkpoint."""

    opts: TrainOptions
    model: torch.nn.Module
    cfg: object
    opt: torch.optim.Optimizer
    layout: str
    class_names: list
    dataset: str
    prior: torch.Tensor
    train_clips: list
    validator: Validator
    device: str
    record: dict
    base: dict | None = None  # the checkpoint resumed from or started from
    hidden: list | None = None  # per training clip: annotated joints marked invisible
    outliers: list = field(default_factory=list)  # clips of none of the classes
    validator_annotated: Validator | None = None  # the same clips, annotated convention
    real: int = 0  # real video chunks at the end of train_clips
    start_epoch: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine down to 2 % of ``lr``."""
        steps = max(1, math.ceil(len(self.train_clips) / self.opts.batch_size))
        total = steps * self.opts.epochs
        warmup = min(steps * 2, total // 10 + 1)
        if step < warmup:
            return self.opts.lr * (step + 1) / warmup
        prog = (step - warmup) / max(1, total - warmup)
        return self.opts.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))

    def checkpoint(self, epoch: int, extra: dict | None = None) -> dict:
        ck = {
            "format": CHECKPOINT_FORMAT,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "config": self.cfg.to_dict(), "layout": self.layout,
            "class_names": self.class_names, "dataset": self.dataset,
            "normalization": {**NORMALIZATION, "fill": self.cfg.fill, "T": self.cfg.T,
                              "kernel_gravity": f"(0, {G_BODY:.4g} * dt**2) body units per "
                                                "grid step**2, dt = window duration / (T - 1)"},
            "prior": self.prior.clone(),
            "window_seconds": float(self.opts.window_seconds),
            "hop_seconds": float(self.opts.hop_seconds),
            "command": self.record["command"], "stages": with_stage(self.base, self.record),
            "train_seconds": float(self.train_seconds), "epoch": int(epoch),
            "seed": int(self.opts.seed), "optimizer": self.opt.state_dict(),
            "history": self.history,
            "validation": {"fraction": self.opts.val_fraction, "clips": len(self.validator)},
        }
        ck.update(extra or {})
        return ck


def _describe(opts: TrainOptions, start_epoch: int) -> str:
    what = ("everything but the completion module" if opts.freeze_completion
            else "every weight")
    how = (f"resumed at epoch {start_epoch}" if opts.resume else
           f"from the weights of {opts.init}" if opts.init else "from scratch")
    note = f"joint training of {what}, {how}, to epoch {opts.epochs}"
    if opts.refine_epochs:
        note += f"; then the completion module alone for {opts.refine_epochs} epochs"
    return note


def _resume(run: Run, path) -> None:
    from finetec_live.models import ModelConfig

    ck = load_checkpoint(path)
    if ModelConfig.from_dict(ck["config"]).to_dict() != run.cfg.to_dict():
        raise FinetecError(f"{path} was trained with another model configuration; "
                           "resume with the same --method and switches")
    run.model.load_state_dict(ck["state_dict"])
    if "optimizer" in ck and not run.opts.freeze_completion:
        run.opt.load_state_dict(ck["optimizer"])
    run.base = ck
    run.start_epoch = int(ck["epoch"])
    run.train_seconds = float(ck.get("train_seconds", 0.0))
    run.history = list(ck.get("history", []))
    log.info("resumed from %s at epoch %d", path, run.start_epoch)


def _init_from(run: Run, ck: dict, path) -> None:
    run.model.load_state_dict(ck["state_dict"])
    run.base = ck
    log.info("starting from the weights of %s", path)


def hidden_joints(opts: TrainOptions, clips) -> list:
    """Per clip ``(T, V)``: joints with an annotated position that the clip's convention
    marks invisible (Penn Action's self-occluded joints)."""
    if not str(opts.dataset).lower().startswith("penn"):
        raise FinetecError(f"--reveal-prob needs Penn Action's two joint conventions; "
                           f"{opts.dataset} has one (use --reveal-prob 0)")
    annotated = {c.name: c for c in load_dataset(opts.dataset, opts.data_root,
                                                 mask="annotated").clips}
    return [annotated[c.name].joint_valid & ~c.joint_valid for c in clips]


def _videos(opts: TrainOptions, layout: str, class_names) -> tuple[list, list]:
    """``(labelled chunks, outlier chunks)`` of real videos (see
    :mod:`finetec_live.learning.realposes`)."""
    from finetec_live.learning.realposes import select_fold, video_chunks
    from finetec_live.learning.videos import find_videos

    cache = Path(opts.pose_cache)
    real, other = [], []
    if opts.real_videos:
        vids = find_videos(opts.real_videos)
        if opts.real_fold is not None:
            vids = select_fold(vids, opts.real_folds, opts.real_fold, held_out=False)
        real = video_chunks(vids, cache, layout, class_names)
    for root in map(Path, opts.outlier_videos or ()):
        labelled = any(p.is_dir() for p in root.iterdir()) if root.is_dir() else False
        other += video_chunks(find_videos(root, labelled=labelled), cache, layout, None)
    return real, other


def _outliers(opts: TrainOptions, layout: str) -> list:
    from finetec_live.data.outliers import jhmdb_outliers, split_outliers

    if opts.outliers is None:
        return []
    for_training, held = split_outliers(jhmdb_outliers("train", opts.data_root, layout))
    log.info("outlier exposure: %d J-HMDB training clips of actions the classes lack "
             "(%d more held out for calibration)", len(for_training), len(held))
    return for_training


def setup(opts: TrainOptions, command: str) -> Run:
    """Data, model, optimiser (and the resumed state) of a training run."""
    from finetec_live.models import FinetecNet

    torch.set_num_threads(max(1, opts.threads))
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    clipset = load_dataset(opts.dataset, opts.data_root)
    dataset = clipset.name
    layout, class_names = clipset.layout, list(clipset.class_names)
    train_clips = list(clipset.train())
    if opts.subset:
        train_clips = balanced_subset(train_clips, opts.subset)
    train_clips, val_clips = split_train_val(train_clips, opts.val_fraction)
    log.info("%s: %d train, %d validation clips, %d classes, layout %s", dataset,
             len(train_clips), len(val_clips), len(class_names), layout)
    base = None
    if opts.init is not None:  # the architecture of the checkpoint fine-tuned
        from finetec_live.models import ModelConfig

        base = load_checkpoint(opts.init)
        if list(base["class_names"]) != class_names or base["layout"] != layout:
            raise FinetecError(f"{opts.init} has other classes or another layout than "
                               f"--dataset {opts.dataset}; fine-tune a checkpoint of the same "
                               "data set")
        cfg = ModelConfig.from_dict(base["config"])
    else:
        cfg = model_config(opts, len(class_names), layout)
    model = FinetecNet(cfg)
    prior = torch.from_numpy(mean_sequence(train_clips, cfg.T, layout))
    model.set_prior(prior)
    if cfg.completion and cfg.completion_bank and opts.resume is None and opts.init is None:
        init_bank(model, cfg, train_clips, layout, opts)
    model.to(device)
    log.info("model %s (completion=%s decomposition=%s physics=%s): %d parameters",
             cfg.method, cfg.completion, cfg.decomposition, cfg.physics,
             sum(p.numel() for p in model.parameters()))
    if opts.freeze_completion and model.completion is not None:
        for p in model.completion.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opts.lr,
                            weight_decay=opts.weight_decay)
    run = Run(opts, model, cfg, opt, layout, class_names, dataset, prior, train_clips,
              Validator(val_clips, layout, class_names), device,
              stage_record(command, 0.0, "", opts.to_record()))
    if opts.resume is not None:
        _resume(run, opts.resume)
    elif base is not None:
        _init_from(run, base, opts.init)
    if opts.reveal_prob > 0:
        run.hidden = hidden_joints(opts, train_clips)
        shown = [replace(c, joint_valid=c.joint_valid | h)
                 for c, h in zip(val_clips, hidden_joints(opts, val_clips), strict=True)]
        run.validator_annotated = Validator(shown, layout, class_names)
    run.outliers = _outliers(opts, layout)
    real, other = _videos(opts, layout, class_names)
    if real:
        run.train_clips = run.train_clips + real
        run.real = len(real)
        if run.hidden is not None:
            run.hidden = run.hidden + [np.zeros_like(c.joint_valid) for c in real]
    run.outliers = run.outliers + other
    run.record["changed"] = _describe(opts, run.start_epoch)
    return run


def epoch_order(run: Run, rng: np.random.Generator) -> np.ndarray:
    """The training clips of one epoch, shuffled: every annotated clip, and of the real
    video chunks (the last ``run.real`` clips) a ``real_share`` share drawn afresh."""
    n = len(run.train_clips)
    idx = np.arange(n)
    if run.real and run.opts.real_share < 1.0:
        first = n - run.real
        keep = rng.random(run.real) < run.opts.real_share
        idx = np.concatenate([idx[:first], idx[first:][keep]])
    return rng.permutation(idx)


def train_epoch(run: Run, sampler: Sampler, epoch: int, outliers: Sampler | None = None
                ) -> dict:
    """One epoch of joint training; the epoch's mean losses and training accuracy (of the
    labelled windows). ``outliers`` adds ``outlier_share`` of a batch of its windows to
    every batch, trained towards the uniform distribution."""
    from finetec_live.models import compute_losses

    opts, model = run.opts, run.model
    model.train()
    # a fresh, reproducible stream per epoch (so resume gives the same run)
    sampler.rng = np.random.default_rng([opts.seed, epoch])
    torch.manual_seed(opts.seed * 1000 + epoch)
    perm = epoch_order(run, sampler.rng)
    steps = max(1, math.ceil(len(perm) / opts.batch_size))
    use_target = run.cfg.completion and not opts.freeze_completion
    sums: dict[str, float] = {}
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{opts.epochs}", disable=opts.quiet,
               leave=False, file=sys.stderr)
    for it in bar:
        idx = perm[it * opts.batch_size:(it + 1) * opts.batch_size]
        if len(idx) < 2:
            continue
        tb = sampler.batch(idx)
        is_out = np.zeros(len(idx), bool)
        if outliers is not None:
            n_out = max(2, round(opts.outlier_share * opts.batch_size))
            tb = join_batches(tb, outliers.batch(
                outliers.rng.integers(len(outliers.clips), size=n_out)))
            is_out = np.r_[is_out, np.ones(n_out, bool)]
        batch, target, tvalid = make_batch(run.cfg, run.layout, tb)
        inputs = to_tensors(batch.network_inputs(), run.device)
        tgt, tv, lab = to_tensors((target, tvalid, tb.labels), run.device)
        out_flag = torch.from_numpy(is_out).to(run.device)
        for g in run.opt.param_groups:
            g["lr"] = run.lr_at(epoch * steps + it)
        out = model(*inputs)
        losses = compute_losses(out, lab, inputs[1], tgt if use_target else None, tv,
                                outlier=out_flag if outliers is not None else None,
                                w_outlier=opts.outlier_weight)
        run.opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        run.opt.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        inl = ~out_flag
        acc = float((out["logits"][inl].argmax(-1) == lab[inl]).float().mean())
        sums["acc"] = sums.get("acc", 0.0) + acc
        bar.set_postfix(loss=f"{float(losses['total'].detach()):.3f}", acc=f"{acc:.2f}")
    return {k: v / steps for k, v in sums.items()}


def train(opts: TrainOptions, command: str) -> dict:
    """Train as ``opts`` says, writing ``opts.out`` after every epoch; returns the final
    checkpoint. With ``opts.val_fraction`` > 0, every 5th and the last epoch record
    top-1 (%) on the validation clips, clean and under 60 % bursts."""
    run = setup(opts, command)
    kw = dict(crop_prob=opts.crop_prob, crop_seconds=tuple(opts.crop_seconds),
              mask_prob=opts.mask_prob, native_prob=opts.native_prob,
              tempo_prob=opts.tempo_prob, estimator_prob=opts.estimator_prob,
              transplant_prob=opts.transplant_prob)
    sampler = Sampler(run.train_clips, run.layout, run.cfg.T, np.random.default_rng(opts.seed),
                      hidden=run.hidden, reveal_prob=opts.reveal_prob, **kw)
    outliers = None
    if run.outliers:
        outliers = Sampler(run.outliers, run.layout, run.cfg.T,
                           np.random.default_rng([opts.seed, 1]), **kw)
    for epoch in range(run.start_epoch, opts.epochs):
        t0 = time.time()
        if outliers is not None:
            outliers.rng = np.random.default_rng([opts.seed, epoch, 1])
        rec = train_epoch(run, sampler, epoch, outliers)
        run.train_seconds += time.time() - t0
        run.record["seconds"] += time.time() - t0
        rec.update(epoch=epoch + 1, seconds=run.train_seconds)
        if run.validator and ((epoch + 1) % 5 == 0 or epoch + 1 == opts.epochs):
            val = run.validator.evaluate(run.model, run.device, [CLEAN, BURST60])
            rec["val_clean"] = 100 * val[CLEAN]["top1"]
            rec["val_burst60"] = 100 * val[BURST60]["top1"]
            if run.validator_annotated:
                val = run.validator_annotated.evaluate(run.model, run.device, [CLEAN, BURST60])
                rec["val_annotated_clean"] = 100 * val[CLEAN]["top1"]
                rec["val_annotated_burst60"] = 100 * val[BURST60]["top1"]
        run.history.append(rec)
        log.info("epoch %d: %s", epoch + 1, " ".join(
            f"{k}={v:.4g}" for k, v in rec.items() if k != "epoch"))
        atomic_save(run.checkpoint(epoch + 1), opts.out)
    extra = {}
    if run.cfg.completion and opts.refine_epochs > 0:
        t0 = time.time()
        extra["refine_history"] = refine_completion(run.model, run.cfg, run.layout,
                                                    run.train_clips, opts, opts.refine_epochs,
                                                    run.device, run.validator)
        run.train_seconds += time.time() - t0
        run.record["seconds"] += time.time() - t0
        extra["refine_seconds"] = time.time() - t0
    ck = run.checkpoint(opts.epochs, extra)
    atomic_save(ck, opts.out)
    log.info("saved %s (%.1f min of training)", opts.out, run.train_seconds / 60)
    return ck

#!/usr/bin/env python
"""Train a FineTec model (or an ablation, or an ST-GCN baseline) on skeleton clips.

    python tools/train.py --dataset penn --method finetec --out models/weights/penn.pt

Every training sample is a whole clip or a random crop of the durations live
windows use, augmented in space (rotation, shear, anisotropic scale,
left-right flip, jitter, dropped joints) and in time (frames dropped at the
native rate, then diverse temporal masking of the model's window), and goes
through the same :func:`finetec_live.inference.prepare.prepare_windows` as live
inference and evaluation. A checkpoint is written atomically after every
epoch and can be resumed with ``--resume``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from finetec_live.data.corruption import Corruption
from finetec_live.errors import FinetecError
from finetec_live.inference.prepare import KERNEL_GRAVITY, prepare_windows
from finetec_live.inference.preprocess import interpolate_missing
from finetec_live.inference.recognizer import CHECKPOINT_FORMAT
from finetec_live.learning.windows import (
    Sampler,
    initial_prototypes,
    load_dataset,
    make_batch,
    mean_sequence,
    prototype_windows,
    split_train_val,
    whole_windows,
)
from finetec_live.models import FinetecNet, ModelConfig, compute_losses

log = logging.getLogger("train")


# --------------------------------------------------------------------------- data
def init_bank(model, cfg: ModelConfig, clips, layout, args) -> None:
    """Put k-means centroids of the training windows in the completion's prototype bank."""
    t0 = time.time()
    windows, clip_index = prototype_windows(clips, cfg.T, layout,
                                            np.random.default_rng([args.seed, 77]),
                                            args.bank_crops, tuple(args.crop_seconds))
    protos = initial_prototypes(windows, clip_index, cfg.completion_bank, args.seed)
    model.set_bank(torch.from_numpy(protos))
    log.info("prototype bank: %d k-means centroids of %d windows of %d training clips, each "
             "over 3 clips or more (%.0f s)", len(protos), len(windows), len(clips),
             time.time() - t0)


def to_tensors(arrays, device):
    return [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model, cfg, layout, clips, device, spec: str = "clean", seed: int = 0,
             batch_size: int = 256) -> float:
    """Top-1 accuracy (%) of whole clips resampled to T, with an optional corruption spec."""
    from finetec_live.data.corruption import Corruption, protocol_rng

    if not clips:
        return float("nan")
    model.eval()
    pos, fv, jv, ts = whole_windows(clips, cfg.T)
    corr = Corruption.parse(spec)
    if not corr.is_clean:
        for i in range(len(clips)):
            f_m = corr.frame_mask(cfg.T, protocol_rng(seed, i, spec))
            fv[i] &= f_m
    jv = jv & fv[..., None]
    labels = np.array([c.label for c in clips])
    correct = 0
    for s in range(0, len(clips), batch_size):
        sl = slice(s, s + batch_size)
        b = prepare_windows(np.where(jv[sl][..., None], pos[sl], 0.0), fv[sl], jv[sl], ts[sl],
                            T=cfg.T, layout=layout, fill=cfg.fill, kernels=cfg.needs_kernels,
                            interp=cfg.interp)
        logits = model(*to_tensors(b.network_inputs(), device))["logits"]
        correct += int((logits.argmax(-1).cpu().numpy() == labels[sl]).sum())
    return 100.0 * correct / len(clips)


@torch.no_grad()
def completion_validation(model, cfg, layout, clips, device, spec: str = "burst:0.6:3",
                          seed: int = 0, batch_size: int = 256) -> dict:
    """Completion error on the missing joints of whole clips under ``spec`` (seeded masks),
    in normalised body units, against linear interpolation of the same windows:
    ``{"completion", "interpolation", "ratio"}``."""
    from finetec_live.data.corruption import protocol_rng

    if not clips or model.completion is None:
        return {}
    was_training = model.completion.training
    model.eval()
    pos, fv0, jv0, ts = whole_windows(clips, cfg.T)
    corr = Corruption.parse(spec)
    fv = fv0.copy()
    for i in range(len(clips)):
        fv[i] &= corr.frame_mask(cfg.T, protocol_rng(seed, i, spec))
    jv = jv0 & fv[..., None]
    sums = np.zeros(2)
    count = 0.0
    for s in range(0, len(clips), batch_size):
        sl = slice(s, s + batch_size)
        b = prepare_windows(np.where(jv[sl][..., None], pos[sl], 0.0), fv[sl], jv[sl], ts[sl],
                            T=cfg.T, layout=layout, fill="zeros", kernels=False,
                            interp=cfg.interp)
        truth = (pos[sl] - b.centre[:, None, None, :]) / b.scale[:, None, None, None]
        w = ((b.mask == 0) & jv0[sl]).astype(np.float64)  # missing joints with ground truth
        x, mask, interp = to_tensors((b.x, b.mask, b.interp), device)
        ours = model.completion(x, mask, interp).cpu().numpy()
        lin = interpolate_missing(b.x, b.frame_valid, b.mask > 0)
        for k, c in enumerate((ours, lin)):
            sums[k] += float((np.sqrt(((c - truth) ** 2).sum(-1)) * w).sum())
        count += float(w.sum())
    model.completion.train(was_training)
    comp, lin = (float(v) for v in sums / max(count, 1.0))  # plain floats: weights_only
    return {"completion": comp, "interpolation": lin, "ratio": comp / max(lin, 1e-12)}


# --------------------------------------------------------------------------- checkpoint
def atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="penn", help="penn, jhmdb or pyskl:PATH")
    ap.add_argument("--method", default="finetec", choices=("finetec", "stgcn-zero",
                                                             "stgcn-interp"))
    ap.add_argument("--no-completion", action="store_true")
    ap.add_argument("--no-decomposition", action="store_true")
    ap.add_argument("--no-physics", action="store_true")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subset", type=int, default=None,
                    help="use only the first N training clips (and N test clips) for a quick run")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--resume", type=Path, default=None)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-fraction", type=float, default=0.0,
                    help="stratified share of the training clips held out for validation")
    ap.add_argument("--window-seconds", type=float, default=2.5)
    ap.add_argument("--hop-seconds", type=float, default=0.5)
    ap.add_argument("--crop-prob", type=float, default=0.5)
    ap.add_argument("--crop-seconds", type=float, nargs=2, default=(1.2, 3.5))
    ap.add_argument("--mask-prob", type=float, default=0.85)
    ap.add_argument("--native-prob", type=float, default=0.15)
    ap.add_argument("--channels", type=int, nargs="+", default=None)
    ap.add_argument("--strides", type=int, nargs="+", default=None)
    ap.add_argument("--no-test", action="store_true", help="skip the final clean test check")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--refit-completion", type=Path, default=None, metavar="CKPT",
                    help="retrain only the completion module of CKPT on reconstruction (the "
                         "rest frozen) for --epochs epochs; writes --out")
    ap.add_argument("--freeze-completion", action="store_true",
                    help="keep the completion module fixed (e.g. fine-tuning the rest after "
                         "--refit-completion, with --resume)")
    ap.add_argument("--refine-epochs", type=int, default=0,
                    help="after training, this many epochs of completion-only refinement")
    ap.add_argument("--gap-prob", type=float, default=0.0,
                    help="completion refit: share of the masks drawn as long contiguous gaps "
                         "(1-4 bursts, prefix, tail or middle, 30-80 %% of the window) instead "
                         "of the diverse mask")
    ap.add_argument("--grow-completion", action="store_true",
                    help="completion refit with more --completion-blocks: keep the old blocks' "
                         "weights and start the new blocks as identities (instead of afresh)")
    ap.add_argument("--completion-hidden", type=int, default=None)
    ap.add_argument("--completion-blocks", type=int, default=None)
    ap.add_argument("--completion-mixing", choices=("conv", "linear"), default=None)
    ap.add_argument("--completion-attention", type=int, default=None,
                    help="temporal self-attention blocks after completion's mixer blocks "
                         "(default 0)")
    ap.add_argument("--completion-dilation-cycle", type=int, default=None,
                    help="conv completion block i has dilation 2**(i %% CYCLE) (default 3: "
                         "1, 2, 4, 1, ...)")
    ap.add_argument("--completion-bank", type=int, default=None, metavar="K",
                    help="completion retrieves from K learned prototype sequences, initialised "
                         "as k-means centroids of training windows (default 0: no bank)")
    ap.add_argument("--completion-bank-k", type=int, default=None,
                    help="prototypes mixed per window (default 10)")
    ap.add_argument("--bank-crops", type=int, default=2,
                    help="live-window crops per clip among the bank's k-means windows")
    ap.add_argument("--bank-split", action="store_true",
                    help="completion refit: build the bank from half the training clips and "
                         "fit on the other half, then rebuild the bank from all of them")
    ap.add_argument("--bank-only", action="store_true",
                    help="completion refit: train only the prototype bank's gate and "
                         "temperature, the mixer kept as it is")
    ap.add_argument("--interp", choices=("akima", "linear"), default=None,
                    help="interpolation completion starts from (default: the model's)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    command = " ".join(["python", sys.argv[0] if argv is None else "tools/train.py",
                        *(sys.argv[1:] if argv is None else argv)])
    try:
        if args.refit_completion is not None:
            return _refit_completion(args, command)
        return _train(args, command)
    except FinetecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def euclidean_completion_loss(completed, target, mask, target_valid):
    """Mean Euclidean distance on the missing joints that have ground truth."""
    w = (1 - mask) * target_valid  # (N, T, V)
    dist = torch.sqrt(((completed - target) ** 2).sum(-1) + 1e-6)  # (N, T, V)
    return (dist * w).sum() / w.sum().clamp_min(1.0)


def refine_completion(model, cfg, layout, train_clips, args, epochs: int, device,
                      val_clips=()) -> list[dict]:
    """Train the completion module alone on reconstruction (mean Euclidean error on the
    missing joints, diverse masks on every sample), the rest of the model frozen and in eval
    mode. Returns the per-epoch history (completion vs linear interpolation on the
    training windows; with ``val_clips``, also on those under 60 % bursts)."""
    model.eval()
    comp = model.completion
    comp.train()
    trained = ("completion.bank.", "completion.gate") if args.bank_only else ("completion.",)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trained))
    rng = np.random.default_rng(args.seed)
    sampler = Sampler(train_clips, layout, cfg.T, rng, crop_prob=args.crop_prob,
                      crop_seconds=tuple(args.crop_seconds), mask_prob=1.0,
                      native_prob=args.native_prob, gap_prob=args.gap_prob)
    params = [p for p in comp.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_clips) / args.batch_size))
    total = steps_per_epoch * epochs
    step, history = 0, []
    for epoch in range(epochs):
        sampler.rng = np.random.default_rng([args.seed, 1000 + epoch])
        perm = sampler.rng.permutation(len(train_clips))
        run, interp_run = 0.0, 0.0
        for it in tqdm(range(steps_per_epoch), desc=f"refit {epoch + 1}/{epochs}",
                       disable=args.quiet, leave=False, file=sys.stderr):
            idx = perm[it * args.batch_size:(it + 1) * args.batch_size]
            if len(idx) < 2:
                continue
            pos, fv, jv, ts, ofv, ojv, _ = sampler.batch(idx)
            obs = np.where((ofv[..., None] & ojv)[..., None], pos, 0.0).astype(np.float32)
            b = prepare_windows(obs, ofv, ojv, ts, T=cfg.T, layout=layout, fill="zeros",
                                kernels=False, interp=cfg.interp)
            target = ((sampler.last_clean - b.centre[:, None, None, :])
                      / b.scale[:, None, None, None])  # the window without keypoint jitter
            tvalid = (fv[..., None] & jv).astype(np.float32)
            x, mask, interp, tgt, tv = to_tensors(
                (b.x, b.mask, b.interp, np.where(tvalid[..., None] > 0, target, 0.0)
                 .astype(np.float32), tvalid), device)
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = euclidean_completion_loss(comp(x, mask, interp), tgt, mask, tv)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            with torch.no_grad():
                lin = torch.from_numpy(interpolate_missing(b.x, b.frame_valid, b.mask > 0))
                base_loss = euclidean_completion_loss(lin.to(device), tgt, mask, tv)
            run += float(loss.detach())
            interp_run += float(base_loss)
        rec = {"epoch": epoch + 1, "completion": run / steps_per_epoch,
               "interpolation": interp_run / steps_per_epoch}  # linear interpolation
        rec["ratio"] = rec["completion"] / max(rec["interpolation"], 1e-9)
        if val_clips and (epoch + 1 == epochs or (epoch + 1) % 5 == 0):
            val = completion_validation(model, cfg, layout, val_clips, device)
            rec["val_burst60_ratio"] = val["ratio"]
            log.info("refit epoch %d: validation 60%% bursts: completion %.4f, linear %.4f "
                     "(ratio %.3f)", epoch + 1, val["completion"], val["interpolation"],
                     val["ratio"])
        history.append(rec)
        log.info("refit epoch %d: completion %.4f, interpolation %.4f (ratio %.3f)", epoch + 1,
                 rec["completion"], rec["interpolation"], rec["ratio"])
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return history


def grow_completion(comp, old_blocks: int) -> None:
    """Make the blocks from ``old_blocks`` on identities (their residual branches' last
    layers zeroed), so a completion grown by blocks computes what the old one did."""
    with torch.no_grad():
        for blk in comp.blocks[old_blocks:]:
            for layer in (blk.mix_t[-1], blk.mix_s[-1]):
                layer.weight.zero_()
                layer.bias.zero_()


def _refit_completion(args, command: str) -> int:
    """Second stage: retrain the completion module alone, everything else frozen."""
    from finetec_live.inference.recognizer import load_checkpoint

    torch.set_num_threads(max(1, args.threads))
    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    base = load_checkpoint(args.refit_completion)
    cfg_d = dict(base["config"])
    if args.completion_hidden:
        cfg_d["completion_hidden"] = args.completion_hidden
    if args.completion_blocks:
        cfg_d["completion_blocks"] = args.completion_blocks
    if args.completion_mixing:
        cfg_d["completion_mixing"] = args.completion_mixing
    if args.completion_dilation_cycle:
        cfg_d["completion_dilation_cycle"] = args.completion_dilation_cycle
    if args.completion_attention is not None:
        cfg_d["completion_attention"] = args.completion_attention
    for name in ("completion_bank", "completion_bank_k"):
        if getattr(args, name) is not None:
            cfg_d[name] = getattr(args, name)
    if args.interp:
        cfg_d["interp"] = args.interp
    base_cfg = ModelConfig.from_dict(base["config"])
    cfg = ModelConfig.from_dict(cfg_d)
    if not cfg.completion:
        raise FinetecError(f"{args.refit_completion} has no completion module to refit")
    model = FinetecNet(cfg)
    same = all(getattr(cfg, f) == getattr(base_cfg, f) for f in
               ("completion_hidden", "completion_blocks", "completion_mixing",
                "completion_dilation_cycle", "completion_attention"))
    grow = (not same and args.grow_completion
            and all(getattr(cfg, f) == getattr(base_cfg, f)
                    for f in ("completion_hidden", "completion_mixing"))
            and cfg.completion_blocks >= base_cfg.completion_blocks
            and cfg.completion_attention >= base_cfg.completion_attention
            and all(2 ** (i % cfg.completion_dilation_cycle)
                    == 2 ** (i % base_cfg.completion_dilation_cycle)
                    for i in range(base_cfg.completion_blocks)))
    if args.grow_completion and not same and not grow:
        raise FinetecError("--grow-completion needs the same --completion-hidden and mixing, "
                           "no fewer blocks or attention blocks, and the old blocks' "
                           "dilations unchanged")
    if grow:
        grow_completion(model.completion, base_cfg.completion_blocks)  # new attention: zero
    # a changed completion architecture starts afresh (at the interpolation: zero output
    # layer), unless grown: the old blocks keep their weights, the new ones are identities
    # the prototype bank (and its gate) load when the base has one of the same size
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = {k: v for k, v in base["state_dict"].items()
             if k in shapes and shapes[k] == v.shape
             and (same or grow or not k.startswith("completion.") or k == "completion.prior")}
    model.load_state_dict(state, strict=False)
    new_bank = bool(cfg.completion_bank) and "completion.bank.protos" not in state
    prior = base["prior"].float()
    model.set_prior(prior)
    model.to(device).eval()
    clipset, _ = load_dataset(args.dataset, args.data_root)
    if clipset.layout != cfg.layout or list(clipset.class_names) != list(base["class_names"]):
        raise FinetecError(f"{args.refit_completion} was not trained on --dataset {args.dataset}")
    layout = clipset.layout
    train_clips = list(clipset.train())
    if args.subset:
        train_clips = train_clips[: args.subset]
    train_clips, val_clips = split_train_val(train_clips, args.val_fraction, args.seed)
    t_start = time.time()
    fit_clips = train_clips
    if new_bank:
        if args.bank_split:
            # the bank from one half, completion trained on the other: retrieval during the
            # refit is as good as for a clip never seen (no clip finds itself); the shipped
            # bank is then rebuilt from every training clip
            half = np.random.default_rng([args.seed, 78]).permutation(len(train_clips))
            init_bank(model, cfg, [train_clips[i] for i in half[::2]], layout, args)
            fit_clips = [train_clips[i] for i in half[1::2]]
        else:
            init_bank(model, cfg, train_clips, layout, args)
    if val_clips:
        val0 = completion_validation(model, cfg, layout, val_clips, device)
        log.info("before refit: validation 60%% bursts (%d clips): completion %.4f, linear "
                 "%.4f (ratio %.3f)", len(val_clips), val0["completion"],
                 val0["interpolation"], val0["ratio"])
    history = refine_completion(model, cfg, layout, fit_clips, args, args.epochs, device,
                                val_clips)
    if fit_clips is not train_clips:
        init_bank(model, cfg, train_clips, layout, args)
        if val_clips:
            val = completion_validation(model, cfg, layout, val_clips, device)
            history[-1]["val_burst60_ratio_full_bank"] = val["ratio"]
            log.info("bank rebuilt from all %d training clips: validation 60%% bursts ratio "
                     "%.3f", len(train_clips), val["ratio"])
    model.eval()
    ck = {k: v for k, v in base.items() if k not in ("optimizer",)}
    ck.update({
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": cfg.to_dict(),
        "command": command,
        "base_command": base.get("base_command", base.get("command")),
        "train_seconds": float(base.get("train_seconds", 0.0)) + time.time() - t_start,
        "refit_seconds": time.time() - t_start,
        "refit_history": history,
    })
    if not args.no_test:
        acc = evaluate(model, cfg, layout, list(clipset.test()), device)
        ck["test_clean_accuracy"] = acc
        log.info("quick check: clean top-1 on the test clips = %.2f%%", acc)
    atomic_save(ck, args.out)
    log.info("saved %s (refit %.1f min)", args.out, (time.time() - t_start) / 60)
    return 0


def _train(args, command: str) -> int:
    torch.set_num_threads(max(1, args.threads))
    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        raise FinetecError("--device cuda asked for but no CUDA device is available")
    else:
        device = args.device
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    clipset, dataset_name = load_dataset(args.dataset, args.data_root)
    layout = clipset.layout
    class_names = list(clipset.class_names)
    train_clips = list(clipset.train())
    test_clips = list(clipset.test())
    if args.subset:
        # a class-balanced quick subset
        order = np.argsort([c.label for c in train_clips], kind="stable")
        by_class = {}
        for i in order:
            by_class.setdefault(train_clips[i].label, []).append(train_clips[i])
        train_clips = [c for group in zip(*by_class.values(), strict=False) for c in group]
        train_clips = train_clips[: args.subset]
        by_class = {}
        for c in test_clips:
            by_class.setdefault(c.label, []).append(c)
        test_clips = [c for group in zip(*by_class.values(), strict=False) for c in group]
        test_clips = test_clips[: args.subset]
    train_clips, val_clips = split_train_val(train_clips, args.val_fraction, args.seed)
    log.info("%s: %d train, %d val, %d test clips, %d classes, layout %s", dataset_name,
             len(train_clips), len(val_clips), len(test_clips), len(class_names), layout)

    kw = {}
    if args.channels:
        kw["channels"] = tuple(args.channels)
    if args.strides:
        kw["strides"] = tuple(args.strides)
    for name in ("completion_hidden", "completion_blocks", "completion_mixing",
                 "completion_dilation_cycle", "completion_attention", "completion_bank",
                 "completion_bank_k", "interp"):
        if getattr(args, name):
            kw[name] = getattr(args, name)
    cfg = ModelConfig(num_classes=len(class_names), layout=layout, method=args.method,
                      completion=not args.no_completion,
                      decomposition=not args.no_decomposition, physics=not args.no_physics,
                      **kw)
    model = FinetecNet(cfg)
    prior = torch.from_numpy(mean_sequence(train_clips, cfg.T, layout))
    model.set_prior(prior)
    if cfg.completion and cfg.completion_bank and args.resume is None:
        init_bank(model, cfg, train_clips, layout, args)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model %s (completion=%s decomposition=%s physics=%s): %d parameters",
             cfg.method, cfg.completion, cfg.decomposition, cfg.physics, n_params)

    if args.freeze_completion and model.completion is not None:
        for p in model.completion.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=args.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_clips) / args.batch_size))
    total_steps = steps_per_epoch * args.epochs
    warmup = min(steps_per_epoch * 2, total_steps // 10 + 1)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        prog = (step - warmup) / max(1, total_steps - warmup)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))

    start_epoch, train_seconds, history = 0, 0.0, []
    if args.resume is not None:
        from finetec_live.inference.recognizer import load_checkpoint

        ck = load_checkpoint(args.resume)
        if ModelConfig.from_dict(ck["config"]).to_dict() != cfg.to_dict():
            raise FinetecError(f"{args.resume} was trained with another model configuration; "
                               "resume with the same --method and switches")
        model.load_state_dict(ck["state_dict"])
        if "optimizer" in ck and not args.freeze_completion:
            opt.load_state_dict(ck["optimizer"])
        start_epoch = int(ck["epoch"])
        train_seconds = float(ck.get("train_seconds", 0.0))
        history = list(ck.get("history", []))
        log.info("resumed from %s at epoch %d", args.resume, start_epoch)

    sampler = Sampler(train_clips, layout, cfg.T, rng, crop_prob=args.crop_prob,
                      crop_seconds=tuple(args.crop_seconds), mask_prob=args.mask_prob,
                      native_prob=args.native_prob)

    def checkpoint(epoch: int, extra: dict | None = None) -> dict:
        ck = {
            "format": CHECKPOINT_FORMAT,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": cfg.to_dict(),
            "layout": layout,
            "class_names": class_names,
            "dataset": dataset_name,
            "normalization": {"centre": "mean of valid torso joints over the window",
                              "scale": "median over bones of (80th percentile length / "
                                       "typical relative length)",
                              "fill": cfg.fill, "T": cfg.T,
                              "kernel_gravity": list(KERNEL_GRAVITY)},
            "prior": prior.clone(),
            "window_seconds": float(args.window_seconds),
            "hop_seconds": float(args.hop_seconds),
            "command": command,
            "train_seconds": float(train_seconds),
            "epoch": int(epoch),
            "seed": int(args.seed),
            "optimizer": opt.state_dict(),
            "history": history,
        }
        if extra:
            ck.update(extra)
        return ck

    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        model.train()
        # a fresh, reproducible stream per epoch (so resume gives the same run)
        sampler.rng = np.random.default_rng([args.seed, epoch])
        torch.manual_seed(args.seed * 1000 + epoch)
        perm = sampler.rng.permutation(len(train_clips))
        t0 = time.time()
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}",
                   disable=args.quiet, leave=False, file=sys.stderr)
        for it in bar:
            idx = perm[it * args.batch_size:(it + 1) * args.batch_size]
            if len(idx) < 2:
                continue
            pos, fv, jv, ts, ofv, ojv, labels = sampler.batch(idx)
            batch, target, tvalid = make_batch(cfg, layout, pos, fv, jv, ts, ofv, ojv,
                                               sampler.last_clean)
            inputs = to_tensors(batch.network_inputs(), device)
            tgt, tv, lab = to_tensors((target, tvalid, labels), device)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            out = model(*inputs)
            use_target = cfg.completion and not args.freeze_completion
            losses = compute_losses(out, lab, inputs[1], tgt if use_target else None, tv)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            acc = float((out["logits"].argmax(-1) == lab).float().mean())
            sums["acc"] = sums.get("acc", 0.0) + acc
            bar.set_postfix(loss=f"{float(losses['total'].detach()):.3f}", acc=f"{acc:.2f}")
        train_seconds += time.time() - t0
        rec = {k: v / steps_per_epoch for k, v in sums.items()}
        rec["epoch"] = epoch + 1
        rec["seconds"] = train_seconds
        if val_clips and ((epoch + 1) % 5 == 0 or epoch + 1 == args.epochs):
            rec["val_clean"] = evaluate(model, cfg, layout, val_clips, device)
            rec["val_burst60"] = evaluate(model, cfg, layout, val_clips, device, "burst:0.6:3")
        history.append(rec)
        log.info("epoch %d: %s", epoch + 1, " ".join(
            f"{k}={v:.4g}" for k, v in rec.items() if k != "epoch"))
        atomic_save(checkpoint(epoch + 1), args.out)

    result = {}
    if cfg.completion and args.refine_epochs > 0:
        t0 = time.time()
        result["refine_history"] = refine_completion(model, cfg, layout, train_clips, args,
                                                     args.refine_epochs, device)
        train_seconds += time.time() - t0
        result["refine_seconds"] = time.time() - t0
    if not args.no_test and test_clips:
        t0 = time.time()
        acc = evaluate(model, cfg, layout, test_clips, device)
        result["test_clean_accuracy"] = acc
        log.info("quick check: clean top-1 on %d test clips = %.2f%% (%.1f s)", len(test_clips),
                 acc, time.time() - t0)
    atomic_save(checkpoint(args.epochs, result), args.out)
    log.info("saved %s (%.1f min of training)", args.out, train_seconds / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

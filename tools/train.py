#!/usr/bin/env python
"""Train a FineTec model (or an ablation, or an ST-GCN baseline) on skeleton clips.

    python tools/train.py --dataset penn --method finetec --out models/weights/penn.pt
    python tools/train.py --refit-completion A.pt --epochs 30 --out B.pt   # completion alone

The training loop is :func:`finetec_live.learning.train.train`, the completion refit
:func:`finetec_live.learning.refit.refit_completion`. Every run appends a record
(command, seconds, git commit, date, what it changed) to the checkpoint's ``stages``.
Choices are made on a validation split carved from the training split (``--val-fraction``,
stratified, fixed seed); the test split is scored by ``tools/evaluate.py`` only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from finetec_live.errors import FinetecError
from finetec_live.learning.options import TrainOptions
from finetec_live.learning.windows import VAL_SEED

D = TrainOptions()


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = ap.add_argument
    add("--dataset", default=D.dataset, help="penn, jhmdb or pyskl:PATH")
    add("--method", default=D.method, choices=("finetec", "stgcn-zero", "stgcn-interp"))
    add("--no-completion", action="store_true")
    add("--no-decomposition", action="store_true")
    add("--no-physics", action="store_true")
    add("--epochs", type=int, default=D.epochs)
    add("--batch-size", type=int, default=D.batch_size)
    add("--lr", type=float, default=D.lr)
    add("--weight-decay", type=float, default=D.weight_decay)
    add("--seed", type=int, default=D.seed)
    add("--subset", type=int, default=None,
        help="use only N training clips (round-robin over the classes) for a quick run")
    add("--out", required=True, type=Path)
    add("--resume", type=Path, default=None)
    add("--device", default=D.device, choices=("auto", "cpu", "cuda"))
    add("--data-root", default=None)
    add("--threads", type=int, default=D.threads)
    add("--val-fraction", type=float, default=D.val_fraction,
        help=f"stratified share of the training clips held out for validation, drawn with "
             f"the fixed seed {VAL_SEED} (default {D.val_fraction}; 0: none)")
    add("--window-seconds", type=float, default=D.window_seconds)
    add("--hop-seconds", type=float, default=D.hop_seconds)
    add("--crop-prob", type=float, default=D.crop_prob)
    add("--crop-seconds", type=float, nargs=2, default=D.crop_seconds)
    add("--mask-prob", type=float, default=D.mask_prob)
    add("--native-prob", type=float, default=D.native_prob)
    add("--channels", type=int, nargs="+", default=None)
    add("--strides", type=int, nargs="+", default=None)
    add("--quiet", action="store_true", help="no progress bars")
    add("--refit-completion", type=Path, default=None, metavar="CKPT",
        help="retrain only the completion module of CKPT on reconstruction (the rest "
             "frozen) for --epochs epochs; writes --out")
    add("--freeze-completion", action="store_true",
        help="keep the completion module fixed (e.g. fine-tuning the rest after "
             "--refit-completion, with --resume)")
    add("--refine-epochs", type=int, default=0,
        help="after training, this many epochs of completion-only refinement")
    add("--gap-prob", type=float, default=0.0,
        help="completion refit: share of the masks drawn as long contiguous gaps (1-4 "
             "bursts, prefix, tail or middle, 30-80 %% of the window) instead of the "
             "diverse mask")
    add("--grow-completion", action="store_true",
        help="completion refit with more --completion-blocks: keep the old blocks' weights "
             "and start the new blocks as identities (instead of afresh)")
    add("--completion-hidden", type=int, default=None)
    add("--completion-blocks", type=int, default=None)
    add("--completion-mixing", choices=("conv", "linear"), default=None)
    add("--completion-attention", type=int, default=None,
        help="temporal self-attention blocks after completion's mixer blocks (default 0)")
    add("--completion-dilation-cycle", type=int, default=None,
        help="conv completion block i has dilation 2**(i %% CYCLE) (default 3: 1, 2, 4, 1, ...)")
    add("--completion-bank", type=int, default=None, metavar="K",
        help="completion retrieves from a fixed bank of K centroid sequences, "
             "k-means centroids of training windows (default 0: no bank)")
    add("--completion-bank-k", type=int, default=None,
        help="prototypes mixed per window (default 10)")
    add("--bank-crops", type=int, default=D.bank_crops,
        help="live-window crops per clip among the bank's k-means windows")
    add("--bank-split", action="store_true",
        help="completion refit: build the bank from half the training clips and fit on the "
             "other half, then rebuild the bank from all of them")
    add("--bank-only", action="store_true",
        help="completion refit: train only the centroid bank's gate and temperature, the "
             "mixer kept as it is")
    add("--interp", choices=("akima", "linear"), default=None,
        help="interpolation completion starts from (default: the model's)")
    _estimated_pose_options(add)
    return ap.parse_args(argv)


def _estimated_pose_options(add) -> None:
    """The options that fine-tune for estimated poses and the open set."""
    add("--init", type=Path, default=None, metavar="CKPT",
        help="start from CKPT's weights (same model configuration) with a fresh schedule "
             "(fine-tuning; with --freeze-completion the completion stays CKPT's)")
    add("--reveal-prob", type=float, default=D.reveal_prob,
        help="share of Penn windows that show the annotated positions of joints marked "
             "invisible (a pose estimator's convention)")
    add("--tempo-prob", type=float, default=D.tempo_prob,
        help="share of windows played 0.7-1.4x as fast")
    add("--estimator-prob", type=float, default=D.estimator_prob,
        help="share of windows given a pose estimator's landmark placement, views and errors "
             "(finetec_live.learning.estimator)")
    add("--transplant-prob", type=float, default=D.transplant_prob,
        help="share of the windows of clips missing most of their lower body that get a "
             "donor clip's hips and legs, as a pose estimator places them")
    add("--outliers", default=D.outliers, choices=("jhmdb",),
        help="outlier exposure: J-HMDB training clips of actions Penn lacks (minus those "
             "held out to calibrate unknown) trained towards the uniform distribution")
    add("--outlier-weight", type=float, default=D.outlier_weight)
    add("--outlier-share", type=float, default=D.outlier_share,
        help="outlier windows added per batch, as a share of the batch size")
    add("--real-videos", default=D.real_videos, metavar="DIR",
        help="also train on real poses: videos in one folder per class (poses estimated "
             "once with the live front end, cached in --pose-cache)")
    add("--real-folds", type=int, default=D.real_folds)
    add("--real-fold", type=int, default=D.real_fold,
        help="hold this fold of --real-videos out (folds group videos by source, so a fold "
             "is people the model has not seen); default: train on all")
    add("--real-share", type=float, default=D.real_share,
        help="share of the real video chunks drawn into each epoch (default all)")
    add("--outlier-videos", default=D.outlier_videos, metavar="DIR", nargs="+",
        help="folders of real videos of actions that are none of the classes (class folders "
             "or not), added to outlier exposure")
    add("--pose-cache", default=D.pose_cache)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    command = " ".join(["python", "tools/train.py",
                        *(sys.argv[1:] if argv is None else argv)])
    try:
        opts = TrainOptions(**vars(args))
        if opts.refit_completion is not None:
            from finetec_live.learning.refit import refit_completion

            refit_completion(opts, command)
        else:
            from finetec_live.learning.train import train

            train(opts, command)
    except FinetecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

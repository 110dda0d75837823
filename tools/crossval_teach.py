#!/usr/bin/env python
"""Cross-validate ``finetec-train`` on a folder of class folders, by the people in it.

    python tools/crossval_teach.py                    # videos/custom, 3 folds
    python tools/crossval_teach.py --folds 3 --steps 500 --json runs/teach_cv/cv.json

The videos are grouped by source (the first word of the file name: who filmed them) and
the sources dealt into folds (:func:`finetec_live.learning.realposes.fold_sources`).
For each fold, a model is taught (:func:`finetec_live.teach.teach`, on every other fold's
videos, no validation hold-out) and scored through the live path on the fold's videos:
people the model has not seen, as the final check of a taught model is. Every fold's
model is also run on videos of other actions (default: ``penn_real``'s push-ups, jumping
jacks, golf swings, sit-ups and tennis serves, and ``other_actions``), which should come
out ``unknown`` (or ``idle``). Poses are cached in ``--cache``.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from finetec_live.errors import FinetecError

ROOT = Path(__file__).resolve().parent.parent
OTHER_PENN = ("pushup", "jumping_jacks", "golf_swing", "situp", "tennis_serve")


def _fold_folder(tmp: Path, videos) -> Path:
    """Class folders of links to ``videos`` (same names, so the pose cache applies)."""
    for v, cls in videos:
        d = tmp / cls
        d.mkdir(parents=True, exist_ok=True)
        (d / v.name).symlink_to(v.resolve())
    return tmp


def _others(data: Path, dirs) -> list:
    from finetec_live.learning.videos import find_videos

    if dirs:
        return [v for d in dirs for v in find_videos(d, labelled=False)]
    penn = data / "videos" / "penn_real"
    found = [(v, None) for v, c in find_videos(penn) if c in OTHER_PENN]
    return found + find_videos(data / "videos" / "other_actions", labelled=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, help="class folders (default <data>/videos/custom)")
    ap.add_argument("--others", type=Path, nargs="*", help="folders of videos of other actions")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: "
                    "finetec-train's)")
    ap.add_argument("--fit", nargs="*", default=[], metavar="NAME=VALUE",
                    help="FitOptions fields to change, JSON values (e.g. estimator_prob=0.6 "
                    "train_blocks=2)")
    ap.add_argument("--outlier-rejection", type=float, default=None)
    ap.add_argument("--base", default="penn", help="the weights teaching starts from "
                    "(finetec-train --base; default penn)")
    ap.add_argument("--sweep", type=float, nargs="*", default=[], metavar="R",
                    help="also score each fold's model with the similarity floors that reject "
                         "these shares of the held-out other-action windows")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "pose_cache")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "teach_cv")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from finetec_live import Recognizer
        from finetec_live.data.paths import data_root
        from finetec_live.inference.openset import OPEN_SET_LABELS
        from finetec_live.learning import videos as V
        from finetec_live.learning.realposes import select_fold
        from finetec_live.teach import FitOptions, TeachOptions, teach

        data = data_root()
        labelled = V.find_videos(args.videos or data / "videos" / "custom")
        others = _others(data, args.others)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        fit = FitOptions(**{k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.fit)})
        if args.steps is not None:
            fit.steps = args.steps
        extra = ({} if args.outlier_rejection is None
                 else {"outlier_rejection": args.outlier_rejection})
        closed, closed_other = [], []
        swept = {r: [] for r in args.sweep}
        res, other_res, seconds = [], [], []
        for k in range(args.folds):
            held = select_fold(labelled, args.folds, k, held_out=True)
            train = select_fold(labelled, args.folds, k, held_out=False)
            with tempfile.TemporaryDirectory() as tmp:
                out = args.out_dir / f"fold{k}.pt"
                rep = teach(TeachOptions(source=_fold_folder(Path(tmp) / "clips", train),
                                         out=out, pose_cache=args.cache, val_fraction=0.0,
                                         min_clips=1, fit=fit, progress=False,
                                         base=args.base, **extra))
            seconds.append(rep["seconds"]["total"])
            rec = Recognizer.from_checkpoint(out, device="cpu")
            res += V.evaluate_videos(rec, held, args.cache, progress=False)
            other_res.append(V.evaluate_videos(rec, others, args.cache, progress=False))
            rec.open_set_enabled = False
            closed += V.evaluate_videos(rec, held, args.cache, progress=False)
            closed_other += V.evaluate_videos(rec, others, args.cache, progress=False)
            rec.open_set_enabled = True
            rule = rec.open_set
            grid = rule.calibration.get("outlier_similarity_quantiles", {})
            for r in args.sweep:
                rec.open_set = replace(rule, similar_below=grid[f"{r:g}"])
                swept[r] += [(V.evaluate_videos(rec, held, args.cache, progress=False),
                              V.evaluate_videos(rec, others, args.cache, progress=False))]
            rec.open_set = rule
            print(f"fold {k}: trained on {len(train)} videos in {seconds[-1]:.0f} s, scored "
                  f"on {len(held)}", flush=True)
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\nWith the open set (finetec-live's default):\n")
    print(V.class_table(res))
    print("\nForced to a class (--no-open-set):\n")
    print(V.class_table(closed))
    flat = [r for fold in other_res for r in fold]
    rejected = sum(r.majority in OPEN_SET_LABELS for r in flat)
    print(f"\nOther actions, every fold's model: {rejected} of {len(flat)} video runs come out "
          f"unknown or idle ({100 * rejected / max(1, len(flat)):.0f}%)")
    by = collections.Counter(r.majority for r in flat)
    print("their majority labels: " + ", ".join(f"{k} {n}" for k, n in by.most_common()))
    if swept:
        print("\nOther similarity floors (rejecting R of the held-out windows of other "
              "actions, not lowered for validation windows):\n")
        print("| R | videos right | windows right | other actions unknown or idle |")
        print("|---|---:|---:|---:|")
        for r, folds in swept.items():
            mine = [x for h, _ in folds for x in h]
            theirs = [x for _, o in folds for x in o]
            n_win = sum(len(x.labels) for x in mine)
            rejected = sum(x.majority in OPEN_SET_LABELS for x in theirs) / max(1, len(theirs))
            print(f"| {r:g} | {sum(x.majority == x.truth for x in mine)}/{len(mine)} | "
                  f"{100 * sum(x.windows_right for x in mine) / max(1, n_win):.0f}% | "
                  f"{100 * rejected:.0f}% |")
    if args.json:
        args.json.write_text(json.dumps({"seconds": seconds, **V.summary(res + flat)},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``finetec-train``: teach the model your own actions (:func:`finetec_live.teach.teach`).

    finetec-train my_clips/ --out mine.pt        # one sub-folder of videos/recordings per class
    finetec-train skeletons.pkl --out mine.pt --class-names names.txt   # a PYSKL 2D file

Then ``finetec-live --model mine.pt``. Next to the checkpoint: ``mine.report.md``,
``mine.report.json`` and ``mine.confusion.png``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from finetec_live.cli.options import OneLineParser
from finetec_live.errors import FinetecError
from finetec_live.teach.fit import FitOptions
from finetec_live.teach.run import (
    MIN_CLIPS,
    OTHER_DATASETS,
    OUTLIER_REJECTION,
    VAL_FRACTION,
    TeachOptions,
)

log = logging.getLogger("finetec_live.train")
F = FitOptions()


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="finetec-train",
                      description="Teach the model your own actions: fine-tune the shipped "
                                  "weights on a few clips per class, calibrate unknown/idle, "
                                  "write a checkpoint for finetec-live --model and a report.")
    add = p.add_argument
    add("source", type=Path, metavar="DIR|FILE.pkl",
        help="a folder with one sub-folder per class (videos .mp4 .avi .mov .mkv .webm and/or "
             "finetec-live --record files), or a PYSKL/MMAction2 2D annotation file whose "
             "split['train'] clips are taught")
    add("--out", type=Path, required=True, help="checkpoint to write (e.g. mine.pt)")
    add("--class-names", type=Path, metavar="NAMES.txt",
        help="PYSKL file: one class name per line, in label order (default class_000, ...)")
    add("--base", default="penn", help="checkpoint to start from (default: the shipped penn)")
    add("--other", nargs="+", default=(), metavar="DIR", dest="other_videos",
        help="folders of videos of actions that are none of the classes, for unknown")
    add("--other-datasets", nargs="*", default=OTHER_DATASETS, metavar="NAME",
        help="skeleton data sets under the data root whose clips of other actions train and "
             f"calibrate unknown, those found (default: {' '.join(OTHER_DATASETS)}; none: "
             "give the flag alone)")
    add("--data-root", default=None, help="the folder holding penn_action/ and jhmdb/ "
        "(default: $FINETEC_DATA or ../shared/data)")
    add("--val-fraction", type=float, default=VAL_FRACTION,
        help=f"share of each class's clips held out for the validation report (default "
             f"{VAL_FRACTION}; at least one; 0: train on all, no report)")
    add("--refit", action=argparse.BooleanOptionalAction, default=True,
        help="after the validation report, train the checkpoint on every clip, validation "
             "ones included (default on; --no-refit ships the validated model)")
    add("--min-clips", type=int, default=MIN_CLIPS,
        help=f"fewest clips a class may have (default {MIN_CLIPS})")
    add("--window", type=float, default=None, dest="window_seconds", metavar="S",
        help="live window in seconds (default: from the clips' durations, 1-2.5 s)")
    add("--steps", type=int, default=F.steps, help=f"training steps (default {F.steps})")
    add("--batch-size", type=int, default=F.batch_size)
    add("--lr", type=float, default=F.lr)
    add("--seed", type=int, default=F.seed)
    add("--outlier-rejection", type=float, default=OUTLIER_REJECTION,
        help="share of held-out windows of other actions that unknown must reject "
             f"(default {OUTLIER_REJECTION})")
    add("--pose-cache", type=Path, default=None, metavar="DIR",
        help="where videos' poses are cached (default DIR/.finetec-poses, or the user's "
             "cache folder when DIR is read-only)")
    add("--jobs", type=int, default=2, help="pose-estimation processes (default 2)")
    add("--device", default="auto", choices=("auto", "cpu", "cuda"))
    add("--threads", type=int, default=0, help="torch threads (default: all cores)")
    add("--quiet", action="store_true", help="no progress bars")
    add("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _summary(rep: dict) -> str:
    lines = [f"wrote {rep['checkpoint']} ({rep['model_id']}): {len(rep['class_names'])} "
             f"classes, window {rep['window_seconds']:g} s, {rep['seconds']['total']:.0f} s"]
    v = rep.get("validation")
    if v:
        lines.append(f"validation: {v['clips_right']}/{v['clips']} clips, "
                     f"{v['windows_right']}/{v['windows']} windows right (open set)")
    if rep["skipped"]:
        lines.append(f"skipped {len(rep['skipped'])} inputs (see the report)")
    lines.append(f"report: {rep['files']['markdown']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fit = FitOptions(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    try:
        from finetec_live.teach.run import teach

        opts = TeachOptions(source=args.source, out=args.out, base=args.base,
                            class_names=args.class_names, val_fraction=args.val_fraction,
                            min_clips=max(1, args.min_clips), refit=args.refit,
                            other_videos=tuple(args.other_videos),
                            other_datasets=tuple(args.other_datasets),
                            data_root=args.data_root, pose_cache=args.pose_cache,
                            jobs=max(1, args.jobs), device=args.device, threads=args.threads,
                            window_seconds=args.window_seconds,
                            outlier_rejection=args.outlier_rejection, fit=fit,
                            progress=not args.quiet)
        rep = teach(opts, " ".join(["finetec-train", *argv]))
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except (MemoryError, RuntimeError) as exc:
        text = str(exc).lower()
        if not isinstance(exc, MemoryError) and "memory" not in text and \
                "can't allocate" not in text:
            raise
        print("error: out of memory; lower --batch-size or close other programs",
              file=sys.stderr)
        return 1
    print(_summary(rep))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

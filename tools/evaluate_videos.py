#!/usr/bin/env python
"""Real videos of people through the live path: per-class video and window accuracy.

    python tools/evaluate_videos.py                      # penn_real/ and other_actions/
    python tools/evaluate_videos.py --videos DIR --other DIR --model penn --json out.json

Poses are estimated once per video (MediaPipe, every frame, as ``finetec-live
--fast``) and cached in ``--cache`` (default ``runs/pose_cache``), named by the
video's content hash; windows are cut and classified as ``finetec-live`` does
(see :mod:`finetec_live.learning.videos`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from finetec_live.errors import FinetecError

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, help="class folders of videos (default: "
                    "<data>/videos/penn_real)")
    ap.add_argument("--other", type=Path, help="videos of other actions, no class folders "
                    "(default: <data>/videos/other_actions; 'none' to skip)")
    ap.add_argument("--model", default="penn", help="checkpoint or shipped name (default penn)")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "pose_cache",
                    help="pose recordings of the videos (default runs/pose_cache)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", type=Path, help="write the per-video results here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import torch

        from finetec_live import Recognizer
        from finetec_live.data.paths import data_root
        from finetec_live.learning import videos as V

        torch.set_num_threads(max(1, args.threads))
        rec = Recognizer.from_checkpoint(args.model, device="cpu")
        labelled = V.find_videos(args.videos or data_root() / "videos" / "penn_real")
        other_dir = args.other or data_root() / "videos" / "other_actions"
        others = [] if str(other_dir) == "none" else V.find_videos(other_dir, labelled=False)
        res = V.evaluate_videos(rec, labelled, args.cache, progress=not args.quiet)
        res_other = V.evaluate_videos(rec, others, args.cache, progress=not args.quiet)
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model {rec.model_id}; window {rec.window_seconds:g} s, hop {rec.hop_seconds:g} s\n")
    print(V.class_table(res))
    if res_other:
        n_sports = sum(r.majority is not None for r in res_other)
        print(f"\nOther actions: {n_sports} of {len(res_other)} videos get a "
              f"{rec.checkpoint_meta.get('dataset', 'model')} label as their majority\n")
        print(V.other_table(res_other))
    if args.json:
        args.json.write_text(json.dumps({"model": rec.model_id, **V.summary(res + res_other)},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

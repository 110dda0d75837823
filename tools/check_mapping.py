#!/usr/bin/env python
"""Check the MediaPipe -> penn13 mapping against where Penn Action's annotators put the
head, shoulders and hips.

    python tools/check_mapping.py            # Penn's training annotations vs penn_real/

Prints, for Penn's training annotations (visible joints) and for MediaPipe on the
real-video development set mapped to penn13 as ``finetec-live`` maps it (poses cached in
``runs/pose_cache``), the median and quartiles of: the head's height above the shoulders,
the shoulder and hip widths (over the torso length) and hip over shoulder width.
``--raw`` shows MediaPipe's own landmarks (nose, hips) without the mapping's corrections.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, help="class folders of videos (default "
                    "<data>/videos/penn_real)")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "pose_cache")
    ap.add_argument("--raw", action="store_true", help="MediaPipe's nose and hips as they are")
    args = ap.parse_args(argv)
    try:
        from finetec_live.data import load_dataset
        from finetec_live.data.paths import data_root
        from finetec_live.learning import mapping, videos
        from finetec_live.live.recording import KeypointSource
        from finetec_live.skeleton import layouts

        train = list(load_dataset("penn").train())
        penn = mapping.body_ratios(np.concatenate([c.positions for c in train]),
                                   np.concatenate([c.joint_valid for c in train]))
        pos, jv = [], []
        idx = [layouts.MEDIAPIPE33.joints.index("nose" if n == "head" else n)
               for n in layouts.PENN13.joints]
        for video, _ in videos.find_videos(args.videos or data_root() / "videos" / "penn_real"):
            for frame in KeypointSource(videos.cached_poses(video, args.cache), realtime=False):
                p = frame.pose
                if p.visibility is None:  # a missing frame
                    continue
                valid = p.joint_valid & (p.visibility >= 0.5)
                if args.raw:  # the same-named landmarks, the nose for the head
                    pos.append(p.positions[idx])
                    jv.append(valid[idx])
                else:
                    q, ok = layouts.map_layout(p.positions, valid, "mediapipe33", "penn13")
                    pos.append(q)
                    jv.append(ok)
        mp = mapping.body_ratios(np.stack(pos), np.stack(jv))
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    label = "MediaPipe raw" if args.raw else "MediaPipe mapped"
    print(f"| ratio | Penn annotations | {label} |\n|---|---:|---:|")
    a, b = mapping.summary(penn), mapping.summary(mp)
    for k in mapping.RATIOS:
        print(f"| {k} | {a[k]['median']:.3f} [{a[k]['q25']:.3f}, {a[k]['q75']:.3f}] | "
              f"{b[k]['median']:.3f} [{b[k]['q25']:.3f}, {b[k]['q75']:.3f}] |")
    print(f"\nframes: {a[mapping.RATIOS[0]]['frames']} annotated, "
          f"{b[mapping.RATIOS[0]]['frames']} estimated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Few-shot teaching on a skeleton file: J-HMDB split 1 as a PYSKL COCO-17 file with N
training clips per class, taught with ``finetec-train``, scored on its test clips.

    python tools/fewshot.py --shots 5            # writes runs/fewshot/jhmdb_5shot.pkl, ...
    python tools/fewshot.py --shots 10 --json docs/results/fewshot_10.json

The file is what PYSKL's HRNet files hold: ``keypoint (1, T, 17, 2)`` in COCO order and
``keypoint_score`` (1 where J-HMDB's puppet has the joint; COCO's eyes and ears, which the
puppet lacks, 0; its ``face`` point is COCO's nose). ``split['train']`` holds N clips per
class drawn with ``--seed`` from J-HMDB's training split, ``split['test']`` all 176 test
clips. The checkpoint is taught from the file (all N shots, no validation hold-out, unless
``--val-fraction``), then its top-1 is measured once on the test clips, whole, as the
evaluation resamples them (closed set: the top class), and with the open-set decision.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError

ROOT = Path(__file__).resolve().parent.parent
# COCO-17 joint <- J-HMDB puppet joint (None: the puppet has none)
COCO_FROM_JHMDB = {"nose": "face", "left_eye": None, "right_eye": None, "left_ear": None,
                   "right_ear": None}


def to_coco17(clip):
    """A J-HMDB clip (jhmdb15) as COCO-17: ``(positions (T, 17, 2), valid (T, 17))``."""
    from finetec_live.skeleton.layouts import COCO17, JHMDB15

    T = clip.num_frames
    pos = np.zeros((T, 17, 2), np.float32)
    valid = np.zeros((T, 17), bool)
    for i, name in enumerate(COCO17.joints):
        src = COCO_FROM_JHMDB.get(name, name)
        if src is None:
            continue
        j = JHMDB15.joints.index(src)
        pos[:, i], valid[:, i] = clip.positions[:, j], clip.joint_valid[:, j]
    return pos, valid


def write_file(path: Path, shots: int, seed: int, data_root=None) -> tuple[Path, Path, list]:
    """The PYSKL file, its class-names file and the test clips' names."""
    from finetec_live.data import Clip, load_jhmdb
    from finetec_live.data.pyskl import save_pyskl

    js = load_jhmdb(data_root)
    rng = np.random.default_rng(seed)
    train = []
    for k in range(len(js.class_names)):
        mine = [c for c in js.train() if c.label == k]
        train += [mine[i] for i in sorted(rng.permutation(len(mine))[:shots])]
    test = list(js.test())
    clips = []
    for c in train + test:
        pos, valid = to_coco17(c)
        clips.append(Clip(name=c.name, positions=pos, joint_valid=valid, label=c.label,
                          label_name=c.label_name, split=c.split, fps=c.fps, layout="coco17"))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_pyskl(path, clips, {"train": [c.name for c in train], "test": [c.name for c in test]})
    names = path.with_suffix(".names.txt")
    names.write_text("\n".join(js.class_names) + "\n")
    return path, names, [c.name for c in test]


def score_test(ckpt: Path, pkl: Path, names: Path) -> dict:
    """Top-1 (%) of the checkpoint on the file's test clips, whole."""
    from finetec_live import Recognizer
    from finetec_live.data.pyskl import load_pyskl
    from finetec_live.learning.openset import clip_windows
    from finetec_live.skeleton.layouts import map_layout
    from finetec_live.teach.collect import LAYOUT, read_class_names

    rec = Recognizer.from_checkpoint(ckpt, device="cpu")
    cs = load_pyskl(pkl, train_split="train", test_split="test",
                    class_names=read_class_names(names))
    from dataclasses import replace

    test = [replace(c, positions=p, joint_valid=v, layout=LAYOUT) for c in cs.test()
            for p, v in [map_layout(c.positions, c.joint_valid, cs.layout, LAYOUT)]]
    ws = clip_windows(test, rec.T, rec.window_seconds, crops=False)
    batch = rec.prepare(ws.positions, ws.frame_valid, ws.joint_valid, ws.timestamps)
    probs = rec.predict(batch)  # one forward pass for both figures
    labels = [d.label for d in rec.decide(probs, batch)]
    truth = [rec.class_names[k] for k in ws.labels]
    return {"test_clips": len(test),
            "top1": round(100 * float(np.mean(probs.argmax(1) == ws.labels)), 1),
            "open_set_right": round(100 * float(np.mean([a == b for a, b in
                                                         zip(labels, truth, strict=True)])), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--val-fraction", type=float, default=0.0)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "fewshot")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from finetec_live.teach import FitOptions, TeachOptions, teach

        pkl, names, _ = write_file(args.out_dir / f"jhmdb_{args.shots}shot.pkl", args.shots,
                                   args.seed)
        out = pkl.with_suffix(".pt")
        fit = FitOptions(seed=args.seed) if args.steps is None else FitOptions(
            steps=args.steps, seed=args.seed)
        t0 = time.time()
        command = (f"finetec-train {pkl} --out {out} --class-names {names} "
                   f"--val-fraction {args.val_fraction}")
        rep = teach(TeachOptions(source=pkl, out=out, class_names=names,
                                 val_fraction=args.val_fraction, min_clips=1, fit=fit,
                                 progress=False), command)
        seconds = time.time() - t0
        res = {"shots": args.shots, "seed": args.seed, "command": command,
               "seconds": round(seconds, 1), "steps": rep["steps"],
               "window_seconds": rep["window_seconds"], **score_test(out, pkl, names)}
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

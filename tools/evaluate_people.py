#!/usr/bin/env python
"""Several people in one picture: real videos side by side through ``finetec-live --max-people``.

    python tools/evaluate_people.py --pairs 6                        # the shipped model
    python tools/evaluate_people.py --crossval 'runs/ft/cv_c{fold}.pt' --folds 4

Each pair is two real videos of different Penn classes (``--videos``, class folders),
tiled side by side (``--seconds`` long, each ``--height`` pixels high), run through
``finetec-live --fast --max-people 2``; each side gets the labels whose person box is
centred in it. A pair passes when both sides' majority label is that side's class.
Each side is also run alone, the same seconds at the same size, with ``--max-people 1``:
what the single-person path says of the same person, for telling tracking errors
from the model's.

With ``--crossval PATTERN`` both videos of a pair come from one fold (videos grouped
by source, as in ``tools/evaluate_videos.py``) and are run with that fold's model,
trained without those people; without it the model (default the shipped one, which
saw these videos in training) is used.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError

ROOT = Path(__file__).resolve().parent.parent


def pick_pairs(videos, n: int, seed: int, folds: dict | None):
    """``n`` pairs of videos of different classes (of one fold, with ``folds``)."""
    from finetec_live.learning.realposes import source_of

    rng = np.random.default_rng(seed)
    pairs, seen = [], set()
    for _ in range(1000 * n):
        if len(pairs) == n:
            break
        i, j = rng.choice(len(videos), 2, replace=False)
        (a, ta), (b, tb) = videos[i], videos[j]
        fold = None if folds is None else folds[source_of(a)]
        if ta == tb or (folds is not None and folds[source_of(b)] != fold):
            continue
        key = frozenset((a, b))
        if key not in seen:
            seen.add(key)
            pairs.append(((a, ta), (b, tb), fold))
    return pairs


def run_pair(k: int, pair, args, out_dir: Path) -> list[dict]:
    from finetec_live.learning.composites import run_live, score_tiles, tile_videos

    left, right, fold = pair
    model = args.crossval.format(fold=fold) if args.crossval else args.model
    both = out_dir / f"pair{k}.mp4"
    tiles = tile_videos([left, right], both, args.seconds, args.height)
    extra = [] if args.smooth is None else ["--smooth", str(args.smooth)]
    got = run_live(both, out_dir, 2, model, extra)
    rows = []
    for side, (tile, score) in enumerate(zip(tiles, score_tiles(tiles, got.labels),
                                             strict=True)):
        alone = out_dir / f"pair{k}_side{side}.mp4"
        tile_videos([(Path(tile.video), tile.truth)], alone, args.seconds, args.height)
        single = run_live(alone, out_dir, 1, model, extra)
        votes = [m["label"] for m in single.labels]
        rows.append({"pair": k, "side": "left right".split()[side], "video": tile.video,
                     "truth": tile.truth, "fold": fold, "model": model,
                     "majority": score.majority, "windows": score.windows,
                     "ids": score.ids, "tracks": sorted(score.people),
                     "alone": max(set(votes), key=votes.count) if votes else None,
                     "alone_windows": len(votes),
                     "tracks_started": got.stats.get("tracks_started")})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'pair':>4} {'side':<5} {'truth':<15} {'two people':<15} {'alone':<15} "
             f"{'ids':>3} {'windows':>7}  video"]
    for r in rows:
        lines.append(f"{r['pair']:>4} {r['side']:<5} {r['truth']:<15} {r['majority']!s:<15} "
                     f"{r['alone']!s:<15} {r['ids']:>3} {r['windows']:>7}  "
                     f"{Path(r['video']).name}")
    pairs = sorted({r["pair"] for r in rows})
    ok = [p for p in pairs if all(r["majority"] == r["truth"] for r in rows if r["pair"] == p)]
    sides = sum(r["majority"] == r["truth"] for r in rows)
    agree = sum(r["majority"] == r["alone"] for r in rows)
    alone = sum(r["alone"] == r["truth"] for r in rows)
    lines += ["", f"pairs with both sides right: {len(ok)} / {len(pairs)}",
              f"sides right: {sides} / {len(rows)} (alone, --max-people 1: {alone} / "
              f"{len(rows)}); sides agreeing with their single-person run: {agree} / "
              f"{len(rows)}",
              f"most ids on one side: {max(r['ids'] for r in rows)}; sides with more than 2: "
              f"{sum(r['ids'] > 2 for r in rows)}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, help="class folders of videos (default: "
                    "<data>/videos/penn_real)")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--model", default="penn")
    ap.add_argument("--crossval", metavar="PATTERN", help="checkpoint per fold, '{fold}'")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "people")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--smooth", type=int, metavar="K",
                    help="finetec-live --smooth K (default: finetec-live's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from finetec_live.data.paths import data_root
        from finetec_live.learning.realposes import fold_sources
        from finetec_live.learning.videos import find_videos

        videos = find_videos(args.videos or data_root() / "videos" / "penn_real")
        folds = fold_sources(videos, args.folds) if args.crossval else None
        args.out_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for k, pair in enumerate(pick_pairs(videos, args.pairs, args.seed, folds)):
            rows += run_pair(k, pair, args, args.out_dir)
            logging.info("pair %d: %s", k, ", ".join(f"{r['truth']} -> {r['majority']}"
                                                     for r in rows[-2:]))
        text = table(rows)
        print(text)
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "args": {
                k: str(v) for k, v in vars(args).items()}, "table": text}, indent=1))
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

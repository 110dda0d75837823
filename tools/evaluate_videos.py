#!/usr/bin/env python
"""Real videos of people through the live path: per-class video and window accuracy.

    python tools/evaluate_videos.py                      # penn_real/ and other_actions/
    python tools/evaluate_videos.py --videos DIR --other DIR --model penn --json out.json
    python tools/evaluate_videos.py --crossval 'runs/cv{fold}.pt' --folds 4

With ``--crossval PATTERN``, fold k's videos (videos grouped by source, see
:mod:`finetec_live.learning.realposes`) are scored with the checkpoint ``PATTERN``
names for ``{fold}`` = k, one trained without them (``tools/train.py --real-fold k``):
the table is then a score on people the models did not see. The videos of other
actions are scored with every fold's model.

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
    ap.add_argument("--other", type=Path, nargs="+", help="folders of videos of other "
                    "actions, no class folders (default: <data>/videos/other_actions; 'none' "
                    "to skip)")
    ap.add_argument("--model", default="penn", help="checkpoint or shipped name (default penn)")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "pose_cache",
                    help="pose recordings of the videos (default runs/pose_cache)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", type=Path, help="write the per-video results here")
    ap.add_argument("--crossval", metavar="PATTERN",
                    help="checkpoint per fold, '{fold}' in the name (see above)")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--calibrate", type=float, metavar="R", default=None,
                    help="calibrate every model's open set first, in memory, as "
                         "tools/calibrate.py --outlier-rejection R does: for choosing the "
                         "rule on cross-validation")
    ap.add_argument("--calibrate-quantile", type=float, metavar="Q", default=None,
                    help="the same with tools/calibrate.py's other rule, "
                         "--outlier-rejection 0 --unknown-quantile Q")
    ap.add_argument("--calibrate-prototypes", type=float, metavar="R", default=None,
                    help="with --calibrate: unknown by the similarity to class prototypes, "
                         "as tools/calibrate.py --prototypes R does")
    ap.add_argument("--calibrate-memory", type=int, metavar="N", default=0,
                    help="with --calibrate-prototypes and --crossval: the prototypes are up "
                         "to N training windows themselves (Penn's training clips and the "
                         "chunks of the other folds' videos), not class means: unknown by the "
                         "similarity to the nearest one")
    ap.add_argument("--fuse-lengths", metavar="SET", nargs="+",
                    help="score each SET of window-length factors, e.g. '0.75,1,1.5': every "
                         "live window is also cut at factor x the checkpoint's length, "
                         "ending at the same time, and the lengths' probabilities fused "
                         "(a single factor: that length alone); see "
                         "finetec_live.learning.fusion")
    ap.add_argument("--fuse-rule", nargs="+", choices=("mean", "logmean"), default=["mean"],
                    help="with --fuse-lengths: mean of the probabilities, or of the "
                         "log-probabilities (renormalised); several: each scored")
    ap.add_argument("--smooth", type=int, nargs="+", metavar="K", default=None,
                    help="decide on the mean of each video's last K windows, as finetec-live "
                         "--smooth K (default: its default); several: each scored, against "
                         "the first, with how many windows later a label follows a change "
                         "of action (see finetec_live.learning.fusion.change_delays)")
    ap.add_argument("--mirror", action="store_true",
                    help="average each window's probabilities with its mirror image's "
                         "(Recognizer.mirror_average), calibration included")
    ap.add_argument("--own-sides", action="store_true",
                    help="map MediaPipe's joints to penn13 by their own side names, not "
                         "Penn's sides (what finetec-live did before the mapping followed "
                         "Penn's files): for measuring that choice")
    ap.add_argument("--hold", type=float, metavar="H", default=None,
                    help="every model's held classes continue down to H x its unknown "
                         "threshold (1: no hold; default: the checkpoint's, or with "
                         "--calibrate, tools/calibrate.py's default)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.own_sides:  # undo, in this process, the mappings' exchange of sides
        from finetec_live.skeleton.layouts import exchange_penn13_sides

        exchange_penn13_sides()
    from finetec_live.inference.smoothing import DEFAULT_WINDOWS

    args.smooth = args.smooth or [DEFAULT_WINDOWS]
    if args.calibrate_memory and (args.calibrate_prototypes is None or not args.crossval):
        ap.error("--calibrate-memory needs --calibrate-prototypes and --crossval (without "
                 "cross-validation the memory would hold the videos being scored)")
    if min(args.smooth) < 1:
        ap.error("--smooth needs whole numbers of windows >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import torch

        from finetec_live import Recognizer
        from finetec_live.data.paths import data_root
        from finetec_live.inference.openset import OPEN_SET_LABELS
        from finetec_live.learning import videos as V
        from finetec_live.learning.realposes import select_fold

        torch.set_num_threads(max(1, args.threads))
        labelled = V.find_videos(args.videos or data_root() / "videos" / "penn_real")
        other_dirs = args.other or [data_root() / "videos" / "other_actions"]
        others = [] if [str(d) for d in other_dirs] == ["none"] else [
            v for d in other_dirs for v in V.find_videos(d, labelled=False)]
        if args.crossval:
            runs = [(Recognizer.from_checkpoint(args.crossval.format(fold=k), device="cpu"),
                     select_fold(labelled, args.folds, k, held_out=True))
                    for k in range(args.folds)]
        else:
            runs = [(Recognizer.from_checkpoint(args.model, device="cpu"), labelled)]
        for rec, _ in runs:
            rec.mirror_average = args.mirror
        if args.calibrate is not None or args.calibrate_quantile is not None:
            from finetec_live.learning import openset

            for rec, held in runs:
                sets = openset.calibration_sets(rec)
                rec.open_set = openset.calibrate(
                    rec, *sets, outlier_rejection=args.calibrate if args.calibrate else 0,
                    unknown_quantile=args.calibrate_quantile or openset.UNKNOWN_QUANTILE)
                if args.calibrate_prototypes is not None:
                    taught = openset.taught_windows(rec)
                    if args.calibrate_memory:
                        # the videos the fold model trained on: the other folds'
                        seen = [v for v in labelled if v not in held]
                        taught = openset.concat_windows(taught, _real_windows(
                            rec, seen, args.cache))
                    rec.open_set = openset.with_prototypes(
                        rec, rec.open_set, taught, sets[1], sets[0],
                        args.calibrate_prototypes, per_window=args.calibrate_memory)
                rec.open_set_enabled = True
        if args.hold is not None:
            from finetec_live.learning.openset import with_hold

            for rec, _ in runs:
                if rec.open_set is None:
                    raise FinetecError(f"--hold: {rec.model_id} has no open set; calibrate it")
                rec.open_set = with_hold(rec.open_set, args.hold)
        if args.fuse_lengths or len(args.smooth) > 1:
            from finetec_live.learning import fusion

            sets = [fusion.parse_factors(x) for x in args.fuse_lengths or ["1"]]
            union = sorted({f for fs in sets for f in fs})
            done = [(rec, fusion.evaluate_outputs(rec, videos, args.cache, union,
                                                  progress=not args.quiet),
                     fusion.evaluate_outputs(rec, others, args.cache, union,
                                             progress=not args.quiet))
                    for rec, videos in runs]
            _describe(runs)
            return _report_fusion(done, sets, args.fuse_rule, args.json, args.smooth)
        res, res_other = [], []
        for rec, videos in runs:
            res += V.evaluate_videos(rec, videos, args.cache, progress=not args.quiet,
                                     smooth=args.smooth[0])
            res_other.append(V.evaluate_videos(rec, others, args.cache,
                                               progress=not args.quiet, smooth=args.smooth[0]))
    except FinetecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _describe(runs)
    print(V.class_table(res))
    for (rec, _), other in zip(runs, res_other, strict=True):
        if not other:
            continue
        n_sports = sum(r.majority not in (None, *OPEN_SET_LABELS) for r in other)
        print(f"\nOther actions, model {rec.model_id}: {n_sports} of {len(other)} videos get "
              f"a {rec.checkpoint_meta.get('dataset', 'model')} label as their majority\n")
        print(V.other_table(other))
    if args.json:
        flat = [r for other in res_other for r in other]
        args.json.write_text(json.dumps({"models": [rec.model_id for rec, _ in runs],
                                         **V.summary(res + flat)}, indent=1) + "\n")
    return 0


def _real_windows(rec, videos, cache):
    """Windows of the chunks of ``videos`` (the model's training videos) that training
    drew its real poses from."""
    from finetec_live.learning import openset
    from finetec_live.learning.realposes import video_chunks

    chunks = video_chunks(videos, cache, rec.layout, rec.class_names)
    return openset.clip_windows(chunks, rec.T, rec.window_seconds)


def _describe(runs) -> None:
    for rec, _ in runs:
        rule = rec.open_set if rec.open_set_enabled else None
        how = (f"unknown below {rule.unknown_below:.3f}, idle below {rule.idle_floor:.5f}"
               if rule else "closed set")
        if rule and rule.hold_below is not None:
            how += f"; a held class continues down to {rule.hold_below:.3f}"
        if rule and rule.prototypes is not None:
            how += f"; prototype similarity floor {rule.similar_below:.3f}"
        print(f"model {rec.model_id}; window {rec.window_seconds:g} s, hop "
              f"{rec.hop_seconds:g} s; {how}")
    print()


def _report_fusion(done, sets, rules, json_path, smooths=(1,)) -> int:
    """Per rule, set of lengths and smoothing: the class table and the other actions'
    majorities; then one line per combination, paired video by video with one 1 x window
    under the first smoothing (when among the sets); with several smoothings, how much
    later a label follows a change of action."""
    from finetec_live.inference.openset import OPEN_SET_LABELS
    from finetec_live.learning import fusion
    from finetec_live.learning import videos as V

    scored = {}
    for k in smooths:
        for rule in rules:
            for factors in sets:
                if len(factors) == 1 and rule != rules[0]:
                    continue  # one length: nothing to fuse, the same under every rule
                res, n_sports, n_other = [], 0, 0
                for rec, labelled, others in done:
                    res += [fusion.fused_result(rec, w, factors, rule, t, v, k)
                            for v, t, w in labelled]
                    other = [fusion.fused_result(rec, w, factors, rule, t, v, k)
                             for v, t, w in others]
                    n_sports += sum(r.majority not in (None, *OPEN_SET_LABELS) for r in other)
                    n_other += len(other)
                scored[(factors, rule, k)] = res, n_sports, n_other
    base_key = ((1.0,), rules[0], smooths[0])
    base = scored.get(base_key, (None,))[0]
    rows = ["| lengths | smoothed over | videos right | windows right | other-action videos "
            "with a class majority | vs the first: videos better / worse (window accuracy), "
            "sign test | majorities made right / wrong |", "|---|---:|---:|---:|---:|---:|---:|"]
    for (factors, rule, k), (res, n_sports, n_other) in scored.items():
        name = " + ".join(f"{f:g}" for f in factors) + " x window" + (
            f", {rule}" if len(factors) > 1 else "")
        print(f"### {name}, smoothed over {k} window(s)\n\n{V.class_table(res)}\n\n"
              f"Other actions: {n_sports} of {n_other} videos (all models) get a class as "
              "their majority\n")
        tv, wr, wn = (sum(r.majority == r.truth for r in res),
                      sum(r.windows_right for r in res), sum(len(r.labels) for r in res))
        vs = "– | –"
        if base is not None and (factors, rule, k) != base_key:
            c = fusion.paired_comparison(res, base)
            vs = (f"{c['better']} / {c['worse']} (p = {c['sign_p']:.2f}) | "
                  f"{c['made_right']} / {c['made_wrong']}")
        rows.append(f"| {name} | {k} | {tv} / {len(res)} | {wr} / {wn} "
                    f"({100 * wr / max(wn, 1):.0f}%) | {n_sports} / {n_other} | {vs} |")
    print("\n".join(rows))
    delays = _report_delays(done, sets[0], rules[0], smooths) if len(smooths) > 1 else {}
    if json_path:
        configs = [{"lengths": list(f), "rule": r, "smooth": k, "other_majority_a_class": n,
                    **V.summary(res)} for (f, r, k), (res, n, _) in scored.items()]
        json_path.write_text(json.dumps({"models": [rec.model_id for rec, _, _ in done],
                                         "configs": configs, "change_delays": delays},
                                        indent=1) + "\n")
    return 0


def _report_delays(done, factors, rule, smooths) -> dict:
    """Per smoothing: windows from a change of action to the first label of the new class,
    over every ordered pair of one model's videos of different classes; the delay added
    to the first smoothing's, on the pairs both reach."""
    import numpy as np

    from finetec_live.learning import fusion

    hop = float(done[0][0].hop_seconds)
    got = {k: [d for rec, labelled, _ in done
               for d in fusion.change_delays(rec, labelled, k, factors, rule)]
           for k in smooths}
    first = got[smooths[0]]
    rows = [f"\nA change of action ({' + '.join(f'{f:g}' for f in factors)} x window; "
            f"{len(first)} ordered pairs of videos of different classes, each model's own; "
            "no window spans both videos):\n",
            "| smoothed over | new class reached | windows to it, median (90th pct.) | "
            f"added to {smooths[0]} window(s): median (90th pct.), seconds |",
            "|---:|---:|---:|---:|"]
    out = {}
    for k, ds in got.items():
        reached = [d for d in ds if d is not None]
        both = [d - d0 for d, d0 in zip(ds, first, strict=True)
                if d is not None and d0 is not None]
        med = np.median(reached) if reached else float("nan")
        p90 = np.percentile(reached, 90) if reached else float("nan")
        add_med = np.median(both) * hop if both else float("nan")
        add_p90 = np.percentile(both, 90) * hop if both else float("nan")
        rows.append(f"| {k} | {len(reached)} / {len(ds)} | {med:g} ({p90:g}) | "
                    f"{add_med:+.2f} ({add_p90:+.2f}) |")
        out[str(k)] = {"pairs": len(ds), "reached": len(reached), "delays": ds}
    print("\n".join(rows))
    return out


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Calibrate a Penn Action checkpoint's open-set decision (``unknown`` and ``idle``) and
write the thresholds into it (``open_set``, with a stage record).

    python tools/calibrate.py --checkpoint runs/penn_ft.pt --out models/weights/penn.pt

Training data only (:func:`finetec_live.learning.openset.calibration_sets`): Penn's
validation clips in both joint conventions, J-HMDB training clips of other actions held out
of outlier exposure, still windows of training poses. ``--report`` also measures the
test sets (:func:`finetec_live.learning.openset.test_sets`) and prints them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from finetec_live.errors import FinetecError
from finetec_live.learning.openset import (
    HOLD,
    IDLE_QUANTILE,
    OUTLIER_REJECTION,
    UNKNOWN_QUANTILE,
)


def _report(rec, args, command: str, data_root) -> None:
    """The open set of ``rec`` on the test sets, written to ``args.report`` and printed."""
    from finetec_live.inference.checkpoint import file_sha256, resolve_checkpoint
    from finetec_live.learning import openset

    report = {name: openset.rates(rec, ws)
              for name, ws in openset.test_sets(rec, data_root).items()}
    report["open_set"] = rec.open_set.to_dict()
    report["checkpoint"] = {"id": rec.model_id, "sha256": file_sha256(
        resolve_checkpoint(args.out or args.checkpoint))}
    report["made_by"] = command
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--out", type=Path, help="where to write (default: --checkpoint)")
    ap.add_argument("--idle-quantile", type=float, default=IDLE_QUANTILE)
    ap.add_argument("--outlier-rejection", type=float, default=OUTLIER_REJECTION,
                    help="unknown below the top probability that rejects this share of the "
                         "held-out outlier windows (default %(default)s; 0: use "
                         "--unknown-quantile of the Penn validation windows instead)")
    ap.add_argument("--unknown-quantile", type=float, default=UNKNOWN_QUANTILE)
    ap.add_argument("--hold", type=float, default=HOLD, metavar="H",
                    help="a track's held class continues down to H x the unknown threshold "
                         f"(1: no hold; default {HOLD})")
    ap.add_argument("--prototypes", type=float, default=None, metavar="R",
                    help="decide unknown by the similarity to class prototypes (the mean "
                         "feature directions of the training windows) instead, below the "
                         "level that rejects R of the held-out outlier windows")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", type=Path, default=None,
                    help="also measure the test sets and write them (JSON) here")
    ap.add_argument("--report-only", action="store_true",
                    help="measure the checkpoint's stored open set on the test sets (with "
                         "--report), without calibrating or writing the checkpoint")
    args = ap.parse_args(argv)
    command = " ".join(["python", "tools/calibrate.py", *(sys.argv[1:] if argv is None
                                                          else argv)])
    try:
        import torch

        from finetec_live.inference.checkpoint import load_checkpoint
        from finetec_live.inference.recognizer import Recognizer
        from finetec_live.learning import openset
        from finetec_live.learning.checkpoints import atomic_save, stage_record, with_stage

        torch.set_num_threads(max(1, args.threads))
        t0 = time.time()
        rec = Recognizer.from_checkpoint(args.checkpoint, device="cpu")
        if args.report_only:
            if args.report is None or rec.open_set is None:
                raise FinetecError("--report-only needs --report FILE and a calibrated "
                                   "checkpoint")
            _report(rec, args, command, args.data_root)
            return 0
        sets = openset.calibration_sets(rec, args.data_root)
        rule = openset.calibrate(rec, *sets, idle_quantile=args.idle_quantile,
                                 unknown_quantile=args.unknown_quantile,
                                 outlier_rejection=args.outlier_rejection, hold=args.hold)
        if args.prototypes is not None:
            rule = openset.with_prototypes(rec, rule, openset.taught_windows(rec, args.data_root),
                                           sets[1], sets[0], args.prototypes)
        ck = load_checkpoint(args.checkpoint)
        ck["open_set"] = rule.to_dict()
        ck["stages"] = with_stage(ck, stage_record(
            command, time.time() - t0, "open-set thresholds calibrated (nothing trained)",
            {"idle_quantile": args.idle_quantile, "unknown_quantile": args.unknown_quantile,
             "outlier_rejection": args.outlier_rejection, "prototypes": args.prototypes,
             "hold": args.hold}))
        atomic_save(ck, args.out or args.checkpoint)
        print(json.dumps({k: v for k, v in rule.to_dict().items() if k != "prototypes"},
                         indent=1))
        if args.report:
            _report(Recognizer.from_checkpoint(args.out or args.checkpoint, device="cpu"),
                    args, command, args.data_root)
    except FinetecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

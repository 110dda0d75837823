#!/usr/bin/env python
"""Evaluate recognizers under every temporal-corruption protocol, with the same masks for all.

    python tools/evaluate.py --dataset penn --checkpoint penn      # the shipped Penn model
    python tools/evaluate.py --dataset jhmdb --checkpoint jhmdb    # the shipped J-HMDB model
    python tools/evaluate.py --checkpoint ours=penn --checkpoint zero=runs/penn_stgcn_zero.pt
    python tools/evaluate.py --merge a.json b.json                 # one report of two runs

The driver, metrics and reports are in :mod:`finetec_live.learning.evaluate`,
:mod:`finetec_live.learning.protocol` and :mod:`finetec_live.learning.reports`.
Writes ``<prefix>.json``, ``<prefix>.md`` and ``<prefix>.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from finetec_live.data.corruption import EVAL_PROTOCOLS, Corruption
from finetec_live.errors import FinetecError
from finetec_live.learning.checkpoints import run_record
from finetec_live.learning.evaluate import (
    DATASET_MODEL,
    DEFAULT_BATCH,
    default_checkpoints,
    run_evaluation,
)
from finetec_live.learning.protocol import DEFAULT_SEED
from finetec_live.learning.reports import merge_results, relabel, report_text, write_reports

ROOT = Path(__file__).resolve().parent.parent


def _parse_checkpoint(text: str) -> tuple[str, str]:
    if "=" not in text:
        return (f"finetec (shipped {text}.pt)" if text in DATASET_MODEL else Path(text).stem,
                text)
    name, path = text.split("=", 1)
    if not name or not path:
        raise argparse.ArgumentTypeError(f"--checkpoint wants NAME=PATH, got {text!r}")
    return name, path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="penn", help="penn, jhmdb or pyskl:PATH")
    ap.add_argument("--checkpoint", action="append", type=_parse_checkpoint, default=[],
                    metavar="NAME=PATH", help="a model to evaluate (repeat); PATH may be "
                    "'penn' or 'jhmdb' for the shipped weights. Default: the shipped model "
                    "of --dataset")
    ap.add_argument("--runs", type=Path, default=None,
                    help="also every checkpoint of the dataset's layout in this folder")
    ap.add_argument("--protocols", nargs="+", default=list(EVAL_PROTOCOLS))
    ap.add_argument("--joints", choices=("visibility", "annotated"), default="visibility",
                    help="Penn Action's occluded joints: missing as annotated (visibility, "
                    "default) or given with the annotated positions, as a pose estimator "
                    "gives every joint (annotated; reports get the suffix _annotated)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--limit", type=int, default=None, help="evaluate on N test clips only")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", type=Path, default=None,
                    help="output prefix (default docs/results/<dataset>_evaluation)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                    help="combine earlier evaluations (same seed and masks) into one report "
                    "instead of evaluating")
    ap.add_argument("--label", action="append", type=_parse_checkpoint, default=[],
                    metavar="OLD=NEW", help="with --merge: rename a method in the report")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def _evaluate(args, argv=None) -> dict:
    import torch

    torch.set_num_threads(max(1, args.threads))
    if args.merge:
        results = merge_results([json.loads(p.read_text()) for p in args.merge])
        return relabel(results, dict(args.label))
    for s in args.protocols:
        Corruption.parse(s)
    cks = list(args.checkpoint) or default_checkpoints(args.dataset)
    if args.runs is not None:
        cks += default_checkpoints(args.dataset, args.runs)[1:]
    t0 = time.perf_counter()
    results = run_evaluation(cks, args.dataset, args.protocols, args.seed, args.limit,
                             args.batch_size, args.data_root, args.device,
                             progress=not args.quiet, joints=args.joints)
    results["total_seconds"] = time.perf_counter() - t0
    results["threads"] = torch.get_num_threads()
    results["made_by"] = run_record(" ".join(["python", "tools/evaluate.py",
                                              *(sys.argv[1:] if argv is None else argv)]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    try:
        results = _evaluate(args, argv)
        name = results["dataset"] + ("_annotated" if results.get("joints") == "annotated"
                                     else "")
        prefix = args.out or ROOT / "docs" / "results" / f"{name}_evaluation"
        paths = write_reports(results, Path(prefix))
    except (FinetecError, OSError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report_text(results))
    print("wrote " + ", ".join(os.fspath(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

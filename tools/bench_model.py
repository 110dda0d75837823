#!/usr/bin/env python
"""Speed of the shipped model against two ST-GCN baselines, timed in the same run.

    python tools/bench_model.py                     # CPU, 2 threads
    python tools/bench_model.py --device cuda --json out/bench_cuda.json

CPU: the median latency of ``Recognizer.classify`` on one 64-frame Penn Action
window (batch 1; with its split into ``prepare``, NumPy + Numba, and
``predict``, the network), for the shipped model and two ST-GCNs fed
interpolated windows (untrained weights: timing only; :data:`BASELINES`): a
compact 6-block one (64-64-64-128-128-128 channels, 719k parameters on
penn13) and the original configuration of Yan et al. (2018; 10 blocks,
64-64-64-64-128-128-128-256-256-256, stride 2 at the first 128 and the first
256 block, 3.1M parameters), and the ratio to each; then windows/s at batch
1, 64 and 1024 for the whole ``classify`` and for the network alone.

CUDA: the network on prepared windows already on the device, in fp32, under
bf16 autocast, and replayed as a CUDA graph (fixed shapes; ``--compile`` adds
``torch.compile(mode="max-autotune-no-cudagraphs")``): batch-1 latency and
windows/s at batch 1, 64 and 1024, plus the end-to-end batch-1 ``classify``
(CPU preprocessing + transfer + forward). Targets: batch 1 under 0.5 ms and at
least 50,000 windows/s at batch 1024.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from finetec_live.inference.speed import (
    BATCHES,
    bench_cpu,
    bench_gpu,
    classify_ratios,
    cpu_table,
    gpu_table,
    load_models,
    penn_window,
)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="penn", help="model to time (default: shipped Penn)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    from finetec_live.errors import FinetecError

    torch.set_num_threads(max(1, args.threads))
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})",
              file=sys.stderr)
        return 2
    try:
        recs = load_models(args.checkpoint, args.device)
    except FinetecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    window = penn_window(args.data_root, next(iter(recs.values())).T)
    result: dict = {"device": args.device, "torch": torch.__version__,
                    "python": platform.python_version(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count(), "window": window[4],
                    "checkpoint": args.checkpoint, "loadavg_before": os.getloadavg()}
    if args.device == "cpu":
        res = bench_cpu(recs, window, args.repeats, args.batches)
        res["_ratios"] = classify_ratios(res, list(recs))
        result["cpu"] = res
        print(cpu_table(res))
    else:
        res = bench_gpu(recs, window, args.repeats, args.batches, args.compile)
        result["cuda"] = res
        print(gpu_table(res))
    result["loadavg_after"] = os.getloadavg()
    print(f"load average before/after: {result['loadavg_before'][0]:.1f} / "
          f"{result['loadavg_after'][0]:.1f} on {os.cpu_count()} CPUs (other processes "
          "running at the same time slow every figure down)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

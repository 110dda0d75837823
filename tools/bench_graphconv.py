#!/usr/bin/env python
"""The two orders of the graph convolution, side by side in one run: the shipped network's
windows/s on real Penn windows, every ``GraphConv`` held to its convolution-first order
(a 1x1 convolution, then the graph as an ``einsum``) or to its graph-first order (one matrix
product on the joint axis, then one ``(K, 1)``-strided convolution), at each batch size and
precision, interleaved round by round (medians of ``--rounds``), and the largest logit
difference between the two.

    python tools/bench_graphconv.py [--batches 1 32 64 128] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32, 64, 128])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"),
                    default=["fp32", "bf16"])
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.live.worker import _arrays
    from finetec_live.models.network import GraphConv
    from finetec_live.serve.simulate import penn_windows

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    rec = Recognizer.from_checkpoint(device="cpu")
    n_max = max(args.batches)
    windows, _ = penn_windows(n_max)
    groups: dict[int, list] = {}
    for w in windows:
        groups.setdefault(w.num_frames, []).append(w)
    arrays = rec.prepare_groups([_arrays(g) for g in groups.values()]).network_inputs()
    orders = {"conv-first": 10**12, "graph-first": 0}  # GRAPH_FIRST_FROM for each order
    default = GraphConv.GRAPH_FIRST_FROM
    rates: dict[tuple, list[float]] = {}
    try:
        for r in range(args.rounds):
            for prec in args.precisions:
                rec.precision = prec
                # each round the other order goes first: neither always runs on a warmer cache
                for order in sorted(orders, reverse=r % 2 == 1):
                    GraphConv.GRAPH_FIRST_FROM = orders[order]
                    for n in args.batches:
                        calls = max(4, min(64, 2 * n_max // n))
                        rec._forward(tuple(a[:n] for a in arrays))  # warm-up
                        t0 = time.perf_counter()
                        for i in range(calls):
                            s = (i * n) % max(1, n_max - n + 1)
                            rec._forward(tuple(a[s:s + n] for a in arrays))
                        rates.setdefault((prec, order, n), []).append(
                            calls * n / (time.perf_counter() - t0))
        rec.precision = "fp32"
        with torch.inference_mode():
            inputs = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
            logits = {}
            for order, threshold in orders.items():
                GraphConv.GRAPH_FIRST_FROM = threshold
                logits[order] = rec.model(*inputs)["logits"]
    finally:
        GraphConv.GRAPH_FIRST_FROM = default
        torch.set_num_threads(threads)
    diff = float((logits["conv-first"] - logits["graph-first"]).abs().max())
    print(f"network windows/s, {args.threads} threads, median of {args.rounds} rounds "
          f"({n_max} real Penn test windows):")
    print("| precision | batch | conv-first | graph-first | graph-first / conv-first |")
    print("|---|---:|---:|---:|---:|")
    for prec in args.precisions:
        for n in args.batches:
            a = statistics.median(rates[(prec, "conv-first", n)])
            b = statistics.median(rates[(prec, "graph-first", n)])
            print(f"| {prec} | {n} | {a:.0f} | {b:.0f} | {b / a:.2f}x |")
    print(f"largest logit difference between the orders (fp32, {n_max} windows): {diff:.1e}; "
          f"forward takes graph-first from N*T >= {default}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

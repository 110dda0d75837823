"""Timing the recognizer and ST-GCN baselines on CPU and CUDA, for ``tools/bench_model.py``
and the GPU tests: the inputs (a real Penn window), the baselines, the CPU and CUDA
forward variants (eager, bf16 autocast, CUDA graphs, ``torch.compile``) and the tables.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

T_WINDOW = 64
BATCHES = (1, 64, 1024)
# ST-GCN baselines (method stgcn-interp); the first one carries the CPU target
BASELINES = {
    "ST-GCN 6 blocks": {"channels": (64, 64, 64, 128, 128, 128),
                        "strides": (1, 1, 1, 2, 1, 1), "temporal_kernel": 9},  # 719k on penn13
    "ST-GCN original 10 blocks": {"channels": (64, 64, 64, 64, 128, 128, 128, 256, 256, 256),
                                  "strides": (1, 1, 1, 1, 2, 1, 1, 2, 1, 1),
                                  "temporal_kernel": 9},  # 3.1M on penn13
}
TARGET_CPU_RATIO = 2.0
TARGET_GPU_BATCH1_MS = 0.5
TARGET_GPU_WPS_1024 = 50_000


# --------------------------------------------------------------------------- inputs
def penn_window(data_root: str | None = None, T: int = T_WINDOW):
    """One real 64-frame Penn Action test window (pixels), or a synthetic one without data.

    Returns ``(positions (1, T, 13, 2), frame_valid (1, T), joint_valid (1, T, 13),
    timestamps (1, T), source)``.
    """
    try:
        from finetec_live.data import load_penn_action

        clip = next(c for c in load_penn_action(data_root).test() if c.num_frames >= T)
        pos = np.asarray(clip.positions[:T], np.float32)
        jv = np.asarray(clip.joint_valid[:T], bool)
        source = f"penn_action test clip {clip.name} ({clip.label_name}), first {T} frames"
    except Exception as e:  # no data on this machine: a moving synthetic skeleton
        log.warning("Penn Action not available (%s); timing a synthetic window", e)
        rng = np.random.default_rng(0)
        base = rng.uniform(100, 300, size=(1, 13, 2)).astype(np.float32)
        drift = np.cumsum(rng.normal(0, 2, size=(T, 13, 2)), axis=0).astype(np.float32)
        pos, jv = base + drift, np.ones((T, 13), bool)
        source = "synthetic random-walk skeleton (no Penn Action data here)"
    fv = jv.any(axis=1)
    ts = np.arange(T, dtype=np.float64) / 30.0
    return pos[None], fv[None], jv[None], ts[None], source


def tile(window, n: int):
    pos, fv, jv, ts = window[:4]
    return (np.repeat(pos, n, 0), np.repeat(fv, n, 0), np.repeat(jv, n, 0), np.repeat(ts, n, 0))


# --------------------------------------------------------------------------- models
def stgcn_baseline(num_classes: int, layout: str = "penn13", T: int = T_WINDOW,
                   device: str = "cpu", which: str = "ST-GCN 6 blocks"):
    """An untrained ST-GCN recognizer (the ``stgcn-interp`` method) from :data:`BASELINES`."""
    import torch

    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.models import FinetecNet, ModelConfig

    cfg = ModelConfig(num_classes=num_classes, layout=layout, method="stgcn-interp", T=T,
                      **BASELINES[which])
    torch.manual_seed(0)
    model = FinetecNet(cfg).to(device).eval()
    classes = [f"class_{k}" for k in range(num_classes)]
    return Recognizer(model, cfg, layout, classes, device=device, model_id=which)


def load_models(checkpoint: str, device: str):
    """``{name: Recognizer}``: the shipped model, then every baseline of :data:`BASELINES`."""
    from finetec_live.inference.recognizer import Recognizer

    ours = Recognizer.from_checkpoint(checkpoint, device=device)
    recs = {f"finetec ({ours.model_id})": ours}
    for which in BASELINES:
        base = stgcn_baseline(len(ours.class_names), ours.layout, ours.T, device, which)
        recs[f"{which} ({num_params(base) / 1e6:.2f}M params, untrained)"] = base
    return recs


def num_params(rec) -> int:
    return int(sum(p.numel() for p in rec.model.parameters()))


# --------------------------------------------------------------------------- timing
def time_call(fn: Callable[[], object], repeats: int, warmup: int = 3,
              min_seconds: float = 0.0, sync: Callable[[], None] | None = None,
              max_seconds: float = 60.0) -> list[float]:
    """Seconds of each of ``repeats`` calls (more until ``min_seconds`` have passed)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if (len(times) >= repeats and elapsed >= min_seconds) or elapsed > max_seconds:
            break
    return times


def _median_ms(times: Sequence[float]) -> float:
    return 1e3 * statistics.median(times)


def classify_pinned(rec, threads: int, *args) -> np.ndarray:
    """``rec.classify(*args)`` with torch held at ``threads`` threads for the network.

    Numba's parallel kernels (OpenMP threading layer) reset the OpenMP thread count
    that torch shares, so after a batched ``prepare`` torch would run on every core
    whatever ``torch.set_num_threads`` said; this is ``predict(prepare(...))`` with
    the count put back in between.
    """
    import torch

    batch = rec.prepare(*args)
    torch.set_num_threads(threads)
    return rec.predict(batch)


def bench_cpu(recs: dict, window, repeats: int = 100, batches: Sequence[int] = BATCHES) -> dict:
    """Batch-1 classify latency (and its parts) and windows/s per batch size, per model."""
    import torch

    k = torch.get_num_threads()
    out = {}
    for name, rec in recs.items():
        pos, fv, jv, ts = window[:4]
        r: dict = {"params": num_params(rec), "method": rec.method}
        batch = rec.prepare(pos, fv, jv, ts)
        args1 = (pos, fv, jv, ts)
        r["classify_ms"] = _median_ms(time_call(
            lambda m=rec, a=args1: classify_pinned(m, k, *a), repeats, warmup=5))
        r["prepare_ms"] = _median_ms(time_call(lambda m=rec, a=args1: m.prepare(*a), repeats,
                                               warmup=5))
        torch.set_num_threads(k)
        r["predict_ms"] = _median_ms(time_call(lambda m=rec, b=batch: m.predict(b), repeats, 5))
        r["throughput"] = {}
        for n in batches:
            args = tile(window, n)
            b = rec.prepare(*args)
            torch.set_num_threads(k)
            # big batches: a couple of calls (smaller batches already warmed the model up)
            reps = max(3, repeats // max(1, n // 4)) if n <= 64 else 2
            wu = 1 if n <= 64 else 0
            t_cls = time_call(lambda m=rec, a=args: classify_pinned(m, k, *a), reps, warmup=wu,
                              min_seconds=1.0 if n <= 64 else 0.0)
            t_net = time_call(lambda m=rec, bb=b: m.predict(bb), reps, warmup=wu,
                              min_seconds=1.0 if n <= 64 else 0.0)
            r["throughput"][str(n)] = {
                "classify_windows_per_s": n / statistics.median(t_cls),
                "network_windows_per_s": n / statistics.median(t_net),
            }
            log.info("%s batch %d: classify %.1f w/s, network %.1f w/s", name, n,
                     r["throughput"][str(n)]["classify_windows_per_s"],
                     r["throughput"][str(n)]["network_windows_per_s"])
        out[name] = r
    out["_threads"] = k
    return out


def classify_ratios(res: dict, names: Sequence[str]) -> dict:
    """Batch-1 classify time of ``names[0]`` (ours) over each of the others (the baselines)."""
    ours, *bases = names
    return {b: res[ours]["classify_ms"] / res[b]["classify_ms"] for b in bases}


# --------------------------------------------------------------------------- GPU path
def device_inputs(rec, window, n: int, device: str):
    """Prepared network inputs for ``n`` copies of ``window``, as tensors on ``device``."""
    import torch

    b = rec.prepare(*tile(window, n))
    return [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in b.network_inputs()]


def autocast_context(device: str, bf16: bool):
    import torch

    if bf16:
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def eager_forward(model, device: str = "cuda", bf16: bool = False) -> Callable:
    """``f(*inputs) -> logits`` without grad, under bf16 autocast if asked."""
    import torch

    def run(*inputs):
        with torch.inference_mode(), autocast_context(device, bf16):
            return model(*inputs)["logits"]

    return run


def cuda_graph_forward(model, static_inputs: Sequence, bf16: bool = False) -> Callable:
    """Capture the forward pass for the shapes of ``static_inputs`` as a CUDA graph.

    Returns ``f(*inputs) -> logits``: copies the inputs into the captured
    buffers and replays the graph (no Python or launch overhead per layer).
    The model must be in eval mode (no dropout, no perturbation).
    """
    import torch

    static_inputs = [x.clone() for x in static_inputs]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.no_grad(), autocast_context("cuda", bf16):
        for _ in range(3):  # warm up cuDNN/cuBLAS choices outside the capture
            model(*static_inputs)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad(), autocast_context("cuda", bf16):
        static_out = model(*static_inputs)["logits"]

    def run(*inputs):
        for dst, src in zip(static_inputs, inputs, strict=True):
            if src is not dst:
                dst.copy_(src, non_blocking=True)
        graph.replay()
        return static_out

    run.static_inputs = static_inputs  # type: ignore[attr-defined]
    return run


def compiled_forward(model, bf16: bool = False) -> Callable:
    """``torch.compile`` of the forward (kernel fusion; no CUDA graphs: those are separate)."""
    import torch

    compiled = torch.compile(model, mode="max-autotune-no-cudagraphs", dynamic=False)

    def run(*inputs):
        with torch.no_grad(), autocast_context("cuda", bf16):
            return compiled(*inputs)["logits"]

    return run


def bench_gpu(recs: dict, window, repeats: int = 200, batches: Sequence[int] = BATCHES,
              use_compile: bool = False) -> dict:
    """Network latency and windows/s on CUDA: fp32, bf16 autocast, CUDA graph (fp32/bf16)."""
    import torch

    sync = torch.cuda.synchronize
    out: dict = {"_gpu": torch.cuda.get_device_name(0),
                 "_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                 "_cudnn_tf32": torch.backends.cudnn.allow_tf32}
    for name, rec in recs.items():
        model = rec.model
        r: dict = {"params": num_params(rec), "modes": {}}
        pos, fv, jv, ts = window[:4]
        args1 = (pos, fv, jv, ts)
        r["classify_ms"] = _median_ms(time_call(lambda m=rec, a=args1: m.classify(*a), repeats,
                                                warmup=10))
        r["prepare_ms"] = _median_ms(time_call(lambda m=rec, a=args1: m.prepare(*a), repeats,
                                               warmup=5))
        modes = ["fp32", "bf16", "graph-fp32", "graph-bf16"] + (
            ["compile-bf16"] if use_compile else [])
        for mode in modes:
            res = {}
            for n in batches:
                inputs = device_inputs(rec, window, n, "cuda")
                bf16 = mode.endswith("bf16")
                try:
                    if mode.startswith("graph"):
                        fn = cuda_graph_forward(model, inputs, bf16)
                        inputs = fn.static_inputs
                    elif mode.startswith("compile"):
                        fn = compiled_forward(model, bf16)
                    else:
                        fn = eager_forward(model, "cuda", bf16)
                    reps = repeats if n <= 64 else max(20, repeats // 4)
                    t = time_call(lambda f=fn, x=inputs: f(*x), reps, warmup=10, sync=sync,
                                  min_seconds=0.5)
                except Exception as e:  # report and go on with the other modes
                    log.warning("%s %s batch %d failed: %s", name, mode, n, e)
                    res[str(n)] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
                    continue
                med = statistics.median(t)
                res[str(n)] = {"ms": 1e3 * med, "windows_per_s": n / med,
                               "p90_ms": 1e3 * float(np.percentile(t, 90))}
                log.info("%s %s batch %d: %.3f ms, %.0f w/s", name, mode, n, 1e3 * med,
                         n / med)
            r["modes"][mode] = res
        out[name] = r
    return out


# --------------------------------------------------------------------------- report
def cpu_table(res: dict) -> str:
    names = [k for k in res if not k.startswith("_")]
    lines = [f"CPU ({res['_threads']} threads): batch-1 classify of one 64-frame window, "
             "median; windows/s (classify end-to-end / network only)",
             "| model | params | classify ms | prepare ms | predict ms | "
             + " | ".join(f"w/s @{n}" for n in res[names[0]]["throughput"]) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(res[names[0]]["throughput"])]
    for k in names:
        r = res[k]
        tp = " | ".join(f"{v['classify_windows_per_s']:.0f} / {v['network_windows_per_s']:.0f}"
                        for v in r["throughput"].values())
        lines.append(f"| {k} | {r['params']:,} | {r['classify_ms']:.2f} | {r['prepare_ms']:.2f} "
                     f"| {r['predict_ms']:.2f} | {tp} |")
    for i, (base, ratio) in enumerate(res.get("_ratios", {}).items()):
        target = (f" (target <= {TARGET_CPU_RATIO:.0f}x: "
                  f"{'met' if ratio <= TARGET_CPU_RATIO else 'MISSED'})") if i == 0 else ""
        lines.append(f"{'' if i else chr(10)}batch-1 classify ratio ours / {base}: "
                     f"{ratio:.2f}x{target}")
    return "\n".join(lines)


def gpu_table(res: dict) -> str:
    names = [k for k in res if not k.startswith("_")]
    lines = [f"CUDA ({res['_gpu']}): network forward on prepared windows on the device, "
             "median ms (windows/s)", ]
    for k in names:
        r = res[k]
        lines.append(f"\n{k} ({r['params']:,} params): end-to-end batch-1 classify "
                     f"{r['classify_ms']:.2f} ms (prepare on CPU {r['prepare_ms']:.2f} ms)")
        bs = list(next(iter(r["modes"].values())).keys())
        lines.append("| mode | " + " | ".join(f"batch {n}" for n in bs) + " |")
        lines.append("|---|" + "---:|" * len(bs))
        for mode, mr in r["modes"].items():
            cells = []
            for n in bs:
                v = mr.get(n, {})
                cells.append(v["error"][:40] if "error" in v else
                             f"{v['ms']:.3f} ms ({v['windows_per_s']:,.0f}/s)")
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    for k in names:
        best1 = min((m["1"]["ms"] for m in res[k]["modes"].values() if "ms" in m.get("1", {})),
                    default=float("nan"))
        best_big = max((m[str(BATCHES[-1])]["windows_per_s"] for m in res[k]["modes"].values()
                        if "windows_per_s" in m.get(str(BATCHES[-1]), {})),
                       default=float("nan"))
        lines.append(f"\n{k}: best batch-1 {best1:.3f} ms (target < {TARGET_GPU_BATCH1_MS} ms: "
                     f"{'met' if best1 < TARGET_GPU_BATCH1_MS else 'MISSED'}); best batch "
                     f"{BATCHES[-1]} {best_big:,.0f} windows/s (target >= "
                     f"{TARGET_GPU_WPS_1024:,}: "
                     f"{'met' if best_big >= TARGET_GPU_WPS_1024 else 'MISSED'})")
    return "\n".join(lines)

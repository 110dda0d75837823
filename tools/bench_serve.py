#!/usr/bin/env python
"""Benchmark of ``finetec-serve``: many simulated streams of real Penn windows, one run.

1. For each K (``--streams``, default 1 16 64 128 256): K streams at 2 windows/s each
   for ``--seconds`` (default 30) into one ``finetec-serve`` (a child process, default
   options but ``--smooth 1``: a simulated stream's windows are unrelated Penn clips, so
   each is labelled alone), a few malformed messages mixed in (``--malformed-every``): windows/s
   labelled, p50/p95 send-to-label latency, windows not labelled and the drops the
   server's heartbeats counted, and how many labels equal ``Recognizer.label`` on the
   same windows.
2. A burst of ``--burst`` (2048) windows sent at once: the rate they are labelled at,
   against batch-1 ``Recognizer.label`` calls (torch, fp32: the faster precision at
   batch 1) on the same windows in this process just before (the burst's server up and
   idle; the median rate over chunks of 32); ``--burst-rounds`` (3) times, the medians
   reported (this machine's speed moves from second to second).
3. Both for each ``--backends`` (default: torch at ``finetec-serve``'s default
   ``--precision auto``, which is bf16 on a CPU with bf16 matrix units or instructions;
   ``torch-fp32``;
   onnxruntime), one after the other in the same run; batch-1 ``label`` on torch and
   onnxruntime is printed too.

    python tools/bench_serve.py [--streams 64 128] [--seconds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import zmq


class Labels:
    """A SUB thread keeping each label's arrival time and the last heartbeat per stream."""

    def __init__(self, ctx, endpoint: str) -> None:
        from finetec_live.wire.messages import LabelMessage, StatusMessage

        self._types = LabelMessage, StatusMessage
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 1_000_000)
        self.sock.connect(endpoint)
        self.sock.setsockopt_string(zmq.SUBSCRIBE, "")
        self.got: dict[tuple[str, int], tuple[float, str]] = {}
        self.status: dict[str, object] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        label_t, status_t = self._types
        while not self.stop.is_set():
            if not self.sock.poll(100):
                continue
            topic, payload = self.sock.recv_multipart()
            now = time.perf_counter()
            if topic.startswith(b"label."):
                m = label_t.unpack(payload)
                self.got[(m.stream, m.seq)] = (now, m.label)
            elif topic.startswith(b"status."):
                m = status_t.unpack(payload)
                self.status[m.stream] = m


def run_streams(push, labels: Labels, windows, k: int, seconds: float, malformed: int,
                truth: list[str], prefix: str) -> dict:
    from finetec_live.serve.simulate import send_streams

    sent = send_streams(push, windows, k, 2.0, seconds, malformed, prefix=prefix)
    time.sleep(3.0)  # the last windows' labels and a heartbeat
    lat = [(labels.got[key][0] - t) * 1e3 for key, (t, _) in sent.items() if key in labels.got]
    labelled = len(lat)
    same = sum(labels.got[key][1] == truth[i] for key, (_, i) in sent.items()
               if key in labels.got)
    mine = [m for s, m in labels.status.items() if s.startswith(prefix)]
    counted = sum(m.dropped_windows + m.skipped_windows for m in mine)
    return {"streams": k, "sent": len(sent), "labelled": labelled,
            "labelled_share": labelled / len(sent),
            "windows_per_s": labelled / seconds,
            "p50_ms": float(np.percentile(lat, 50)) if lat else None,
            "p95_ms": float(np.percentile(lat, 95)) if lat else None,
            "not_labelled": len(sent) - labelled, "counted_dropped_or_skipped": counted,
            "same_as_recognizer": same / max(1, labelled),
            "malformed_counted": max((m.extra.get("malformed_messages", 0) for m in mine),
                                     default=0)}


def batch1_rate(rec, windows, m: int = 256, chunk: int = 32) -> float:
    """Batch-1 ``Recognizer.label`` calls on ``m`` of the windows, this process: the median
    windows/s over chunks of ``chunk`` (the machine's load moves single figures)."""
    rates = []
    for s in range(0, m, chunk):
        t1 = time.perf_counter()
        for w in windows[s:s + chunk]:
            rec.label(w.positions[None], w.frame_valid[None], w.joint_valid[None],
                      (w.timestamps - w.timestamps[0])[None])
        rates.append(chunk / (time.perf_counter() - t1))
    return float(np.median(rates))


def burst(push, labels: Labels, windows, n: int, single: float, stream: str = "burst") -> dict:
    """``n`` windows sent at once to a server that keeps them (a long --max-age-ms)."""
    from finetec_live.wire.windows import pack_window

    payloads = [pack_window(replace(windows[i % len(windows)], seq=i), stream)
                for i in range(n)]
    t0 = time.perf_counter()
    for p in payloads:
        push.send(p)
    deadline = t0 + 300
    while time.perf_counter() < deadline:
        if sum(1 for i in range(n) if (stream, i) in labels.got) >= n:
            break
        time.sleep(0.05)
    times = [labels.got[(stream, i)][0] for i in range(n) if (stream, i) in labels.got]
    rate = len(times) / (max(times) - t0) if times else 0.0
    return {"windows": n, "served": len(times), "served_per_s": rate,
            "batch1_label_per_s": single, "ratio": rate / single}


def start_server(listen: str, bind: str, device: str, extra: list[str]):
    return subprocess.Popen([sys.executable, "-m", "finetec_live.cli.serve", "--listen", listen,
                             "--bind", bind, "--device", device, "--log-level", "WARNING",
                             *extra])


class Session:
    """One ``finetec-serve`` child with a PUSH producer and a label subscriber."""

    def __init__(self, ctx, listen: str, bind: str, device: str, extra: list[str]) -> None:
        import tempfile

        fd, name = tempfile.mkstemp(suffix=".json", prefix="bench_serve_")
        os.close(fd)
        self.stats_file = Path(name)
        self.stats: dict = {}  # the server's --stats-json, read at close
        self.server = start_server(listen, bind, device,
                                   [*extra, "--stats-json", str(self.stats_file)])
        self.labels = Labels(ctx, bind)
        self.push = ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 1_000_000)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(listen)
        time.sleep(15)  # model load (an ONNX export on first use) and warm-up

    def close(self) -> bool:
        """Stop everything; whether the server was still alive."""
        alive = self.server.poll() is None
        self.server.terminate()
        self.server.wait(timeout=30)
        try:
            self.stats = json.loads(self.stats_file.read_text() or "{}")
        except (OSError, ValueError):
            self.stats = {}
        self.stats_file.unlink(missing_ok=True)
        self.push.close(0)
        self.labels.stop.set()
        self.labels.thread.join(timeout=5)
        self.labels.sock.close(0)
        return alive


def bench_backend(ctx, backend: str, args, windows, truth, rec, port: int) -> dict:
    """The streams, then the burst, through servers running the network on ``backend``."""
    listen, bind = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}"
    # each simulated stream sends unrelated Penn windows in turn, so each window is labelled
    # alone (--smooth 1), as Recognizer.label labels it; a real stream is one person's
    # "torch-fp32": the torch backend held to fp32, beside its default (--precision auto)
    extra = ["--backend", backend.removesuffix("-fp32"), "--smooth", "1",
             *(["--precision", "fp32"] if backend.endswith("-fp32") else []),
             *args.serve_args.split()]
    out: dict = {"backend": backend, "runs": []}
    session = Session(ctx, listen, bind, args.device, extra)
    try:
        for k in args.streams:
            r = run_streams(session.push, session.labels, windows, k, args.seconds,
                            args.malformed_every, truth, prefix=f"{backend}-k{k}-")
            out["runs"].append(r)
            print(f"[{backend}] {k:4d} streams: {r['windows_per_s']:7.1f} windows/s labelled, "
                  f"{r['labelled_share']:6.1%} of {r['sent']}, p50 {r['p50_ms']:7.1f} ms, "
                  f"p95 {r['p95_ms']:7.1f} ms; {r['not_labelled']} not labelled, "
                  f"{r['counted_dropped_or_skipped']} counted as dropped/skipped; "
                  f"{r['same_as_recognizer']:.1%} as Recognizer.label; "
                  f"{r['malformed_counted']} malformed counted", flush=True)
    finally:
        out["server_alive"] = session.close()
    out["precision"] = session.stats.get("precision")  # what the server ran, by its counters
    print(f"[{backend}] server alive after the streams: {out['server_alive']}; it ran "
          f"{session.stats.get('backend')} in {out['precision']}", flush=True)
    # the burst: a server that keeps every window (it is a backlog, not a live stream)
    session = Session(ctx, listen, bind, args.device, ["--max-age-ms", "600000", *extra])
    try:
        rounds = []
        for r in range(args.burst_rounds):
            # the batch-1 rate now, the burst's server up and idle: the two side by side
            single = batch1_rate(rec, windows)
            rounds.append(burst(session.push, session.labels, windows, args.burst, single,
                                stream=f"burst{r}"))
            b = rounds[-1]
            print(f"[{backend}] burst {r + 1} of {args.burst_rounds}: {b['served']} of "
                  f"{b['windows']} served at {b['served_per_s']:.0f} windows/s vs batch-1 "
                  f"Recognizer.label (torch) {b['batch1_label_per_s']:.0f}/s in this process "
                  f"just before -> {b['ratio']:.1f}x", flush=True)
    finally:
        session.close()
    out["burst"] = b = {
        "windows": args.burst, "served": min(r["served"] for r in rounds),
        **{k: float(np.median([r[k] for r in rounds]))
           for k in ("served_per_s", "batch1_label_per_s", "ratio")}, "rounds": rounds}
    print(f"[{backend}] burst, median of {len(rounds)}: {b['served_per_s']:.0f} windows/s, "
          f"batch-1 {b['batch1_label_per_s']:.0f}/s, ratio {b['ratio']:.1f}x", flush=True)
    return out


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 16, 64, 128, 256])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--malformed-every", type=int, default=500)
    ap.add_argument("--burst", type=int, default=2048)
    ap.add_argument("--burst-rounds", type=_positive, default=3,
                    help="bursts per backend, each after its own batch-1 measurement; the "
                         "medians are reported (default 3)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", nargs="+", choices=("torch", "torch-fp32", "onnxruntime"),
                    default=["torch", "torch-fp32", "onnxruntime"],
                    help="servers to run one after the other: torch at its default precision "
                         "(bf16 on a CPU with bf16 matrix units or instructions), torch in fp32, "
                         "onnxruntime")
    ap.add_argument("--serve-args", default="", help="extra finetec-serve options")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from finetec_live.inference.recognizer import Recognizer
    from finetec_live.serve.simulate import penn_windows

    windows, _ = penn_windows(max(args.burst, 1024))
    rec = Recognizer.from_checkpoint(device=args.device)
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))  # as the server has it
    truth = []
    for w in windows:  # what the recognizer says of each window
        truth += rec.label(w.positions[None], w.frame_valid[None], w.joint_valid[None],
                           (w.timestamps - w.timestamps[0])[None])
    result = {"cpu_count": os.cpu_count(), "device": args.device, "seconds": args.seconds,
              "backends": []}
    single = batch1_rate(rec, windows)  # nothing else running yet
    result["batch1_label_per_s"] = {"torch": single}
    if "onnxruntime" in args.backends:  # (batch-1 torch in bf16 would be slower: not used)
        ort_rec = Recognizer.from_checkpoint(device=args.device)
        ort_rec.use_onnx(threads=torch.get_num_threads())
        result["batch1_label_per_s"]["onnxruntime"] = batch1_rate(ort_rec, windows)
    print("batch-1 Recognizer.label in this process: " + ", ".join(
        f"{k} {v:.0f}/s" for k, v in result["batch1_label_per_s"].items()), flush=True)
    ctx = zmq.Context.instance()
    port = 30000 + os.getpid() % 10000
    for i, backend in enumerate(args.backends):
        result["backends"].append(bench_backend(ctx, backend, args, windows, truth, rec,
                                                port + 2 * i))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak test: a bounded looped replay, watching memory and window accounting.

Runs ``finetec-live --video CLIP --loop --max-seconds MINUTES*60`` (real time by
default, ``--fast`` to push harder), samples the process's resident memory every
few seconds, and subscribes to its labels on loopback. Passes when

- RSS grows by less than 5% between the end of warm-up and the end;
- every window due is accounted for: published + dropped + skipped == windows,
  the number of windows matches the frames processed (windows end every hop
  after the first full window, plus the final one), and the subscriber received
  every published label.

    python tools/soak.py --minutes 10 [--video CLIP] [--fast] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    p.add_argument("--video", type=Path, help="clip (default: clean_and_jerk.mp4 in the data)")
    p.add_argument("--fast", action="store_true", help="replay as fast as possible")
    p.add_argument("--model", help="checkpoint (default: the shipped one)")
    p.add_argument("--drop", type=float, default=0.0, help="--drop for finetec-live")
    p.add_argument("--warmup", type=float, default=0.2,
                   help="fraction of the run treated as warm-up (default 0.2)")
    p.add_argument("--sample", type=float, default=2.0, help="RSS sampling period, seconds")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args(argv)


class Listener:
    """A SUB socket on a thread, keeping the seq of every label received."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"label.")
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(endpoint)
        self.received: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        import msgpack
        import zmq

        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            if poller.poll(100):
                payload = self.sock.recv_multipart()[1]
                self.received.append(msgpack.unpackb(payload, raw=False)["seq"])

    def close(self) -> None:
        time.sleep(1.0)
        self._stop.set()
        self._thread.join()
        self.sock.close(linger=0)


def run_sampled(cmd: list[str], period: float) -> tuple[int, str, list[tuple[float, float]]]:
    """Run ``cmd``, sampling its resident memory every ``period`` s: (status, stderr, samples)."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    try:
        while proc.poll() is None:
            m = rss_mb(proc.pid)
            if m is not None:
                samples.append((time.monotonic() - t0, m))
            time.sleep(period)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    return proc.returncode, err, samples


def judge(stats: dict, samples: list[tuple[float, float]], received: list[int],
          warmup: float) -> dict:
    """The soak's measures and its pass/fail checks."""
    run_s = samples[-1][0] if samples else 0.0
    warm = [m for t, m in samples if t >= warmup * run_s]
    rss_start, rss_end = warm[0], warm[-1]
    growth = (rss_end - rss_start) / rss_start
    fps = stats["source_fps"]
    span = (stats["frames"] - 1) / fps  # source time covered (timestamps continue over loops)
    expected = max(0, math.floor((span - stats["window_s"] + 1.5 / fps) / stats["hop_s"]) + 1)
    accounted = stats["published"] + stats["dropped_windows"] + stats["skipped_windows"]
    result = {k: stats[k] for k in ("frames", "fps", "elapsed_s", "windows", "published",
                                    "dropped_windows", "skipped_windows", "lagged")}
    result.update({
        "windows_expected_from_frames": expected, "labels_received": len(received),
        "rss_mb_after_warmup": rss_start, "rss_mb_end": rss_end,
        "rss_mb_peak": max(m for _, m in samples), "rss_growth": growth,
        "latency_ms_ready": stats["latency_ms"].get("ready"), "rss_samples": samples,
    })
    result["checks"] = {
        "rss growth < 5%": growth < 0.05,
        "published + dropped + skipped == windows": accounted == stats["windows"],
        "windows match frames (final window +1)": stats["windows"] in (expected, expected + 1),
        "subscriber received every label": len(received) == stats["published"],
    }
    return result


def main(argv: list[str] | None = None) -> int:
    from finetec_live.data.paths import data_root

    args = parse_args(argv)
    video = args.video or data_root() / "videos" / "clean_and_jerk.mp4"
    endpoint = f"tcp://127.0.0.1:{20000 + os.getpid() % 20000}"
    listener = Listener(endpoint)
    with tempfile.TemporaryDirectory() as d:
        stats_file = Path(d) / "stats.json"
        cmd = [sys.executable, "-m", "finetec_live.cli.live", "--video", str(video), "--loop",
               "--no-display", "--bind", endpoint, "--max-seconds", str(args.minutes * 60.0),
               "--stats-json", str(stats_file), "--log-level", "WARNING"]
        cmd += (["--fast"] if args.fast else []) + (["--drop", str(args.drop)] if args.drop
                                                     else [])
        cmd += ["--model", args.model] if args.model else []
        code, err, samples = run_sampled(cmd, args.sample)
        listener.close()
        if code != 0:
            print(f"finetec-live exited {code}: {err.strip()}")
            return 1
        stats = json.loads(stats_file.read_text())
    r = judge(stats, samples, listener.received, args.warmup)
    r.update(video=str(video), minutes=args.minutes, fast=args.fast, drop=args.drop)
    print(f"{r['frames']} frames in {r['elapsed_s']:.0f} s ({r['fps']:.1f} fps, {r['lagged']} "
          f"lagged); windows {r['windows']} (expected {r['windows_expected_from_frames']}): "
          f"{r['published']} published, {r['dropped_windows']} dropped, "
          f"{r['skipped_windows']} skipped; {r['labels_received']} labels received")
    print(f"RSS after warm-up {r['rss_mb_after_warmup']:.0f} MB, end {r['rss_mb_end']:.0f} MB, "
          f"peak {r['rss_mb_peak']:.0f} MB: growth {r['rss_growth']:+.1%}")
    for name, ok in r["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    return 0 if all(r["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

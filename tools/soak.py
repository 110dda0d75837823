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


def main(argv: list[str] | None = None) -> int:
    import msgpack
    import zmq

    from finetec_live.data.paths import data_root

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
    args = p.parse_args(argv)
    video = args.video or data_root() / "videos" / "clean_and_jerk.mp4"
    seconds = args.minutes * 60.0
    port = 20000 + os.getpid() % 20000
    endpoint = f"tcp://127.0.0.1:{port}"

    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"label.")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(endpoint)
    received = []
    stop = threading.Event()

    def listen() -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        while not stop.is_set():
            if poller.poll(100):
                received.append(msgpack.unpackb(sub.recv_multipart()[1], raw=False)["seq"])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()

    with tempfile.TemporaryDirectory() as d:
        stats_file = Path(d) / "stats.json"
        cmd = [sys.executable, "-m", "finetec_live.cli.live", "--video", str(video), "--loop",
               "--no-display", "--bind", endpoint, "--max-seconds", str(seconds),
               "--stats-json", str(stats_file), "--log-level", "WARNING"]
        if args.fast:
            cmd.append("--fast")
        if args.drop:
            cmd += ["--drop", str(args.drop)]
        if args.model:
            cmd += ["--model", args.model]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()
        try:
            while proc.poll() is None:
                m = rss_mb(proc.pid)
                if m is not None:
                    samples.append((time.monotonic() - t0, m))
                time.sleep(args.sample)
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate()
        time.sleep(1.0)
        stop.set()
        listener.join()
        sub.close(linger=0)
        if proc.returncode != 0:
            print(f"finetec-live exited {proc.returncode}: {err.strip()}")
            return 1
        stats = json.loads(stats_file.read_text())

    run_s = samples[-1][0] if samples else 0.0
    warm = [m for t, m in samples if t >= args.warmup * run_s]
    rss_start, rss_end = warm[0], warm[-1]
    rss_peak = max(m for _, m in samples)
    growth = (rss_end - rss_start) / rss_start
    fps = stats["source_fps"]
    span = (stats["frames"] - 1) / fps  # source time covered (timestamps continue over loops)
    expected = max(0, math.floor((span - stats["window_s"] + 1.5 / fps) / stats["hop_s"]) + 1)
    accounted = stats["published"] + stats["dropped_windows"] + stats["skipped_windows"]
    result = {
        "video": str(video), "minutes": args.minutes, "fast": args.fast, "drop": args.drop,
        "frames": stats["frames"], "fps": stats["fps"], "elapsed_s": stats["elapsed_s"],
        "windows": stats["windows"], "published": stats["published"],
        "dropped_windows": stats["dropped_windows"], "skipped_windows": stats["skipped_windows"],
        "windows_expected_from_frames": expected, "labels_received": len(received),
        "rss_mb_after_warmup": rss_start, "rss_mb_end": rss_end, "rss_mb_peak": rss_peak,
        "rss_growth": growth, "latency_ms_ready": stats["latency_ms"].get("ready"),
        "rss_samples": samples,
    }
    checks = {
        "rss growth < 5%": growth < 0.05,
        "published + dropped + skipped == windows": accounted == stats["windows"],
        "windows match frames (final window +1)": stats["windows"] in (expected, expected + 1),
        "subscriber received every label": len(received) == stats["published"],
    }
    result["checks"] = checks
    print(f"{stats['frames']} frames in {stats['elapsed_s']:.0f} s ({stats['fps']:.1f} fps); "
          f"windows {stats['windows']} (expected {expected}): {stats['published']} published, "
          f"{stats['dropped_windows']} dropped, {stats['skipped_windows']} skipped; "
          f"{len(received)} labels received")
    print(f"RSS after warm-up {rss_start:.0f} MB, end {rss_end:.0f} MB, peak {rss_peak:.0f} MB: "
          f"growth {growth:+.1%}")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

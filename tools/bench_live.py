"""Benchmark of the live pipeline, one run, side by side on the same clip.

1. Throughput: ``finetec-live --video CLIP --fast`` (frames per second of
   processing, from the stats it writes) against a bare loop that only decodes
   the clip and runs MediaPipe on every frame. Target: ratio >= 0.85.
2. Latency per window, with the default model on the CPU, replaying the clip at
   its own frame rate (as a camera would deliver it):
   ``ready``: from the window's last frame entering the ring buffer (its pose
   done) to the label's publication; ``total``: from the reading of that frame
   (before its pose estimation) to publication. Target: p95 of ``ready`` < 30 ms.

3. With ``--people``, several people: with the one person of the clip in view,
   ``--max-people 2`` against ``--max-people 1`` (``--fast`` fps, alternating; target
   >= 0.75x), then composites of 1, 2 and 4 real people (the clip and videos of
   ``penn_real``, tiled, :mod:`finetec_live.learning.composites`) with ``--max-people
   4``: ``--fast`` fps, and per-window latency replayed at the source's rate.

The runs alternate (bare, pipeline, bare, pipeline, ...) so that load from
other processes hits both alike; medians are reported.

    python tools/bench_live.py [--video CLIP] [--repeats 2] [--json out.json] [--people]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bare_fps(video: Path) -> tuple[float, int]:
    """Decode + MediaPipe on every frame, nothing else: frames per second."""
    import cv2

    from finetec_live.live.pose import PoseEstimator

    cap = cv2.VideoCapture(str(video))
    n = 0
    with PoseEstimator(model_complexity=1) as est:
        ok, frame = cap.read()
        t0 = time.perf_counter()
        t_last = t0
        while ok:
            est.estimate(frame, n, n / 30.0)
            t_last = time.perf_counter()
            n += 1
            ok, frame = cap.read()
    cap.release()
    # same measure as the pipeline's elapsed_s: first frame read to last frame done
    return (n - 1) / (t_last - t0), n


def live_stats(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        stats = Path(d) / "stats.json"
        cmd = [sys.executable, "-m", "finetec_live.cli.live", *args, "--no-display",
               "--device", "cpu", "--stats-json", str(stats), "--log-level", "WARNING"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"finetec-live failed: {r.stderr.strip()}")
        return json.loads(stats.read_text())


def people_bench(video: Path, repeats: int, bind: list[str], model: list[str],
                 seconds: float) -> dict:
    """Section 3: --max-people 2 against 1 on one person, then 1, 2 and 4 people in view."""
    from finetec_live.data.paths import data_root
    from finetec_live.learning.composites import tile_videos
    from finetec_live.learning.videos import find_videos

    one, two = [], []
    for _ in range(repeats):
        one.append(live_stats(["--video", str(video), "--fast", *bind, *model])["fps"])
        two.append(live_stats(["--video", str(video), "--fast", "--max-people", "2", *bind,
                               *model])["fps"])
        print(f"  one person in view: --max-people 1 {one[-1]:6.1f} fps | --max-people 2 "
              f"{two[-1]:6.1f} fps", flush=True)
    out = {"one_person_fps": {"max_people_1": statistics.median(one),
                              "max_people_2": statistics.median(two),
                              "runs_1": one, "runs_2": two,
                              "ratio": statistics.median(two) / statistics.median(one)}}
    real = find_videos(data_root() / "videos" / "penn_real")  # one person each
    others = [next(v for v, c in real if c == name) for name in ("pushup", "squat", "situp")]
    scenes = {}
    with tempfile.TemporaryDirectory() as d:
        for n, cols in ((1, 1), (2, 2), (4, 2)):
            clip = Path(d) / f"people{n}.mp4"
            tile_videos([(video, None), *((v, None) for v in others)][:n], clip, seconds,
                        height=480, cols=cols, loop=True)
            fast = live_stats(["--video", str(clip), "--fast", "--max-people", "4", *bind,
                               *model])
            rt = live_stats(["--video", str(clip), "--loop", "--max-seconds", str(seconds),
                             "--max-people", "4", *bind, *model])
            lat = rt["latency_ms"]
            scenes[n] = {"fast_fps": fast["fps"], "realtime_fps": rt["fps"],
                         "tracks": fast["tracks_started"],
                         "ready_p95_ms": lat["ready"]["p95"], "total_p95_ms": lat["total"]["p95"],
                         "realtime_windows": {k: rt[k] for k in ("windows", "published",
                                                                  "dropped_windows")}}
            print(f"  {n} in view: --fast {fast['fps']:5.1f} fps ({fast['tracks_started']} "
                  f"tracks); real time {rt['fps']:5.1f} fps, ready p95 "
                  f"{lat['ready']['p95']:6.1f} ms, total p95 {lat['total']['p95']:6.1f} ms, "
                  f"{rt['published']} of {rt['windows']} windows published", flush=True)
    out["scenes"] = scenes
    out["composite_videos"] = [str(video), *map(str, others)]
    return out


def main(argv: list[str] | None = None) -> int:
    from finetec_live.data.paths import data_root

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, help="clip (default: clean_and_jerk.mp4 in the data)")
    p.add_argument("--model", help="checkpoint (default: the shipped one)")
    p.add_argument("--repeats", type=int, default=2, help="alternating repeats (default 2)")
    p.add_argument("--latency-seconds", type=float, default=30.0,
                   help="length of the real-time latency run, looping the clip (default 30)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--people", action="store_true", help="also section 3 (several people)")
    args = p.parse_args(argv)
    video = args.video or data_root() / "videos" / "clean_and_jerk.mp4"
    model = ["--model", args.model] if args.model else []
    port = 20000 + os.getpid() % 20000
    bind = ["--bind", f"tcp://127.0.0.1:{port}"]

    bare, piped, fast_runs = [], [], []
    for _ in range(args.repeats):
        fps, n = bare_fps(video)
        bare.append(fps)
        s = live_stats(["--video", str(video), "--fast", *bind, *model])
        fast_runs.append(s)
        piped.append(s["fps"])
        print(f"  bare decode+MediaPipe {fps:6.1f} fps | finetec-live --fast {s['fps']:6.1f} fps "
              f"({s['published']} windows published, {s['dropped_windows']} dropped)",
              flush=True)
    # real time, as from a camera, looping the clip for enough windows
    rt = live_stats(["--video", str(video), "--loop", "--max-seconds", str(args.latency_seconds),
                     *bind, *model])
    lat = rt["latency_ms"]
    result = {
        "video": str(video), "frames": n, "cpu_count": os.cpu_count(),
        "torch_threads": None, "model": rt["model"], "device": rt["device"],
        "bare_fps": statistics.median(bare), "live_fast_fps": statistics.median(piped),
        "ratio": statistics.median(piped) / statistics.median(bare),
        "bare_fps_runs": bare, "live_fast_fps_runs": piped,
        "latency_ms_realtime": {k: {q: lat[k][q] for q in ("p50", "p95", "max", "n")}
                                for k in ("ready", "total", "pose", "kernels", "model")},
        "latency_ms_fast": {k: {q: fast_runs[-1]["latency_ms"][k][q] for q in ("p50", "p95")}
                            for k in ("ready", "total")},
        "realtime_windows": {k: rt[k] for k in ("windows", "published", "dropped_windows",
                                                 "skipped_windows")},
    }
    try:
        import torch

        result["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    print(f"throughput: finetec-live --fast {result['live_fast_fps']:.1f} fps vs bare "
          f"{result['bare_fps']:.1f} fps -> ratio {result['ratio']:.2f} (target >= 0.85)")
    r = result["latency_ms_realtime"]
    print(f"latency per window (real-time replay, {r['ready']['n']} windows, model "
          f"{result['model']} on {result['device']}):")
    for k, label in (("ready", "last frame in buffer -> published"),
                     ("total", "last frame read -> published (incl. its pose)"),
                     ("pose", "pose per frame"), ("kernels", "kernels"), ("model", "model")):
        print(f"  {label:<48s} p50 {r[k]['p50']:6.1f} ms  p95 {r[k]['p95']:6.1f} ms")
    print(f"  target: p95 of 'ready' < 30 ms -> {'met' if r['ready']['p95'] < 30 else 'NOT met'}")
    if args.people:
        result["people"] = people_bench(video, args.repeats, bind, model, args.latency_seconds)
        r = result["people"]["one_person_fps"]
        print(f"one person in view: --max-people 2 at {r['ratio']:.2f}x the fps of "
              f"--max-people 1 (target >= 0.75)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

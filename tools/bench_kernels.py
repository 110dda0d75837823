"""Benchmark the Numba kernels against two NumPy twins: the per-frame loop and a vectorised one.

For T-frame windows on Penn-13 and MediaPipe-33 it prints: microseconds per
window of the Numba kernel through its public function (median over repeats,
one thread), of its plain NumPy reference (:mod:`finetec_live.kernels.reference`,
loops over frames and joints) and of its vectorised NumPy twin
(:mod:`finetec_live.kernels.vectorised`, array operations over frames, joints
and samples) measured in the same run, the speed-up over each, and windows per
second of the batched kernels over N windows on one thread and on all threads,
then checks the acceptance targets. The speed-up that says what Numba buys is
the one over the vectorised twin; the one over the loop says what a first
NumPy draft would cost.

Penn-13 windows are the first T frames of real Penn Action clips when the data
is found (their real invisible joints kept, clips tiled up to N), otherwise
synthetic; MediaPipe-33 windows are synthetic: a smoothly moving body with
``--missing-frames`` of the frames and ``--missing-joints`` of the joints
dropped. Times are wall-clock medians; the CPU columns give the process CPU
time per window, which is what a quiet machine would show when others share
the cores (the load average is printed).

    python tools/bench_kernels.py             # T=64, N=1024
    python tools/bench_kernels.py --quick     # a smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial

import numba
import numpy as np

from finetec_live import kernels
from finetec_live.kernels import reference, vectorised
from finetec_live.skeleton.layouts import MEDIAPIPE33, PENN13

TARGETS = """targets: lagrangian >= 20x its loop reference, < 1000 us per Penn-13 window on a core;
         region_motion >= 5x its reference; batched lagrangian >= 20,000 Penn-13 windows/s"""


def synthetic_windows(layout, n, n_t, missing_frames, missing_joints, seed=0):
    """``n`` windows of a smoothly moving body with frames and joints dropped."""
    rng = np.random.default_rng(seed)
    n_v = layout.num_joints
    t = (np.arange(n_t) / 30.0)[None, :, None, None]
    base = rng.uniform(100, 500, (n, 1, n_v, 2))
    amp = rng.uniform(5, 40, (n, 1, n_v, 2))
    freq = rng.uniform(0.5, 3.0, (n, 1, n_v, 1))
    pos = base + amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6, (n, 1, n_v, 2)))
    pos += rng.normal(0, 1.0, pos.shape)
    valid = (rng.random((n, n_t, 1)) >= missing_frames) & (rng.random((n, n_t, n_v))
                                                              >= missing_joints)
    ts = np.broadcast_to(np.arange(n_t) / 30.0, (n, n_t)).copy()
    return pos.astype(np.float32), valid, ts


def penn_windows(n, n_t):
    """First ``n_t`` frames of the real Penn Action clips that long, tiled to ``n``."""
    try:
        from finetec_live.data import load_penn_action

        clips = [c for c in load_penn_action() if c.num_frames >= n_t]
    except Exception as exc:  # no data here: say so and fall back to synthetic windows
        print(f"(Penn Action not available: {exc}; using synthetic Penn-13 windows)")
        return None
    idx = np.arange(n) % len(clips)
    pos = np.stack([clips[i].positions[:n_t] for i in idx])
    valid = np.stack([clips[i].joint_valid[:n_t] for i in idx])
    ts = np.broadcast_to(np.arange(n_t) / clips[0].fps, (n, n_t)).copy()
    return pos, valid, ts, len(clips)


def _lagrangian_single(pos, valid, ts, parents, masses, module):
    return module.lagrangian_kinematics(pos, valid, ts, parents, masses)


def _motion_single(pos, valid, regions, module):
    return module.region_motion(pos, valid, regions)


def timed(fn, repeats, min_time=0.05):
    """Medians over ``repeats`` of (wall, CPU) seconds of one call of ``fn``."""
    fn()
    t0 = time.perf_counter()
    fn()
    loops = max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(loops):
            fn()
        wall.append((time.perf_counter() - w0) / loops)
        cpu.append((time.process_time() - c0) / loops)
    return float(np.median(wall)), float(np.median(cpu))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64, help="window length T (default 64)")
    ap.add_argument("--batch", type=int, default=1024, help="windows per batch N (default 1024)")
    ap.add_argument("--missing-frames", type=float, default=0.25,
                    help="synthetic windows: fraction of frames missing (default 0.25)")
    ap.add_argument("--missing-joints", type=float, default=0.05,
                    help="synthetic windows: fraction of joints missing (default 0.05)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic Penn-13 windows too")
    ap.add_argument("--repeats", type=int, default=15, help="timing repeats (median)")
    ap.add_argument("--quick", action="store_true", help="3 repeats, N=128: a smoke test")
    return ap.parse_args(argv)


def time_layout(layout, windows, source: str, n: int, repeats: int, threads: int,
                results: dict) -> None:
    """Both kernels on one layout's windows: one window on one thread against the two
    NumPy twins, and the batch on 1 and on ``threads`` threads; prints a row each."""
    pos, valid, ts = windows
    parents, masses = layout.parents_array(), layout.masses_array()
    regions = layout.regions_array()
    one = (pos[0], valid[0])
    cases = (
        ("lagrangian",
         partial(_lagrangian_single, *one, ts[0], parents, masses),
         partial(kernels.lagrangian_kinematics_batch, pos, valid, ts, parents, masses)),
        ("region_motion",
         partial(_motion_single, *one, regions),
         partial(kernels.region_motion_batch, pos, valid, regions)),
    )
    for name, single, batch in cases:
        numba.set_num_threads(1)
        fast = timed(partial(single, kernels), repeats)
        slow = timed(partial(single, reference), max(3, repeats // 3), min_time=0.0)
        vec = timed(partial(single, vectorised), max(3, repeats // 3))
        rates = []
        for n_threads in (1, threads):
            numba.set_num_threads(n_threads)
            wall, cpu = timed(batch, repeats, min_time=0.0)
            rates.append((n / wall, n / cpu * n_threads if n_threads > 1 else n / cpu))
        numba.set_num_threads(threads)
        results[name, layout.name] = (fast, slow, rates, vec)
        print(f"{name:<15}{layout.name:<13}{source:<10}{fast[0] * 1e6:>9.1f}"
              f"{fast[1] * 1e6:>8.1f}{slow[0] * 1e6:>10.0f}{slow[0] / fast[0]:>6.0f}x"
              f"{vec[0] * 1e6:>9.0f}{vec[0] / fast[0]:>6.0f}x{rates[0][0]:>13,.0f}"
              f"{rates[0][1]:>9,.0f}{rates[1][0]:>13,.0f}{rates[1][1]:>9,.0f}")


def report_targets(results: dict) -> None:
    print(TARGETS)
    fast, slow, rates, _ = results["lagrangian", "penn13"]
    mp = results["lagrangian", "mediapipe33"]
    checks = [
        ("lagrangian >= 20x reference (penn13)", slow[0] / fast[0] >= 20),
        ("lagrangian >= 20x reference (mediapipe33)", mp[1][0] / mp[0][0] >= 20),
        ("lagrangian < 1000 us per penn13 window", fast[0] < 1e-3),
        ("region_motion >= 5x reference (both layouts)",
         all(results["region_motion", lay][1][0] / results["region_motion", lay][0][0] >= 5
             for lay in ("penn13", "mediapipe33"))),
        (f"batched lagrangian >= 20,000 penn13 windows/s, wall clock ({rates[1][0]:,.0f})",
         rates[1][0] >= 20000),
        (f"batched lagrangian >= 20,000 penn13 windows/s, CPU time ({rates[1][1]:,.0f})",
         rates[1][1] >= 20000),
    ]
    for text, ok in checks:
        print(f"  [{'pass' if ok else 'FAIL'}] {text}")


def main(argv=None):
    args = parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    n = 128 if args.quick else args.batch
    threads = numba.config.NUMBA_NUM_THREADS
    penn = None if args.synthetic else penn_windows(n, args.frames)
    print(f"finetec-live kernel benchmark: T={args.frames}, N={n}, median of {repeats} repeats")
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start, numba {numba.__version__} ({threads} threads), "
          f"numpy {np.__version__}")
    head = (f"{'kernel':<15}{'layout':<13}{'windows':<10}{'numba us':>9}{'(cpu)':>8}"
            f"{'loop us':>10}{'ratio':>7}{'vec us':>9}{'ratio':>7}{'1 thr win/s':>13}"
            f"{'(cpu)':>9}{f'{threads} thr win/s':>13}{'(cpu)':>9}")
    print()
    print(head)
    print("-" * len(head))
    results = {}
    for layout in (PENN13, MEDIAPIPE33):
        if layout is PENN13 and penn is not None:
            time_layout(layout, penn[:3], "real", n, repeats, threads, results)
        else:
            windows = synthetic_windows(layout, n, args.frames, args.missing_frames,
                                        args.missing_joints)
            time_layout(layout, windows, "synthetic", n, repeats, threads, results)
    print()
    print("numba us: one window through the public function (checks included), one thread;")
    print("loop us / vec us: the per-frame NumPy reference and the vectorised NumPy twin, the")
    print("same call; ratio: their time over Numba's;")
    print("win/s: the batched function over N windows; (cpu): the same from process CPU time,")
    print(f"for all threads scaled as if each had a core of its own. Load average at end "
          f"{os.getloadavg()[0]:.1f}.")
    print()
    report_targets(results)


if __name__ == "__main__":
    main()

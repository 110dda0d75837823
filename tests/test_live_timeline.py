"""One person's timeline: gaps in a source's time become missing ticks; windows keep
their numbers across gaps, whatever their length."""

from __future__ import annotations

import time

import numpy as np
import pytest

from finetec_live.live.pose import Pose
from finetec_live.live.timeline import PersonTimeline

P = 1 / 30


def _pose(i: int, t: float) -> Pose:
    rng = np.random.default_rng(i)
    return Pose(i, t, rng.normal(200, 20, (13, 2)), np.ones(13, bool), "penn13")


def _run(times) -> tuple[PersonTimeline, list]:
    tl = PersonTimeline("penn13", 1.0, 0.5, P)
    windows = []
    for i, t in enumerate(times):
        windows += tl.push(_pose(i, t), wall=time.perf_counter(), pose_ms=5.0)
    return tl, windows


def test_a_stall_of_the_source_becomes_missing_ticks_at_the_nominal_period():
    times = [k * P for k in range(30)] + [30 * P + 2.0 + k * P for k in range(30)]
    tl, windows = _run(times)
    assert tl.gap_ticks == round(2.0 / P)  # two seconds without a frame
    w = next(w for w in windows if w.t_start > 1.2 and w.t_end < 2.6)  # wholly in the gap
    assert w.num_valid == 0 and w.num_frames >= 14
    np.testing.assert_allclose(np.diff(w.timestamps), P, atol=1e-9)
    seqs = [w.seq for w in windows]
    assert seqs == list(range(len(windows)))  # every window cut, none skipped


def test_a_huge_jump_costs_nothing_and_keeps_the_numbering():
    times = [k * P for k in range(60)] + [1e6 + k * P for k in range(60)]
    t0 = time.perf_counter()
    tl, windows = _run(times)
    assert time.perf_counter() - t0 < 2.0
    assert tl.gap_ticks == tl.ring.capacity and tl.gap_seconds == pytest.approx(1e6, rel=1e-3)
    assert tl.ring.count == 60 + 60 + tl.ring.capacity
    assert tl.skipped_empty > 1e6  # windows with no tick at all: counted, not cut
    seqs = [w.seq for w in windows]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # the numbers say how many windows lay between: cut + skipped == the last seq + 1
    assert seqs[-1] + 1 == len(windows) + tl.skipped_empty
    last = windows[-1]
    assert last.num_valid > 0 and last.t_end > 1e6


def test_window_pose_latency_is_the_mean_over_ticks_that_went_through_pose():
    tl = PersonTimeline("penn13", 1.0, 0.5, P)
    windows = []
    for i in range(60):
        posed = i % 3 == 0
        pose = _pose(i, i * P) if posed else Pose.empty("penn13", i, i * P)
        windows += tl.push(pose, wall=time.perf_counter(), pose_ms=30.0 if posed else 0.0)
    assert windows and all(w.pose_ms == 30.0 for w in windows)

"""Ring buffer, windows and hand-off: checked against plain batch computations."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetec_live.inference.window import Window
from finetec_live.live.buffer import RingBuffer, Windower
from finetec_live.live.pose import Pose
from finetec_live.live.worker import Handoff, Stats, enough_valid


def _poses(n: int, fps: float, rng: np.random.Generator, jitter: float = 0.0,
           p_missing: float = 0.3) -> list[Pose]:
    """Random penn13 poses with missing frames and missing joints, uneven times."""
    t = np.arange(n) / fps + rng.uniform(0, jitter / fps, n)
    out = []
    for i in range(n):
        if rng.random() < p_missing:
            out.append(Pose.empty("penn13", i, float(t[i])))
            continue
        jv = rng.random(13) > 0.2
        jv[0] = True
        out.append(Pose(i, float(t[i]), rng.normal(300, 50, (13, 2)), jv, "penn13"))
    return out


def _batch_window(poses: list[Pose], lo: float, hi: float) -> dict[str, np.ndarray]:
    """The same window computed from the whole sequence at once."""
    ts = np.array([p.timestamp for p in poses])
    sel = np.nonzero((ts >= lo) & (ts < hi))[0]
    return {
        "positions": np.stack([poses[i].positions for i in sel]),
        "frame_valid": np.array([poses[i].valid for i in sel]),
        "joint_valid": np.stack([poses[i].joint_valid for i in sel]),
        "timestamps": ts[sel],
    }


@pytest.mark.parametrize(("fps", "length", "hop", "jitter"),
                         [(30.0, 2.0, 0.5, 0.0), (25.0, 1.3, 0.4, 0.3), (60.0, 2.5, 0.25, 0.2)])
def test_ring_windows_match_batch_across_wraparound(fps, length, hop, jitter):
    rng = np.random.default_rng(int(fps))
    poses = _poses(int(fps * 20), fps, rng, jitter)
    win = Windower(length, hop, 1.0 / fps)
    # a tight ring (a window and two ticks) wraps many times; the live default
    # (capacity_for) keeps a margin for jittery cameras
    ring = RingBuffer(int(np.ceil(length * fps)) + 2, 13, 2, "penn13")
    assert ring.capacity < len(poses) / 5 and win.capacity_for() > ring.capacity
    n_windows = 0
    for k, p in enumerate(poses):
        ring.push(p)
        for lo, hi in win.update(p.timestamp):
            w = ring.window(lo, hi)
            # batch over every tick seen so far (a live window cannot wait for a
            # jittered tick that might still fall inside it)
            ref = _batch_window(poses[: k + 1], lo, hi)
            for key, val in ref.items():
                np.testing.assert_array_equal(getattr(w, key), val, err_msg=key)
            # a window holds length * fps ticks (one period of tolerance)
            assert abs(w.num_frames - length * fps) <= 1.5
            # missing frames stay missing: zero positions and a false mask, never copied
            assert not w.joint_valid[~w.frame_valid].any()
            assert (w.positions[~w.frame_valid] == 0).all()
            n_windows += 1
    # windows end at t0 + length + k * hop
    expected = int(np.floor((poses[-1].timestamp - poses[0].timestamp - length
                             + 1.5 / fps) / hop)) + 1
    assert abs(n_windows - expected) <= 1
    final = win.flush(poses[-1].timestamp)
    if final is not None:  # the last tick is in the final window
        w = ring.window(*final)
        assert w.timestamps[-1] == poses[-1].timestamp
        assert w.timestamps[0] >= poses[-1].timestamp - length - 1e-9


def test_windows_are_due_when_their_last_tick_arrives():
    fps = 30.0
    win = Windower(2.0, 0.5, 1.0 / fps)
    due_at = []
    for i in range(200):
        if win.update(i / fps):
            due_at.append(i)
    # window 0 holds ticks 0..59 and is due at tick 59, then every 15 ticks
    assert due_at[:4] == [59, 74, 89, 104]
    assert win.flush(199 / fps) is not None
    assert win.flush(199 / fps) is None  # nothing left uncovered


def test_short_source_gives_one_final_window():
    win = Windower(2.0, 0.5, 1 / 30)
    ring = RingBuffer(win.capacity_for(), 13, 2, "penn13")
    for p in _poses(20, 30.0, np.random.default_rng(0), p_missing=0.0):
        ring.push(p)
        assert win.update(p.timestamp) == []
    w = ring.window(*win.flush(19 / 30))
    assert w.num_frames == 20


def test_window_checks_shapes_and_masks():
    t = np.arange(4) / 30
    ok = dict(positions=np.zeros((4, 13, 2)), frame_valid=np.ones(4, bool),
              joint_valid=np.ones((4, 13), bool), timestamps=t)
    w = Window(**ok)
    assert w.missing_fraction == 0.0
    with pytest.raises(ValueError, match="frame_valid"):
        Window(**{**ok, "frame_valid": np.ones(3, bool)})
    with pytest.raises(ValueError, match="joint_valid"):
        Window(**{**ok, "joint_valid": np.ones((4, 12), bool)})
    with pytest.raises(ValueError, match="increasing"):
        Window(**{**ok, "timestamps": t[::-1]})
    with pytest.raises(ValueError, match="missing frame"):
        Window(**{**ok, "frame_valid": np.array([True, False, True, True])})
    with pytest.raises(ValueError, match=r"\(T, V, C\)"):
        Window(**{**ok, "positions": np.zeros((4, 26))})


def test_ring_rejects_time_going_back_and_wrong_shapes():
    ring = RingBuffer(8, 13, 2, "penn13")
    ring.push(Pose.empty("penn13", 0, 1.0))
    with pytest.raises(ValueError, match="increase"):
        ring.push(Pose.empty("penn13", 1, 1.0))
    with pytest.raises(ValueError, match="shape"):
        ring.push(Pose.empty("coco17", 1, 2.0))


def test_pose_checks_and_empty():
    p = Pose.empty("penn13", 3, 0.1)
    assert not p.valid and p.positions.shape == (13, 2)
    with pytest.raises(ValueError, match="needs"):
        Pose(0, 0.0, np.zeros((12, 2)), np.ones(12, bool), "penn13")


def test_to_layout_thresholds_visibility():
    rng = np.random.default_rng(1)
    vis = np.full(33, 0.9, np.float32)
    vis[[13, 14]] = 0.1  # both elbows barely visible
    raw = Pose(0, 0.0, rng.uniform(0, 100, (33, 2)), np.ones(33, bool), "mediapipe33", vis)
    penn = raw.to_layout("penn13", 0.5)
    assert penn.valid
    assert list(np.nonzero(~penn.joint_valid)[0]) == [3, 4]  # penn elbows
    # penn13's left shoulder is MediaPipe's right one (12): Penn's sides
    np.testing.assert_allclose(penn.positions[1], raw.positions[12])
    # most joints invisible: the whole frame is missing, not a partial zero pose
    assert not raw.to_layout("penn13", 0.95).valid


def test_handoff_drops_the_stalest_and_counts():
    h = Handoff(maxsize=2)
    for i in range(5):
        h.put(i)
    assert h.dropped == 3
    assert [h.get(0), h.get(0)] == [3, 4]
    assert h.get(0.01) is None
    h.put(5)
    h.close()
    assert h.get() == 5 and h.get() is None  # drained, then closed
    assert h.put(6) is False and h.put(7, force=True) is False


def test_handoff_force_waits_for_room():
    h = Handoff(maxsize=1)
    h.put("a")
    got = []

    def consumer():
        got.append(h.get(1.0))

    t = threading.Thread(target=consumer)
    t.start()
    h.put("last", force=True)  # must not evict "a"
    t.join()
    assert got == ["a"] and h.get(0) == "last" and h.dropped == 0


def test_enough_valid_and_stats_percentiles():
    t = np.arange(10) / 30
    fv = np.zeros(10, bool)
    fv[:2] = True
    w = Window(np.zeros((10, 13, 2)), fv, fv[:, None] & np.ones((10, 13), bool), t)
    assert enough_valid(w, 0.2) and not enough_valid(w, 0.3)
    assert not enough_valid(w, 0.2, min_frames=11)  # too short for the recognizer
    s = Stats()
    for v in range(1, 101):
        s.add_latency({"total": float(v)})
    pct = s.percentiles()["total"]
    assert pct["p50"] == pytest.approx(50.5) and pct["p95"] == pytest.approx(95.05)


def _reference_windows(times: list[float], length: float, hop: float,
                       period: float) -> list[tuple[float, float, int]]:
    """Every window due by the last tick, one by one, with its tick count."""
    ts, tol, out = np.asarray(times), period / 2, []
    k = 0
    while True:
        end = times[0] + length + k * hop
        lo, hi = end - length - tol, end - tol
        if times[-1] < hi - period:
            return out
        out.append((lo, hi, int(((ts >= lo) & (ts < hi)).sum())))
        k += 1


def _run_windower(times, length=2.0, hop=0.5, period=1 / 30):
    win = Windower(length, hop, period)
    return win, [w for t in times for w in win.update(t)]


def test_windows_wholly_in_a_gap_are_skipped_and_counted():
    """Ticks for 3 s, 100 s with none, 3 s more: the windows in the gap hold no
    tick; they are not returned, but counted; every other window is as before."""
    p = 1 / 30
    times = [i * p for i in range(90)] + [100 + i * p for i in range(90)]
    win, got = _run_windower(times)
    ref = _reference_windows(times, 2.0, 0.5, p)
    assert got == [(lo, hi) for lo, hi, n in ref if n > 0]
    assert win.skipped_empty == sum(n == 0 for _, _, n in ref) > 150
    assert all(n > 0 for _, _, n in ref[:3])  # the windows before the gap are all there


@pytest.mark.parametrize("jump", [1e6, 5e8])
def test_a_giant_jump_costs_one_step(jump):
    p = 1 / 30
    times = [i * p for i in range(90)] + [jump + i * p for i in range(90)]
    t0 = time.perf_counter()
    win, got = _run_windower(times)
    assert time.perf_counter() - t0 < 0.5
    # windows over the 3 s before (3) and after (3) the jump, and ones straddling
    # the last ticks before it (their end reaches into the gap)
    assert 4 <= len(got) <= 12
    assert all(lo < 3.0 or lo > jump - 2.1 for lo, _ in got)
    # every window in the gap is counted (hop 0.5 s: two per second of gap)
    assert win.skipped_empty + len(got) == pytest.approx(2 * (jump + 3 - 2) + 1, abs=2)


@settings(max_examples=150, deadline=2000)
@given(st.lists(st.floats(1e-3, 30.0), min_size=1, max_size=60),
       st.floats(0.2, 3.0), st.floats(0.05, 1.0), st.sampled_from([1 / 60, 1 / 30, 1 / 10]),
       st.floats(-1e3, 1e3))
def test_windower_matches_one_by_one_windows_on_uneven_gaps(steps, length, hop, period, t0):
    hop = min(hop, length)
    length = max(length, 2 * period)
    times = list(t0 + np.cumsum([0.0, *steps]))
    win, got = _run_windower(times, length, hop, period)
    ref = _reference_windows(times, length, hop, period)
    want = [(lo, hi) for lo, hi, n in ref if n > 0]
    assert len(got) == len(want)
    np.testing.assert_allclose(np.reshape(got, (-1, 2)), np.reshape(want, (-1, 2)), rtol=0,
                               atol=1e-9)
    assert win.skipped_empty == sum(n == 0 for _, _, n in ref)


def test_windower_refuses_times_it_cannot_count_and_ignores_old_ones():
    win = Windower(2.0, 0.5, 1 / 30)
    for bad in (math.nan, math.inf, -math.inf, 2e9, -2e9):
        with pytest.raises(ValueError, match="not finite or beyond"):
            win.update(bad)
    assert win.update(5.0) == [] and win.update(7.5) != []
    k = win.k
    assert win.update(7.5) == [] and win.update(1.0) == [] and win.k == k  # nothing due
    with pytest.raises(ValueError, match=r">= 0\.0001"):
        Windower(2.0, 1e-9, 1 / 30)


def test_ring_refuses_a_time_that_is_not_finite():
    ring = RingBuffer(8, 13, 2, "penn13")
    with pytest.raises(ValueError, match="increase"):
        ring.push(Pose.empty("penn13", 0, math.nan))
    assert ring.count == 0


def test_final_window_of_a_short_source_starts_at_its_first_tick():
    """A source shorter than a window (0.7 s starting at t = 10 s): the final
    window starts at the first tick, not 1.3 s before it."""
    win = Windower(2.0, 0.5, 1 / 30)
    ring = RingBuffer(win.capacity_for(), 13, 2, "penn13")
    times = 10.0 + np.arange(21) / 30
    for i, t in enumerate(times):
        ring.push(Pose.empty("penn13", i, float(t)))
        assert win.update(float(t)) == []
    lo, hi = win.flush(float(times[-1]))
    assert lo + win.tol == pytest.approx(10.0)  # the command's t_start
    assert ring.window(lo, hi).num_frames == 21

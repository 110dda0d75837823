"""Capture that never waits on pose (FramePump) and gap filling (TickClock)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from finetec_live.errors import FinetecError
from finetec_live.live.capture import FramePump, TickClock
from finetec_live.live.sources import Frame

IMAGE = np.zeros((4, 4, 3), np.uint8)


def _paced(n: int, period: float, error: Exception | None = None):
    """A camera-like source: a frame every ``period`` seconds of wall time."""
    t0 = time.monotonic()
    for i in range(n):
        time.sleep(max(0.0, t0 + i * period - time.monotonic()))
        yield Frame(i, time.monotonic() - t0, IMAGE)
    if error is not None:
        raise error


def test_a_slow_consumer_gets_every_tick_at_its_time_and_the_newest_pictures():
    pump = FramePump(_paced(60, 0.005))
    thread = threading.Thread(target=pump.run, daemon=True)
    thread.start()
    got = []
    for frame in pump:
        got.append(frame)
        if frame.image is not None:
            time.sleep(0.03)  # pose estimation, six frame periods
    thread.join(5)
    # no tick lost, none invented, in time order, at the times they were read
    assert [f.index for f in got] == list(range(60))
    assert np.all(np.diff([f.timestamp for f in got]) > 0)
    pictures = [f for f in got if f.image is not None]
    lagged = [f for f in got if f.image is None]
    assert lagged and all(f.late for f in lagged) and not any(f.late for f in pictures)
    assert pump.lagged == len(lagged) and pump.read == 60
    assert len(pictures) < 30  # the consumer could not take them all
    assert got[-1].image is not None  # the newest frame is never thrown away


def test_capture_does_not_wait_for_the_consumer():
    """The source is read at its own pace while the consumer is busy."""
    pump = FramePump(_paced(40, 0.005))
    thread = threading.Thread(target=pump.run, daemon=True)
    thread.start()
    it = iter(pump)
    next(it)
    time.sleep(0.4)  # a very long pose estimate
    assert pump.read == 40  # everything was read meanwhile
    rest = list(it)
    assert len(rest) == 39 and rest[-1].image is not None
    thread.join(5)


def test_a_source_error_reaches_the_consumer_after_the_frames():
    pump = FramePump(_paced(5, 0.001, FinetecError("camera 0 delivered no frame")))
    thread = threading.Thread(target=pump.run, daemon=True)
    thread.start()
    got = []
    with pytest.raises(FinetecError, match="no frame"):
        for f in pump:
            got.append(f)
    thread.join(5)
    assert [f.index for f in got] == list(range(5))


def test_lagged_ticks_beyond_the_bound_are_forgotten_and_counted():
    pump = FramePump(_paced(50, 0.0), max_pending=10)
    pump.run()  # nobody consumes meanwhile
    got = list(pump)
    assert len(got) == 11 and pump.forgotten == 39
    assert got[-1].index == 49 and got[-1].image is not None


def test_tick_clock_fills_gaps_at_the_nominal_period():
    clock = TickClock(0.1, max_fill=100)
    assert clock.gap_before(0.0) == [] and clock.gap_before(0.1) == []
    assert clock.gap_before(0.25) == []  # within 1.5 periods: jitter, not a gap
    filled = clock.gap_before(0.75)
    np.testing.assert_allclose(filled, [0.35, 0.45, 0.55, 0.65])
    assert clock.filled == 4 and clock.skipped == 0


def test_a_camera_slower_than_it_says_has_no_gaps_and_its_real_gaps_are_found():
    """Reports 30 fps, delivers 15 (low light), with jitter: not half missing."""
    rng = np.random.default_rng(0)
    ts = np.cumsum(rng.uniform(0.8, 1.2, 300) / 15)
    clock = TickClock(1 / 30, max_fill=1000)
    fills = [len(clock.gap_before(t)) for t in ts]
    assert sum(fills[:5]) <= 4 and sum(fills[5:]) == 0  # once its rate is measured
    assert clock.period == pytest.approx(1 / 15, rel=0.1)
    filled = clock.gap_before(ts[-1] + 1.0)  # then a second without frames
    assert len(filled) == pytest.approx(14, abs=1)


def test_jitter_of_a_healthy_camera_is_no_gap():
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.uniform(0.4, 1.6, 300) / 30)  # intervals up to 1.6 periods
    clock = TickClock(1 / 30, max_fill=1000)
    assert sum(len(clock.gap_before(t)) for t in ts) == 0


def test_tick_clock_bounds_a_huge_jump():
    clock = TickClock(1 / 30, max_fill=50)
    clock.gap_before(0.0)
    t0 = time.perf_counter()
    filled = clock.gap_before(1e9)  # a jump of 30 years
    assert time.perf_counter() - t0 < 0.1
    assert len(filled) == 50 and clock.filled == 50 and clock.skipped > 1e10
    assert filled[-1] < 1e9 and np.all(np.diff(filled) > 0)


def test_tick_clock_rejects_nonsense():
    with pytest.raises(ValueError):
        TickClock(0.0, 10)
    with pytest.raises(ValueError):
        TickClock(float("nan"), 10)

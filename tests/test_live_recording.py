"""Pose recordings (``--record`` / ``--keypoints``): round trip, and replay of
damaged or hostile files, which end as gaps or one FinetecError, never a hang."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetec_live.errors import FinetecError
from finetec_live.live.buffer import MAX_TIME, RingBuffer, Windower
from finetec_live.live.pose import Pose
from finetec_live.live.recording import (
    RECORD_FORMAT,
    RECORD_VERSION,
    KeypointRecorder,
    KeypointSource,
)

HEADER = {"format": RECORD_FORMAT, "v": RECORD_VERSION, "layout": "mediapipe33", "fps": 30.0,
          "width": 320, "height": 180, "source": "synthetic"}


def _raw_pose(i: int, t: float, rng: np.random.Generator) -> Pose:
    """A MediaPipe-33 pose in pixels with visibilities; some joints missing."""
    ok = rng.random(33) > 0.1
    return Pose(i, t, rng.uniform(0, 320, (33, 2)), ok, "mediapipe33",
                visibility=rng.uniform(0, 1, 33).astype(np.float32))


def _tick(i: int, t, rng: np.random.Generator | None = None, gap: bool = False) -> dict:
    """One tick record as KeypointRecorder writes it (with a pose when rng is given)."""
    rec = {"i": i, "t": t, "gap": gap}
    if rng is not None:
        p = _raw_pose(i, 0.0, rng)
        rec.update(xy=p.positions.astype("<f4").tobytes(), ok=p.joint_valid.astype(
            np.uint8).tobytes(), vis=p.visibility.astype("<f4").tobytes())
    return rec


def _write(path: Path, records: list, header=None) -> Path:
    pack = msgpack.Packer(use_bin_type=True).pack
    path.write_bytes(pack(HEADER if header is None else header)
                     + b"".join(pack(r) for r in records))
    return path


def _ticks(times, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [_tick(i, t, rng if i % 4 else None) for i, t in enumerate(times)]


def _replay(path: Path, length: float = 2.0, hop: float = 0.5, **kw):
    """What the command does with a recording: every tick into the ring buffer
    (penn13) and the windower, the final window at the end."""
    src = KeypointSource(path, realtime=False, **kw)
    win = Windower(length, hop, 1.0 / src.fps)
    ring = RingBuffer(win.capacity_for(), 13, 2, "penn13")
    times, windows = [], []
    for f in src:
        ring.push(f.pose.to_layout("penn13"))
        times.append(f.timestamp)
        windows += [ring.window(lo, hi) for lo, hi in win.update(f.timestamp)]
    if times and (final := win.flush(times[-1])) is not None:
        windows.append(ring.window(*final))
    return src, win, times, windows


def test_record_and_replay_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    poses = [_raw_pose(i, i / 30, rng) if i % 5 else Pose.empty("mediapipe33", i, i / 30)
             for i in range(60)]
    path = tmp_path / "demo.fkp"
    rec = KeypointRecorder(path, 30.0, 320, 180, "clip.mp4")
    for p in poses:
        rec.write(p, gap=p.index == 7)
    rec.close()
    replay = KeypointSource(path, realtime=False)
    assert replay.fps == 30.0 and (replay.width, replay.height) == (320, 180)
    frames = list(replay)
    assert len(frames) == len(poses) == replay.ticks and replay.bad_ticks == 0
    assert not replay.truncated and replay.read_seconds == pytest.approx(2.0)
    for f, p in zip(frames, poses, strict=True):
        assert f.image is None and f.index == p.index and f.timestamp == p.timestamp
        assert f.pose.valid == p.valid and f.late == (p.index == 7)
        np.testing.assert_array_equal(f.pose.positions, p.positions)
        np.testing.assert_array_equal(f.pose.joint_valid, p.joint_valid)
        if p.valid:
            np.testing.assert_array_equal(f.pose.visibility, p.visibility)
            # thresholds applied at replay give the same model-layout pose
            np.testing.assert_array_equal(f.pose.to_layout("penn13", 0.7).positions,
                                          p.to_layout("penn13", 0.7).positions)
    # --loop continues the timeline
    looped = list(itertools.islice(KeypointSource(path, realtime=False, loop=True), 200))
    ts = np.array([f.timestamp for f in looped])
    assert [f.index for f in looped] == list(range(200))
    np.testing.assert_allclose(np.diff(ts), 1 / 30, atol=1e-6)


def test_loop_of_a_recording_with_negative_times_keeps_time_increasing(tmp_path):
    path = _write(tmp_path / "neg.fkp", _ticks(np.arange(-30, 30) / 30))
    src = KeypointSource(path, realtime=False, loop=True)
    ts = np.array([f.timestamp for f in itertools.islice(src, 200)])
    np.testing.assert_allclose(np.diff(ts), 1 / 30, atol=1e-6)
    assert src.loops == 3


def test_bad_recordings(tmp_path):
    with pytest.raises(FinetecError, match="not found"):
        KeypointSource(tmp_path / "nope.fkp")
    bad = tmp_path / "bad.fkp"
    for content in (b"", b"\x93not a recording", b"\xc1", msgpack.packb([1, 2])):
        bad.write_bytes(content)
        with pytest.raises(FinetecError, match="not a finetec-live pose recording"):
            KeypointSource(bad)
    with pytest.raises(FinetecError, match="version 2 recording"):
        KeypointSource(_write(bad, [], {**HEADER, "v": 2}))
    with pytest.raises(FinetecError, match="holds layout 'coco17'"):
        KeypointSource(_write(bad, [], {**HEADER, "layout": "coco17"}))


@pytest.mark.parametrize(("records", "why"), [
    ([], r"0 records, skipped: none\)"),
    ([{"t": math.nan, "i": 0}, {"i": 1, "t": "x"}, [1]],
     "3 records, skipped: 1 bad field, 1 not a map, 1 time not finite"),
])
def test_a_recording_without_a_usable_tick_is_an_error(tmp_path, records, why):
    src = KeypointSource(_write(tmp_path / "empty.fkp", records), realtime=False)
    with pytest.raises(FinetecError, match=why):
        list(src)


def test_bad_times_are_skipped_and_counted(tmp_path, caplog):
    """NaN, infinite, beyond 1e9 s, repeated and backwards times: those ticks are
    skipped (counted by reason); the others keep their times; a jump is a gap."""
    times = [0.0, 1 / 30, math.nan, 2 / 30, math.inf, 2 / 30, 3 / 30, 1 / 30, -math.inf,
             4 / 30, 2e9, -2e9, 1e6, 1e6 + 1 / 30, 5.0]
    with caplog.at_level(logging.WARNING):
        src, win, ts, windows = _replay(_write(tmp_path / "t.fkp", _ticks(times)))
    assert ts == [0.0, 1 / 30, 2 / 30, 3 / 30, 4 / 30, 1e6, 1e6 + 1 / 30]
    assert dict(src.skipped) == {"time_not_finite": 3, "time_out_of_range": 2,
                                 "time_not_increasing": 3}
    assert src.bad_ticks == 8 and src.ticks == 7
    assert "skipped 8 of 15 tick records" in caplog.text
    # the jump of a million seconds is a gap: two windows, the rest counted empty
    assert len(windows) == 2 and win.skipped_empty == pytest.approx(2e6, abs=8)


def test_malformed_records_are_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(1)
    good = _tick(0, 0.0, rng)
    bad = [
        "a string", [1, 2], 7, None,  # not maps
        {"t": 0.1}, {"i": 1}, {"i": -1, "t": 0.1}, {"i": 1.5, "t": 0.1}, {"i": True, "t": 0.1},
        {"i": 1, "t": "0.1"}, {"i": 1, "t": None}, {"i": 1, "t": True},
        {"i": 1, "t": 0.1, "gap": "yes"},  # bad fields
        {**good, "t": 0.1, "xy": good["xy"][:-4]}, {**good, "t": 0.1, "ok": b"\x01" * 32},
        {**good, "t": 0.1, "vis": "not bytes"}, {k: v for k, v in good.items() if k != "vis"}
        | {"t": 0.1}, {"i": 1, "t": 0.1, "xy": good["xy"]},  # bad poses
    ]
    src, _, ts, _ = _replay(_write(tmp_path / "m.fkp", [good, *bad, _tick(2, 0.2, rng)]))
    assert ts == [0.0, 0.2]
    assert dict(src.skipped) == {"not_a_map": 4, "bad_field": 9, "bad_pose": 5}


def test_joints_with_impossible_values_are_missing_joints(tmp_path):
    rng = np.random.default_rng(2)
    rec = _tick(0, 0.0, rng)
    xy = np.frombuffer(rec["xy"], "<f4").reshape(33, 2).copy()
    vis = np.frombuffer(rec["vis"], "<f4").copy()
    rec["ok"] = b"\x01" * 33
    xy[3, 0], xy[4, 1], xy[5, 0], vis[6] = np.nan, np.inf, 1e30, np.nan
    rec.update(xy=xy.astype("<f4").tobytes(), vis=vis.astype("<f4").tobytes())
    src = KeypointSource(_write(tmp_path / "j.fkp", [rec]), realtime=False)
    (f,) = list(src)
    assert list(np.nonzero(~f.pose.joint_valid)[0]) == [3, 4, 5, 6]
    assert np.isfinite(f.pose.positions).all() and np.isfinite(f.pose.visibility).all()
    assert src.bad_joints == 4 and src.bad_ticks == 0


def test_a_truncated_recording_is_read_up_to_the_cut(tmp_path, caplog):
    full = _write(tmp_path / "full.fkp", _ticks(np.arange(90) / 30)).read_bytes()
    cut = tmp_path / "cut.fkp"
    cut.write_bytes(full[: len(full) * 2 // 3])
    with caplog.at_level(logging.WARNING):
        src, _, ts, windows = _replay(cut)
    assert src.truncated and 55 <= src.read_ticks == len(ts) <= 60
    assert src.read_seconds == pytest.approx(len(ts) / 30)
    assert f"truncated or damaged after {len(ts)} ticks ({len(ts) / 30:.1f} s" in caplog.text
    assert 1 <= len(windows) <= 2
    # a byte that does not decode after five ticks: read up to it
    at = len(_write(tmp_path / "five.fkp", _ticks(np.arange(5) / 30)).read_bytes())
    cut.write_bytes(full[:at] + b"\xc1" + full[at:])
    src, _, ts, _ = _replay(cut)
    assert src.truncated and len(ts) == 5


def test_header_fps_and_size_that_make_no_sense_fall_back(tmp_path, caplog):
    path = tmp_path / "h.fkp"
    for fps, want in ((math.nan, 30.0), (1e300, 30.0), ("30", 30.0), (None, 30.0), (25, 25.0)):
        with caplog.at_level(logging.WARNING):
            src = KeypointSource(_write(path, _ticks([0.0]), {**HEADER, "fps": fps}))
        assert src.fps == want
    for w in ("320", -1, 10**9, 2.5, True):
        src = KeypointSource(_write(path, _ticks([0.0]), {**HEADER, "width": w, "height": w}))
        assert (src.width, src.height) == (0, 0)
    assert "treating it as unknown" in caplog.text and "assuming 30" in caplog.text


def test_realtime_replay_waits_a_bounded_time_across_a_huge_gap(tmp_path):
    times = list(np.arange(6) / 30) + list(1e6 + np.arange(6) / 30)
    stop = threading.Event()
    src = KeypointSource(_write(tmp_path / "gap.fkp", _ticks(times)), realtime=True, stop=stop,
                         max_wait=0.3)
    timer = threading.Timer(10.0, stop.set)  # without the bound it would wait 11 days
    timer.start()
    t0 = time.monotonic()
    ts = [f.timestamp for f in src]
    elapsed = time.monotonic() - t0
    timer.cancel()
    assert ts == times and elapsed == pytest.approx(0.3 + 10 / 30, abs=0.25)


# --- property-based: whatever the file holds, replay ends cleanly and fast ---

def _check_replay(path: Path, t_limit: float = 5.0) -> list[float]:
    """Replay through ring + windower: values or a FinetecError, strictly
    increasing times, windows bounded by the duration, and quickly."""
    t0 = time.perf_counter()
    try:
        src, win, ts, windows = _replay(path)
    except FinetecError:
        return []
    assert time.perf_counter() - t0 < t_limit
    assert all(np.isfinite(ts)) and all(abs(t) <= MAX_TIME for t in ts)
    assert np.all(np.diff(ts) > 0)  # also checked by RingBuffer.push
    if ts:
        assert len(windows) <= (ts[-1] - ts[0]) / win.hop + win.length / win.hop + 3
    assert src.ticks == len(ts)
    return ts


_HEADER_BYTES = msgpack.packb(HEADER, use_bin_type=True)
_settings = settings(max_examples=150, deadline=3000,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@_settings
@given(st.binary(max_size=3000))
def test_random_bytes_after_a_header(tmp_path, data):
    path = tmp_path / "r.fkp"
    path.write_bytes(_HEADER_BYTES + data)
    _check_replay(path)


@_settings
@given(st.binary(max_size=600))
def test_random_bytes_as_a_file(tmp_path, data):
    path = tmp_path / "r.fkp"
    path.write_bytes(data)
    try:
        KeypointSource(path)
    except FinetecError:
        return
    _check_replay(path)


def test_truncation_at_every_byte(tmp_path):
    full = _write(tmp_path / "full.fkp", _ticks([0.0, 0.5, 1.0, 3.0])).read_bytes()
    path = tmp_path / "cut.fkp"
    read = []
    for n in range(len(full) + 1):
        path.write_bytes(full[:n])
        try:
            KeypointSource(path)
        except FinetecError:
            assert n < len(_HEADER_BYTES)
            continue
        read.append(len(_check_replay(path)))
    assert read == sorted(read) and read[-1] == 4  # the more bytes, the more ticks


_times = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-10, 10), st.integers(-2**63, 2**64 - 1),
                   st.sampled_from([0.0, 1e6, 1e9, -1e9, 1e9 + 1, 5e-324]))
_values = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.binary(max_size=300),
                    st.floats(), st.integers(-5, 5),
                    st.lists(st.integers(-2**63, 2**63 - 1), max_size=3))
_records = st.one_of(
    st.builds(lambda i, t, seed, gap: _tick(i, t, np.random.default_rng(seed), gap),
              st.integers(0, 10**6), _times, st.integers(0, 9), st.booleans()),
    st.builds(lambda i, t: {"i": i, "t": t}, st.integers(0, 99), _times),
    st.dictionaries(st.sampled_from(["i", "t", "gap", "xy", "ok", "vis"]), _values),
    _values,
)


@_settings
@given(st.lists(_records, max_size=40))
def test_hostile_records(tmp_path, records):
    """Wrong types, NaN/inf/huge values, shuffled, repeated and backwards times,
    giant jumps: the ticks kept are exactly those whose time advances."""
    path = _write(tmp_path / "h.fkp", records)
    ts = _check_replay(path)
    kept, last = [], -math.inf
    for r in records:
        t = r.get("t") if isinstance(r, dict) else None
        if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and \
                abs(t) <= MAX_TIME and t > last and _usable(r):
            kept.append(float(t))
            last = float(t)
    assert ts == kept


def _usable(r: dict) -> bool:
    """The record's non-time fields as the recorder writes them."""
    i, gap = r.get("i"), r.get("gap", False)
    if not (isinstance(i, int) and not isinstance(i, bool) and i >= 0 and isinstance(gap, bool)):
        return False
    sizes = {"xy": 264, "ok": 33, "vis": 132}
    present = [k for k in sizes if k in r]
    return not present or all(isinstance(r.get(k), bytes) and len(r[k]) == n
                              for k, n in sizes.items())


@settings(max_examples=100, deadline=3000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(1e-3, 0.2), min_size=2, max_size=60), st.data())
def test_shuffled_duplicated_and_jumping_times(tmp_path, steps, data):
    times = list(np.cumsum(steps))
    jumps = data.draw(st.lists(st.sampled_from([1e3, 1e6, 5e8]), max_size=3))
    for j in jumps:  # giant forward jumps at random places
        k = data.draw(st.integers(0, len(times) - 1))
        times[k:] = [t + j for t in times[k:]]
    order = data.draw(st.permutations(range(len(times))))
    n_shuffled = data.draw(st.integers(0, len(times)))
    times = [times[k] for k in order[:n_shuffled]] + times[n_shuffled:]
    times += data.draw(st.lists(st.sampled_from(times), max_size=5))  # repeats
    ts = _check_replay(_write(tmp_path / "s.fkp", _ticks(times)))
    ok = [t for t in times if t <= MAX_TIME]  # jumps may add up beyond 1e9 s
    assert ts == [t for k, t in enumerate(ok) if t > max(ok[:k], default=-math.inf)]

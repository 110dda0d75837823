"""Sources and the MediaPipe front end on real clips (pose recordings: test_live_recording)."""

from __future__ import annotations

import itertools
import shutil
import time

import numpy as np
import pytest

from finetec_live.data.paths import data_root
from finetec_live.errors import FinetecError
from finetec_live.live.capture import TickClock
from finetec_live.live.pose import Pose, PoseEstimator
from finetec_live.live.sources import DEMO_VIDEO, CameraSource, VideoSource

VIDEOS = data_root() / "videos"


@pytest.fixture(scope="module")
def demo_poses() -> tuple[VideoSource, list[Pose]]:
    """MediaPipe over the whole shipped demo clip (150 frames, 320x180)."""
    src = VideoSource(DEMO_VIDEO, realtime=False)
    with PoseEstimator() as est:
        poses = [est.estimate(f.image, f.index, f.timestamp) for f in src]
    src.close()
    return src, poses


def test_demo_clip_has_natural_missing_frames_never_faked(demo_poses):
    src, poses = demo_poses
    assert src.fps == pytest.approx(30.0) and (src.width, src.height) == (320, 180)
    assert len(poses) == 150
    np.testing.assert_allclose([p.timestamp for p in poses], np.arange(150) / 30.0)
    valid = np.array([p.valid for p in poses])
    # the person is found on most frames, and lost on some (occlusion, leaving)
    assert valid.mean() > 0.8 and (~valid).sum() >= 1
    for p in poses:
        if not p.valid:  # a missing frame: no valid joint, zeros, no visibility
            assert p.visibility is None and not p.positions.any()
    # never the previous pose repeated
    prev = None
    for p in poses:
        if p.valid and prev is not None:
            assert not np.array_equal(p.positions, prev.positions)
        prev = p if p.valid else prev
    # penn13 mapping: missing frames stay missing
    penn = [p.to_layout("penn13", 0.5) for p in poses]
    assert all(q.valid <= p.valid for p, q in zip(poses, penn, strict=True))


def test_positions_are_pixels_with_the_image_aspect():
    """Portrait 1080x1920 lab clip: pixel coordinates, a person taller than wide."""
    src = VideoSource(VIDEOS / "pose2sim_single_cam01.mp4", realtime=False)
    assert (src.width, src.height, src.fps) == (1080, 1920, 60.0)
    with PoseEstimator() as est:
        poses = [est.estimate(f.image, f.index, f.timestamp)
                 for f in itertools.islice(src, 12)]
    src.close()
    penn = [p.to_layout("penn13", 0.5) for p in poses]
    assert all(q.valid for q in penn)
    xy = np.concatenate([q.positions[q.joint_valid] for q in penn])
    assert xy[:, 0].min() >= 0 and xy[:, 0].max() <= 1080
    assert xy[:, 1].min() >= 0 and xy[:, 1].max() <= 1920
    q = penn[-1]
    head, ankles = q.positions[0], q.positions[[11, 12]]
    height = ankles[:, 1].mean() - head[1]  # image y grows downwards
    width = np.ptp(q.positions[q.joint_valid][:, 0])
    assert height > 300 and height > width


def test_video_loop_and_fast_replay():
    src = VideoSource(DEMO_VIDEO, realtime=False, loop=True)
    frames = list(itertools.islice(src, 320))
    src.close()
    assert [f.index for f in frames] == list(range(320))
    np.testing.assert_allclose([f.timestamp for f in frames], np.arange(320) / 30.0)
    assert all(f.image is not None for f in frames)
    np.testing.assert_array_equal(frames[0].image, frames[150].image)  # restarted
    assert src.loops == 2


def test_realtime_replay_keeps_the_clock_and_marks_late_frames():
    src = VideoSource(VIDEOS / "clean_and_jerk.mp4", realtime=True)
    t0 = time.monotonic()
    frames = []
    for f in src:
        frames.append(f)
        if f.index == 14:
            time.sleep(0.3)  # the consumer stalls for about 9 frame periods
        if f.index == 44:
            break
    elapsed = time.monotonic() - t0
    src.close()
    assert elapsed == pytest.approx(44 / src.fps, abs=0.15)  # paced at the file's rate
    assert [f.index for f in frames] == list(range(45))  # every tick is there
    late = [f.index for f in frames if f.image is None]
    assert 5 <= len(late) <= 10 and min(late) == 15 and all(f.late for f in frames
                                                            if f.image is None)


def test_bad_video_files(tmp_path):
    with pytest.raises(FinetecError, match="not found"):
        VideoSource(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(10_000))
    with pytest.raises(FinetecError, match="cannot decode"):
        VideoSource(junk)


def test_absent_camera():
    with pytest.raises(FinetecError, match=r"camera .* cannot be opened"):
        CameraSource("/dev/video99")


def test_camera_that_stops_ends_with_an_error_counted_from_its_last_frame(tmp_path):
    """A 'camera' (a clip opened as a device, delivered at its nominal rate) whose
    device disappears: it is reopened with back-off, and the run ends with a clear
    error once no frame came for --camera-retry seconds after the last one."""
    clip = tmp_path / "cam.mp4"
    shutil.copy(DEMO_VIDEO, clip)
    cam = CameraSource(str(clip), retry_seconds=1.0)
    frames = []
    with pytest.raises(FinetecError, match="delivered no frame for 1 s"):
        for f in cam:
            frames.append((f, time.monotonic()))
            if f.index == 0:
                clip.unlink()  # the device goes away; buffered frames still come
    ended = time.monotonic()
    cam.close()
    assert len(frames) == 150 and all(f.image is not None for f, _ in frames)
    assert 1.0 <= ended - frames[-1][1] < 4.0
    ts = np.array([f.timestamp for f, _ in frames])
    assert np.all(np.diff(ts) > 0)
    # delivered at the nominal rate, not at decoding speed
    assert ts[-1] == pytest.approx(149 / cam.fps, abs=0.5)


class _SilentCapture:
    """A capture that opens but never delivers a frame (no such camera is at hand)."""

    def isOpened(self):
        return True

    def read(self):
        return False, None

    def set(self, *_):
        return True

    def get(self, *_):
        return 30.0

    def release(self):
        pass


def test_camera_that_opens_but_never_delivers_is_not_retried_forever(monkeypatch):
    monkeypatch.setattr(CameraSource, "_open", lambda self: _SilentCapture())
    cam = CameraSource(0, retry_seconds=0.8)
    t0 = time.monotonic()
    with pytest.raises(FinetecError, match=r"delivered no frame for 0\.8 s"):
        list(itertools.islice(cam, 10))
    assert time.monotonic() - t0 < 4.0
    assert cam.reconnects >= 2  # every reopen succeeded, none delivered


def test_camera_reopens_after_a_gap_and_the_gap_becomes_missing_ticks(tmp_path):
    clip = tmp_path / "cam.mp4"
    shutil.copy(DEMO_VIDEO, clip)
    cam = CameraSource(str(clip), retry_seconds=5.0)
    frames = list(itertools.islice(cam, 160))  # 150 frames, a gap, then frames again
    cam.close()
    assert cam.reconnects == 1 and all(f.image is not None for f in frames)
    np.testing.assert_array_equal(frames[150].image, frames[0].image)
    gap = frames[150].timestamp - frames[149].timestamp
    assert gap > 1.5 / cam.fps  # the back-off: time without frames
    clock = TickClock(1.0 / cam.fps, max_fill=1000)
    gaps = [clock.gap_before(f.timestamp) for f in frames]
    reopen = gaps[150]
    assert reopen and all(frames[149].timestamp < t < frames[150].timestamp for t in reopen)
    periods = gap / clock.period  # the nominal period, or the measured one when longer
    assert periods - 1.75 < len(reopen) <= periods - 0.75
    # a stall of a loaded machine elsewhere is a gap too: its ticks lie in its own stretch
    for before, after, ticks in zip(frames[:-1], frames[1:], gaps[1:], strict=True):
        assert all(before.timestamp < t < after.timestamp for t in ticks)
"""Frame sources: a camera, a video file, or a replayed pose recording.

A source is an iterable of :class:`Frame`, one per frame *tick*. Timestamps come
from the source: ``index / fps`` for files (continuing across loops), a
monotonic clock for cameras, the recorded times for a keypoint replay. A tick
whose image is ``None`` is a frame that exists on the timeline but has no
picture (a camera gap, or a replay that fell behind real time): it becomes a
missing frame downstream. Pose recordings and their replay are in
:mod:`finetec_live.live.recording`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.live import native
from finetec_live.live.pose import Pose

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
#: The shipped demo clip (BSD-3-Clause, see demo/LICENSE.txt): 5 s, 30 fps, 320x180,
#: a person jumping off a box, another walking behind a tree.
DEMO_VIDEO = Path(__file__).resolve().parents[1] / "demo" / "sports2d_demo.mp4"


@dataclass
class Frame:
    """One frame tick.

    ``image`` is BGR ``(H, W, 3)`` uint8, or None for a tick without picture.
    ``pose`` is set by a keypoint replay (no image, the pose is known), and ``more``
    holds the other people of a replayed multi-person recording.
    """

    index: int
    timestamp: float
    image: np.ndarray | None = None
    pose: Pose | None = None
    late: bool = False  # skipped because real-time replay fell behind
    wall: float = 0.0  # time.perf_counter() when the frame was read
    more: list[Pose] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"frame index must be >= 0, got {self.index}")
        if self.image is not None and (self.image.ndim != 3 or self.image.shape[2] != 3):
            raise ValueError(f"image must be (H, W, 3) BGR, got {self.image.shape}")
        if not self.wall:
            self.wall = time.perf_counter()


def stream_name_from(text: str) -> str:
    """A topic-safe stream id from a file name or camera spec."""
    s = re.sub(r"[^A-Za-z0-9_\-.]+", "_", text).strip("_.") or "live"
    return s[:64]


def _sane_fps(fps: float, what: str) -> float:
    if not np.isfinite(fps) or not 1.0 <= fps <= 1000.0:
        log.warning("%s reports %.3g fps; assuming %.0f", what, fps, DEFAULT_FPS)
        return DEFAULT_FPS
    return float(fps)


class _Pacer:
    """Real-time pacing against a monotonic clock; ``wait_until`` returns lateness."""

    def __init__(self, stop: threading.Event | None) -> None:
        self.stop = stop or threading.Event()
        self.t0: float | None = None

    def wait_until(self, t: float) -> float:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now - t
        delay = self.t0 + t - now
        if delay > 0:
            self.stop.wait(delay)
            return 0.0
        return -delay


class VideoSource:
    """A video file through OpenCV.

    ``realtime`` replays at the file's frame rate: when the consumer falls more
    than one frame behind, the late frames become ticks without picture (as a
    camera would lose them). ``realtime=False`` (``--fast``) delivers every frame
    as fast as it is consumed. ``loop`` restarts at the end.
    """

    def __init__(self, path: str | os.PathLike, realtime: bool = True, loop: bool = False,
                 stop: threading.Event | None = None) -> None:
        import cv2

        self._cv2 = cv2
        self.path = Path(path)
        if self.path.is_dir():
            raise FinetecError(f"--video {self.path} is a folder, not a video file; pass the "
                               "path of a video file such as clip.mp4")
        if not self.path.is_file():
            raise FinetecError(f"video file {self.path} not found; check the --video path")
        with native.quiet(not log.isEnabledFor(logging.DEBUG)):
            self.cap = cv2.VideoCapture(str(self.path))
            ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok or first is None:
            self.cap.release()
            raise FinetecError(f"cannot decode video {self.path}; is it a video file? Re-encode "
                               "it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`")
        self._first = first
        self.fps = _sane_fps(self.cap.get(cv2.CAP_PROP_FPS), str(self.path))
        self.height, self.width = first.shape[:2]
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.realtime, self.loop = realtime, loop
        self.stop = stop or threading.Event()
        self.name = stream_name_from(self.path.stem)
        self.loops = 0
        self.decoded = 0  # frames read from the file (decoded or grabbed), all loops
        self.lagged = 0  # frames skipped undecoded because real-time replay fell behind
        self.frames_in_file: int | None = None  # known at the first end of the file

    @property
    def truncated(self) -> bool:
        """Whether the file ended well before the frame count its header announces."""
        n = self.frames_in_file
        return n is not None and self.frame_count > 0 and n < self.frame_count - 1

    def __iter__(self) -> Iterator[Frame]:
        cv2 = self._cv2
        pacer = _Pacer(self.stop)
        index, period = 0, 1.0 / self.fps
        pending = self._first
        while not self.stop.is_set():
            t = index / self.fps
            late = pacer.wait_until(t) > period if self.realtime else False
            if self.stop.is_set():
                break
            if pending is not None:
                image, pending = pending, None
                ok = True
            elif late:
                ok, image = self.cap.grab(), None
            else:
                ok, image = self.cap.read()
            if not ok:
                if self.frames_in_file is None:
                    self.frames_in_file = self.decoded
                if self.loops == 0 and self.truncated:
                    log.warning("%s ended after %d of the %d frames its header announces "
                                "(%.1f of %.1f s): truncated or damaged", self.path,
                                self.decoded, self.frame_count, self.decoded / self.fps,
                                self.frame_count / self.fps)
                if not self.loop:
                    return
                self.loops += 1
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, pending = self.cap.read()
                if not ok:
                    raise FinetecError(f"cannot rewind {self.path} for --loop; re-encode it")
                continue
            self.decoded += 1
            self.lagged += late
            yield Frame(index, t, None if late else image, late=late)
            index += 1

    def close(self) -> None:
        self.cap.release()


class CameraSource:
    """A camera (index or device path) through OpenCV, with retry and back-off.

    Timestamps are a monotonic clock from the first frame, taken as each frame
    is read. When the camera stops delivering, it is reopened with exponential
    back-off (0.1 s doubling to 2 s); after ``retry_seconds`` without a delivered
    frame (counted from the last frame, or from the start of reading, whatever
    reopens in between) a :class:`FinetecError` ends the run. A regular file
    opened as a camera (tests, demos) is delivered at its nominal rate. The time it was away is
    a gap in the timestamps, which the consumer's :class:`~finetec_live.live.
    capture.TickClock` turns into missing frames. Read it through a
    :class:`~finetec_live.live.capture.FramePump` so capture never waits on pose.
    """

    def __init__(self, spec: int | str, retry_seconds: float = 10.0,
                 stop: threading.Event | None = None) -> None:
        import cv2

        self._cv2 = cv2
        self.spec = int(spec) if isinstance(spec, str) and spec.isdigit() else spec
        self.retry_seconds = float(retry_seconds)
        self.stop = stop or threading.Event()
        self.cap = self._open()
        if self.cap is None:
            raise FinetecError(f"camera {self.spec} cannot be opened (absent, busy or no "
                               "permission); check --camera (an index such as 0, or a device "
                               "such as /dev/video0) and that no other program uses it")
        self.fps = _sane_fps(self.cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS, f"camera {self.spec}")
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.name = stream_name_from(f"camera{self.spec}" if isinstance(self.spec, int)
                                     else Path(str(self.spec)).name)
        self.reconnects = 0
        self.is_file = isinstance(self.spec, str) and Path(self.spec).is_file()

    def _open(self):
        with native.quiet(not log.isEnabledFor(logging.DEBUG)):
            cap = self._cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            cap.release()
            return None
        # keep the newest frame, not a queue of old ones (ignored where unsupported)
        cap.set(self._cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def __iter__(self) -> Iterator[Frame]:
        t0: float | None = None
        last_t = -math.inf  # timestamp of the last frame yielded
        last_frame = time.monotonic()  # the deadline counts from here
        index, delay, warned = 0, 0.1, False
        period = 1.0 / self.fps
        while not self.stop.is_set():
            ok, image = self.cap.read() if self.cap is not None else (False, None)
            now = time.monotonic()
            if ok and image is not None:
                if self.is_file and t0 is not None and now - t0 < last_t + period:
                    # a file opened as a camera (tests, demos) plays at its nominal
                    # rate, as a device would deliver it, not at decoding speed
                    self.stop.wait(t0 + last_t + period - now)
                    now = time.monotonic()
                t0 = now if t0 is None else t0
                last_t = max(now - t0, last_t + 1e-6)
                if warned:
                    log.info("camera %s delivers again after %.1f s", self.spec, now - last_frame)
                last_frame, delay, warned = now, 0.1, False
                yield Frame(index, last_t, image)
                index += 1
                continue
            if now - last_frame > self.retry_seconds:
                raise FinetecError(f"camera {self.spec} delivered no frame for "
                                   f"{self.retry_seconds:g} s; check that it is plugged in "
                                   "and not used by another program, or raise --camera-retry")
            if not warned:
                log.warning("camera %s stopped delivering frames; retrying", self.spec)
                warned = True
            if self.stop.wait(delay):
                break
            delay = min(delay * 2.0, 2.0)
            if self.cap is not None:
                self.cap.release()
            self.cap = self._open()
            if self.cap is not None:
                self.reconnects += 1
                log.debug("camera %s reopened", self.spec)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()

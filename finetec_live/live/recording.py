"""The pose-recording format (``--record FILE``, ``--keypoints FILE``) and its replay.

A recording is a msgpack stream: a header map (``format``, ``v``, ``layout``,
``fps``, ``width``, ``height``, ``source``), then one map per frame tick with the
raw MediaPipe-33 landmarks in pixels and their visibilities (``i``, ``t``,
``gap``, and ``xy``/``ok``/``vis`` when a pose was found), so a replay can use
another visibility threshold or layout.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.live.pose import Pose
from finetec_live.live.sources import DEFAULT_FPS, Frame, _Pacer, _sane_fps, stream_name_from

log = logging.getLogger(__name__)

RECORD_FORMAT = "finetec-keypoints"
RECORD_VERSION = 1


class KeypointRecorder:
    """Writes a pose recording (``--record``): header, then one record per tick."""

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int,
                 source: str) -> None:
        import msgpack

        self._packer = msgpack.Packer(use_bin_type=True)
        self.path = Path(path)
        try:
            self._fh = open(self.path, "wb")
        except OSError as exc:
            raise FinetecError(f"cannot write --record file {self.path} ({exc.strerror}); "
                               "choose a writable path") from None
        self._fh.write(self._packer.pack({
            "format": RECORD_FORMAT, "v": RECORD_VERSION, "layout": "mediapipe33",
            "fps": float(fps), "width": int(width), "height": int(height), "source": source}))
        self.count = 0

    def write(self, pose: Pose, gap: bool = False) -> None:
        """Record a mediapipe33 pose (raw: visibilities kept, no threshold)."""
        if pose.layout != "mediapipe33":
            raise ValueError(f"record the raw mediapipe33 pose, got layout {pose.layout}")
        rec = {"i": int(pose.index), "t": float(pose.timestamp), "gap": bool(gap)}
        if pose.valid:
            vis = pose.visibility if pose.visibility is not None else np.ones(33, np.float32)
            rec["xy"] = pose.positions.astype("<f4").tobytes()
            rec["ok"] = pose.joint_valid.astype(np.uint8).tobytes()
            rec["vis"] = vis.astype("<f4").tobytes()
        self._fh.write(self._packer.pack(rec))
        self.count += 1
        if self.count % 30 == 0:
            self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def read_recording(path: str | os.PathLike) -> tuple[dict, Iterator[tuple[Pose, bool]]]:
    """``(header, iterator of (pose, gap))`` of a pose recording."""
    import msgpack

    path = Path(path)
    if not path.is_file():
        raise FinetecError(f"keypoint file {path} not found; check the --keypoints path")
    fh = open(path, "rb")
    unpacker = msgpack.Unpacker(fh, raw=False)
    try:
        header = next(unpacker)
    except (StopIteration, ValueError, msgpack.UnpackException):
        fh.close()
        header = None
    if not isinstance(header, dict) or header.get("format") != RECORD_FORMAT:
        fh.close()
        raise FinetecError(f"{path} is not a finetec-live pose recording; make one with "
                           "`finetec-live --video CLIP --record FILE`")
    if header.get("v") != RECORD_VERSION:
        fh.close()
        raise FinetecError(f"{path} is a version {header.get('v')} recording; this finetec-live "
                           f"reads version {RECORD_VERSION}: record it again")

    def records() -> Iterator[tuple[Pose, bool]]:
        try:
            for rec in unpacker:
                i, t = int(rec["i"]), float(rec["t"])
                if "xy" in rec:
                    pose = Pose(i, t, np.frombuffer(rec["xy"], "<f4").reshape(33, 2),
                                np.frombuffer(rec["ok"], np.uint8).astype(bool), "mediapipe33",
                                visibility=np.frombuffer(rec["vis"], "<f4"))
                else:
                    pose = Pose.empty("mediapipe33", i, t)
                yield pose, bool(rec.get("gap", False))
        except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
            raise FinetecError(f"{path} is truncated or corrupt ({exc}); record it again") \
                from None
        finally:
            fh.close()

    return header, records()


class KeypointSource:
    """Replays a pose recording: frames carry their pose and no image."""

    def __init__(self, path: str | os.PathLike, realtime: bool = True, loop: bool = False,
                 stop: threading.Event | None = None) -> None:
        self.path = Path(path)
        header, it = read_recording(self.path)
        it.close()
        self.header = header
        self.fps = _sane_fps(float(header.get("fps", DEFAULT_FPS)), str(self.path))
        self.width, self.height = int(header.get("width", 0)), int(header.get("height", 0))
        self.realtime, self.loop = realtime, loop
        self.stop = stop or threading.Event()
        self.name = stream_name_from(self.path.stem)
        self.loops = 0

    def __iter__(self) -> Iterator[Frame]:
        pacer = _Pacer(self.stop)
        index, offset, span = 0, 0.0, 0.0
        while not self.stop.is_set():
            _, it = read_recording(self.path)
            n = 0
            for pose, gap in it:
                t = offset + pose.timestamp
                span = max(span, pose.timestamp)
                if self.realtime:
                    pacer.wait_until(t)
                if self.stop.is_set():
                    it.close()
                    return
                pose.index, pose.timestamp = index, t
                yield Frame(index, t, None, pose=pose, late=gap)
                index += 1
                n += 1
            if not self.loop or n == 0:
                return
            self.loops += 1
            offset += span + 1.0 / self.fps

    def close(self) -> None:
        pass

"""The pose-recording format (``--record FILE``, ``--keypoints FILE``) and its replay.

A recording is a msgpack stream: a header map (``format``, ``v``, ``layout``,
``fps``, ``width``, ``height``, ``source``), then one map per frame tick with the
raw MediaPipe-33 landmarks in pixels and their visibilities (``i``, ``t``,
``gap``, and ``xy``/``ok``/``vis`` when a pose was found), so a replay can use
another visibility threshold or layout. With several people (``--max-people``),
the first person found is in ``xy``/``ok``/``vis`` and the others in ``more``, a
list of maps with the same three keys (a reader that knows only one person reads
the first); people are recorded as found, before tracking, so a replay tracks
them again.

Reading a damaged or hostile file (the replay's promise: a frame that is not
there is a missing frame at its true time, and nothing is lost uncounted):

- A tick record that is unusable is skipped and counted by reason
  (:attr:`RecordReader.skipped`): ``not_a_map``; ``bad_field`` (``i`` not an
  int >= 0, ``t`` not a number, ``gap`` not a bool); ``bad_pose`` (``xy``,
  ``ok``, ``vis`` not all there, not bytes, or not 264/33/132 bytes; ``more`` not a
  list of at most :data:`MAX_PEOPLE_RECORDED` such maps);
  ``time_not_finite``; ``time_out_of_range`` (``|t| > MAX_TIME``, 1e9 s);
  ``time_not_increasing`` (not after the previous tick kept: a step back or a
  repeated time). The ticks kept have strictly increasing finite times.
- A forward jump in time is a gap: the ticks after it keep their times, so the
  windows see missing frames (the windower skips the empty ones in one step).
- A joint whose position is not finite or beyond ``MAX_PIXELS``, or whose
  visibility is not finite, is a missing joint (counted in ``bad_joints``).
- The file is read up to where it is truncated or stops decoding; the rest is
  ignored with one warning saying how much was read (``truncated``).
- A file without any usable tick is a :class:`FinetecError`, and so is a bad
  header (not a recording, another version or layout). Header ``fps``,
  ``width`` and ``height`` that are not sane numbers fall back to defaults with
  a warning.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.live.buffer import MAX_TIME
from finetec_live.live.pose import Pose
from finetec_live.live.sources import DEFAULT_FPS, Frame, _Pacer, _sane_fps, stream_name_from

log = logging.getLogger(__name__)

RECORD_FORMAT = "finetec-keypoints"
RECORD_VERSION = 1
#: Joint positions beyond +-MAX_PIXELS are missing joints (no image is that large).
MAX_PIXELS = 1e6
#: Most people in one tick record (``more`` holds all but the first).
MAX_PEOPLE_RECORDED = 64
#: Header width or height beyond this is ignored (0: unknown).
MAX_SIDE = 8192
#: Real-time replay waits at most this long (s) across a gap; the times are kept.
MAX_REPLAY_WAIT = 5.0
_NJ = 33
_BYTES = {"xy": _NJ * 2 * 4, "ok": _NJ, "vis": _NJ * 4}
# decoder limits: a record is a map of six small fields (a corrupt length
# header must not make the decoder allocate gigabytes)
_LIMITS = dict(max_buffer_size=1 << 20, max_str_len=1 << 12, max_bin_len=1 << 12,
               max_array_len=1 << 10, max_map_len=1 << 10, max_ext_len=1 << 10)


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

    def write(self, pose: Pose, gap: bool = False, more: list[Pose] = ()) -> None:
        """Record a mediapipe33 pose (raw: visibilities kept, no threshold), and the
        tick's other people (``more``)."""
        for p in (pose, *more):
            if p.layout != "mediapipe33":
                raise ValueError(f"record the raw mediapipe33 pose, got layout {p.layout}")
        rec = {"i": int(pose.index), "t": float(pose.timestamp), "gap": bool(gap)}
        if pose.valid:
            rec.update(_person(pose))
        others = [_person(p) for p in more if p.valid]
        if others:
            rec["more"] = others[: MAX_PEOPLE_RECORDED - 1]
        self._fh.write(self._packer.pack(rec))
        self.count += 1
        if self.count % 30 == 0:
            self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _person(pose: Pose) -> dict[str, bytes]:
    vis = pose.visibility if pose.visibility is not None else np.ones(_NJ, np.float32)
    return {"xy": pose.positions.astype("<f4").tobytes(),
            "ok": pose.joint_valid.astype(np.uint8).tobytes(),
            "vis": vis.astype("<f4").tobytes()}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class RecordReader:
    """Iterates ``(pose, gap, more)`` over the usable tick records of an open recording
    (``more``: the tick's other people, mediapipe33 poses).

    Counters: ``records`` (tick records decoded), ``ticks`` (yielded),
    ``skipped`` (reason -> records skipped), ``bad_joints``, ``truncated``
    (whether the file ended inside a record or stopped decoding),
    ``read_bytes`` / ``size`` and ``first_time`` / ``last_time`` of the ticks.
    """

    def __init__(self, path: Path, fh, unpacker, skipped: Counter | None = None) -> None:
        self.path, self._fh, self._unpacker = path, fh, unpacker
        self.size = os.fstat(fh.fileno()).st_size
        self.read_bytes = unpacker.tell()
        self.skipped: Counter = Counter() if skipped is None else skipped
        self.records = self.ticks = self.bad_joints = 0
        self.truncated = False
        self.first_time: float | None = None
        self.last_time: float | None = None

    def __iter__(self) -> Iterator[tuple[Pose, bool, list[Pose]]]:
        try:
            while True:
                try:
                    rec = next(self._unpacker)
                except StopIteration:
                    break
                except Exception as exc:  # any decoder failure on hostile bytes is corruption
                    log.debug("%s stops decoding at byte %d: %r", self.path, self.read_bytes,
                              exc)
                    break
                self.read_bytes = self._unpacker.tell()
                self.records += 1
                got = self._parse(rec)
                if isinstance(got, str):
                    if not self.skipped[got]:
                        log.warning("%s: skipping tick record %d (%s); further ones are "
                                    "counted", self.path, self.records, got.replace("_", " "))
                    self.skipped[got] += 1
                    continue
                self.ticks += 1
                if self.first_time is None:
                    self.first_time = got[0].timestamp
                self.last_time = got[0].timestamp
                yield got
            self.truncated = self.read_bytes < self.size
        finally:
            self._fh.close()

    def close(self) -> None:
        self._fh.close()

    def _parse(self, rec) -> tuple[Pose, bool, list[Pose]] | str:
        """``(pose, gap, more)`` of a record, or the reason it is skipped."""
        if not isinstance(rec, dict):
            return "not_a_map"
        i, t, gap = rec.get("i"), rec.get("t"), rec.get("gap", False)
        if not (_is_int(i) and i >= 0 and isinstance(gap, bool)
                and (_is_int(t) or isinstance(t, float))):
            return "bad_field"
        t = float(t)
        if not math.isfinite(t):
            return "time_not_finite"
        if abs(t) > MAX_TIME:
            return "time_out_of_range"
        if self.last_time is not None and t <= self.last_time:
            return "time_not_increasing"
        more = rec.get("more", [])
        if not isinstance(more, list) or len(more) >= MAX_PEOPLE_RECORDED:
            return "bad_pose"
        first = self._person(rec, i, t)
        others = [self._person(m, i, t) if isinstance(m, dict) else "bad_pose" for m in more]
        if isinstance(first, str) or any(isinstance(o, str) for o in others):
            return "bad_pose"
        return first, gap, [o for o in others if o.valid]

    def _person(self, rec: dict, i: int, t: float) -> Pose | str:
        """One person's pose of a record (the empty pose without one), or "bad_pose"."""
        present = [k for k in _BYTES if k in rec]
        if not present:
            return Pose.empty("mediapipe33", i, t)
        if len(present) < len(_BYTES) or any(
                not isinstance(rec[k], bytes) or len(rec[k]) != n for k, n in _BYTES.items()):
            return "bad_pose"
        xy = np.frombuffer(rec["xy"], "<f4").reshape(_NJ, 2).astype(np.float32)
        ok = np.frombuffer(rec["ok"], np.uint8).astype(bool)
        vis = np.frombuffer(rec["vis"], "<f4").astype(np.float32)
        bad = ok & ~((np.abs(xy) <= MAX_PIXELS).all(1) & np.isfinite(vis))
        if bad.any():
            self.bad_joints += int(bad.sum())
            ok &= ~bad
            xy[bad] = 0.0
        vis = np.where(np.isfinite(vis), vis, 0.0)
        return Pose(i, t, xy, ok, "mediapipe33", visibility=vis)


def _header_error(path: Path, header) -> str | None:
    if not isinstance(header, dict) or header.get("format") != RECORD_FORMAT:
        return (f"{path} is not a finetec-live pose recording; make one with "
                "`finetec-live --video CLIP --record FILE`")
    if header.get("v") != RECORD_VERSION:
        return (f"{path} is a version {header.get('v')!r} recording; this finetec-live "
                f"reads version {RECORD_VERSION}: record it again")
    if header.get("layout", "mediapipe33") != "mediapipe33":
        return (f"{path} holds layout {header.get('layout')!r}; this finetec-live reads "
                "mediapipe33 recordings: record it again")
    return None


def read_recording(path: str | os.PathLike,
                   skipped: Counter | None = None) -> tuple[dict, RecordReader]:
    """``(header, reader)`` of a pose recording; the reader yields ``(pose, gap, more)``.

    Raises :class:`FinetecError` when the file is missing or its header is not a
    version-1 mediapipe33 recording. ``skipped`` collects the skip reasons.
    """
    import msgpack

    path = Path(path)
    if not path.is_file():
        raise FinetecError(f"keypoint file {path} not found; check the --keypoints path")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise FinetecError(f"cannot read keypoint file {path} ({exc.strerror}); check its "
                           "permissions") from None
    unpacker = msgpack.Unpacker(fh, raw=False, **_LIMITS)
    try:
        header = next(unpacker)
    except Exception:  # empty, truncated or undecodable: not a recording
        header = None
    problem = _header_error(path, header)
    if problem is not None:
        fh.close()
        raise FinetecError(problem)
    return header, RecordReader(path, fh, unpacker, skipped)


def _header_fps(header: dict, what: str) -> float:
    fps = header.get("fps", DEFAULT_FPS)
    if not (_is_int(fps) or isinstance(fps, float)):
        log.warning("%s has fps %r in its header; assuming %.0f", what, fps, DEFAULT_FPS)
        return DEFAULT_FPS
    return _sane_fps(float(fps), what)


def _header_side(header: dict, key: str, what: str) -> int:
    v = header.get(key, 0)
    if not (_is_int(v) and 0 <= v <= MAX_SIDE):
        log.warning("%s has %s %r in its header; treating it as unknown", what, key, v)
        return 0
    return v


class KeypointSource:
    """Replays a pose recording: frames carry their pose and no image.

    The frames have strictly increasing finite times (also across ``--loop``,
    which continues the timeline one frame period after the last tick). Real-time
    replay waits at most ``max_wait`` seconds across a gap. What is
    skipped is counted: ``skipped`` (reason -> records, all passes),
    ``bad_ticks`` (their total), ``bad_joints``, ``ticks`` (frames delivered),
    ``truncated`` (the file ends early or stops decoding) with ``read_ticks`` and
    ``read_seconds`` of the first pass. A file without any usable tick raises
    :class:`FinetecError` when iterated.
    """

    def __init__(self, path: str | os.PathLike, realtime: bool = True, loop: bool = False,
                 stop: threading.Event | None = None,
                 max_wait: float = MAX_REPLAY_WAIT) -> None:
        self.path = Path(path)
        header, reader = read_recording(self.path)
        reader.close()
        self.header = header
        what = str(self.path)
        self.fps = _header_fps(header, what)
        self.width = _header_side(header, "width", what)
        self.height = _header_side(header, "height", what)
        self.realtime, self.loop, self.max_wait = realtime, loop, float(max_wait)
        self.stop = stop or threading.Event()
        self.name = stream_name_from(self.path.stem)
        self.loops = 0
        self.ticks = 0
        self.skipped: Counter = Counter()
        self.bad_joints = 0
        self.truncated = False
        self.read_ticks = 0
        self.read_seconds = 0.0

    @property
    def bad_ticks(self) -> int:
        """Tick records skipped, all reasons and passes."""
        return sum(self.skipped.values())

    def __iter__(self) -> Iterator[Frame]:
        pacer = _Pacer(self.stop)
        period = 1.0 / self.fps
        last: float | None = None  # the last time delivered
        waived = 0.0  # gap time not waited for in real time
        while not self.stop.is_set():
            _, reader = read_recording(self.path, self.skipped)
            offset: float | None = 0.0 if last is None else None
            n = 0
            try:
                for pose, gap, more in reader:
                    if offset is None:  # a --loop pass starts one period after the last tick
                        offset = last + period - pose.timestamp
                    t = offset + pose.timestamp
                    if abs(t) > MAX_TIME:
                        log.warning("%s: --loop stops, its timeline reached %.3g s", self.path, t)
                        return
                    if last is not None and t <= last:  # rounding of a large offset
                        self.skipped["time_not_increasing"] += 1
                        continue
                    if self.realtime:
                        if last is not None and t - last > self.max_wait:
                            waived += t - last - self.max_wait
                        pacer.wait_until(t - waived)
                    if self.stop.is_set():
                        return
                    for p in (pose, *more):
                        p.index, p.timestamp = self.ticks, t
                    yield Frame(self.ticks, t, None, pose=pose, late=gap, more=more)
                    self.ticks += 1
                    last, n = t, n + 1
            finally:
                reader.close()
                self.bad_joints += reader.bad_joints
            if self.loops == 0:
                self._first_pass_done(reader)
            if not self.loop or n == 0:
                return
            self.loops += 1

    def _first_pass_done(self, reader: RecordReader) -> None:
        """Report a truncated file, a file without usable ticks, skipped records."""
        self.read_ticks = reader.ticks
        if reader.first_time is not None:
            self.read_seconds = reader.last_time - reader.first_time + 1.0 / self.fps
        self.truncated = reader.truncated
        if reader.ticks == 0:
            why = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(
                reader.skipped.items())) or "none"
            cut = f", then it stops decoding at byte {reader.read_bytes}" \
                if reader.truncated else ""
            raise FinetecError(f"{self.path} holds no usable frame tick ({reader.records} "
                               f"records, skipped: {why}{cut}); record it again")
        if reader.truncated:
            log.warning("%s is truncated or damaged after %d ticks (%.1f s, byte %d of %d); "
                        "the rest is ignored", self.path, reader.ticks, self.read_seconds,
                        reader.read_bytes, reader.size)
        if reader.skipped:
            log.warning("%s: skipped %d of %d tick records (%s)", self.path,
                        sum(reader.skipped.values()), reader.records,
                        ", ".join(f"{k}: {n}" for k, n in sorted(reader.skipped.items())))

    def close(self) -> None:
        pass

"""Several people per frame: MediaPipe's Tasks ``PoseLandmarker`` on the wheel's own models.

The legacy ``solutions.pose`` API (:class:`~finetec_live.live.pose.PoseEstimator`)
follows one person. The Tasks API finds up to ``num_poses`` people, but it loads a
``.task`` bundle, which mediapipe 0.10.21 does not ship and newer releases download.
The wheel does ship the two models the bundle holds (``pose_detection.tflite`` and
``pose_landmark_full.tflite``, the legacy API's model_complexity 1); what they lack
is the image-input metadata (how pixels are normalised) that the Tasks graph reads.
:func:`pose_bundle` adds it with mediapipe's own metadata writer and zips the two
into a bundle, once, in the user's cache: nothing is downloaded.

:class:`MultiPoseEstimator` does not use the landmarker's own ``num_poses``: its graph
drops a person whose region overlaps a bigger person's (measured: of two people side
by side, one is found, at any detection threshold; with the first painted out, the
second is), and it runs its person detector on every frame where it follows fewer
than ``num_poses`` people, which, with one person in view and room for more, costs
half again the landmark model's time; and its detector sees the whole frame shrunk to
224 pixels, where a person in a wide scene is too small to be found. Instead each
person gets a video-mode landmarker of their own that sees a square around them with
the other people painted out, and a search for people not followed yet runs every
``search_every`` frames, with everyone followed painted out, in turn on the whole
frame and on squares of its shorter side.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finetec_live.data.paths import cache_dir
from finetec_live.errors import FinetecError
from finetec_live.live import native
from finetec_live.live.pose import Pose

log = logging.getLogger(__name__)

#: Most people per frame (``--max-people``): beyond this the landmark model's cost per
#: frame makes a live stream pointless on a CPU.
MAX_PEOPLE = 16
#: Frames between searches for people who are not tracked yet.
SEARCH_EVERY = 8
#: Two poses whose boxes overlap more than this are one person found twice.
SAME_PERSON_IOU = 0.5
#: How much of a person's size is painted out beyond their box (on each side).
MASK_GROW = 0.1
#: A person is followed in a square this many times their size (the larger side of
#: their box), moved when their centre leaves the middle RECENTRE of it.
CROP_SCALE = 2.0
RECENTRE = 0.15
MIN_CROP = 96
_MODELS = {  # bundle member -> (wheel path, pixel mean, pixel std): the models' input range
    "pose_detector.tflite": ("modules/pose_detection/pose_detection.tflite", 127.5, 127.5),
    "pose_landmarks_detector.tflite": ("modules/pose_landmark/pose_landmark_full.tflite",
                                       0.0, 255.0),
}


def _with_metadata(model: bytes, name: str, mean: float, std: float) -> bytes:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    writer = metadata_writer.MetadataWriter.create(bytearray(model))
    writer.add_general_info(name, "from the mediapipe wheel, image-input metadata added")
    writer.add_image_input(norm_mean=[mean], norm_std=[std])
    return bytes(writer.populate()[0])


def pose_bundle(folder: Path | None = None) -> Path:
    """The ``pose_landmarker`` bundle built from the installed wheel (made on first use).

    Its name carries a hash of the wheel's two models, so another mediapipe version
    gets its own bundle. Raises :class:`FinetecError` when the models are missing or
    the cache cannot be written.
    """
    with native.quiet(True):
        import mediapipe as mp
    root = Path(mp.__file__).parent
    try:
        models = {k: (root / rel).read_bytes() for k, (rel, _, _) in _MODELS.items()}
    except OSError as exc:
        raise FinetecError(f"the mediapipe wheel lacks its pose models ({exc}); reinstall "
                           "mediapipe==0.10.21") from None
    digest = hashlib.sha256(b"".join(models.values())).hexdigest()[:16]
    folder = cache_dir() if folder is None else Path(folder)
    path = folder / f"pose_landmarker_full-{digest}.task"
    if path.is_file():
        return path
    from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils

    members = {k: _with_metadata(models[k], k.removesuffix(".tflite"), mean, std)
               for k, (_, mean, std) in _MODELS.items()}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        model_asset_bundle_utils.create_model_asset_bundle(members, str(tmp))
        os.replace(tmp, path)  # another process building it at once is harmless
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FinetecError(f"cannot write the pose model bundle in {folder} ({exc}); set "
                           "FINETEC_CACHE to a writable folder") from None
    log.info("built the multi-person pose model bundle %s from the mediapipe wheel", path)
    return path


def _box(pose: Pose) -> np.ndarray:
    p = pose.positions[pose.joint_valid & (pose.visibility >= 0.5)]
    if len(p) < 2:
        p = pose.positions[pose.joint_valid]
    return np.concatenate([p.min(0), p.max(0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def distinct(people: list[Pose], overlap: float = SAME_PERSON_IOU) -> list[Pose]:
    """The poses with the same person found twice removed: of two poses whose boxes
    overlap by more than ``overlap`` (intersection over union), the one with more
    visible joints is kept."""
    order = sorted(people, key=lambda p: -float(p.visibility.sum()))
    kept: list[Pose] = []
    boxes: list[np.ndarray] = []
    for p in order:
        b = _box(p)
        if all(_iou(b, k) <= overlap for k in boxes):
            kept.append(p)
            boxes.append(b)
    return kept


def poses_from_result(result, width: int, height: int, index: int, timestamp: float,
                      origin: tuple[int, int] = (0, 0)) -> list[Pose]:
    """A landmarker result's people as mediapipe33 :class:`Pose` objects in pixels; the
    image it saw was ``width`` x ``height`` at ``origin`` of the frame (a crop)."""
    people = []
    for landmarks in result.pose_landmarks:
        arr = np.array([(origin[0] + p.x * width, origin[1] + p.y * height,
                         p.visibility if p.visibility is not None else 0.0)
                        for p in landmarks], dtype=np.float32)
        if arr.shape != (33, 3):
            raise ValueError(f"MediaPipe returned {arr.shape[0]} landmarks, expected 33")
        people.append(Pose(index, timestamp, arr[:, :2], np.isfinite(arr[:, :2]).all(1),
                           "mediapipe33", visibility=np.clip(arr[:, 2], 0.0, 1.0)))
    return people


def mask_boxes(rgb: np.ndarray, boxes: list[np.ndarray], grow: float = MASK_GROW,
               copy: bool = True) -> np.ndarray:
    """``rgb`` (a copy unless ``copy`` is False) with each box (``[x0, y0, x1, y1]``
    pixels), grown by ``grow`` of its size on every side, painted black."""
    out = rgb.copy() if copy else rgb
    h, w = rgb.shape[:2]
    for b in boxes:
        dx, dy = (b[2] - b[0]) * grow, (b[3] - b[1]) * grow
        x0, y0 = max(0, int(b[0] - dx)), max(0, int(b[1] - dy))
        x1, y1 = min(w, int(np.ceil(b[2] + dx))), min(h, int(np.ceil(b[3] + dy)))
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = 0
    return out


def crop_square(rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side`` x ``side`` square at ``(x0, y0)`` of ``rgb``, black beyond its edges."""
    h, w = rgb.shape[:2]
    out = np.zeros((side, side, 3), rgb.dtype)
    ax0, ay0, ax1, ay1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if ax1 > ax0 and ay1 > ay0:
        out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = rgb[ay0:ay1, ax0:ax1]
    return out


def crop_around(box: np.ndarray) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the square a person is followed in: :data:`CROP_SCALE`
    times their size, centred on them."""
    side = max(MIN_CROP, int(np.ceil(CROP_SCALE * max(box[2] - box[0], box[3] - box[1]))))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return int(np.rint(cx - side / 2)), int(np.rint(cy - side / 2)), side


def search_crops(width: int, height: int) -> list[tuple[int, int, int]]:
    """Where searches look, in turn: the whole frame, then (for a frame that is not
    square) squares of its shorter side overlapping by a quarter."""
    crops = [(0, 0, max(width, height))]
    short, long_ = min(width, height), max(width, height)
    n = 1 + int(np.ceil((long_ - short) / (0.75 * short))) if long_ > 1.2 * short else 0
    for k in range(n):
        off = round(k * (long_ - short) / max(1, n - 1))
        crops.append((off, 0, short) if width >= height else (0, off, short))
    return crops


@dataclass
class _Slot:
    """One followed person: a video-mode landmarker of its own, the square it sees."""

    landmarker: object
    box: np.ndarray
    crop: tuple[int, int, int]
    last_ms: int = -1
    misses: int = 0

    def recentre(self) -> None:
        """A new square when the person left the middle of theirs or changed size."""
        x0, y0, side = self.crop
        cx, cy = (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2
        size = max(self.box[2] - self.box[0], self.box[3] - self.box[1])
        off = max(abs(cx - x0 - side / 2), abs(cy - y0 - side / 2))
        if off > RECENTRE * side or not side / 3.0 <= size * 1.0 <= side / 1.5:
            self.crop = crop_around(self.box)


class MultiPoseEstimator:
    """Up to ``max_people`` people per frame: ``estimate(image_bgr, index, timestamp)``
    returns their mediapipe33 poses (an empty list when nobody is found).

    MediaPipe's multi-pose graph drops a person whose region overlaps a bigger one's
    (two people side by side, one found), and its detector looks at the whole frame
    shrunk to 224 pixels, where a person in a wide scene is too small to find. So each
    person found gets a landmarker of their own (``num_poses`` 1, video mode: it follows
    them without running the detector) that sees a square around them
    (:data:`CROP_SCALE` times their size, moved when they leave its middle) with the
    *other* people painted out. While fewer than ``max_people`` are followed, every
    ``search_every`` frames a search runs the detector on the frame with everyone
    followed painted out, looking in turn at the whole frame and at squares of its
    shorter side (:func:`search_crops`); a person it finds is followed from then on. A
    landmarker whose person is gone for ``search_every`` frames, or who follows someone
    another one follows, is put back.

    ``searches`` counts the searches, ``duplicates`` the poses dropped as a person found
    twice (:func:`distinct`).
    """

    def __init__(self, max_people: int, search_every: int = SEARCH_EVERY,
                 min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        if not 1 <= max_people <= MAX_PEOPLE:
            raise ValueError(f"max_people must be in 1..{MAX_PEOPLE}, got {max_people}")
        if search_every < 1:
            raise ValueError(f"search_every must be >= 1, got {search_every}")
        self.max_people, self.search_every = int(max_people), int(search_every)
        self._conf = (min_detection_confidence, min_tracking_confidence)
        self._quiet = not log.isEnabledFor(logging.DEBUG)
        os.environ.setdefault("GLOG_minloglevel", "2")
        with native.quiet(self._quiet):
            import mediapipe as mp  # heavy: imported on use
            from mediapipe.tasks.python import BaseOptions, vision

            self._mp, self._vision, self._base = mp, vision, BaseOptions
            self._cv2 = __import__("cv2")
        self._bundle = str(pose_bundle())
        self._slots: list[_Slot] = []
        self._spare: list[object] = []  # landmarkers put back, for reuse
        self._searcher = self._new(video=False)
        self._frames = 0
        self.searches = self.duplicates = 0

    def _new(self, video: bool = True):
        v = self._vision
        det, track = self._conf
        opts = v.PoseLandmarkerOptions(
            base_options=self._base(model_asset_path=self._bundle),
            running_mode=v.RunningMode.VIDEO if video else v.RunningMode.IMAGE, num_poses=1,
            min_pose_detection_confidence=det, min_pose_presence_confidence=det,
            min_tracking_confidence=track)
        with native.quiet(self._quiet):
            return v.PoseLandmarker.create_from_options(opts)

    def _image(self, rgb: np.ndarray):
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                              data=np.ascontiguousarray(rgb))

    def _follow(self, rgb: np.ndarray, ms: int, index: int, t: float) -> list[Pose]:
        """Each followed person, in their square, with the others painted out."""
        found: list[tuple[_Slot, Pose]] = []
        for slot in self._slots:
            x0, y0, side = slot.crop
            shift = np.array([x0, y0, x0, y0], np.float32)
            view = crop_square(rgb, x0, y0, side)  # then the others painted out of it
            others = [o.box - shift for o in self._slots if o is not slot]
            if others:
                view = mask_boxes(view, others, copy=False)
            slot.last_ms = max(ms, slot.last_ms + 1)  # video mode: increasing times
            with native.quiet(self._quiet and self._frames <= 2):
                result = slot.landmarker.detect_for_video(self._image(view), slot.last_ms)
            got = poses_from_result(result, side, side, index, t, (x0, y0))
            if got:
                slot.box, slot.misses = _box(got[0]), 0
                found.append((slot, got[0]))
            else:
                slot.misses += 1
        kept = distinct([p for _, p in found])
        self.duplicates += len(found) - len(kept)
        gone = [s for s, p in found if not any(p is k for k in kept)]
        gone += [s for s in self._slots if s.misses >= self.search_every]
        for slot in gone:
            self._slots.remove(slot)
            self._spare.append(slot.landmarker)
        for slot in self._slots:
            slot.recentre()
        return kept

    def _search(self, rgb: np.ndarray, people: list[Pose], index: int, t: float) -> list[Pose]:
        """One person not followed yet, on the frame with everyone followed painted out,
        in the next of the search squares."""
        h, w = rgb.shape[:2]
        crops = search_crops(w, h)
        x0, y0, side = crops[self.searches % len(crops)]
        self.searches += 1
        boxes = [_box(p) for p in people]
        view = crop_square(mask_boxes(rgb, boxes) if boxes else rgb, x0, y0, side)
        with native.quiet(self._quiet):
            got = poses_from_result(self._searcher.detect(self._image(view)), side, side,
                                    index, t, (x0, y0))
        new = [p for p in got if all(_iou(_box(p), b) <= SAME_PERSON_IOU for b in boxes)]
        for p in new:
            landmarker = self._spare.pop() if self._spare else self._new()
            self._slots.append(_Slot(landmarker, _box(p), crop_around(_box(p))))
        return new

    def estimate(self, image_bgr: np.ndarray, index: int, timestamp: float) -> list[Pose]:
        rgb = self._cv2.cvtColor(image_bgr, self._cv2.COLOR_BGR2RGB)
        ms = round(timestamp * 1000.0)
        people = self._follow(rgb, ms, index, timestamp)
        if len(self._slots) < self.max_people and (
                not self._slots or self._frames % self.search_every == 0):
            people += self._search(rgb, people, index, timestamp)
        self._frames += 1
        return people

    def close(self) -> None:
        for landmarker in [self._searcher, *self._spare, *(s.landmarker for s in self._slots)]:
            landmarker.close()
        self._slots.clear()
        self._spare.clear()

    def __enter__(self) -> MultiPoseEstimator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

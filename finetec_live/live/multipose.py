"""Several people per frame: MediaPipe's Tasks ``PoseLandmarker`` on the wheel's own models.

The legacy ``solutions.pose`` API (:class:`~finetec_live.live.pose.PoseEstimator`)
follows one person. The Tasks API finds up to ``num_poses`` people, but it loads a
``.task`` bundle, which mediapipe 0.10.21 does not ship and newer releases download.
The wheel does ship the two models the bundle holds (``pose_detection.tflite`` and
``pose_landmark_full.tflite``, the legacy API's model_complexity 1); what they lack
is the image-input metadata (how pixels are normalised) that the Tasks graph reads.
:func:`pose_bundle` adds it with mediapipe's own metadata writer and zips the two
into a bundle, once, in the user's cache: nothing is downloaded.

:class:`MultiPoseEstimator` runs the landmarker in video (tracking) mode. The Tasks
graph runs its person detector on every frame where it tracks fewer than
``num_poses`` people, which, with one person in view and room for more, costs half
again the landmark model's time. So the estimator searches for new people only every
``search_every`` frames (with ``num_poses`` = the most people allowed) and in
between tracks the people it found (a landmarker whose ``num_poses`` is that count
runs no detector while it keeps them all). A person who enters waits at most
``search_every`` frames to be found.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from finetec_live.errors import FinetecError
from finetec_live.live import native
from finetec_live.live.pose import Pose

log = logging.getLogger(__name__)

#: Most people per frame (``--max-people``): beyond this the landmark model's cost per
#: frame makes a live stream pointless on a CPU.
MAX_PEOPLE = 16
#: Frames between searches for people who are not tracked yet.
SEARCH_EVERY = 5
#: Two poses whose boxes overlap more than this are one person found twice.
SAME_PERSON_IOU = 0.5
_MODELS = {  # bundle member -> (wheel path, pixel mean, pixel std): the models' input range
    "pose_detector.tflite": ("modules/pose_detection/pose_detection.tflite", 127.5, 127.5),
    "pose_landmarks_detector.tflite": ("modules/pose_landmark/pose_landmark_full.tflite",
                                       0.0, 255.0),
}


def cache_dir() -> Path:
    """Where generated files live: ``$FINETEC_CACHE`` or ``~/.cache/finetec-live``."""
    return Path(os.environ.get("FINETEC_CACHE") or Path.home() / ".cache" / "finetec-live")


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


def poses_from_result(result, width: int, height: int, index: int,
                      timestamp: float) -> list[Pose]:
    """A landmarker result's people as mediapipe33 :class:`Pose` objects in pixels."""
    people = []
    for landmarks in result.pose_landmarks:
        arr = np.array([(p.x * width, p.y * height, p.visibility if p.visibility is not None
                         else 0.0) for p in landmarks], dtype=np.float32)
        if arr.shape != (33, 3):
            raise ValueError(f"MediaPipe returned {arr.shape[0]} landmarks, expected 33")
        people.append(Pose(index, timestamp, arr[:, :2], np.isfinite(arr[:, :2]).all(1),
                           "mediapipe33", visibility=np.clip(arr[:, 2], 0.0, 1.0)))
    return people


class MultiPoseEstimator:
    """Up to ``max_people`` people per frame: ``estimate(image_bgr, index, timestamp)``
    returns their mediapipe33 poses (an empty list when nobody is found).

    ``searches`` counts the frames that ran the person detector's search, ``duplicates``
    the poses dropped as a person found twice (:func:`distinct`).
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
        self._landmarkers: dict[int, object] = {}  # num_poses -> landmarker
        self._last_ms: dict[int, int] = {}  # num_poses -> last timestamp it was given
        self._tracked = 0  # people found on the previous frame
        self._frames = 0
        self.searches = self.duplicates = 0

    def _landmarker(self, num_poses: int):
        if num_poses not in self._landmarkers:
            v = self._vision
            det, track = self._conf
            opts = v.PoseLandmarkerOptions(
                base_options=self._base(model_asset_path=self._bundle),
                running_mode=v.RunningMode.VIDEO, num_poses=num_poses,
                min_pose_detection_confidence=det, min_pose_presence_confidence=det,
                min_tracking_confidence=track)
            with native.quiet(self._quiet):
                self._landmarkers[num_poses] = v.PoseLandmarker.create_from_options(opts)
        return self._landmarkers[num_poses]

    def estimate(self, image_bgr: np.ndarray, index: int, timestamp: float) -> list[Pose]:
        h, w = image_bgr.shape[:2]
        search = self._tracked == 0 or self._frames % self.search_every == 0
        n = self.max_people if search or self._tracked >= self.max_people else self._tracked
        self.searches += search
        self._frames += 1
        # video mode needs strictly increasing milliseconds per landmarker
        ms = max(round(timestamp * 1000.0), self._last_ms.get(n, -1) + 1)
        self._last_ms[n] = ms
        rgb = np.ascontiguousarray(self._cv2.cvtColor(image_bgr, self._cv2.COLOR_BGR2RGB))
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        landmarker = self._landmarker(n)
        if self._frames <= 2:  # the graph's start warns on stderr
            with native.quiet(self._quiet):
                result = landmarker.detect_for_video(image, ms)
        else:
            result = landmarker.detect_for_video(image, ms)
        found = poses_from_result(result, w, h, index, timestamp)
        people = distinct(found)
        self.duplicates += len(found) - len(people)
        self._tracked = len(people)
        return people

    def close(self) -> None:
        for landmarker in self._landmarkers.values():
            landmarker.close()
        self._landmarkers.clear()

    def __enter__(self) -> MultiPoseEstimator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

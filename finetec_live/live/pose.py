"""Pose front end: MediaPipe Pose (legacy ``solutions.pose`` API) to :class:`Pose`.

The estimator runs MediaPipe's model_complexity 1 landmark model, which ships
inside the mediapipe wheel (nothing is downloaded), in tracking mode
(``static_image_mode=False``). Landmarks are converted to *pixels* (``x * width``,
``y * height``) so the skeleton keeps the image's aspect ratio.

A frame without landmarks is a missing frame: :meth:`Pose.empty`, never a zero
pose and never the previous pose repeated. Joints whose visibility is below the
threshold are missing joints; a frame with fewer than ``min_joints`` valid joints
in the target layout is a missing frame.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from finetec_live.live import native
from finetec_live.skeleton.layouts import get_layout, map_layout

log = logging.getLogger(__name__)


@dataclass
class Pose:
    """One frame tick's skeleton.

    Attributes
    ----------
    index : frame tick (0, 1, 2, ...) in the source.
    timestamp : seconds of source time.
    positions : (V, 2) float32 pixels; 0 where the joint is missing.
    joint_valid : (V,) bool.
    layout : layout name (``"mediapipe33"``, ``"penn13"``, ...).
    visibility : (V,) float32 MediaPipe visibility in [0, 1], or None.
    """

    index: int
    timestamp: float
    positions: np.ndarray
    joint_valid: np.ndarray
    layout: str
    visibility: np.ndarray | None = None

    def __post_init__(self) -> None:
        lay = get_layout(self.layout)
        v = lay.num_joints
        self.positions = np.array(self.positions, dtype=np.float32)  # a copy: zeroed below
        self.joint_valid = np.array(self.joint_valid, dtype=bool)
        if self.positions.shape != (v, 2):
            raise ValueError(f"positions has shape {self.positions.shape}, layout {lay.name} "
                             f"needs ({v}, 2)")
        if self.joint_valid.shape != (v,):
            raise ValueError(f"joint_valid has shape {self.joint_valid.shape}, needs ({v},)")
        if self.visibility is not None:
            self.visibility = np.asarray(self.visibility, dtype=np.float32)
            if self.visibility.shape != (v,):
                raise ValueError(f"visibility has shape {self.visibility.shape}, needs ({v},)")
        if not np.isfinite(self.positions[self.joint_valid]).all():
            raise ValueError("positions of valid joints must be finite")
        self.positions[~self.joint_valid] = 0.0

    @property
    def valid(self) -> bool:
        """False for a missing frame (no joint valid)."""
        return bool(self.joint_valid.any())

    @classmethod
    def empty(cls, layout: str, index: int, timestamp: float) -> Pose:
        """The missing frame: no valid joint."""
        v = get_layout(layout).num_joints
        return cls(index, timestamp, np.zeros((v, 2), np.float32), np.zeros(v, bool), layout)

    @classmethod
    def from_mediapipe(cls, landmarks, width: int, height: int, index: int,
                       timestamp: float) -> Pose:
        """From a ``NormalizedLandmarkList`` (``results.pose_landmarks``) or None.

        Every joint is kept with its visibility; thresholds are applied by
        :meth:`to_layout`.
        """
        if landmarks is None:
            return cls.empty("mediapipe33", index, timestamp)
        lm = landmarks.landmark
        arr = np.array([(p.x * width, p.y * height, p.visibility) for p in lm], dtype=np.float32)
        if arr.shape != (33, 3):
            raise ValueError(f"MediaPipe returned {arr.shape[0]} landmarks, expected 33")
        return cls(index, timestamp, arr[:, :2], np.isfinite(arr[:, :2]).all(1), "mediapipe33",
                   visibility=np.clip(arr[:, 2], 0.0, 1.0))

    def to_layout(self, layout: str, min_visibility: float = 0.5,
                  min_joints: int | None = None) -> Pose:
        """Threshold visibility and map to ``layout``.

        Joints below ``min_visibility`` are missing; a derived joint is missing
        when any joint it is built from is. When fewer than ``min_joints`` joints
        (default: half the target layout's, rounded up) remain, the frame is
        missing: :meth:`empty`.
        """
        dst = get_layout(layout)
        valid = self.joint_valid.copy()
        if self.visibility is not None:
            valid &= self.visibility >= min_visibility
        pos, jv = map_layout(self.positions, valid, self.layout, dst)
        need = (dst.num_joints + 1) // 2 if min_joints is None else min_joints
        if jv.sum() < max(need, 1):
            return Pose.empty(dst.name, self.index, self.timestamp)
        return Pose(self.index, self.timestamp, pos, jv, dst.name)

    def missing_like(self) -> Pose:
        """The same tick as a missing frame (used by frame dropping)."""
        return Pose.empty(self.layout, self.index, self.timestamp)


class PoseEstimator:
    """MediaPipe Pose in tracking mode; one instance per video stream.

    ``estimate(image_bgr, index, timestamp)`` returns a mediapipe33 :class:`Pose`
    with visibilities (or the empty pose when nobody is found). MediaPipe's
    start-up warnings (native code, on stderr) are silenced unless logging is at
    DEBUG.
    """

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, smooth_landmarks: bool = True) -> None:
        self._quiet = not log.isEnabledFor(logging.DEBUG)
        os.environ.setdefault("GLOG_minloglevel", "2")
        with native.quiet(self._quiet):
            import mediapipe as mp  # heavy: imported on use

            self._cv2 = __import__("cv2")
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=False, model_complexity=model_complexity,
                smooth_landmarks=smooth_landmarks, enable_segmentation=False,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence)
        self._warm = False

    def estimate(self, image_bgr: np.ndarray, index: int, timestamp: float) -> Pose:
        h, w = image_bgr.shape[:2]
        rgb = self._cv2.cvtColor(image_bgr, self._cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        if self._warm:
            result = self._pose.process(rgb)
        else:  # the first frames start MediaPipe's graph, which warns on stderr
            with native.quiet(self._quiet):
                result = self._pose.process(rgb)
            self._warm = index >= 2
        return Pose.from_mediapipe(result.pose_landmarks, w, h, index, timestamp)

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

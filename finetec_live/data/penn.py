"""Penn Action (Zhang, Zhu, Derpanis, ICCV 2013): 2,326 clips, 13 joints, 15 classes.

Reads ``<root>/penn_action/labels/*.mat``. Positions of invalid joints are kept
as the file holds them: an estimated position for an occluded joint, a
placeholder near (1, 1) for a joint outside the image.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from finetec_live.data.clips import Clip, ClipSet, class_index
from finetec_live.data.paths import dataset_dir
from finetec_live.errors import FinetecError

log = logging.getLogger(__name__)

# Neither annotation format stores a frame rate. Penn Action frames come from
# web video and are treated as 30 fps. A check on the data: the median period
# of the head's vertical motion over the 50 jump_rope clips with a clear rhythm
# is 14.5 frames, 2.07 jumps per second at 30 fps, the usual 100-140 skips a
# minute (at 25 fps it would be 1.7, at 60 fps 4.1).
PENN_FPS = 30.0
PENN_CLASSES = ("baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk",
                "golf_swing", "jump_rope", "jumping_jacks", "pullup", "pushup", "situp",
                "squat", "strum_guitar", "tennis_forehand", "tennis_serve")
# A joint outside the image is stored as a placeholder with x == y in
# [0, 1.53] (1 pixel scaled by the annotation's resize factor: 0.75, 0.667,
# 1.0, 1.5, ...). No real joint lies this close to the corner: the nearest one
# in the data set has a coordinate above 8.6 pixels.
PENN_PLACEHOLDER_MAX = 2.0
PENN_MASKS = ("visibility", "annotated")
_HOLDS = "penn_action/labels/0001.mat ... 2326.mat"
_FIX = "replace the file with an intact copy of the Penn Action labels"


def _read_penn_file(path: Path) -> dict:
    """Parse one Penn Action label file into plain arrays (raises FinetecError)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:
        raise FinetecError(f"{path} is not a readable .mat file ({type(exc).__name__}: "
                           f"{exc}); {_FIX}") from None
    missing = [k for k in ("action", "x", "y", "visibility", "train") if k not in mat]
    if missing:
        raise FinetecError(f"{path} lacks the Penn Action keys {missing}; {_FIX}")
    x = np.asarray(mat["x"], dtype=np.float64)
    y = np.asarray(mat["y"], dtype=np.float64)
    vis = np.asarray(mat["visibility"])
    if x.ndim != 2 or x.shape[1] != 13 or y.shape != x.shape or vis.shape != x.shape:
        raise FinetecError(f"{path}: x, y, visibility have shapes {x.shape}, {y.shape}, "
                           f"{vis.shape}, expected (T, 13) each; {_FIX}")
    if "nframes" in mat and int(np.asarray(mat["nframes"]).ravel()[0]) != x.shape[0]:
        raise FinetecError(f"{path}: nframes does not match the {x.shape[0]} rows of x; {_FIX}")
    train = int(np.asarray(mat["train"]).ravel()[0])
    if train not in (1, -1):
        raise FinetecError(f"{path}: train flag is {train}, expected 1 or -1; {_FIX}")
    return {
        "action": str(np.asarray(mat["action"]).ravel()[0]),
        "xy": np.stack([x, y], axis=-1).astype(np.float32),
        "visibility": vis.astype(bool),
        "placeholder": (x < PENN_PLACEHOLDER_MAX) & (y < PENN_PLACEHOLDER_MAX),
        "split": "train" if train == 1 else "test",
    }


@functools.lru_cache(maxsize=4)
def _load_penn_cached(labels_dir: str, mask: str) -> ClipSet:
    files = sorted(Path(labels_dir).glob("*.mat"))
    if not files:
        raise FinetecError(f"no .mat files in {labels_dir}; the data root must hold {_HOLDS}")
    parsed = [_read_penn_file(f) for f in files]
    class_names, index = class_index(p["action"] for p in parsed)
    clips = []
    for f, p in zip(files, parsed, strict=True):
        valid = ~p["placeholder"]
        if mask == "visibility":
            valid &= p["visibility"]
        clips.append(Clip(name=f.stem, positions=p["xy"], joint_valid=valid,
                          label=index[p["action"]], label_name=p["action"], split=p["split"],
                          fps=PENN_FPS, layout="penn13"))
    log.debug("read %d Penn Action clips from %s", len(clips), labels_dir)
    return ClipSet("penn", tuple(clips), class_names, "penn13")


def load_penn_action(root: str | os.PathLike | None = None,
                     mask: str = "visibility") -> ClipSet:
    """Penn Action (2,326 clips, 15 classes, official split 1,258 train / 1,068 test).

    Parameters
    ----------
    root : the data root (default :func:`finetec_live.data.paths.data_root`); the
        files are ``<root>/penn_action/labels/*.mat``.
    mask : ``"visibility"`` (default): a joint is valid where the file's
        ``visibility`` flag is 1, and never where it holds the outside-the-image
        placeholder; ``"annotated"``: every joint except the placeholders is
        valid, keeping the annotators' estimates of occluded joints.

    The set is named ``"penn"``. It is cached per process (the first call reads
    all files, about half a second to a few seconds; later calls return the
    same object).
    """
    if mask not in PENN_MASKS:
        raise FinetecError(f"unknown Penn Action mask {mask!r}; use one of {PENN_MASKS}")
    labels = dataset_dir(root, "penn_action/labels", _HOLDS)
    return _load_penn_cached(str(labels), mask)

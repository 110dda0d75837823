"""PYSKL / MMAction2 2D skeleton annotation pickles (NTU-60/120 HRNet, FineGym, ...).

Read with :func:`~finetec_live.data.safepickle.safe_load_pickle`, which rebuilds
numpy arrays and plain containers and refuses every other global, so a
malicious file cannot execute code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetec_live.data.clips import Clip, ClipSet
from finetec_live.data.safepickle import safe_load_pickle
from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import LAYOUTS, get_layout

log = logging.getLogger(__name__)

_LAYOUT_BY_JOINTS = {13: "penn13", 15: "jhmdb15", 17: "coco17", 25: "ntu25", 33: "mediapipe33"}


def _read_file(path: Path, train_split: str, test_split: str | None
               ) -> tuple[list, dict[str, str]]:
    """The annotations and ``{frame_dir: "train" | "test"}`` (train wins a clip in both)."""
    obj = safe_load_pickle(path)
    if (not isinstance(obj, dict) or not isinstance(obj.get("split"), dict)
            or not isinstance(obj.get("annotations"), list)):
        raise FinetecError(f"{path} is not a PYSKL annotation file (a dict with 'split' and "
                           "'annotations'); pass a PYSKL/MMAction2 2D skeleton pickle")
    for s in (train_split, test_split):
        if s is not None and s not in obj["split"]:
            raise FinetecError(f"{path} has no split {s!r}; available: "
                               f"{', '.join(sorted(obj['split']))}")
    split_of = {str(d): "test" for d in obj["split"].get(test_split) or ()}
    split_of.update({str(d): "train" for d in obj["split"][train_split]})
    return obj["annotations"], split_of


def _fields(path: Path, i: int, ann) -> tuple[str, np.ndarray, int, np.ndarray | None]:
    """``(frame_dir, keypoint (M, T, V, ?), label, keypoint_score or None)`` of one annotation."""
    try:
        name = str(ann["frame_dir"])
        kp = np.asarray(ann["keypoint"], dtype=np.float32)
        label = int(ann["label"])
        score = ann.get("keypoint_score")
        score = None if score is None else np.asarray(score, dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise FinetecError(f"{path}: annotation {i} lacks frame_dir/label/keypoint "
                           f"({exc}); pass a PYSKL 2D skeleton pickle") from None
    return name, kp, label, score


def _check_shapes(path: Path, name: str, kp: np.ndarray, score: np.ndarray | None) -> None:
    if kp.ndim != 4 or kp.shape[-1] != 2:
        raise FinetecError(f"{path}: annotation {name} keypoint has shape {kp.shape}, "
                           "expected (M, T, V, 2); only 2D skeleton files are supported")
    if score is not None and score.shape != kp.shape[:3]:
        raise FinetecError(f"{path}: annotation {name} keypoint_score has shape "
                           f"{score.shape}, expected {kp.shape[:3]}")


def _one_person(kp: np.ndarray, score: np.ndarray | None,
                threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(positions (T, V, 2), joint_valid (T, V))`` of the most reliable person."""
    finite = np.isfinite(kp).all(axis=-1)  # (M, T, V)
    if score is not None:
        valid = finite & (np.nan_to_num(score, nan=-np.inf) >= threshold)
        person = int(np.argmax(np.nan_to_num(score, nan=0.0).mean(axis=(1, 2))))
    else:
        valid = finite & (kp != 0).any(axis=-1)
        person = int(np.argmax(valid.sum(axis=(1, 2))))
    return kp[person], valid[person]


def _layout(path: Path, v: int, layout: str | None) -> str:
    if layout is None:
        if v not in _LAYOUT_BY_JOINTS:
            raise FinetecError(f"{path}: cannot infer the layout of {v}-joint skeletons; pass "
                               f"layout= one of {', '.join(sorted(LAYOUTS))}")
        layout = _LAYOUT_BY_JOINTS[v]
    if get_layout(layout).num_joints != v:
        raise FinetecError(f"{path}: skeletons have {v} joints but layout {layout} has "
                           f"{get_layout(layout).num_joints}; pass the matching layout=")
    return layout


def _class_names(path: Path, labels: list[int],
                 class_names: Sequence[str] | None) -> tuple[str, ...]:
    n_cls = max(labels) + 1
    names = (tuple(class_names) if class_names is not None
             else tuple(f"class_{i:03d}" for i in range(n_cls)))
    if len(names) < n_cls or min(labels) < 0:
        raise FinetecError(f"{path}: labels run from {min(labels)} to {n_cls - 1} but "
                           f"{len(names)} class names were given; pass one name per label")
    return names


def load_pyskl(path: str | os.PathLike, train_split: str = "xsub_train",
               test_split: str | None = "xsub_val", layout: str | None = None,
               class_names: Sequence[str] | None = None, score_threshold: float = 0.2,
               fps: float = 30.0) -> ClipSet:
    """A PYSKL / MMAction2 2D skeleton annotation pickle, as a set named after the file's stem.

    The file holds ``{"split": {name: [frame_dir, ...]}, "annotations": [...]}``
    where each annotation has ``frame_dir``, ``label`` (int), ``keypoint``
    ``(M, T, V, 2)`` and usually ``keypoint_score`` ``(M, T, V)``. Clips listed
    in ``train_split`` become ``"train"``, those in ``test_split`` ``"test"`` (None: no
    test clips); clips in neither are left out (their number is logged).

    One person per clip: the one with the highest mean keypoint score (with no
    scores, the one with the most non-zero joints); ties go to the first.
    A joint is valid where its score is at least ``score_threshold`` (with no
    scores: where its position is finite and not exactly (0, 0), PYSKL's
    padding) and its position is finite. The layout is inferred from V
    (13 -> penn13, 15 -> jhmdb15, 17 -> coco17, 25 -> ntu25, 33 ->
    mediapipe33) unless given. ``class_names`` (index = label)
    defaults to ``class_000``, ``class_001``, ...
    """
    path = Path(path)
    annotations, split_of = _read_file(path, train_split, test_split)
    chosen, outside = [], 0
    for i, ann in enumerate(annotations):
        name, kp, label, score = _fields(path, i, ann)
        if name not in split_of:
            outside += 1
            continue
        _check_shapes(path, name, kp, score)
        if kp.shape[0] == 0 or kp.shape[1] == 0:
            log.warning("%s: annotation %s has no person or no frame; skipped", path, name)
            continue
        chosen.append((name, *_one_person(kp, score, score_threshold), label))
    if outside:
        log.info("%s: %d annotations in neither %s nor %s left out", path, outside,
                 train_split, test_split)
    if not chosen:
        raise FinetecError(f"{path}: no annotation belongs to splits {train_split!r} or "
                           f"{test_split!r}; choose other split names")
    v = chosen[0][1].shape[1]
    lay = _layout(path, v, layout)
    names = _class_names(path, [c[3] for c in chosen], class_names)
    clips = []
    for name, pos, valid, label in chosen:
        if pos.shape[1] != v:
            raise FinetecError(f"{path}: annotation {name} has {pos.shape[1]} joints, others "
                               f"have {v}; all skeletons must share one layout")
        clips.append(Clip(name=name, positions=np.nan_to_num(pos), joint_valid=valid,
                          label=label, label_name=names[label], split=split_of[name],
                          fps=fps, layout=lay))
    return ClipSet(path.stem, tuple(clips), names, lay)


def save_pyskl(path: str | os.PathLike, clips: Sequence[Clip],
               splits: dict[str, Sequence[str]]) -> Path:
    """Write ``clips`` as a PYSKL 2D annotation pickle (one person each): ``keypoint
    (1, T, V, 2)``, ``keypoint_score (1, T, V)`` (1 where the joint is valid, else 0, its
    position 0), ``label``, ``frame_dir`` (the clip's name), ``total_frames``;
    ``splits`` maps split names to clip names. What :func:`load_pyskl` reads back."""
    import pickle

    annotations = []
    for c in clips:
        valid = np.asarray(c.joint_valid, bool)
        kp = np.where(valid[..., None], c.positions, 0.0).astype(np.float32)
        annotations.append({"frame_dir": c.name, "label": int(c.label),
                            "total_frames": int(c.num_frames), "keypoint": kp[None],
                            "keypoint_score": valid.astype(np.float32)[None]})
    path = Path(path)
    with open(path, "wb") as fh:
        pickle.dump({"split": {k: [str(n) for n in v] for k, v in splits.items()},
                     "annotations": annotations}, fh, protocol=4)
    return path

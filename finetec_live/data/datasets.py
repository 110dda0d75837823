"""Readers for labelled 2D skeleton clips: Penn Action, J-HMDB (DD-Net pickles), PYSKL.

Every reader returns a :class:`ClipSet` of :class:`Clip` objects: positions
``(T, V, 2)`` float32, a joint-valid mask ``(T, V)`` bool, an integer label with
its name, the split (``"train"`` / ``"test"``), the frame rate and the layout
name (see :mod:`finetec_live.skeleton.layouts`).

Positions of invalid joints are kept as the file holds them (Penn Action: an
estimated position for an occluded joint, a placeholder near (1, 1) for a joint
outside the image); code must look at ``joint_valid``, never at the values.
Arrays inside clips are read-only because parsed data sets are cached per
process and shared between callers: copy before changing them.

Pickled files are read with
:class:`~finetec_live.data.safepickle.RestrictedUnpickler`, which can rebuild numpy
arrays and plain containers and refuses every other global, so a malicious file
cannot execute code.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finetec_live.data.paths import data_root
from finetec_live.data.safepickle import RestrictedUnpickler, safe_load_pickle  # noqa: F401 (re-exported)
from finetec_live.errors import FinetecError
from finetec_live.skeleton.layouts import LAYOUTS, get_layout

log = logging.getLogger(__name__)

SPLITS = ("train", "test")

# Neither annotation format stores a frame rate. HMDB51 (J-HMDB's source) was
# converted to 30 fps by its authors; Penn Action frames come from web video
# and are treated as 30 fps. A check on the data: the median period of the
# head's vertical motion over the 50 jump_rope clips with a clear rhythm is
# 14.5 frames, 2.07 jumps per second at 30 fps, the usual 100-140 skips a
# minute (at 25 fps it would be 1.7, at 60 fps 4.1).
PENN_FPS = 30.0
JHMDB_FPS = 30.0

PENN_NUM_CLIPS = 2326
PENN_CLASSES = ("baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk",
                "golf_swing", "jump_rope", "jumping_jacks", "pullup", "pushup", "situp",
                "squat", "strum_guitar", "tennis_forehand", "tennis_serve")
# A joint outside the image is stored as a placeholder with x == y in
# [0, 1.53] (1 pixel scaled by the annotation's resize factor: 0.75, 0.667,
# 1.0, 1.5, ...). No real joint lies this close to the corner: the nearest one
# in the data set has a coordinate above 8.6 pixels.
PENN_PLACEHOLDER_MAX = 2.0
PENN_MASKS = ("visibility", "annotated")

JHMDB_CLASSES = ("catch", "clap", "golf", "jump", "pick", "pour", "pullup", "push", "run",
                 "sit", "stand", "throw", "walk", "wave")


# --------------------------------------------------------------------------- containers
def _frozen_array(value, dtype, name: str) -> np.ndarray:
    arr = np.array(value, dtype=dtype, copy=True)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class Clip:
    """One labelled skeleton clip.

    Attributes
    ----------
    name : identifier unique within its data set (Penn: ``"0001"``).
    positions : ``(T, V, 2)`` float32, x right and y down (pixels for Penn
        Action, the file's units otherwise).
    joint_valid : ``(T, V)`` bool, True where the joint's position is known.
    label : class index into the owning :class:`ClipSet`'s ``class_names``.
    label_name : the class name.
    split : ``"train"`` or ``"test"``.
    fps : nominal frame rate of the clip.
    layout : layout name from :data:`finetec_live.skeleton.layouts.LAYOUTS`.
    """

    name: str
    positions: np.ndarray
    joint_valid: np.ndarray
    label: int
    label_name: str
    split: str
    fps: float
    layout: str

    def __post_init__(self) -> None:
        pos = _frozen_array(self.positions, np.float32, "positions")
        valid = _frozen_array(self.joint_valid, bool, "joint_valid")
        if pos.ndim != 3 or pos.shape[2] != 2 or pos.shape[0] < 1:
            raise ValueError(f"clip {self.name}: positions has shape {pos.shape}, "
                             "expected (T, V, 2) with T >= 1")
        if valid.shape != pos.shape[:2]:
            raise ValueError(f"clip {self.name}: joint_valid has shape {valid.shape}, "
                             f"expected {pos.shape[:2]}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"clip {self.name}: unknown layout {self.layout!r}")
        if pos.shape[1] != LAYOUTS[self.layout].num_joints:
            raise ValueError(f"clip {self.name}: {pos.shape[1]} joints, layout {self.layout} "
                             f"has {LAYOUTS[self.layout].num_joints}")
        if self.split not in SPLITS:
            raise ValueError(f"clip {self.name}: split {self.split!r}, expected one of {SPLITS}")
        if not self.fps > 0:
            raise ValueError(f"clip {self.name}: fps must be positive, got {self.fps}")
        if int(self.label) < 0:
            raise ValueError(f"clip {self.name}: label must be >= 0, got {self.label}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "joint_valid", valid)
        object.__setattr__(self, "label", int(self.label))
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.positions.shape[1])

    @property
    def duration(self) -> float:
        """Seconds covered by the clip at its nominal frame rate."""
        return self.num_frames / self.fps

    @property
    def frame_valid(self) -> np.ndarray:
        """``(T,)`` bool: frames with at least one valid joint."""
        return self.joint_valid.any(axis=1)

    def timestamps(self) -> np.ndarray:
        """``(T,)`` float64 seconds of each frame at the nominal rate, starting at 0."""
        return np.arange(self.num_frames, dtype=np.float64) / self.fps


@dataclass(frozen=True)
class ClipSet:
    """The clips of one data set with its class names (index = label) and layout."""

    name: str
    clips: tuple[Clip, ...]
    class_names: tuple[str, ...]
    layout: str
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "clips", tuple(self.clips))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        get_layout(self.layout)
        for c in self.clips:
            if c.layout != self.layout:
                raise ValueError(f"{self.name}: clip {c.name} has layout {c.layout}, "
                                 f"the set has {self.layout}")
            if c.label >= len(self.class_names) or self.class_names[c.label] != c.label_name:
                raise ValueError(f"{self.name}: clip {c.name} label {c.label} "
                                 f"({c.label_name!r}) does not match class_names")
        object.__setattr__(self, "_by_name", {c.name: c for c in self.clips})

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __getitem__(self, index: int | str) -> Clip:
        if isinstance(index, str):
            return self._by_name[index]
        return self.clips[index]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, split: str) -> ClipSet:
        """The clips of one split, same class names and layout."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return ClipSet(f"{self.name}:{split}", tuple(c for c in self.clips if c.split == split),
                       self.class_names, self.layout)

    def train(self) -> ClipSet:
        return self.subset("train")

    def test(self) -> ClipSet:
        return self.subset("test")

    def labels(self) -> np.ndarray:
        """``(N,)`` int64 labels in clip order."""
        return np.asarray([c.label for c in self.clips], dtype=np.int64)

    def lengths(self) -> np.ndarray:
        """``(N,)`` int64 frame counts in clip order."""
        return np.asarray([c.num_frames for c in self.clips], dtype=np.int64)


# --------------------------------------------------------------------------- Penn Action
def _penn_dir(root: str | os.PathLike | None) -> Path:
    labels = data_root(root) / "penn_action" / "labels"
    if not labels.is_dir():
        raise FinetecError(f"{labels} not found; the data root must hold "
                           "penn_action/labels/0001.mat ... 2326.mat")
    return labels


def _read_penn_file(path: Path) -> dict:
    """Parse one Penn Action label file into plain arrays (raises FinetecError)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:
        raise FinetecError(f"{path} is not a readable .mat file ({type(exc).__name__}: "
                           f"{exc}); replace it with an intact copy of the Penn Action "
                           "labels") from None
    missing = [k for k in ("action", "x", "y", "visibility", "train") if k not in mat]
    if missing:
        raise FinetecError(f"{path} lacks the Penn Action keys {missing}; replace it with an "
                           "intact copy of the Penn Action labels")
    x = np.asarray(mat["x"], dtype=np.float64)
    y = np.asarray(mat["y"], dtype=np.float64)
    vis = np.asarray(mat["visibility"])
    if x.ndim != 2 or x.shape[1] != 13 or y.shape != x.shape or vis.shape != x.shape:
        raise FinetecError(f"{path}: x, y, visibility have shapes {x.shape}, {y.shape}, "
                           f"{vis.shape}, expected (T, 13) each; replace the file")
    if "nframes" in mat and int(np.asarray(mat["nframes"]).ravel()[0]) != x.shape[0]:
        raise FinetecError(f"{path}: nframes does not match the {x.shape[0]} rows of x; "
                           "replace the file")
    train = int(np.asarray(mat["train"]).ravel()[0])
    if train not in (1, -1):
        raise FinetecError(f"{path}: train flag is {train}, expected 1 or -1; replace the file")
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
        raise FinetecError(f"no .mat files in {labels_dir}; the data root must hold "
                           "penn_action/labels/0001.mat ... 2326.mat")
    parsed = [_read_penn_file(f) for f in files]
    class_names = tuple(sorted({p["action"] for p in parsed}))
    index = {n: i for i, n in enumerate(class_names)}
    clips = []
    for f, p in zip(files, parsed, strict=True):
        valid = ~p["placeholder"]
        if mask == "visibility":
            valid &= p["visibility"]
        clips.append(Clip(name=f.stem, positions=p["xy"], joint_valid=valid,
                          label=index[p["action"]], label_name=p["action"], split=p["split"],
                          fps=PENN_FPS, layout="penn13"))
    log.debug("read %d Penn Action clips from %s", len(clips), labels_dir)
    return ClipSet("penn_action", tuple(clips), class_names, "penn13")


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

    The parsed set is cached per process (the first call reads all files, about
    half a second to a few seconds; later calls return the same object).
    """
    if mask not in PENN_MASKS:
        raise FinetecError(f"unknown Penn Action mask {mask!r}; use one of {PENN_MASKS}")
    labels = _penn_dir(root).resolve()
    return _load_penn_cached(str(labels), mask)


# --------------------------------------------------------------------------- J-HMDB
@functools.lru_cache(maxsize=4)
def _load_jhmdb_cached(jdir: str, split: int) -> ClipSet:
    parts = {}
    for name in SPLITS:
        path = Path(jdir) / f"GT_{name}_{split}.pkl"
        obj = safe_load_pickle(path)
        if (not isinstance(obj, dict) or not isinstance(obj.get("pose"), list)
                or not isinstance(obj.get("label"), list)
                or len(obj["pose"]) != len(obj["label"])):
            raise FinetecError(f"{path} is not a DD-Net J-HMDB file (a dict with equally long "
                               "'pose' and 'label' lists); replace it with an intact copy")
        for i, (pose, lab) in enumerate(zip(obj["pose"], obj["label"], strict=True)):
            if (not isinstance(pose, np.ndarray) or pose.ndim != 3 or pose.shape[1:] != (15, 2)
                    or pose.shape[0] < 1 or not isinstance(lab, str)):
                raise FinetecError(f"{path}: entry {i} is not a (T, 15, 2) pose with a string "
                                   "label; replace the file with an intact copy")
        parts[name] = obj
    class_names = tuple(sorted({lab for obj in parts.values() for lab in obj["label"]}))
    index = {n: i for i, n in enumerate(class_names)}
    clips = []
    for name, obj in parts.items():
        for i, (pose, lab) in enumerate(zip(obj["pose"], obj["label"], strict=True)):
            pos = np.asarray(pose, dtype=np.float32)
            clips.append(Clip(name=f"{name}_{i:04d}", positions=pos,
                              joint_valid=np.isfinite(pos).all(axis=-1), label=index[lab],
                              label_name=lab, split=name, fps=JHMDB_FPS, layout="jhmdb15"))
    return ClipSet(f"jhmdb_split{split}", tuple(clips), class_names, "jhmdb15")


def load_jhmdb(root: str | os.PathLike | None = None, split: int = 1) -> ClipSet:
    """J-HMDB ground-truth puppet joints as prepared by DD-Net (split 1: 433 / 176 clips).

    Reads ``<root>/jhmdb/GT_train_<split>.pkl`` and ``GT_test_<split>.pkl`` (a dict
    with a ``pose`` list of ``(T, 15, 2)`` float arrays in normalised
    coordinates and a ``label`` list of class names) with
    :class:`RestrictedUnpickler`. 14 classes (DD-Net's preprocessing lost 7 of
    the 21). Every joint is valid (the puppet is complete); clip names are
    ``"train_0000"`` etc. in file order. Cached per process.
    """
    jdir = data_root(root) / "jhmdb"
    if not jdir.is_dir():
        raise FinetecError(f"{jdir} not found; the data root must hold "
                           f"jhmdb/GT_train_{split}.pkl and GT_test_{split}.pkl")
    return _load_jhmdb_cached(str(jdir.resolve()), int(split))


# --------------------------------------------------------------------------- PYSKL
def _layout_for_joints(v: int, path: Path) -> str:
    by_count = {17: "coco17", 25: "ntu25"}
    if v not in by_count:
        raise FinetecError(f"{path}: cannot infer the layout of {v}-joint skeletons; pass "
                           f"layout= one of {', '.join(sorted(LAYOUTS))}")
    return by_count[v]


def load_pyskl(path: str | os.PathLike, train_split: str = "xsub_train",
               test_split: str = "xsub_val", layout: str | None = None,
               class_names: Sequence[str] | None = None, score_threshold: float = 0.2,
               fps: float = 30.0) -> ClipSet:
    """A PYSKL / MMAction2 2D skeleton annotation pickle (NTU-60/120 HRNet, FineGym, ...).

    The file holds ``{"split": {name: [frame_dir, ...]}, "annotations": [...]}``
    where each annotation has ``frame_dir``, ``label`` (int), ``keypoint``
    ``(M, T, V, 2)`` and usually ``keypoint_score`` ``(M, T, V)``. Clips listed
    in ``train_split`` become ``"train"``, those in ``test_split`` ``"test"``;
    clips in neither are left out.

    One person per clip: the one with the highest mean keypoint score (with no
    scores, the one with the most non-zero joints); ties go to the first.
    A joint is valid where its score is at least ``score_threshold`` (with no
    scores: where its position is finite and not exactly (0, 0), PYSKL's
    padding) and its position is finite. The layout is inferred from V
    (17 -> coco17, 25 -> ntu25) unless given. ``class_names`` (index = label)
    defaults to ``class_000``, ``class_001``, ...
    """
    path = Path(path)
    obj = safe_load_pickle(path)
    if (not isinstance(obj, dict) or not isinstance(obj.get("split"), dict)
            or not isinstance(obj.get("annotations"), list)):
        raise FinetecError(f"{path} is not a PYSKL annotation file (a dict with 'split' and "
                           "'annotations'); pass a PYSKL/MMAction2 2D skeleton pickle")
    for s in (train_split, test_split):
        if s not in obj["split"]:
            raise FinetecError(f"{path} has no split {s!r}; available: "
                               f"{', '.join(sorted(obj['split']))}")
    split_of = {str(d): "test" for d in obj["split"][test_split]}
    split_of.update({str(d): "train" for d in obj["split"][train_split]})
    chosen = []
    for i, ann in enumerate(obj["annotations"]):
        try:
            name = str(ann["frame_dir"])
            kp = np.asarray(ann["keypoint"], dtype=np.float32)
            label = int(ann["label"])
            score = ann.get("keypoint_score")
            score = None if score is None else np.asarray(score, dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise FinetecError(f"{path}: annotation {i} lacks frame_dir/label/keypoint "
                               f"({exc}); pass a PYSKL 2D skeleton pickle") from None
        if name not in split_of:
            continue
        if kp.ndim != 4 or kp.shape[-1] != 2:
            raise FinetecError(f"{path}: annotation {name} keypoint has shape {kp.shape}, "
                               "expected (M, T, V, 2); only 2D skeleton files are supported")
        if score is not None and score.shape != kp.shape[:3]:
            raise FinetecError(f"{path}: annotation {name} keypoint_score has shape "
                               f"{score.shape}, expected {kp.shape[:3]}")
        if kp.shape[0] == 0 or kp.shape[1] == 0:
            log.warning("%s: annotation %s has no person or no frame; skipped", path, name)
            continue
        finite = np.isfinite(kp).all(axis=-1)  # (M, T, V)
        if score is not None:
            valid = finite & (np.nan_to_num(score, nan=-np.inf) >= score_threshold)
            person = int(np.argmax(np.nan_to_num(score, nan=0.0).mean(axis=(1, 2))))
        else:
            valid = finite & (kp != 0).any(axis=-1)
            person = int(np.argmax(valid.sum(axis=(1, 2))))
        chosen.append((name, kp[person], valid[person], label))
    if not chosen:
        raise FinetecError(f"{path}: no annotation belongs to splits {train_split!r} or "
                           f"{test_split!r}; choose other split names")
    v = chosen[0][1].shape[1]
    lay = layout if layout is not None else _layout_for_joints(v, path)
    if get_layout(lay).num_joints != v:
        raise FinetecError(f"{path}: skeletons have {v} joints but layout {lay} has "
                           f"{get_layout(lay).num_joints}; pass the matching layout=")
    n_cls = max(c[3] for c in chosen) + 1
    names = (tuple(class_names) if class_names is not None
             else tuple(f"class_{i:03d}" for i in range(n_cls)))
    if len(names) < n_cls or min(c[3] for c in chosen) < 0:
        raise FinetecError(f"{path}: labels run from {min(c[3] for c in chosen)} to "
                           f"{n_cls - 1} but {len(names)} class names were given; pass one "
                           "name per label")
    clips = []
    for name, pos, valid, label in chosen:
        if pos.shape[1] != v:
            raise FinetecError(f"{path}: annotation {name} has {pos.shape[1]} joints, others "
                               f"have {v}; all skeletons must share one layout")
        clips.append(Clip(name=name, positions=np.nan_to_num(pos), joint_valid=valid,
                          label=label, label_name=names[label], split=split_of[name],
                          fps=fps, layout=lay))
    return ClipSet(path.stem, tuple(clips), names, lay)


DATASETS = ("penn_action", "jhmdb")
_DATASET_ALIASES = {"penn": "penn_action", "penn_action": "penn_action", "jhmdb": "jhmdb",
                    "jhmdb1": "jhmdb", "j-hmdb": "jhmdb"}


def load_dataset(name: str | os.PathLike, root: str | os.PathLike | None = None,
                 **kwargs) -> ClipSet:
    """Load a data set by name (``"penn_action"``/``"penn"``, ``"jhmdb"``) or a PYSKL file.

    A name that is not a known data set but ends in ``.pkl`` is read with
    :func:`load_pyskl` (``kwargs`` go to the reader, e.g. ``train_split=``).
    """
    key = str(name).lower()
    if key in _DATASET_ALIASES:
        if _DATASET_ALIASES[key] == "penn_action":
            return load_penn_action(root, **kwargs)
        return load_jhmdb(root, **kwargs)
    if key.endswith(".pkl"):
        return load_pyskl(name, **kwargs)
    raise FinetecError(f"unknown data set {name!r}; use penn_action, jhmdb or the path of a "
                       "PYSKL .pkl annotation file")


def clear_cache() -> None:
    """Forget the parsed data sets held by this process."""
    _load_penn_cached.cache_clear()
    _load_jhmdb_cached.cache_clear()
